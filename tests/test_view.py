"""What a person sees: the live table rendered into a captured Rich console, and ngrok discovery."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web
from rich.console import Console

from smsctl.events import parse_inbound, parse_status
from smsctl.listening import discover_ngrok
from smsctl.server import Counters, ListenerEvent
from smsctl.store import Applied
from smsctl.view import LiveView, event_record

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
        "(+3.2 s)",
        "0.0057 EUR",
        "1240 Illegal Number",
    ):
        assert expected in row, (expected, row)
    assert "STOP" in screen and "447700900001" in screen
    assert "rejected: bad_signature 2" in screen and "duplicates 1" in screen


def test_json_record_of_a_status_event() -> None:
    record = event_record(status("delivered", "2025-02-03T12:00:04Z"))
    assert (
        record["event"] == "accepted"
        and record["current_status"] == "delivered"
        and record["from"] == "14155550199"
    )


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
