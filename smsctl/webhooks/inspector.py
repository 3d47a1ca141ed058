"""The local web inspector (`smsctl listen --ui`, `smsctl ui`): every message with its transitions as they
arrive, a message's whole timeline with the raw webhook bodies, the forwards to the user's app, the stats
as charts, and actions (replay, retry a forward, reconcile, copy as curl).

It is served on its own loopback port, never on the webhook port a tunnel forwards to, and answers only
requests that are plainly local. A request is served when all of these hold, else it gets 404:
- it came from a loopback address (the socket's peer, not a header);
- its Host is `127.0.0.1`, `localhost` or `[::1]` with this port (a DNS-rebinding page has its own name);
- it carries no proxy header (Forwarded, X-Forwarded-For/-Host/-Proto, X-Real-IP, ngrok's): a tunnel or a
  reverse proxy pointed at this port adds them.
Another web page in the same browser cannot drive it either: every request needs the per-run token printed
at start (in the URL for the page and the event stream, in an `X-Smsctl-Token` header for the API);
actions are POST-only, JSON-only and refuse a foreign `Origin`; no CORS header is ever sent, so a
cross-origin `fetch` can neither read an answer nor pass the preflight its custom header needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from smsctl.codec import e164, iso_utc
from smsctl.config import Settings
from smsctl.errors import ConfigError
from smsctl.history.backends import open_reader
from smsctl.history.events import error_meaning
from smsctl.history.interface import ForwardState, HistoryStore
from smsctl.history.stats import StatsQuery, StatsReport
from smsctl.history.writer import StoreWriter
from smsctl.webhooks.inspector_page import page

T = TypeVar("T")
Reconcile = Callable[[str], Awaitable[dict[str, Any]]]
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-IP",
                 "Ngrok-Trace-Id", "X-Original-Host")  # fmt: skip
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")
POLL = 0.25  # seconds between looks at the store for new events and sends (one cheap query)
# At most one "changed" every 2 s: under load every look finds something new, and each one sends the
# page back for its list; a person cannot read faster, and the listener keeps its CPU for webhooks.
NOTIFY_EVERY = 2.0
KEEPALIVE = 15.0
LIST_LIMIT = 200


@dataclass(frozen=True)
class InspectorOptions:
    port: int = 4041  # beside ngrok's own inspector on 4040
    replay_url: str | None = None  # where "replay" sends by default: the app `listen --forward-to` serves


class Inspector:
    """The inspector's aiohttp app, its store reader (one thread) and the change feed."""

    def __init__(self, settings: Settings, writer: StoreWriter, options: InspectorOptions,
                 reconcile: Reconcile | None = None, clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.settings, self.writer, self.options, self.reconcile, self.clock = (
            settings,
            writer,
            options,
            reconcile,
            clock,
        )
        self.token = secrets.token_urlsafe(24)
        self.port = options.port
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="smsctl-ui")
        self._store: HistoryStore | None = None
        self._listeners: set[asyncio.Queue[str]] = set()
        self._runner: web.AppRunner | None = None
        self._poller: asyncio.Task[None] | None = None
        self.closing = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ui?token={self.token}"

    # --- life cycle ---------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/ui", self.handle_page)
        app.router.add_get("/ui/events", self.handle_events)
        app.router.add_get("/ui/api/messages", self.handle_messages)
        app.router.add_get("/ui/api/messages/{uuid}", self.handle_message)
        app.router.add_get("/ui/api/stats", self.handle_stats)
        app.router.add_post("/ui/api/replay", self.handle_replay)
        app.router.add_post("/ui/api/forwards/{id}/retry", self.handle_retry)
        app.router.add_post("/ui/api/reconcile", self.handle_reconcile)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.options.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigError(f"the inspector cannot listen on 127.0.0.1:{self.options.port}: {exc.strerror}",
                              hint="choose another port (--ui-port / --port; 0 picks a free one)") from None  # fmt: skip
        self.port = int(self._runner.addresses[0][1])  # the port the OS chose, for port 0
        self._poller = asyncio.create_task(self._watch())
        return self.url

    async def stop(self) -> None:
        self.closing.set()
        for queue in list(self._listeners):
            queue.put_nowait("")  # ends each event stream
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._runner is not None:
            await self._runner.cleanup()
        await self._read(lambda s: s.close())
        self._pool.shutdown(wait=True)

    async def _read(self, fn: Callable[[HistoryStore], T]) -> T | None:
        """Run a read on the inspector's own reader connection, in its thread; None with no store yet."""

        def run() -> T | None:
            if self._store is None:
                self._store = open_reader(self.settings.store)
                if self._store is None:
                    return None
            return fn(self._store)

        return await asyncio.get_running_loop().run_in_executor(self._pool, run)

    async def _watch(self) -> None:
        """Tell every open event stream when the store holds a new event or send (whoever wrote it)."""
        seen: tuple[int, int] | None = None
        told = 0.0
        while not self.closing.is_set():
            with contextlib.suppress(Exception):  # a busy or missing store: look again next time
                marker = await self._read(lambda s: s.change_marker())
                if marker is not None and marker != seen and time.monotonic() - told >= NOTIFY_EVERY:
                    if seen is not None:
                        told = time.monotonic()
                        for queue in list(self._listeners):
                            queue.put_nowait(json.dumps({"events": marker[0], "messages": marker[1]}))
                    seen = marker
            await asyncio.sleep(POLL)

    # --- the guard ----------------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:  # fmt: skip
        if not self._local(request):
            raise web.HTTPNotFound()
        given = request.headers.get("X-Smsctl-Token") if request.method == "POST" else (
            request.query.get("token") or request.headers.get("X-Smsctl-Token"))  # fmt: skip
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            return _refused(
                403, "open the inspector through the URL smsctl printed (it holds this run's token)"
            )
        if request.method == "POST":
            origin = request.headers.get("Origin")
            if origin is not None and origin != f"http://{request.host}":
                return _refused(403, "cross-origin requests are refused")
            if request.content_type != "application/json":
                return _refused(415, "actions take JSON")
        response = await handler(request)
        response.headers.update({"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                                 "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"})  # fmt: skip
        return response

    def _local(self, request: web.Request) -> bool:
        peer = request.remote or ""
        try:
            loopback = ipaddress.ip_address(peer.split("%")[0]).is_loopback
        except ValueError:
            loopback = False
        host = request.headers.get("Host", "")
        name, _, port = host.rpartition(":")
        return (loopback and name in LOCAL_NAMES and port == str(self.port)
                and not any(h in request.headers for h in PROXY_HEADERS))  # fmt: skip

    # --- pages and reads ----------------------------------------------------------------------------

    async def handle_page(self, request: web.Request) -> web.Response:
        nonce = secrets.token_urlsafe(16)
        csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; connect-src 'self'; "
               "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")  # fmt: skip
        body = page(nonce, replay_url=self.options.replay_url or "", reconcile=self.reconcile is not None)
        return web.Response(text=body, content_type="text/html", headers={"Content-Security-Policy": csp})

    async def handle_events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._listeners.add(queue)
        try:
            await response.write(b"retry: 2000\n\n")
            while not self.closing.is_set():
                try:
                    data = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    await response.write(b": keepalive\n\n")
                    continue
                if not data:
                    break
                await response.write(f"event: changed\ndata: {data}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._listeners.discard(queue)
        return response

    async def handle_messages(self, request: web.Request) -> web.Response:
        status = request.query.get("status") or None
        batch = request.query.get("batch") or None
        number = "".join(c for c in request.query.get("number", "") if c.isdigit())
        since = _seconds(request.query.get("since"))
        after = self.clock() - since if since else None
        limit = LIST_LIMIT * 10 if number else LIST_LIMIT
        rows = (
            await self._read(lambda s: s.recent_messages(limit, status=status, since=after, batch=batch))
            or []
        )
        if number:
            rows = [m for m in rows if number in (m.to or "") or number in (m.from_ or "")][:LIST_LIMIT]
        return web.json_response([{
            "message_uuid": m.message_uuid, "to": e164(m.to), "from": e164(m.from_), "status": m.status,
            "final": m.final, "error_code": m.error_code, "error": m.error, "batch_id": m.batch_id,
            "client_ref": m.client_ref, "sent_at": iso_utc(m.sent_at), "last_activity": iso_utc(m.last_activity),
            "source": m.source,
        } for m in rows])  # fmt: skip

    async def handle_message(self, request: web.Request) -> web.Response:
        uuid = request.match_info["uuid"]

        def read(s: HistoryStore) -> dict[str, Any] | None:
            found = s.find_message(uuid)
            if found is None:
                return None
            forwards = s.forwards(list(ForwardState), 200, message_uuid=found.message_uuid)
            return {
                "message_uuid": found.message_uuid, "status": found.status, "final": found.final,
                "conflict": found.conflict, "duplicates": found.duplicates, "via": found.via,
                "to": e164(found.sent.to) if found.sent else None,
                "client_ref": found.sent.client_ref if found.sent else None,
                "events": [{
                    "status": e.status, "timestamp": e.timestamp, "received_at": iso_utc(e.received_at),
                    "error_code": e.error_code, "error_meaning": error_meaning(e.error_code) or e.error_detail,
                    "anomaly": e.anomaly, "source": e.source, "body": e.body,
                    "verified": ("signature and payload_hash verified (HS256)" if e.source == "webhook"
                                 else "a Reports API record (fetched with the account's key)"),
                } for e in s.timeline(found.message_uuid)],
                "forwards": [{
                    "id": f.id, "route": f.route, "target": f.target, "state": f.state, "attempts": f.attempts,
                    "last_code": f.last_code, "last_error": f.last_error, "last_ms": f.last_ms,
                } for f in forwards],
            }  # fmt: skip

        found = await self._read(read)
        if found is None:
            return _refused(404, f"no message {uuid!r} in the store")
        return web.json_response(found)

    async def handle_stats(self, request: web.Request) -> web.Response:
        now = self.clock()
        query = StatsQuery(None, None, None, now, self.settings.stale_after)
        figures = await self._read(lambda s: s.delivery_stats(query))
        return web.json_response(StatsReport(figures, query, now).to_json() if figures else None)

    # --- actions ------------------------------------------------------------------------------------

    async def handle_replay(self, request: web.Request) -> web.Response:
        from smsctl.webhooks.replaying import replay

        data = await _json_object(request)
        uuid, url = str(data.get("message_uuid", "")), str(data.get("url") or self.options.replay_url or "")
        if not url.startswith(("http://", "https://")):
            return _refused(400, "give the URL of your app's status webhook (http:// or https://)")
        events = await self._read(lambda s: s.events_of([uuid])) or []
        if not events:
            return _refused(404, f"no stored events for {uuid!r}")
        summary = await replay(self.settings, events, url, original_token=False, on_answer=lambda _: None)
        return web.json_response(summary.to_json())

    async def handle_retry(self, request: web.Request) -> web.Response:
        from smsctl.webhooks.forwarding import RETRY_WINDOW

        await _json_object(request)
        try:
            forward_id = int(request.match_info["id"])
        except ValueError:
            return _refused(400, "a forward id is a number")
        now = self.clock()
        retried = await self.writer.run(lambda s: s.retry_forwards([forward_id], now, RETRY_WINDOW))
        return web.json_response({"retried": retried.retried, "superseded": retried.superseded})

    async def handle_reconcile(self, request: web.Request) -> web.Response:
        data = await _json_object(request)
        if self.reconcile is None:
            return _refused(409, "reconcile needs VONAGE_API_KEY and VONAGE_API_SECRET (the Reports API)")
        return web.json_response(await self.reconcile(str(data.get("message_uuid", ""))))


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="the body is not JSON") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="the body is not a JSON object")
    return data


def _refused(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _seconds(text: str | None) -> float | None:
    from smsctl.errors import UsageError
    from smsctl.history.reading import parse_duration

    if not text:
        return None
    try:
        return parse_duration(text)
    except UsageError:
        return None


async def serve_inspector(settings: Settings, options: InspectorOptions, reconcile: Callable[[StoreWriter], Reconcile] | None,
                          on_ready: Callable[[str], None], stop: asyncio.Event) -> None:  # fmt: skip
    """`smsctl ui`: the inspector over the store alone, until `stop` (Ctrl-C, SIGTERM)."""
    with StoreWriter.for_settings(settings) as writer:  # for the actions that write (retry a forward)
        inspector = Inspector(settings, writer, options, reconcile(writer) if reconcile else None)
        on_ready(await inspector.start())
        try:
            await stop.wait()
        finally:
            await inspector.stop()


def beside_listener(settings: Settings, options: InspectorOptions, reconcile: Callable[[StoreWriter], Reconcile] | None
                    ) -> Callable[[StoreWriter], contextlib.AbstractAsyncContextManager[str]]:  # fmt: skip
    """`listen --ui`: the inspector started with the listener's writer, stopped with it; yields its URL."""

    @contextlib.asynccontextmanager
    async def running(writer: StoreWriter) -> AsyncIterator[str]:
        inspector = Inspector(settings, writer, options, reconcile(writer) if reconcile else None)
        url = await inspector.start()
        try:
            yield url
        finally:
            await inspector.stop()

    return running
