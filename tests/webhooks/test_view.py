"""What a person sees: the live table rendered into a captured Rich console, and ngrok discovery."""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web
from rich.console import Console

from smsctl.history.events import parse_inbound, parse_status
from smsctl.history.sqlite import Applied
from smsctl.webhooks.listening import discover_ngrok
from smsctl.webhooks.server import Counters, ListenerEvent, RateMeter
from smsctl.webhooks.view import LiveView, event_record

UUID = "5b3c0d7e-1111-4ccc-8ddd-0123456789ab"


def status(status: str, ts: str, **extra: Any) -> ListenerEvent:
    raw = json.dumps({"message_uuid": UUID, "status": status, "timestamp": ts, "to": "14155550110",
                      "from": "14155550199", "client_ref": "order-42", **extra}).encode()  # fmt: skip
    final = status != "submitted"
    return ListenerEvent("accepted", time.time(), status_event=parse_status(raw),
                         applied=Applied(False, status, final, None, True))  # fmt: skip


def render(view: LiveView) -> str:
    console = Console(width=160, record=True, color_system=None)
    console.print(view.render())
    return console.export_text()


def test_live_table_shows_transitions_errors_and_the_urls() -> None:
    counters = Counters()
    counters.count_accepted("submitted")
    counters.count_accepted("rejected")
    counters.rejected["bad_signature"] = 2
    counters.duplicates = 1
    view = LiveView(counters)
    view.ready({"local_url": "http://127.0.0.1:3000", "public_url": "https://abc.ngrok.app",
                "status_url": "https://abc.ngrok.app/webhooks/status",
                "inbound_url": "https://abc.ngrok.app/webhooks/inbound", "store": "/tmp/s.db"})  # fmt: skip
    view.handle(status("submitted", "2025-02-03T12:00:01Z"))
    view.handle(status("rejected", "2025-02-03T12:00:04.200Z", usage={"price": "0.0057", "currency": "EUR"},
                       error={"title": "1240", "detail": "Illegal Number"}))  # fmt: skip
    inbound = parse_inbound(json.dumps({"message_uuid": "i-1", "from": "447700900001", "to": "x",
                                        "text": "STOP", "timestamp": "2025-02-03T12:00:05Z"}).encode())  # fmt: skip
    view.handle(ListenerEvent("inbound", time.time(), inbound=inbound))
    screen = render(view)
    assert (
        "https://abc.ngrok.app/webhooks/status" in screen
        and "https://abc.ngrok.app/webhooks/inbound" in screen
    )
    row = next(line for line in screen.splitlines() if "5b3c0d7e" in line)
    for expected in (
        "14155550110",
        "order-42",
        "rejected",
        "submitted",
        "→",
        "(+3.2s)",
        "0.0057 EUR",
        "1240 Illegal Number",
    ):
        assert expected in row, (expected, row)
    assert "STOP" in screen and "447700900001" in screen
    assert "rejected: bad_signature 2" in screen and "duplicates 1" in screen
    assert "submitted 1" in screen and "rejected 1" in screen


REALISTIC = [  # (uuid, to, client_ref, [(status, timestamp, anomaly?)], error)
    ("5b3c0d7e-1111-4ccc-8ddd-0123456789ab", "447700900123", "campaign-2026-black-friday-reminder-batch-7-row-12345",
     [("submitted", "2026-11-30T12:00:01Z"), ("undeliverable", "2026-11-30T12:00:04.2Z"),
      ("delivered", "2026-11-30T12:00:09Z"), ("submitted", "2026-11-30T12:00:02Z")], "1260"),
    ("aaaa0000-2222-4ccc-8ddd-0123456789ab", "14155550110", "order-42-retry-3-customer-9876543210",
     [("submitted", "2026-11-30T12:01:11Z"), ("rejected", "2026-11-30T12:01:15Z")], "1240"),
    ("bbbb0000-3333-4ccc-8ddd-0123456789ab", "491701234567", "x", [("delivered", "2026-11-30T12:02:21Z")], None),
]  # fmt: skip


def realistic_view() -> LiveView:
    counters = Counters()
    view = LiveView(counters)
    view.ready({"local_url": "http://127.0.0.1:3000", "public_url": "https://abc123.ngrok-free.app",
                "status_url": "https://abc123.ngrok-free.app/webhooks/status",
                "inbound_url": "https://abc123.ngrok-free.app/webhooks/inbound", "store": "/tmp/s.db"})  # fmt: skip
    for uuid, to, ref, steps, error in REALISTIC:
        for status_, ts in steps:
            extra: dict[str, Any] = {"usage": {"price": "0.0057", "currency": "EUR"}}
            if error and status_ != "submitted":
                extra["error"] = {"title": error, "detail": "x"}
            raw = json.dumps({"message_uuid": uuid, "status": status_, "timestamp": ts, "to": to,
                              "client_ref": ref, **extra}).encode()  # fmt: skip
            view.handle(ListenerEvent("accepted", time.time(), status_event=parse_status(raw),
                                      applied=Applied(False, status_, status_ != "submitted", None, True)))  # fmt: skip
            counters.count_accepted(status_)
    return view


@pytest.mark.parametrize("width", [80, 100, 120, 200])
def test_live_table_reads_well_at_every_width(width: int) -> None:
    console = Console(width=width, record=True, color_system=None)
    console.print(realistic_view().render())
    screen = console.export_text()
    lines = screen.splitlines()
    assert max(len(line) for line in lines) <= width
    header = next(line for line in lines if "message" in line)
    for column in ("message", "to", "status", "transitions", "error"):
        assert f" {column} " in f" {header} ", (column, header)
    for uuid, to, _, steps, _ in REALISTIC:
        assert uuid[:8] in screen and to in screen
        for status_, ts in steps:
            assert status_ in screen, status_  # whole words: a folded word would not match
            assert ts[11:19] in screen, ts  # HH:MM:SS, whole
    if width >= 120:
        assert "client_ref" in header and "campaign-2026" in screen
    if width >= 200:
        assert "order-42-retry-3-customer-9876543210" in screen and "0.0057 EUR" in screen
    if width < 100:
        assert "client_ref" not in header and "price" not in header


def test_footer_counts_every_event_since_start_not_just_the_rows_shown() -> None:
    counters = Counters()
    view = LiveView(counters)
    for n in range(12_943):
        raw = json.dumps(
            {"message_uuid": f"m-{n}", "status": "delivered", "timestamp": "2026-11-30T12:00:00Z"}
        )
        status_ = "rejected" if n % 300 == 0 else "delivered"
        view.handle(ListenerEvent("accepted", 0.0, status_event=parse_status(raw.encode()),
                                  applied=Applied(False, status_, True, None, True)))  # fmt: skip
        counters.count_accepted(status_)
    screen = render(view)
    assert "delivered 12,899" in screen and "rejected 44" in screen and "since " in screen


def test_rate_meter_is_exact_at_any_rate() -> None:
    now = [1000.0]
    meter = RateMeter(window=5, clock=lambda: now[0])
    for second in range(7):
        now[0] = 1000.0 + second
        meter.add(20_000)  # far above what a 4,096-entry deque over 5 s could show (819/s)
    now[0] = 1007.5
    assert meter.rate() == 20_000.0
    now[0] = 1010.0
    assert meter.rate() == 20_000 * 2 / 5  # seconds 1005 and 1006 are still in the window
    now[0] = 1100.0
    assert meter.rate() == 0.0


def _render_seconds(views: list[LiveView], rounds: int = 30) -> list[float]:
    """The best render time of each view, measured in alternation so both see the same noise."""
    console = Console(width=120, height=40, file=io.StringIO(), color_system=None)
    best = [float("inf")] * len(views)
    for _ in range(rounds):
        for index, view in enumerate(views):
            started = time.perf_counter()
            console.print(view.render())
            best[index] = min(best[index], time.perf_counter() - started)
    return best


def test_rendering_costs_the_same_after_100_and_100_000_events() -> None:
    parsed = {
        status_: parse_status(json.dumps({"message_uuid": "m-0", "status": status_, "to": "14155550101",
                                          "timestamp": "2026-11-30T12:00:00Z"}).encode())
        for status_ in ("submitted", "delivered", "rejected")
    }  # fmt: skip

    def fed(count: int) -> LiveView:
        counters = Counters()
        view = LiveView(counters)
        for n in range(count):
            status_ = ("submitted", "delivered", "rejected")[n % 3]
            event = replace(parsed[status_], message_uuid=f"m-{n // 2}")  # parsed once: the view is measured
            view.handle(ListenerEvent("accepted", 0.0, status_event=event,
                                      applied=Applied(False, status_, status_ != "submitted", None, True)))  # fmt: skip
            counters.count_accepted(status_)
        return view

    small, large = _render_seconds([fed(100), fed(100_000)])
    assert large <= 2 * small, (small, large)


def test_data_is_never_taken_as_markup_and_odd_events_never_stop_the_view() -> None:
    counters = Counters()
    view = LiveView(counters)
    view.ready({"local_url": "[/]", "status_url": "[bold]x", "inbound_url": "", "store": ""})
    raw = json.dumps({"message_uuid": "[/]uuid-1", "status": "delivered", "to": "[red]1415[/]",
                      "client_ref": "ref[/]x", "timestamp": "9999-12-31T23:59:59-12:00",  # year 10000 locally
                      "error": {"title": "[/]", "detail": "[link=x]"}}).encode()  # fmt: skip
    view.handle(ListenerEvent("accepted", time.time(), status_event=parse_status(raw),
                              applied=Applied(False, "delivered", True, None, True)))  # fmt: skip
    inbound = parse_inbound(json.dumps({"message_uuid": "i-1", "from": "[b]4477", "to": "x",
                                        "text": "STOP [/] [bold]now", "timestamp": "x"}).encode())  # fmt: skip
    view.handle(ListenerEvent("inbound", time.time(), inbound=inbound))
    view.handle(ListenerEvent("rejected", time.time(), reason="[/]bad", detail="[/]"))
    screen = render(view)
    for literal in ("ref[/]x", "[red]1415[/]", "STOP [/] [bold]now", "[b]4477", "??:??:??"):
        assert literal in screen, literal


def test_json_record_of_a_status_event() -> None:
    record = event_record(status("delivered", "2025-02-03T12:00:04Z"))
    assert (
        record["event"] == "accepted"
        and record["current_status"] == "delivered"
        and record["from"] == "+14155550199"
    )
    assert record["received_at"].endswith("Z") and "T" in record["received_at"], "ISO 8601, UTC"


async def test_discovers_the_ngrok_tunnel_for_this_port(aiohttp_server: Any) -> None:
    async def tunnels(request: web.Request) -> web.Response:
        return web.json_response({"tunnels": [
            {"public_url": "http://plain.ngrok.app", "config": {"addr": "http://localhost:3000"}},
            {"public_url": "https://other.ngrok.app", "config": {"addr": "http://localhost:8080"}},
            {"public_url": "https://mine.ngrok.app", "config": {"addr": "http://localhost:3000"}},
        ]})  # fmt: skip

    app = web.Application()
    app.router.add_get("/api/tunnels", tunnels)
    server = await aiohttp_server(app)
    api = str(server.make_url("/api/tunnels"))
    assert await discover_ngrok(3000, api) == "https://mine.ngrok.app"
    assert await discover_ngrok(9999, api) is None


async def test_no_ngrok_agent_means_no_public_url() -> None:
    assert await discover_ngrok(3000, "http://127.0.0.1:9/api/tunnels") is None


def test_forward_outcomes_show_on_their_row_and_inbound_sms_and_the_tunnel_in_the_header() -> None:
    from smsctl.history.interface import ForwardState, Route
    from smsctl.webhooks.forwarding import ForwardReport
    from smsctl.webhooks.tunnel import TunnelCheck

    counters = Counters(forwarding=True)
    view = LiveView(counters)
    view.ready({"local_url": "http://127.0.0.1:3000", "public_url": "https://abc.ngrok.app",
                "forward_to": "http://localhost:8080/webhooks/status", "store": "/tmp/s.db"})  # fmt: skip
    view.handle(status("submitted", "2025-02-03T12:00:01Z"))
    inbound = parse_inbound(json.dumps({"message_uuid": "i-1", "from": "447700900001", "to": "x",
                                        "text": "STOP", "timestamp": "2025-02-03T12:00:05Z"}).encode())  # fmt: skip
    view.handle(ListenerEvent("inbound", time.time(), inbound=inbound))
    for report in (ForwardReport(1, Route.STATUS, UUID, "t", ForwardState.DELIVERED, 1, 200, None, 12.3),
                   ForwardReport(2, Route.INBOUND, "i-1", "t", ForwardState.FAILED, 1, 400, None, 3.0)):  # fmt: skip
        counters.count_forward(report)
        view.handle(ListenerEvent("forwarded", time.time(), forward=report))
    view.handle(ListenerEvent("tunnel", time.time(), tunnel=TunnelCheck("https://abc.ngrok.app", False, None,
                                                                        "cannot connect (refused): is the tunnel running?")))  # fmt: skip
    screen = render(view)
    row = next(line for line in screen.splitlines() if "5b3c0d7e" in line)
    assert "→ 200 12 ms" in row
    assert "→ failed 400" in next(line for line in screen.splitlines() if "STOP" in line)
    assert "forward →" in screen and "http://localhost:8080/webhooks/status" in screen
    assert "tunnel ✗ cannot connect (refused)" in screen
    assert "forwarded 1" in screen and "failed 1" in screen


def test_the_table_refreshes_four_times_a_second_until_a_frame_would_take_over_2_percent() -> None:
    from smsctl.webhooks.view import DRAW_BUDGET, REFRESH_EVERY, next_refresh_in

    assert next_refresh_in(0.0) == next_refresh_in(0.005) == REFRESH_EVERY == 0.25
    assert next_refresh_in(0.020) == pytest.approx(1.0)  # a 20 ms frame: one a second
    for cost in (0.001, 0.010, 0.020, 0.100):
        assert cost / (next_refresh_in(cost) + cost) <= DRAW_BUDGET


def test_the_live_display_draws_frames_on_its_own_thread_and_a_last_one_at_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import smsctl.output
    from smsctl.webhooks.view import LiveTerminalView

    terminal = io.StringIO()
    console = Console(file=terminal, width=120, height=40, force_terminal=True, color_system=None)
    monkeypatch.setattr(smsctl.output, "out", lambda: console)
    view = LiveTerminalView()
    view.ready({"local_url": "http://127.0.0.1:3000", "status_url": "s", "inbound_url": "i"}, Counters())
    view.handle(status("submitted", "2026-11-30T12:00:01Z"))
    deadline = time.monotonic() + 10
    while "submitted" not in terminal.getvalue():  # drawn by the refresher, not by handle()
        assert time.monotonic() < deadline, "no frame was drawn"
        time.sleep(0.02)
    drawing = view._refresher.thread if view._refresher else None
    assert drawing is not None and drawing.native_id is not None
    assert os.sched_getscheduler(drawing.native_id) == os.SCHED_BATCH  # never preempts the loop
    view.handle(status("delivered", "2026-11-30T12:00:04Z"))
    view.stopped()
    assert "delivered" in terminal.getvalue()  # the last frame, drawn at stop
    assert view.live is None


# --- issue 20, item 17: what a person saw at 80×24 and 200×50 ----------------------------------------


def test_the_footer_breaks_between_phrases_never_inside_one() -> None:
    counters = Counters()
    for value in ("delivered", "rejected", "submitted", "undeliverable") * 3:
        counters.count_accepted(value)
    footer = LiveView(counters)._footer(80).plain
    lines = footer.splitlines()
    assert len(lines) > 1 and all(len(line) <= 80 for line in lines)
    assert any("events/s" in line and line.split("events/s")[0].rstrip()[-1].isdigit() for line in lines)
    assert "undeliverable 3" in footer and "dead letters 0" in footer


def test_a_narrow_screen_never_leaves_a_transitions_time_alone_on_a_line() -> None:
    import re

    counters = Counters()
    counters.forwarding = True  # as in the demo: the forward column takes room too
    view = LiveView(counters)
    for n in range(3):
        for value, ts in (("submitted", "2025-02-03T12:14:25Z"), ("delivered", "2025-02-03T12:14:26Z")):
            raw = json.dumps({"message_uuid": f"cccccccc-0000-4000-8000-{n:012d}", "status": value,
                              "timestamp": ts, "to": "14155550150"}).encode()  # fmt: skip
            view.handle(ListenerEvent("accepted", time.time(), status_event=parse_status(raw),
                                      applied=Applied(n == 0, value, value != "submitted", None, True)))  # fmt: skip
            view.rows[f"cccccccc-0000-4000-8000-{n:012d}"].duplicates = 1
            view.rows[f"cccccccc-0000-4000-8000-{n:012d}"].forward = "→ 200 1 ms"
    for width in (80, 90, 100):
        console = Console(width=width, height=40, record=True, color_system=None)
        console.print(view.render())
        lines = console.export_text().splitlines()
        assert not [line for line in lines if re.fullmatch(r"\s*\d\d:\d\d(:\d\d)?…?\s*", line)], width
        assert not [line for line in lines if re.search(r"\d\d:\d\d:…", line)], "no time cut short"


def test_a_tall_screen_shows_as_many_rows_as_it_has_lines_for() -> None:
    counters = Counters()
    view = LiveView(counters)
    for n in range(40):
        raw = json.dumps({"message_uuid": f"aaaaaaaa-0000-4000-8000-{n:012d}", "status": "delivered",
                          "timestamp": "2025-02-03T12:14:25Z", "to": "14155550101"}).encode()  # fmt: skip
        view.handle(ListenerEvent("accepted", time.time(), status_event=parse_status(raw),
                                  applied=Applied(False, "delivered", True, None, True)))  # fmt: skip
    console = Console(width=200, height=50, record=True, color_system=None)
    console.print(view.render())
    shown = console.export_text().count("aaaaaaaa")
    assert 20 < shown <= 40


def test_log_at_80_columns_keeps_number_status_and_time_whole() -> None:
    from smsctl.cli.history import log_table
    from smsctl.history.interface import MessageSummary, Source

    rows = [MessageSummary(f"bbbbbbbb-0000-4000-8000-{n:012d}", Source.SMSCTL, "14155550101", "+14155550199",
                           "campaign-2026-spring-customer-42", "undeliverable", True, 1, time.time(), time.time(),
                           None, "1260", "b1", n) for n in range(3)]  # fmt: skip
    console = Console(width=80, record=True, color_system=None)
    console.print(log_table(rows, 80))
    screen = console.export_text()
    assert max(len(line) for line in screen.splitlines()) <= 80
    assert screen.count("+14155550101") == 3 and screen.count("undeliverable") == 3 and "…" in screen
    assert "bbbbbbbb" in screen, "8 characters of the uuid: enough for `smsctl status`"
