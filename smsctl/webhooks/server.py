"""The webhook listener: an aiohttp server that verifies, then durably stores, then acknowledges.

Order per request: size and encoding → signature → payload_hash → parse → commit → 2xx.
Nothing is acknowledged before it is committed; no input gets a 500.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import errno
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from smsctl.errors import ConfigError, StoreBug, StoreError, StoreUnavailable
from smsctl.history.deferred import Deferred
from smsctl.history.events import (
    DEFAULT_KEYWORDS,
    KNOWN_STATUSES,
    InboundMessage,
    Keywords,
    StatusEvent,
    Unusable,
    parse_inbound,
    parse_status,
)
from smsctl.history.interface import Applied, HistoryStore, NewForward, Route
from smsctl.history.writer import StoreWriter
from smsctl.webhooks.signing import Rejected, Verifier
from smsctl.webhooks.tunnel import PROBE_HEADER

OTHER_STATUS = "other"  # /metrics and the footer: every status Vonage does not document

if TYPE_CHECKING:
    import ssl

    from smsctl.webhooks.forwarding import ForwardReport, ForwardTargets
    from smsctl.webhooks.tunnel import TunnelCheck

log = logging.getLogger("smsctl.listen")
T = TypeVar("T")
R = TypeVar("R")
MAX_BODY = 64 * 1024
BODY_DEADLINE = 10.0
RETRY_AFTER = "5"
STATUS_PATH = "/webhooks/status"
INBOUND_PATH = "/webhooks/inbound"


class RateMeter:
    """Events per second over the last `window` whole seconds: O(1) per event and exact at any rate."""

    def __init__(self, window: int = 5, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._buckets: collections.deque[list[int]] = collections.deque()  # [second, events]

    def add(self, count: int = 1) -> None:
        second = int(self.clock())
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += count
        else:
            self._buckets.append([second, count])
        while self._buckets[0][0] < second - self.window:
            self._buckets.popleft()

    def rate(self) -> float:
        """The average over the last `window` completed seconds (the current one is still filling)."""
        now = int(self.clock())
        return sum(n for second, n in self._buckets if now - self.window <= second < now) / self.window


@dataclass
class Counters:
    """What the listener has seen since it started; shown in the footer and on /healthz."""

    started_at: float = field(default_factory=time.time)
    accepted: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    inbound: int = 0
    stale_tokens: int = 0
    clock_skew: int = 0
    previous_secret: int = 0  # verified with VONAGE_SIGNATURE_SECRET_PREVIOUS: finish the rotation
    store_unavailable: int = 0
    store_errors: int = 0  # bugs: an SQL or schema error (answered 500, so Vonage retries)
    store_ok: bool = True  # did the last commit succeed?
    view_errors: int = 0
    forwarding: bool = False  # --forward-to / --forward-inbound-to
    forwarded: int = 0
    forward_retries: int = 0
    forward_failed: int = 0
    stale_messages: int | None = (
        None  # accepted, no final status past SMSCTL_STALE_AFTER (counted every 30 s)
    )
    reconciled: int = 0  # statuses the Reports API filled in (`listen --reconcile-every`)
    suppressed: int = (
        0  # sends the opt-out ledger stopped since the listener started (any sender of the store)
    )
    capped: int = 0  # sends a guard cap stopped since the listener started
    rejected: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: collections.Counter[str] = field(
        default_factory=collections.Counter
    )  # accepted events by status
    rate: RateMeter = field(default_factory=RateMeter)

    def events_per_second(self) -> float:
        """Accepted events per second over the last few seconds."""
        return self.rate.rate()

    def count_accepted(self, status: str) -> None:
        self.accepted += 1
        # Any string a signature holder sends would otherwise be a new key here and a new /metrics
        # series: statuses Vonage does not document are counted together.
        self.statuses[status if status in KNOWN_STATUSES else OTHER_STATUS] += 1
        self.rate.add()

    def count_forward(self, report: ForwardReport) -> None:
        from smsctl.history.interface import ForwardState

        if report.state is ForwardState.DELIVERED:
            self.forwarded += 1
        elif report.state is ForwardState.FAILED:
            self.forward_failed += 1
        else:
            self.forward_retries += 1

    def health(self) -> dict[str, Any]:
        """Liveness and counters only: no message data, no secrets (this port may be public)."""
        return {
            "status": "ok" if self.store_ok else "degraded",
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "accepted": self.accepted,
            "statuses": dict(self.statuses),
            "duplicates": self.duplicates,
            "dead_letters": self.dead_letters,
            "inbound": self.inbound,
            "stale_tokens": self.stale_tokens,
            "clock_skew": self.clock_skew,
            "previous_secret": self.previous_secret,
            "store_unavailable": self.store_unavailable,
            "store_errors": self.store_errors,
            "view_errors": self.view_errors,
            "stale_messages": self.stale_messages,
            "reconciled": self.reconciled,
            "suppressed": self.suppressed,
            "capped": self.capped,
            "rejected": dict(self.rejected),
        } | (
            {
                "forwards": {
                    "delivered": self.forwarded,
                    "retries": self.forward_retries,
                    "failed": self.forward_failed,
                }
            }
            if self.forwarding
            else {}
        )


class MalformedHttpDigest(logging.Filter):
    """aiohttp logs a whole traceback for every request it cannot parse (a header over 8 KiB, a bad
    request line), and anyone who finds the public URL can send those. Count each as a rejection
    (`malformed_http`) and let one short line per kind through at most once per `interval`."""

    def __init__(self, counters: Counters, interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        super().__init__()
        self.counters, self.interval, self.clock = counters, interval, clock
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        self.counters.rejected["malformed_http"] += 1
        kind, now = type(exc).__name__, self.clock()
        if now - self._last.get(kind, -self.interval) < self.interval:
            return False
        self._last[kind] = now
        record.msg = (
            "rejected a malformed HTTP request (%s: %s); more are counted on /healthz, logged once a minute"
        )
        record.args = (kind, " ".join(str(exc.message).split())[:80])
        record.exc_info, record.exc_text = None, None
        return True


# Illegal Number: the recipient opted out at the network (shared/vonage/reports-api.md, "Opt-out facts")
CARRIER_OPTOUT = "1240"


@dataclass(frozen=True)
class ListenerEvent:
    """Something the listener did, for the view: accepted, duplicate, rejected, dead_letter, inbound."""

    kind: str
    received_at: float
    status_event: StatusEvent | None = None
    applied: Applied | None = None
    inbound: InboundMessage | None = None
    reason: str | None = None
    detail: str | None = None
    http_status: int = 200
    forward: ForwardReport | None = None
    tunnel: TunnelCheck | None = None


EventSink = Callable[[ListenerEvent], None]


async def read_body(request: web.BaseRequest) -> bytes:
    """The raw body, bounded in size and time; never decompressed."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise Rejected("too_large", f"Content-Length {request.content_length} > {MAX_BODY}")
    if request.headers.get("Content-Encoding", "identity").lower() not in ("", "identity"):
        raise Rejected("compressed", "compressed bodies are not accepted")
    try:
        if request.content.is_eof() and request.content_length is not None:
            # The usual case: a small body that arrived with the headers. Reading it cannot block,
            # so it needs no deadline (setting one up costs more than the rest of the read).
            return (
                await request.content.readexactly(request.content_length) if request.content_length else b""
            )
        async with asyncio.timeout(BODY_DEADLINE):
            if request.content_length is not None:
                return await request.content.readexactly(request.content_length)
            chunks, size = [], 0
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > MAX_BODY:
                    raise Rejected("too_large", f"body grew past {MAX_BODY} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except TimeoutError:
        raise Rejected("slow_body", f"body took more than {BODY_DEADLINE:.0f} s") from None
    except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
        raise Rejected("incomplete_body", type(exc).__name__) from None


Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class WebhookApp:
    """The listener's four routes, served by aiohttp's low-level server.

    Four fixed paths need no router, middlewares or per-request application lookups: a dict
    dispatch on aiohttp's `web.Server` costs ~12 µs less a request than `web.Application`
    (53–61 against 62–77 µs of CPU for a bare 200 in three interleaved pairs), ~5% of a stored webhook.
    """

    def __init__(
        self,
        writer: StoreWriter,
        verifier: Verifier,
        sink: EventSink,
        counters: Counters | None = None,
        store_text: bool = True,
        forward: ForwardTargets | None = None,
        wake_forwarder: Callable[[], None] = lambda: None,
        probe_nonce: str | None = None,
        keywords: Keywords | None = None,
    ) -> None:
        self.writer, self.verifier, self.sink, self.store_text = writer, verifier, sink, store_text
        self.keywords = keywords or DEFAULT_KEYWORDS
        self.forward, self.wake_forwarder, self.probe = forward, wake_forwarder, probe_nonce
        self.counters = counters or Counters()
        self._routes: dict[str, tuple[frozenset[str], Handler]] = {
            STATUS_PATH: (frozenset({"POST"}), self.handle_status),
            INBOUND_PATH: (frozenset({"POST"}), self.handle_inbound),
            "/healthz": (frozenset({"GET", "HEAD"}), self.handle_health),
            "/metrics": (frozenset({"GET", "HEAD"}), self.handle_metrics),
        }

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        route = self._routes.get(request.path)
        if route is None:
            return web.Response(status=404, text="404: Not Found")
        methods, handler = route
        if request.method not in methods:
            allow = ",".join(sorted(methods))
            return web.Response(status=405, text="405: Method Not Allowed", headers={"Allow": allow})
        return await handler(request)

    def runner(self, shutdown_timeout: float) -> web.BaseRunner:
        """A runner for aiohttp's low-level server with this app as its only handler (call it on the
        loop that will serve, as `web.Server` itself requires)."""
        loop = asyncio.get_running_loop()

        def make_request(
            message: Any, payload: Any, protocol: Any, writer: Any, task: Any
        ) -> web.BaseRequest:
            return web.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=MAX_BODY)

        server = web.Server(self, request_factory=make_request, access_log=None, keepalive_timeout=75)
        return web.ServerRunner(server, shutdown_timeout=shutdown_timeout)

    # --- the webhooks --------------------------------------------------------------------------

    async def handle_status(self, request: web.BaseRequest) -> web.Response:
        """POST /webhooks/status: a message status update."""
        outcome = await self._receive(request, Route.STATUS, parse_status,
                                      lambda s, event, at, token: s.queue_status(event, at, token),
                                      lambda applied: not applied.duplicate, lambda event: event.message_uuid)  # fmt: skip
        if isinstance(outcome, web.Response):
            return outcome
        event, applied, received_at = outcome
        if applied.duplicate:
            self.counters.duplicates += 1
        else:
            self.counters.count_accepted(event.status)
        kind = "duplicate" if applied.duplicate else "accepted"
        if (
            not applied.duplicate
            and event.status == "rejected"
            and event.error_code == CARRIER_OPTOUT
            and event.to
        ):
            await self._carrier_optout(event, received_at)
        self._notify(ListenerEvent(kind, received_at, status_event=event, applied=applied))
        return web.Response(status=200)

    async def _carrier_optout(self, event: StatusEvent, at: float) -> None:
        """A 1240 (Illegal Number) rejection: the network holds the number as opted out, so the ledger does
        too (source `carrier`). The status is stored either way; a store failure here is only logged."""
        from smsctl.history.optouts import ALL_SENDERS, OptoutChange, OptoutSource

        assert event.to is not None
        change = OptoutChange(
            event.to, event.from_ or ALL_SENDERS, True, OptoutSource.CARRIER, event.message_uuid, at
        )
        try:
            await self.writer.run(lambda s: s.change_optout(change))
        except StoreError as exc:
            log.warning("could not add %s to the opt-out ledger: %s", event.to, exc)

    async def handle_inbound(self, request: web.BaseRequest) -> web.Response:
        """POST /webhooks/inbound: an SMS sent to your Vonage number."""
        keywords = self.keywords

        def parse(raw: bytes) -> InboundMessage:
            message = parse_inbound(raw, keywords)
            return message if self.store_text else message.without_text()

        outcome = await self._receive(request, Route.INBOUND, parse,
                                      lambda s, message, at, token: Deferred.ready(_store_inbound(s, message, at, token)),
                                      lambda new: new, lambda message: message.message_uuid)  # fmt: skip
        if isinstance(outcome, web.Response):
            return outcome
        message, new, received_at = outcome
        self.counters.inbound += new
        self.counters.duplicates += not new
        self._notify(ListenerEvent("inbound" if new else "duplicate", received_at, inbound=message))
        return web.Response(status=200)

    async def handle_metrics(self, request: web.BaseRequest) -> web.Response:
        """GET /metrics: the same counters, plus commit latency and batch size, for Prometheus."""
        from smsctl.webhooks.metrics import render

        try:
            listeners: int | None = len(await self.writer.run(lambda s: s.fresh_listeners()))
        except StoreError:
            listeners = None  # the store is away: the other figures still say so
        body = render(self.counters, self.writer.commit_seconds, self.writer.batch_sizes, listeners)
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def handle_health(self, request: web.BaseRequest) -> web.Response:
        """GET /healthz: liveness and counters."""
        return web.json_response(self.counters.health())

    async def _receive(
        self,
        request: web.BaseRequest,
        route: Route,
        parse: Callable[[bytes], T],
        store: Callable[[HistoryStore, T, float, str], Deferred[R]],
        is_new: Callable[[R], bool],
        uuid_of: Callable[[T], str],
    ) -> tuple[T, R, float] | web.Response:
        """Verify, parse (or keep as a dead letter), and commit; a Response when it ends early.

        With forwarding on, a new event's outbox row is written in the same commit (never a duplicate's).
        """
        received_at = time.time()
        path = STATUS_PATH if route is Route.STATUS else INBOUND_PATH
        if (probe := request.headers.get(PROBE_HEADER)) is not None:  # the tunnel check: never stored
            return self._answer_probe(probe)
        body = await self._verified_body(request, received_at)
        if isinstance(body, web.Response):
            return body
        try:
            item = parse(body)
        except Unusable as exc:
            return await self._dead_letter(path, body, str(exc), received_at)
        # Verified above: exactly one Authorization header, well formed.
        token = request.headers["Authorization"].partition(" ")[2].strip()
        targets = self.forward
        target = targets.target(route) if targets else None

        def job(s: HistoryStore) -> Deferred[R]:
            stored = store(s, item, received_at, token)
            if target is None or targets is None:
                return stored
            forward = NewForward(route, uuid_of(item), target, body, request.headers.get("Content-Type", ""),
                                 token, targets.key(route))  # fmt: skip

            def queue_forward(result: R) -> R:
                if is_new(result):
                    s.add_forward(forward, received_at, targets.retry_for)
                return result

            return stored.then(queue_forward)

        try:
            result = await self.writer.run_deferred(job)
        except StoreUnavailable as exc:
            return self._unavailable(exc)
        except StoreBug as exc:
            return self._store_bug(exc)
        self.counters.store_ok = True
        if target is not None and is_new(result):
            self.wake_forwarder()
        return item, result, received_at

    async def _verified_body(self, request: web.BaseRequest, received_at: float) -> bytes | web.Response:
        try:
            body = await read_body(request)
            verified = self.verifier.verify(request.headers.getall("Authorization", []), body)
        except Rejected as exc:
            return self._reject(exc, received_at)
        counters = self.counters
        counters.stale_tokens += verified.stale
        counters.previous_secret += verified.secret_index > 0
        if verified.skewed:
            counters.clock_skew += 1
            if counters.clock_skew == 1:  # once: the footer and /healthz keep counting
                log.warning(
                    "a token's iat is %.0f s in the future: check this machine's clock (NTP)", -verified.age
                )
        return body

    async def _dead_letter(self, route: str, body: bytes, reason: str, received_at: float) -> web.Response:
        if route == INBOUND_PATH and not self.store_text:  # it may hold a text we must not keep
            body = f"(withheld: SMSCTL_STORE_TEXT=false; {len(body)} bytes)".encode()
        try:
            await self.writer.run(lambda s: s.add_dead_letter(route, reason, body, received_at))
        except StoreUnavailable as exc:
            return self._unavailable(exc)
        except StoreBug as exc:
            return self._store_bug(exc)
        self.counters.dead_letters += 1
        self._notify(ListenerEvent("dead_letter", received_at, reason=reason))
        return web.Response(status=200)

    # --- answers that end a request early --------------------------------------------------------

    def _notify(self, event: ListenerEvent) -> None:
        """Tell the view; a display problem must never turn a stored event into a 500."""
        try:
            self.sink(event)
        except Exception:  # the event is already stored; only the display failed
            self.counters.view_errors += 1

    def _reject(self, exc: Rejected, received_at: float) -> web.Response:
        self.counters.rejected[exc.reason] += 1
        self._notify(ListenerEvent("rejected", received_at, reason=exc.reason, detail=exc.detail,
                                   http_status=exc.status))  # fmt: skip
        headers = {"Retry-After": RETRY_AFTER} if exc.status == 503 else {}
        response = web.Response(status=exc.status, text=exc.reason + "\n", headers=headers)
        if exc.status in (408, 413):
            response.force_close()  # the rest of the body is not worth reading
        return response

    def _answer_probe(self, probe: str) -> web.Response:
        """This listener's own probe gets its nonce back; another listener's, a 409 (see tunnel.py)."""
        import hmac

        mine = self.probe
        if mine is not None and hmac.compare_digest(probe.encode(), mine.encode()):
            return web.Response(status=200, text=f"smsctl probe {mine}\n")
        return web.Response(status=409, text="smsctl probe for another listener\n")

    def _store_bug(self, exc: StoreBug) -> web.Response:
        """A bug, not the disk: logged once with its traceback, counted, answered 500 (Vonage retries)."""
        self.counters.store_errors += 1
        if self.counters.store_errors == 1:
            log.error(
                "the store failed with an internal error; later ones are counted on /healthz", exc_info=exc
            )
        return web.Response(status=500, text="internal error\n")

    def _unavailable(self, exc: StoreUnavailable) -> web.Response:
        self.counters.store_unavailable += 1
        self.counters.store_ok = False
        return web.Response(status=503, text="store unavailable\n", headers={"Retry-After": RETRY_AFTER})


def _store_inbound(store: HistoryStore, message: InboundMessage, at: float, token: str | None) -> bool:
    """Store an inbound SMS and, in the same transaction, the opt-out (or opt-in) its keyword asks for."""
    from smsctl.history.optouts import from_inbound

    new = store.add_inbound(message, at, token)
    if new and (change := from_inbound(message, at)) is not None:
        blocking = None if change.opted_out else store.optout_of(change.number, change.sender)
        if blocking is not None and blocking.sender != change.sender:  # START after STOPALL: in again for all
            store.change_optout(dataclasses.replace(change, sender=blocking.sender))
        store.change_optout(change)
    return new


async def serve_app(
    app: web.Application | WebhookApp,
    host: str,
    port: int,
    *,
    ready: Callable[[str], None],
    stop: asyncio.Event,
    ssl_context: ssl.SSLContext | None = None,
    shutdown_timeout: float = 10.0,
) -> None:
    """Serve until `stop` is set; report the bound URL (port 0 works); always clean up."""
    runner = (
        app.runner(shutdown_timeout)
        if isinstance(app, WebhookApp)
        else web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout, keepalive_timeout=75)
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context, backlog=1024)
        try:
            await site.start()
        except OSError as exc:
            in_use = exc.errno == errno.EADDRINUSE
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror}",
                hint=await _port_owner_hint(host, port) if in_use else None,
            ) from None
        bound = runner.addresses[0]
        scheme = "https" if ssl_context else "http"
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        ready(f"{scheme}://{shown}:{bound[1]}")
        await stop.wait()
    finally:
        await runner.cleanup()


async def _port_owner_hint(host: str, port: int) -> str:
    """Who holds a port we could not bind: an smsctl listener answers /healthz as only it does."""
    import aiohttp

    shown = f"[{host}]" if ":" in host else host
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as session,
            session.get(f"http://{shown}:{port}/healthz") as response,
        ):
            body = await response.json(content_type=None)
            if isinstance(body, dict) and "accepted" in body and "store_unavailable" in body:
                return ("another smsctl listener already serves that port (it answers /healthz): stop it, or "
                        "pick another with --port; two listeners may share one store")  # fmt: skip
    except (aiohttp.ClientError, TimeoutError, ValueError):
        pass
    return "another program uses that port: pick another with --port"


async def start_serving(
    app: web.Application | WebhookApp, host: str, port: int, stop: asyncio.Event, **options: Any
) -> tuple[str, asyncio.Task[None]]:
    """Start `serve_app` in a task; return the bound URL once listening (or raise why it could not)."""
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(serve_app(app, host, port, ready=ready.set_result, stop=stop, **options))
    waiters: set[asyncio.Future[Any]] = {ready, server}
    done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    if server in done:
        server.result()  # raises the bind error
    return ready.result(), server
