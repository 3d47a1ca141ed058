"""`smsctl report -o report.html`: the stats as one self-contained HTML page to attach to a ticket.

Nothing in the page reaches the network when it is opened: the CSS is inline, the charts are SVG drawn
here, and a Content-Security-Policy forbids every load (`default-src 'none'`). The figures are also
embedded as JSON (`<script type="application/json" id="smsctl-stats">`, never executed) for tools.
Phone numbers are masked; texts of messages appear only with --include-text.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
from dataclasses import dataclass
from pathlib import Path

from smsctl.codec import iso_utc
from smsctl.config import Settings
from smsctl.history.backends import open_reader
from smsctl.history.export import refuse_store_files, write_privately
from smsctl.history.interface import MessageSummary
from smsctl.history.stats import GroupBy, StatsFigures, StatsQuery, StatsReport, duration, share

FAILURES_SHOWN = 50


@dataclass(frozen=True)
class Failure:
    message_uuid: str | None
    to: str
    status: str
    error: str | None
    at: str | None
    text: str | None  # only with --include-text


@dataclass(frozen=True)
class HtmlReport:
    stats: StatsReport
    failures: list[Failure]
    include_text: bool


def mask(number: str | None) -> str:
    """A phone number with its middle hidden: enough to tell numbers apart in a ticket, not to text them."""
    if not number:
        return "?"
    digits = number.lstrip("+")
    if not digits.isdigit() or len(digits) < 7:
        return "•••"
    return f"+{digits[:4]}{'•' * (len(digits) - 6)}{digits[-2:]}"


def build_report(settings: Settings, query: StatsQuery, include_text: bool) -> HtmlReport:
    """The core function of `smsctl report`: the figures by country, and the latest failures."""
    store = open_reader(settings.store)
    if store is None:
        return HtmlReport(StatsReport(StatsFigures(), query, query.now), [], include_text)
    with contextlib.closing(store):
        report = StatsReport(store.delivery_stats(query), query, query.now)
        failed: list[MessageSummary] = []
        for status in ("rejected", "undeliverable"):
            failed += store.recent_messages(
                FAILURES_SHOWN, status=status, since=query.since, batch=query.batch
            )
        failed.sort(key=lambda m: -m.last_activity)
        failures = []
        for m in failed[:FAILURES_SHOWN]:
            text = None
            if (
                include_text
                and m.message_uuid
                and (found := store.find_message(m.message_uuid))
                and found.sent
            ):
                text = found.sent.text
            failures.append(Failure(m.message_uuid, mask(m.to), m.status, m.error_code or m.error,
                                    iso_utc(m.last_activity), text))  # fmt: skip
    return HtmlReport(report, failures, include_text)


def write_report(settings: Settings, output: Path, page: str) -> None:
    """Write the page private (0600), renamed into place once complete; the store's own files refused."""
    target = Path(os.path.realpath(output))
    refuse_store_files(settings, output, target)
    write_privately(output, target, lambda sink: sink.write(page))


# --- the page -----------------------------------------------------------------------------------------

CSS = """
:root{color-scheme:light dark;--fg:#1d2330;--muted:#667085;--card:#f4f6fa;--ok:#12b76a;--bad:#f04438;--warn:#f79009;--bar:#4f6bed}
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ef;--muted:#98a2b3;--card:#1e2431}body{background:#121722}}
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);margin:0 auto;max-width:1100px;padding:16px}
h1{font-size:1.4em;margin:0 0 4px}h2{font-size:1.1em;margin:28px 0 8px}.muted{color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px;margin-top:14px}
.card{background:var(--card);border-radius:10px;padding:10px 12px}.card b{display:block;font-size:1.5em}
.ok{color:var(--ok)}.bad{color:var(--bad)}.warn{color:var(--warn)}
table{border-collapse:collapse;width:100%;font-size:.92em}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--card)}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.wrap{overflow-x:auto}
svg{width:100%;height:auto;display:block}svg text{fill:var(--muted);font-size:11px}
"""


def render_html(report: HtmlReport) -> str:
    data = report.stats.to_json()
    e = html.escape
    title = "smsctl delivery report"
    lat = data["latency"]
    cards = [
        ("messages", f"{data['messages']:,}", f"{data['sent']:,} reached Vonage", ""),
        ("delivered", share(data["delivered"]["rate"]), f"{data['delivered']['count']:,}", "ok"),
        ("rejected", share(data["rejected"]["rate"]), f"{data['rejected']['count']:,}", "bad"),
        ("undeliverable", share(data["undeliverable"]["rate"]), f"{data['undeliverable']['count']:,}", "bad"),
        ("no final status", f"{data['pending']['count']:,}", f"{data['pending']['stale']:,} stale", "warn"),
        ("latency p50 / p90", f"{duration(lat['p50'])} / {duration(lat['p90'])}", f"p99 {duration(lat['p99'])}, max {duration(lat['max'])}", ""),
        ("cost", "; ".join(f"{c['total']:.4f} {c['currency']}" for c in data["cost"]) or "-", f"{data['segments']:,} segments", ""),
    ]  # fmt: skip
    filters = ", ".join(f"{k} {v}" for k, v in data["filters"].items() if v) or "all messages"
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>{e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{e(title)}</h1><div class=muted>{e(filters)} · generated {e(data['generated_at'] or '')}</div>",
        "<div class=cards>"
        + "".join(f"<div class=card><span class=muted>{e(k)}</span><b class={c}>{e(v)}</b><span class=muted>{e(s)}</span></div>"
                  for k, v, s, c in cards)
        + "</div>",
    ]  # fmt: skip
    basis = lat["basis"]
    parts.append(f"<h2>Latency to a final status</h2><div class=muted>n={lat['count']:,}: Vonage's timestamps for "
                 f"{basis['vonage']:,}, our clock for {basis['received']:,}</div>")  # fmt: skip
    parts.append(_bars([(h["bucket"], h["count"]) for h in data["histogram"]]))
    points = data["series"]["points"]
    if len(points) >= 2:
        parts.append(f"<h2>Delivered share by {e(data['series']['unit'])}</h2>")
        parts.append(_line([(p["at"], p["delivered_rate"]) for p in points]))
    if data["groups"]:
        parts.append(f"<h2>By {e(str(data['by']))}</h2>")
        parts.append(_bars([(g["key"], g["messages"]) for g in data["groups"][:20]]))
        parts.append(_table(["", "messages", "delivered", "rejected", "undeliverable", "pending", "cost"],
                            [[g["key"], f"{g['messages']:,}", share(g["delivered_rate"]), f"{g['rejected']:,}",
                              f"{g['undeliverable']:,}", f"{g['pending']:,}", f"{g['cost']:.4f}"] for g in data["groups"]],
                            numeric=(1, 2, 3, 4, 5, 6)))  # fmt: skip
    if data["errors"]:
        parts.append("<h2>Errors</h2>")
        parts.append(_table(["code", "meaning", "messages"],
                            [[x["code"], x["meaning"] or "", f"{x['count']:,}"] for x in data["errors"]], numeric=(2,)))  # fmt: skip
    if report.failures:
        parts.append(f"<h2>Latest failures</h2><div class=muted>numbers masked{'' if report.include_text else '; texts left out (--include-text adds them)'}</div>")  # fmt: skip
        header = ["when", "message", "to", "status", "error"] + (["text"] if report.include_text else [])
        rows = [[f.at or "", f.message_uuid or "-", f.to, f.status, f.error or ""]
                + ([f.text or ""] if report.include_text else []) for f in report.failures]  # fmt: skip
        parts.append(_table(header, rows))
    embedded = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    parts.append(f'<script type="application/json" id="smsctl-stats">{embedded}</script></body></html>')
    return "\n".join(parts)


def _table(header: list[str], rows: list[list[str]], numeric: tuple[int, ...] = ()) -> str:
    e = html.escape

    def cell(tag: str, i: int, value: str) -> str:
        return f"<{tag}{' class=n' if i in numeric else ''}>{e(value)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, str(v)) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<div class=wrap><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def _bars(items: list[tuple[str, int]]) -> str:
    """Horizontal bars, one per item, labelled with their counts."""
    e = html.escape
    peak = max((n for _, n in items), default=0) or 1
    row, width = 22, 600
    svg = [f'<svg viewBox="0 0 {width} {row * len(items) + 4}" role=img>']
    for i, (label, n) in enumerate(items):
        y = i * row + 2
        w = round((width - 200) * n / peak)
        svg.append(f'<text x=0 y={y + 15}>{e(label[:24])}</text><rect x=110 y={y + 3} width={w} height=15 rx=3 '
                   f'fill="var(--bar)"></rect><text x={114 + w} y={y + 15}>{n:,}</text>')  # fmt: skip
    svg.append("</svg>")
    return "".join(svg)


def _line(points: list[tuple[str, float | None]]) -> str:
    """A line of shares (0–1) over time; a gap where nothing was final yet."""
    e = html.escape
    width, height, left = 600, 160, 36
    step = (width - left - 10) / max(1, len(points) - 1)
    svg = [f'<svg viewBox="0 0 {width} {height + 24}" role=img>']
    for grid in (0.0, 0.5, 1.0):
        y = 8 + (1 - grid) * height
        svg.append(f'<text x=0 y={y + 4:.0f}>{grid:.0%}</text><line x1={left} x2={width} y1={y:.0f} y2={y:.0f} '
                   'stroke="currentColor" stroke-opacity=".12"></line>')  # fmt: skip
    path: list[str] = []
    for i, (_, rate) in enumerate(points):
        if rate is None:
            continue
        x, y = left + i * step, 8 + (1 - rate) * height
        path.append(f"{'M' if not path else 'L'}{x:.1f},{y:.1f}")
    svg.append(f'<path d="{" ".join(path)}" fill=none stroke="var(--ok)" stroke-width=2></path>')
    svg.append(f'<text x={left} y={height + 22}>{e(points[0][0])}</text>'
               f'<text x={width} y={height + 22} text-anchor=end>{e(points[-1][0])}</text></svg>')  # fmt: skip
    return "".join(svg)


def report_query(since: float | None, batch: str | None, now: float, stale_after: float) -> StatsQuery:
    """A report always breaks the figures down by country."""
    return StatsQuery(since, batch, GroupBy.COUNTRY, now, stale_after)
