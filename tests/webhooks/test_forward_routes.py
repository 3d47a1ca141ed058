"""The forwarder's routes and its resilience (issue 20, items 2, 4, 5, 6, 7 and 8): a listener delivers
only its own route's rows, survives any one forward, reads a bounded answer, times the request alone,
claims by index, and `forwards retry` keeps each message's order."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from typer.testing import CliRunner

from smsctl.cli import app
from smsctl.config import StoreKind, StoreLocation
from smsctl.history.backends import open_store
from smsctl.history.interface import ForwardState, NewForward, Outcome, Route
from smsctl.history.writer import StoreWriter
from smsctl.webhooks.forwarding import DeliveryOptions, Forwarder, ForwardReport, route_key, url_problem
from tests.helpers import CaptureApp, ListenProcess, signed_headers, until

runner = CliRunner()
FAST = {"SMSCTL_FORWARD_BACKOFF": "0.05,0.2"}


def status(uuid: str, value: str, second: int) -> bytes:
    return json.dumps({"message_uuid": uuid, "to": "14155550101", "from": "14155550199", "status": value,
                       "timestamp": f"2025-02-03T12:00:{second:02d}Z", "channel": "sms"}).encode()  # fmt: skip


def post(url: str, body: bytes) -> int:
    import urllib.request

    request = urllib.request.Request(url, data=body, headers=signed_headers(body), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


@pytest.mark.long
def test_two_listeners_with_different_routes_on_one_postgresql_each_deliver_only_their_own(
    pg_url: str, credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSCTL_DB", pg_url)
    bodies = {who: [status(f"{who * 8}-aaaa-4bbb-8ccc-{n:012d}", "submitted", 1) for n in range(60)]
              for who in ("a", "b")}  # fmt: skip
    with CaptureApp() as app_a, CaptureApp() as app_b:
        with ListenProcess("--forward-to", app_a.url(), "--forward-header", "X-Who: a", env=FAST) as first, \
             ListenProcess("--forward-to", app_b.url(), "--forward-header", "X-Who: b", env=FAST) as second:  # fmt: skip
            urls = {"a": first.ready()["status_url"], "b": second.ready()["status_url"]}
            for i in range(60):  # interleaved, so both listeners claim while the other's rows are due
                for who in ("a", "b"):
                    assert post(urls[who], bodies[who][i]) == 200
            until(lambda: len(app_a.delivered()) + len(app_b.delivered()) >= 120, "every forward")
            first.stop()
            second.stop()
    for who, user_app in (("a", app_a), ("b", app_b)):
        assert sorted(r["body"] for r in user_app.delivered()) == sorted(bodies[who]), (
            f"app {who}: its own only"
        )
        assert {r["headers"]["X-Who"] for r in user_app.delivered()} == {who}, (
            "with its own listener's headers"
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--forward-to", "http://127.0.0.1:9/x", "--forward-header", "X-Bad: a\x0bb"], "is not `Name: value`"),
     (["--forward-to", "http://127.0.0.1:9/x", "--forward-header", "X Bad: ab"], "is not `Name: value`"),
     (["--forward-to", "http://127.0.0.1:99999/x"], "Port out of range"),
     (["--forward-to", "http://us er:pw@127.0.0.1/x"], "a space or a control character"),
     (["--forward-to", "http://h:80:80/"], "could not be cast to integer"),
     (["--forward-inbound-to", "http:///x"], "it has no host")],
)  # fmt: skip
def test_a_forward_option_that_would_break_delivery_is_refused_at_start(
    credentials: dict[str, str], args: list[str], message: str
) -> None:
    result = runner.invoke(app, ["listen", "--port", "0", *args])
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert "\x0b" not in result.stderr, "the control character is shown escaped"


def test_url_problem_accepts_ordinary_targets() -> None:
    for url in ("http://localhost:3000/webhooks/status", "https://app.example/x?y=1", "http://[::1]:8080/"):
        assert url_problem(url) is None, url


def test_the_route_key_tells_targets_and_options_apart_and_keeps_headers_secret() -> None:
    plain = DeliveryOptions()
    with_header = DeliveryOptions(headers=(("Authorization", "Bearer app-secret"),))
    keys = {route_key(Route.STATUS, "http://a/x", plain), route_key(Route.STATUS, "http://b/x", plain),
            route_key(Route.INBOUND, "http://a/x", plain), route_key(Route.STATUS, "http://a/x", with_header),
            route_key(Route.STATUS, "http://a/x", DeliveryOptions(resign_secret="s"))}  # fmt: skip
    assert len(keys) == 5
    assert route_key(Route.STATUS, "http://a/x", plain) == "status http://a/x", "an upgraded row's key"
    assert not any("app-secret" in key for key in keys)


# --- the Forwarder in-process, with a real writer, a real store and real HTTP servers ----------------


@pytest.fixture
def writer(db_path: Path) -> Iterator[StoreWriter]:
    w = StoreWriter(StoreLocation(StoreKind.SQLITE, path=db_path))
    yield w
    w.close()


class AppServer:
    """An aiohttp app on an ephemeral port whose handler the test chooses."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.requests: list[tuple[float, bytes]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> AppServer:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.requests.append((time.monotonic(), await request.read()))
            result: web.StreamResponse = await self.handler(request)
            return result

        application = web.Application()
        application.router.add_post("/hook", handle)
        self.runner = web.AppRunner(application, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def queue(writer: StoreWriter, key: str, target: str, count: int, *, content_type: str = "application/json",
                statuses: tuple[str, ...] = ("submitted",), now: float | None = None, first: int = 0) -> None:  # fmt: skip
    stamp = time.time() if now is None else now

    def add(s: Any) -> None:
        for n in range(first, first + count):
            uuid = f"{n:08d}-aaaa-4bbb-8ccc-000000000000"
            for i, value in enumerate(statuses):
                forward = NewForward(
                    Route.STATUS, uuid, target, status(uuid, value, i + 1), content_type, None, key
                )
                s.add_forward(forward, stamp, 3600.0)

    await writer.run(add)


async def run_forwarder(forwarder: Forwarder, until_done: Any, timeout: float = 30.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(forwarder.run(stop))
    deadline = time.monotonic() + timeout
    try:
        while not until_done():
            assert time.monotonic() < deadline, "timed out waiting for the forwarder"
            assert not task.done(), f"the forwarder stopped: {task.exception() if task.done() else ''}"
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def forwarder(writer: StoreWriter, key: str, reports: list[ForwardReport], **options: Any) -> Forwarder:
    return Forwarder(writer, DeliveryOptions(**{"min_backoff": 0.05, "max_backoff": 0.2, **options}),
                     reports.append, [key])  # fmt: skip


async def test_one_forward_that_raises_does_not_stop_the_others(writer: StoreWriter) -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.Response()

    reports: list[ForwardReport] = []
    async with AppServer(ok) as user_app:
        key = route_key(Route.STATUS, user_app.url, DeliveryOptions())
        await queue(writer, key, user_app.url, 1, content_type="application/json\r\nX-Injected: 1")
        await queue(writer, key, user_app.url, 5, first=1)
        worker = forwarder(writer, key, reports)
        await run_forwarder(worker, lambda: sum(r.state is ForwardState.DELIVERED for r in reports) >= 5)
    assert worker.errors >= 1
    broken = [r for r in reports if r.state is not ForwardState.DELIVERED]
    assert broken and all(r.error and r.error.startswith("ValueError") for r in broken)
    assert all(b"X-Injected" not in body for _, body in user_app.requests)


async def test_an_app_that_streams_forever_is_cut_after_a_prefix_and_counts_as_answered(
    writer: StoreWriter,
) -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        try:
            while True:
                await response.write(b"x" * 65536)
        except (ConnectionResetError, ConnectionError):
            return response

    reports: list[ForwardReport] = []
    async with AppServer(endless) as user_app:
        key = route_key(Route.STATUS, user_app.url, DeliveryOptions())
        await queue(writer, key, user_app.url, 1)
        await run_forwarder(forwarder(writer, key, reports, timeout=5.0), lambda: bool(reports))
    [report] = reports
    assert (report.state, report.code, report.error) == (ForwardState.DELIVERED, 200, None)


async def test_the_timeout_counts_the_request_alone_so_an_in_time_app_sees_no_duplicates(
    writer: StoreWriter,
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.4)
        return web.Response()

    reports: list[ForwardReport] = []
    async with AppServer(slow) as user_app:
        key = route_key(Route.STATUS, user_app.url, DeliveryOptions())
        await queue(writer, key, user_app.url, 24)  # three times the forwarder's 8 connections
        await run_forwarder(forwarder(writer, key, reports, timeout=0.7), lambda: len(reports) >= 24)
    assert [r.state for r in reports] == [ForwardState.DELIVERED] * 24, [r.error for r in reports]
    assert len(user_app.requests) == 24, "each event once"


async def test_a_failing_app_pauses_its_route_instead_of_trying_the_whole_backlog(
    writer: StoreWriter,
) -> None:
    async def down(request: web.Request) -> web.Response:
        return web.Response(status=503)

    reports: list[ForwardReport] = []
    frozen = [time.time()]
    async with AppServer(down) as user_app:
        key = route_key(Route.STATUS, user_app.url, DeliveryOptions())
        await queue(writer, key, user_app.url, 2000, now=frozen[0] - 1)
        worker = forwarder(writer, key, reports)
        worker.clock = lambda: frozen[0]  # time stands still: the route's pause never ends
        worker.concurrency = 1
        await run_forwarder(worker, lambda: bool(reports))
        assert worker._paused_until[key] > frozen[0]
        import aiohttp

        async with aiohttp.ClientSession() as session:
            delay = await worker._round(session)
        assert not worker._in_flight and delay > 0, "nothing claimed while paused"
        frozen[0] = worker._paused_until[key] + 0.001  # the pause is over: one probe, not the backlog
        async with aiohttp.ClientSession() as session:
            worker.concurrency = 8
            await worker._round(session)
            assert len(worker._in_flight) == 1
            await asyncio.gather(*worker._in_flight)
    assert len(user_app.requests) == 2


def test_claims_and_next_due_are_index_range_scans(db_path: Path) -> None:
    import sqlite3

    open_store(db_path).close()
    conn = sqlite3.connect(db_path)
    claim = conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM forwards WHERE state = 'pending' AND blocked = 0 AND route_key = ?"
        " AND next_at <= ? ORDER BY next_at LIMIT ?", ("k", 1.0, 8)).fetchall()  # fmt: skip
    due = conn.execute(
        "EXPLAIN QUERY PLAN SELECT MIN(next_at) FROM forwards WHERE state = 'pending' AND blocked = 0"
        " AND route_key = ?", ("k",)).fetchall()  # fmt: skip
    queued = conn.execute(
        "EXPLAIN QUERY PLAN SELECT 1 FROM forwards WHERE state = 'pending' AND route_key = ? AND message_uuid = ?",
        ("k", "m")).fetchall()  # fmt: skip
    conn.close()
    assert "forwards_due" in str(claim) and "TEMP B-TREE" not in str(claim), claim
    assert "forwards_due" in str(due), due
    assert "forwards_queue" in str(queued), queued


def test_retry_all_keeps_each_messages_order(store_at: StoreLocation) -> None:
    store = open_store(store_at)
    key, uuid = "status http://app/x", "00000001-aaaa-4bbb-8ccc-000000000000"

    def add(value: str, second: int, message: str = uuid) -> None:
        body = status(message, value, second)
        with store.transaction():
            store.add_forward(NewForward(Route.STATUS, message, "http://app/x", body, "application/json", None, key),
                              100.0, 3600.0)  # fmt: skip

    def claim() -> list[str]:
        with store.transaction():
            return [json.loads(f.body)["status"] for f in store.claim_forwards(key, 200.0, 15.0, 10)]

    def finish(state: ForwardState, code: int) -> None:
        with store.transaction():
            for f in store.forwards([ForwardState.PENDING], 100):
                if f.next_at > 200.0:  # claimed
                    store.record_forward(f.id, Outcome(state, 1, 200.0, code, None, 1.0), 200.0)

    try:
        add("submitted", 1)
        add("delivered", 2)
        assert claim() == ["submitted"], "the later event waits behind the earlier one"
        finish(ForwardState.FAILED, 400)
        assert claim() == ["delivered"]
        finish(ForwardState.FAILED, 400)
        with store.transaction():
            retried = store.retry_forwards(None, 300.0, 3600.0)
        assert (retried.retried, retried.superseded) == (2, 0)
        assert claim_at(store, key, 300.0) == ["submitted"], "retried in order: the older one first"
        with store.transaction():
            [f] = [f for f in store.forwards([ForwardState.PENDING], 10) if f.next_at > 300.0]
            store.record_forward(f.id, Outcome(ForwardState.FAILED, 1, 300.0, 400, None, 1.0), 300.0)
        assert claim_at(store, key, 300.0) == ["delivered"]
        with store.transaction():
            [f] = [f for f in store.forwards([ForwardState.PENDING], 10) if f.next_at > 300.0]
            store.record_forward(f.id, Outcome(ForwardState.DELIVERED, 1, 300.0, 200, None, 1.0), 300.0)
        with store.transaction():
            retried = store.retry_forwards(None, 400.0, 3600.0)
        assert (retried.retried, retried.superseded) == (0, 1), "the older one would arrive after the newer"
    finally:
        store.close()


def claim_at(store: Any, key: str, now: float) -> list[str]:
    with store.transaction():
        return [json.loads(f.body)["status"] for f in store.claim_forwards(key, now, 15.0, 10)]
