"""`smsctl stats`: delivery at a glance: rates, latency, errors, cost, by country, network, sender, hour…

Charts are drawn with Rich (already our terminal library: block characters need no plotting library)
and only where a person is looking: piped, under NO_COLOR or TERM=dumb, the same figures come as
plain tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from smsctl.cli.options import DebugOption, JsonOption, choice

if TYPE_CHECKING:
    from rich.console import Console

    from smsctl.history.stats import StatsReport

BAR = "█"
SPARKS = "▁▂▃▄▅▆▇█"


def stats(
    since: Annotated[
        str | None, typer.Option(help="Only messages sent (or first seen) in the last 2h, 7d…")
    ] = None,
    batch: Annotated[str | None, typer.Option(help="Only this bulk batch.")] = None,
    by: Annotated[
        str | None,
        typer.Option(help="Break the figures down by country, network, sender, error, hour or day."),
    ] = None,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Delivery statistics over the store: delivered/rejected/undeliverable rates, latency percentiles,
    error codes with their meanings, cost and segments, computed in the database.

    Example: smsctl stats --since 7d --by country
    """
    import time

    from smsctl.config import load_settings
    from smsctl.history.reading import parse_duration
    from smsctl.history.stats import GroupBy, StatsQuery
    from smsctl.history.stats_view import read_stats
    from smsctl.output import emit_json, reporting

    with reporting(json_output, debug):
        group = choice(GroupBy, by, "--by") if by else None
        now = time.time()
        settings = load_settings()
        query = StatsQuery(
            now - parse_duration(since) if since else None, batch, group, now, settings.stale_after
        )
        report = read_stats(settings, query)
        if json_output:
            emit_json(report.to_json())
        else:
            render(report)


def charts_wanted(console: Console) -> bool:
    """Charts for a person at a terminal that can show them; plain tables otherwise."""
    return console.is_terminal and not console.no_color and not console.is_dumb_terminal


def render(report: StatsReport) -> None:
    from rich.table import Table

    from smsctl.history.stats import share
    from smsctl.output import note, out

    console, data = out(), report.to_json()
    charts = charts_wanted(console)
    if not report.messages:
        note(
            "no messages in the store"
            + (" for these filters" if data["filters"] != {"since": None, "batch": None} else "")
        )
        return
    not_sent = sum(data["not_sent"].values())
    console.print(f"{report.messages:,} messages: {data['sent']:,} reached Vonage" + (
        f", {not_sent:,} not sent ({', '.join(f'{k} {v:,}' for k, v in sorted(data['not_sent'].items()))})" if not_sent else ""))  # fmt: skip
    outcome = Table("outcome", "messages", "share", box=None)
    for status in ("delivered", "rejected", "undeliverable"):
        outcome.add_row(status, f"{data[status]['count']:,}", share(data[status]["rate"]))
    pending = data["pending"]
    outcome.add_row("no final status", f"{pending['count']:,}", share(report.rate(pending["count"])) +
                    (f"  ({pending['stale']:,} stale)" if pending["stale"] else ""))  # fmt: skip
    console.print(outcome)
    _latency(console, report, charts)
    if data["errors"]:
        errors = Table("error", "meaning", "messages", box=None)
        for e in data["errors"]:
            errors.add_row(e["code"], (e["meaning"] or "").split(" - ")[0], f"{e['count']:,}")
        console.print(errors)
    cost = (
        ", ".join(f"{c['total']:.4f} {c['currency']} ({c['messages']:,} priced)" for c in data["cost"])
        or "no prices reported"
    )
    console.print(f"cost: {cost}; {data['segments']:,} segments")
    _series(console, report, charts)
    if data["groups"]:
        _groups(console, data, charts)


def _latency(console: Console, report: StatsReport, charts: bool) -> None:
    from rich.table import Table

    from smsctl.history.stats import duration

    lat = report.figures.latency
    if not lat.count:
        console.print("latency: no final statuses yet")
        return
    basis = f"Vonage's timestamps for {lat.vonage:,}" + (
        f", our clock for {lat.received:,}" if lat.received else ""
    )
    console.print(f"latency to a final status (n={lat.count:,}; {basis}): p50 {duration(lat.p50)}  p90 {duration(lat.p90)}  "
                  f"p99 {duration(lat.p99)}  max {duration(lat.max)}")  # fmt: skip
    histogram = report.histogram()
    table = Table("latency", "messages", box=None)
    if charts:
        table.add_column("")
    peak = max(n for _, n in histogram) or 1
    for label, n in histogram:
        row = [label, f"{n:,}"] + ([BAR * round(30 * n / peak)] if charts else [])
        table.add_row(*row)
    console.print(table)


def _series(console: Console, report: StatsReport, charts: bool) -> None:
    from rich.table import Table

    from smsctl.history.stats import share

    points = report.figures.series
    if len(points) < 2:
        return
    unit = report.figures.series_unit
    rates = [report.rate(d, fin) for _, _, fin, d in points]
    if charts:
        line = "".join(" " if r is None else SPARKS[min(7, int(r * 8))] for r in rates)
        console.print(f"delivered share by {unit} ({points[0][0]} … {points[-1][0]}): {line}")
        return
    table = Table(unit, "sent", "final", "delivered", box=None)
    for (at, sent, final, _), rate in zip(points, rates, strict=True):
        table.add_row(at, f"{sent:,}", f"{final:,}", share(rate))
    console.print(table)


def _groups(console: Console, data: dict[str, object], charts: bool) -> None:
    from rich.table import Table

    from smsctl.history.stats import share

    groups = data["groups"]
    assert isinstance(groups, list)
    table = Table(
        str(data["by"]), "messages", "delivered", "rejected", "undeliverable", "pending", "cost", box=None
    )
    if charts:
        table.add_column("")
    peak = max(g["messages"] for g in groups) or 1
    for g in groups:
        row = [g["key"], f"{g['messages']:,}", share(g["delivered_rate"]), f"{g['rejected']:,}",
               f"{g['undeliverable']:,}", f"{g['pending']:,}", f"{g['cost']:.4f}"]  # fmt: skip
        table.add_row(*row, *([BAR * round(20 * g["messages"] / peak)] if charts else []))
    console.print(table)
