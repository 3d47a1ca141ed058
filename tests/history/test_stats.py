"""`smsctl stats` (issue 24) on both backends, held to an independent computation over `smsctl export`'s
JSON Lines with the standard library only: counts, rates, latency percentiles and basis, the latency
histogram, error codes, cost, segments and a breakdown by day."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from smsctl.config import StoreLocation
from tests.cli.test_json_contract import valid
from tests.helpers import BackgroundSandbox

runner = CliRunner()

FINALS = ("delivered", "rejected", "undeliverable")
# The emulator's magic numbers: rejected 1240, undeliverable 1260, slow, silent, duplicate, out of order, 3 parts.
SCENARIOS = ["+14155550110", "+14155550120", "+14155550130", "+14155550140", "+14155550150", "+14155550160",
             "+14155550170"]  # fmt: skip


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def nearest_rank(values: list[float], percent: int) -> float | None:
    ordered = sorted(values)
    return ordered[(percent * len(ordered) + 99) // 100 - 1] if ordered else None


def independent(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """What `stats --json` should say, from the export alone (no smsctl code)."""
    statuses: dict[str, int] = {}
    latencies, basis, errors, cost, days = [], {"vonage": 0, "received": 0}, {}, {}, {}
    sent = segments = 0
    for m in lines:
        statuses[m["status"]] = statuses.get(m["status"], 0) + 1
        sent += m["message_uuid"] is not None
        segments += m["segments"] or 0
        day = days.setdefault(m["sent_at"][:10], [0, 0])
        day[0] += 1
        day[1] += m["status"] == "delivered"
        events = m["events"]
        subs = [e for e in events if e["status"] == "submitted"]
        fins = [e for e in events if e["status"] in FINALS]
        sub_v = min((t for e in subs if (t := epoch(e["timestamp"])) is not None), default=None)
        fin_v = min((t for e in fins if (t := epoch(e["timestamp"])) is not None), default=None)
        fin_r = min((epoch(e["received_at"]) or 0 for e in fins), default=None)
        if m["final"] and sub_v is not None and fin_v is not None:
            latencies.append(round(max(fin_v - sub_v, 0), 3))
            basis["vonage"] += 1
        elif m["final"] and fin_r is not None:
            latencies.append(round(max(fin_r - (epoch(m["sent_at"]) or fin_r), 0), 3))
            basis["received"] += 1
        codes = [e["error_code"] for e in fins if e["status"] != "delivered" and e["error_code"]]
        if codes and m["status"] in ("rejected", "undeliverable"):
            errors[max(codes)] = errors.get(max(codes), 0) + 1
        prices = [float(e["price"]) for e in events if e["price"]]
        if prices:
            currency = max(e["currency"] for e in events if e["currency"])
            total, count = cost.get(currency, (0.0, 0))
            cost[currency] = (total + max(prices), count + 1)
    bounds = [
        (1, "<1s"),
        (2, "1-2s"),
        (5, "2-5s"),
        (10, "5-10s"),
        (30, "10-30s"),
        (60, "30-60s"),
        (300, "1-5m"),
    ]
    histogram = {label: 0 for _, label in bounds} | {"5m+": 0}
    for value in latencies:
        histogram[next((label for bound, label in bounds if value < bound), "5m+")] += 1
    return {"statuses": statuses, "sent": sent, "segments": segments, "latencies": latencies, "basis": basis,
            "errors": errors, "cost": cost, "histogram": histogram, "days": days}  # fmt: skip


@pytest.fixture
def history(on_backend: StoreLocation, sandbox: BackgroundSandbox, tmp_path: Path) -> str:
    """A batch with every kind of outcome, its statuses received by `bulk --wait`; and one send outside it."""
    rows = (
        [f"+1212555{n:04d}" for n in range(40)]
        + SCENARIOS
        + ["+447400123456", "+447400123457", "+14155550199"]
    )
    assert cli("optout", "add", "+14155550199")[0] == 0  # one row suppressed: never sent
    csv = tmp_path / "mixed.csv"
    csv.write_text("to\n" + "\n".join(rows) + "\n")
    code, out, err = cli("bulk", str(csv), "x" * 170, "--rate", "0", "--wait", "--timeout", "1", "--json")
    assert code in (1, 6), err  # some failed, and the silent one never finished
    batch = json.loads(out.splitlines()[-1])["batch_id"]
    assert cli("send", "+12125559999", "outside the batch", "--wait", "--timeout", "5")[0] == 0
    return str(batch)


def test_stats_agree_with_an_independent_computation_over_the_export(history: str) -> None:
    code, out, err = cli("export", "--format", "jsonl")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    code, out, err = cli("stats", "--json", "--by", "day")
    assert code == 0, err
    stats, expect = json.loads(out), independent(lines)
    valid("stats", stats)

    assert stats["messages"] == len(lines) == 51 and stats["statuses"] == expect["statuses"]
    assert stats["sent"] == expect["sent"] == 50 and stats["not_sent"] == {"suppressed": 1}
    for status in FINALS:
        count = expect["statuses"].get(status, 0)
        assert stats[status] == {"count": count, "rate": round(count / expect["sent"], 4)}
    assert stats["delivered"]["count"] >= 45 and stats["rejected"]["count"] == 1
    assert stats["pending"]["count"] == expect["sent"] - sum(expect["statuses"].get(s, 0) for s in FINALS)
    latency = stats["latency"]
    assert latency["count"] == len(expect["latencies"]) and latency["basis"] == expect["basis"]
    for percent in (50, 90, 99):
        assert latency[f"p{percent}"] == pytest.approx(nearest_rank(expect["latencies"], percent), abs=0.0015)
    assert latency["max"] == pytest.approx(max(expect["latencies"]), abs=0.0015)
    assert {h["bucket"]: h["count"] for h in stats["histogram"]} == expect["histogram"]
    assert {e["code"]: e["count"] for e in stats["errors"]} == expect["errors"] == {"1240": 1, "1260": 1}
    assert [e["meaning"].startswith("Illegal Number") for e in stats["errors"] if e["code"] == "1240"] == [
        True
    ]
    assert {c["currency"]: (pytest.approx(c["total"]), c["messages"]) for c in stats["cost"]} == expect[
        "cost"
    ]
    assert stats["segments"] == expect["segments"] == 2 * 50 + 1  # 170 GSM-7 characters: two segments a row
    groups = {g["key"]: (g["messages"], g["delivered"]) for g in stats["groups"]}
    assert groups == {day: tuple(v) for day, v in expect["days"].items()}


def test_stats_filters_and_rendering(history: str) -> None:
    whole = json.loads(cli("stats", "--json")[1])
    batch = json.loads(cli("stats", "--json", "--batch", history)[1])
    assert batch["messages"] == whole["messages"] - 1 and batch["filters"]["batch"] == history
    assert json.loads(cli("stats", "--json", "--since", "1h")[1])["messages"] == whole["messages"]
    assert json.loads(cli("stats", "--json", "--batch", "no-such-batch")[1])["messages"] == 0
    code, _, err = cli("stats", "--by", "colour")
    assert code == 2 and "--by" in err
    # On a terminal, charts; piped (or TERM=dumb), the same figures as plain tables.
    code, plain, _ = cli("stats", "--by", "country")
    assert code == 0 and "█" not in plain and "p50" in plain and "1240" in plain
    assert "US" in plain and "GB" in plain
    drawn = runner.invoke(app, ["stats", "--by", "country"], env={"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1",
                                                                  "FORCE_COLOR": "1"})  # fmt: skip
    assert drawn.exit_code == 0 and "█" in drawn.stdout
    dumb = runner.invoke(app, ["stats", "--by", "country"], env={"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1",
                                                                 "FORCE_COLOR": "1", "TERM": "dumb"})  # fmt: skip
    assert dumb.exit_code == 0 and "█" not in dumb.stdout


def test_stats_without_a_store_say_so(credentials: dict[str, str]) -> None:
    code, out, err = cli("stats")
    assert code == 0 and out == "" and "no messages" in err
    assert json.loads(cli("stats", "--json")[1])["messages"] == 0


def test_report_is_one_private_self_contained_page_with_the_same_figures(
    history: str, tmp_path: Path
) -> None:
    import re
    import stat

    page_path = tmp_path / "report.html"
    code, _, err = cli("report", "-o", str(page_path))
    assert code == 0, err
    assert stat.S_IMODE(page_path.stat().st_mode) == 0o600
    page = page_path.read_text()
    embedded = re.search(r'<script type="application/json" id="smsctl-stats">(.*?)</script>', page, re.S)
    assert embedded is not None
    figures = json.loads(embedded.group(1))
    stats = json.loads(cli("stats", "--json", "--by", "country")[1])
    assert {k: v for k, v in figures.items() if k != "generated_at"} == {
        k: v for k, v in stats.items() if k != "generated_at"
    }
    assert re.search(r"(src|href)\s*=|https?://|@import|url\(", page) is None  # nothing to load when opened
    assert "default-src 'none'" in page and "<svg" in page
    assert "x" * 170 not in page and "+14155550110" not in page and "+1415•••••10" in page  # no text, masked
    with_text = tmp_path / "with-text.html"
    assert cli("report", "-o", str(with_text), "--include-text")[0] == 0
    assert "x" * 170 in with_text.read_text()
    code, _, err = cli("report", "-o", str(tmp_path / "missing-dir" / "r.html"))
    assert code == 2 and "cannot write" in err


def test_a_price_that_is_not_a_plain_decimal_counts_as_no_price(on_backend: StoreLocation) -> None:
    """A webhook's `usage.price` is the network's text: stats casts folded prices, so only plain decimals are
    folded (a cast of `abc` or `1e999` would otherwise fail the whole statement, or count nonsense)."""
    import time

    from smsctl.history.backends import open_store
    from smsctl.history.events import parse_status

    prices = ["0.05", "abc", "1e999", "9" * 25, "0.0057", "-1", "1.2.3", " 0.1"]
    store = open_store(on_backend)
    try:
        with store.transaction():
            for n, price in enumerate(prices):
                body = {"message_uuid": f"aaaaaaaa-0000-4000-8000-{n:012d}", "to": "14155550101", "from": "Acme",
                        "status": "delivered", "timestamp": "2025-02-03T12:00:00Z", "channel": "sms",
                        "usage": {"price": price, "currency": "EUR"}}  # fmt: skip
                store.apply_status(parse_status(json.dumps(body).encode()), time.time())
    finally:
        store.close()
    code, out, err = cli("stats", "--json")
    assert code == 0, err
    assert json.loads(out)["cost"] == [{"currency": "EUR", "total": 0.0557, "messages": 2}]


def test_the_upgrade_folds_each_price_again_from_its_events(on_backend: StoreLocation) -> None:
    """Stores folded before SQLite's m015 / PostgreSQL's m011 kept the greatest text (`zzz` over `0.05`): the
    upgrade works each price out again, from the events, keeping only plain decimals."""
    import sqlite3
    import time

    import psycopg

    from smsctl.config import StoreKind
    from smsctl.history.backends import open_store
    from smsctl.history.events import parse_status

    store = open_store(on_backend)
    try:
        with store.transaction():
            for n, price in enumerate(["0.05", "zzz"]):
                body = {"message_uuid": "aaaaaaaa-0000-4000-8000-000000000001", "to": "14155550101", "from": "Acme",
                        "status": ("submitted", "delivered")[n], "timestamp": f"2025-02-03T12:00:0{n}Z",
                        "channel": "sms", "usage": {"price": price, "currency": "EUR"}}  # fmt: skip
                store.apply_status(parse_status(json.dumps(body).encode()), time.time())
    finally:
        store.close()
    name = (
        "m015_folded_prices_are_numbers"
        if on_backend.kind is StoreKind.SQLITE
        else "m011_folded_prices_are_numbers"
    )
    forget = [
        "UPDATE message_status SET price = 'zzz'",
        f"DELETE FROM _smsctl_migrations WHERE name = '{name}'",
    ]
    if on_backend.kind is StoreKind.SQLITE:
        with sqlite3.connect(on_backend.path or "") as conn:  # as the old fold left it
            for sql in forget:
                conn.execute(sql)
    else:
        with psycopg.connect(on_backend.url or "", autocommit=True) as pg:
            for sql in forget:
                pg.execute(sql)
    open_store(on_backend).close()  # the upgrade
    code, out, err = cli("stats", "--json")
    assert code == 0, err
    assert json.loads(out)["cost"] == [{"currency": "EUR", "total": 0.05, "messages": 1}]


@pytest.mark.parametrize(("by", "order"), [("hour", ["2026-12-04 23:00", "2026-12-05 00:00", "2026-12-05 01:00"]),
                                           ("country", ["2026-12-05 00:00", "2026-12-04 23:00", "2026-12-05 01:00"])])  # fmt: skip
def test_hours_and_days_are_listed_in_time_order_other_groups_biggest_first(
    by: str, order: list[str]
) -> None:
    from smsctl.history.stats import Group, GroupBy, StatsFigures, StatsQuery, StatsReport

    figures = StatsFigures()
    figures.groups = [Group(key, n, n, n, 0, 0, n, 0.0) for key, n in
                      (("2026-12-05 01:00", 1), ("2026-12-04 23:00", 5), ("2026-12-05 00:00", 9))]  # fmt: skip
    report = StatsReport(figures, StatsQuery(by=GroupBy(by)), 0.0)
    assert [g["key"] for g in report.to_json()["groups"]] == order
