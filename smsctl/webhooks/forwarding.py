"""`smsctl listen --forward-to URL`: hand every stored event on to the user's own app, durably.

Each forward is an outbox row written in the commit that stores its event (server.py), so nothing
is forwarded that was not stored, and nothing stored is lost when the app, the listener or the
machine goes down. The `Forwarder` task claims due rows with a lease (so two listeners on one
PostgreSQL never deliver the same row at once), POSTs them, and records each outcome:

- 2xx: delivered.
- 4xx other than 408 and 429 (and 3xx: a redirect is a wrong URL): final, shown as failed.
- 5xx, 408, 429, a timeout or a refused connection: retried, with exponential backoff and jitter
  between the minimum and maximum backoff, until the retry window (`--forward-retry-for`) ends.

A message's forwards go out in the order they were stored: a later one waits while an earlier one
is pending. Forwarding never delays a webhook's own answer; it runs beside the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Any

from smsctl.errors import StoreError
from smsctl.history.interface import Forward, ForwardState, Outcome, Route

if TYPE_CHECKING:
    import aiohttp

    from smsctl.config import Settings
    from smsctl.history.interface import HistoryStore
    from smsctl.history.writer import StoreWriter

log = logging.getLogger("smsctl.forward")
RETRY_WINDOW = 24 * 3600.0  # --forward-retry-for's default, and what `forwards retry` grants again
IDLE_CHECK = 1.0  # seconds: how often an idle forwarder looks for work another listener queued


class Answer(StrEnum):
    DELIVERED = "delivered"
    FINAL = "final"  # the app refused it for good
    RETRY = "retry"


def judge(code: int | None) -> Answer:
    """What an HTTP answer (None: none at all) means for a forward."""
    if code is None or code >= 500 or code in (408, 429):
        return Answer.RETRY
    if 200 <= code < 300:
        return Answer.DELIVERED
    return Answer.FINAL


def backoff(attempts: int, low: float, high: float, rand: Callable[[], float]) -> float:
    """Seconds before retry number `attempts` (1, 2, …): doubling from `low`, capped at `high`, with
    jitter (a random part of the step, so many failed forwards do not return at the same moment)."""
    step = min(high, low * 2 ** (attempts - 1))
    return max(low, step * (0.5 + rand() / 2)) if step > low else low


@dataclass(frozen=True)
class ForwardTargets:
    """Where events go (`--forward-to`, `--forward-inbound-to`), for how long failures are retried,
    and the route key of each (route_key()): the outbox rows this listener may deliver."""

    status_url: str | None
    inbound_url: str | None
    retry_for: float = RETRY_WINDOW
    status_key: str = ""
    inbound_key: str = ""

    def __post_init__(self) -> None:
        # A route given without its key (no headers, no re-signing) gets the plain one.
        for name, route, url in (("status_key", Route.STATUS, self.status_url),
                                 ("inbound_key", Route.INBOUND, self.inbound_url)):  # fmt: skip
            if url and not getattr(self, name):
                object.__setattr__(self, name, route_key(route, url, DeliveryOptions()))

    def target(self, route: Route) -> str | None:
        return self.status_url if route is Route.STATUS else self.inbound_url

    def key(self, route: Route) -> str:
        return self.status_key if route is Route.STATUS else self.inbound_key

    @property
    def keys(self) -> list[str]:
        return [
            k for k, url in ((self.status_key, self.status_url), (self.inbound_key, self.inbound_url)) if url
        ]


@dataclass(frozen=True)
class DeliveryOptions:
    """How forwards are delivered; the backoff bounds come from settings so tests can shorten them."""

    resign_secret: str | None = None  # --forward-resign: a fresh token (fresh iat, same payload_hash)
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 10.0
    min_backoff: float = 5.0
    max_backoff: float = 300.0

    @property
    def lease(self) -> float:
        """How long a claimed forward is ours: one attempt, with room to record its outcome. A listener
        killed mid-delivery leaves the lease to run out; then any listener delivers it again."""
        return self.timeout * 1.5 + 1.0


def route_key(route: Route, target: str, options: DeliveryOptions) -> str:
    """A forward route's name in the outbox: `status http://…`, plus a digest of the headers and
    re-signing when there are any (the headers may hold the app's secrets: only their digest is kept).
    Two listeners deliver each other's rows only when their routes are the same in every respect."""
    key = f"{route} {target}"
    if options.headers or options.resign_secret is not None:
        import hashlib
        import json

        shape = json.dumps([sorted(options.headers), options.resign_secret is not None])
        key += " #" + hashlib.sha256(shape.encode()).hexdigest()[:12]
    return key


@dataclass(frozen=True)
class ForwardReport:
    """One delivery attempt, for the live table, JSON Lines, counters and metrics."""

    forward_id: int
    route: Route
    message_uuid: str
    target: str
    state: ForwardState  # PENDING: it will be retried
    attempts: int
    code: int | None
    error: str | None
    ms: float
    retry_in: float | None = None


def forwarding_from(settings: Settings, *, status_url: str | None, inbound_url: str | None, resign: bool,
                    headers: list[str], retry_for: str, timeout: float) -> tuple[ForwardTargets | None, DeliveryOptions]:  # fmt: skip
    """`listen`'s forwarding options, checked before anything starts: UsageError for a bad URL, header or
    duration (a bad one found later would stop the forwarder while webhooks were still answered)."""
    from smsctl.errors import UsageError
    from smsctl.history.reading import parse_duration

    for option, url in (("--forward-to", status_url), ("--forward-inbound-to", inbound_url)):
        if url is not None and (problem := url_problem(url)):
            raise UsageError(f"{option} {url!r} is not a usable URL: {problem}",
                             hint="e.g. --forward-to http://localhost:3000/webhooks/status")  # fmt: skip
    parsed = [_header(header) for header in headers]
    window = parse_duration(retry_for, "--forward-retry-for")
    if resign and not (status_url or inbound_url):
        raise UsageError("--forward-resign needs --forward-to or --forward-inbound-to")
    secret = settings.signature_secrets()[0].decode() if resign else None
    low, high = settings.forward_backoff
    options = DeliveryOptions(secret, tuple(parsed), timeout, low, high)
    if not (status_url or inbound_url):
        return None, options
    status_key = route_key(Route.STATUS, status_url, options) if status_url else ""
    inbound_key = route_key(Route.INBOUND, inbound_url, options) if inbound_url else ""
    return ForwardTargets(status_url, inbound_url, window, status_key, inbound_key), options


# RFC 9110's token characters: what a header name may hold.
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _header(header: str) -> tuple[str, str]:
    from smsctl.errors import UsageError

    name, colon, value = header.partition(":")
    name, value = name.strip(), value.strip(" \t")
    # A field value may hold visible characters, spaces and tabs; any other control character would
    # make aiohttp refuse every request (or split the header), so it is refused here, at start.
    if not colon or not name or not set(name) <= _TOKEN or any(_control(c) and c != "\t" for c in value):
        raise UsageError(f"--forward-header {header!r} is not `Name: value`",
                         hint='e.g. --forward-header "X-Env: dev" (no control characters)')  # fmt: skip
    return name, value


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a forward target (None: it can): an http(s) URL with a host and a valid port,
    and no spaces or control characters anywhere."""
    from urllib.parse import urlsplit

    if any(c.isspace() or _control(c) for c in url):
        return "it holds a space or a control character"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for port 99999 or "80:80")
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return "it is not an http:// or https:// URL"
    if not parts.hostname:
        return "it has no host"
    import yarl

    try:
        yarl.URL(url)  # what aiohttp will make of it
    except ValueError as exc:
        return str(exc)
    return None


def _control(c: str) -> bool:
    return ord(c) < 0x20 or ord(c) == 0x7F


def fresh_token(original: str | None, body: bytes, secret: str) -> str:
    """A new token for the same body: fresh `iat` and `jti`, the same `payload_hash`, and the
    original's `api_key` and `application_id` (the original was verified before it was stored)."""
    import jwt

    from smsctl.webhooks.signing import sign

    claims: dict[str, Any] = {}
    if original:
        with contextlib.suppress(jwt.PyJWTError):
            claims = jwt.decode(original, options={"verify_signature": False})
    return sign(
        body, secret, api_key=_text(claims.get("api_key")), application_id=_text(claims.get("application_id"))
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


ANSWER_PREFIX = 4096  # bytes of an app's answer read at most: enough to see it answered; a stream is cut


@dataclass
class Forwarder:
    """Delivers this listener's routes of the outbox until stopped; `wake()` after a commit that
    queued something.

    At most `concurrency` forwards are claimed at once, each sent as soon as it is claimed, so a
    request's timeout counts the request alone (never a wait for a pooled connection) and no lease
    runs out in our own queue. While a route's app fails (no answer, 5xx, 408, 429), the route pauses
    for the failed forward's backoff instead of trying its whole backlog: a backlog of any size costs
    one request per backoff, and an idle listener sleeps until the next due time."""

    writer: StoreWriter
    options: DeliveryOptions
    report: Callable[[ForwardReport], None]
    route_keys: list[str] = field(default_factory=list)
    clock: Callable[[], float] = time.time
    rand: Callable[[], float] = random.random
    concurrency: int = 8
    errors: int = 0  # deliveries that raised something unexpected (each kind logged once)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _paused_until: dict[str, float] = field(default_factory=dict)
    _in_flight: set[asyncio.Task[None]] = field(default_factory=set)
    _seen_errors: set[str] = field(default_factory=set)

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        import aiohttp

        # No session-wide timeout: each request is timed on its own, from when it is sent.
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            try:
                while not stop.is_set():
                    delay = await self._round(session)
                    self._wake.clear()
                    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait()),
                               *self._in_flight]  # fmt: skip
                    await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
                    for waiter in waiters[:2]:
                        waiter.cancel()
            finally:
                for task in self._in_flight:  # cut short: the lease runs out and it is retried later
                    task.cancel()
                await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _round(self, session: aiohttp.ClientSession) -> float:
        """Start what is due on each route, as far as free slots allow; how long to sleep before the
        next look (unless woken, or a delivery ends first)."""
        delay = IDLE_CHECK
        for key in self.route_keys:
            now = self.clock()
            paused = self._paused_until.get(key)
            if paused is not None and paused > now:
                delay = min(delay, paused - now)
                continue
            free = self.concurrency - len(self._in_flight)
            if free <= 0:
                return IDLE_CHECK  # the end of a delivery wakes the loop
            probing = paused is not None  # the app failed last time: one forward finds out if it is back
            limit = 1 if probing else free
            try:
                due, upcoming = await self.writer.run(partial(self._claim, key=key, now=now, limit=limit))
            except StoreError as exc:  # the store is away: the outbox is safe in it; look again soon
                log.warning("forwarding paused: %s", exc.message)
                return IDLE_CHECK
            if probing and due:
                self._paused_until[key] = float("inf")  # until the probe's outcome says otherwise
            for forward in due:
                task = asyncio.create_task(self._deliver_safely(session, forward))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            if len(due) == limit and not probing:
                delay = 0.0  # more may be due: look again once a slot is free
            elif upcoming is not None:
                delay = min(delay, max(0.0, upcoming - now))
        return delay

    def _claim(
        self, store: HistoryStore, key: str, now: float, limit: int
    ) -> tuple[list[Forward], float | None]:
        due = store.claim_forwards(key, now, self.options.lease, limit)
        return due, (store.next_forward_at(key) if len(due) < limit else None)

    async def _deliver_safely(self, session: aiohttp.ClientSession, forward: Forward) -> None:
        """One delivery; whatever it raises is reported (each kind logged once) and the forward retried,
        so no single forward can stop the forwarder."""
        try:
            await self._deliver(session, forward)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 (the loop must outlive any one forward)
            self.errors += 1
            kind = type(exc).__name__
            if kind not in self._seen_errors:
                self._seen_errors.add(kind)
                log.warning("forward %d to %s failed unexpectedly (%s: %s); it will be retried", forward.id,
                            forward.target, kind, exc)  # fmt: skip
            await self._record(forward, None, f"{kind}: {exc}", 0.0, app_failed=False)

    async def _deliver(self, session: aiohttp.ClientSession, forward: Forward) -> None:
        import aiohttp

        headers = {"Content-Type": forward.content_type, "User-Agent": "smsctl-forward"}
        token = forward.token
        if self.options.resign_secret is not None:
            token = fresh_token(forward.token, forward.body, self.options.resign_secret)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        headers.update(self.options.headers)
        started = time.perf_counter()
        code: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self.options.timeout):
                async with session.post(
                    forward.target, data=forward.body, headers=headers, allow_redirects=False
                ) as r:
                    code = r.status
                    # A prefix only: the status is the answer, and an app that streams forever must
                    # not fill our memory. The connection is closed, not reused, when more was sent.
                    await r.content.read(ANSWER_PREFIX)
        except TimeoutError:
            if code is None:  # answered, then slow to send its body: the status stands
                error = f"no answer within {self.options.timeout:g} s"
        except aiohttp.ClientError as exc:
            if code is None:
                error = _describe(exc)
        await self._record(forward, code, error, (time.perf_counter() - started) * 1000)

    async def _record(self, forward: Forward, code: int | None, error: str | None, ms: float, *,
                      app_failed: bool = True) -> None:  # fmt: skip
        report = self._outcome(forward, code, error, ms)
        if not app_failed:  # our failure, not the app's: the route goes on
            pass
        elif judge(code) is Answer.RETRY:  # the app is down, failing or throttling: its route pauses
            self._paused_until[forward.route_key] = self.clock() + (
                report.retry_in or self.options.min_backoff
            )
        else:  # it answered: its route goes on at full speed
            self._paused_until.pop(forward.route_key, None)
        outcome = Outcome(
            report.state, report.attempts, self.clock() + (report.retry_in or 0), code, error, ms
        )
        try:
            await self.writer.run(lambda s: s.record_forward(forward.id, outcome, self.clock()))
        except StoreError:  # the lease runs out and the forward is tried again: at least once
            log.warning("could not record forward %d; it will be retried", forward.id)
        self.report(report)
        self._wake.set()  # its slot is free, and the next of its message may be due

    def _outcome(self, forward: Forward, code: int | None, error: str | None, ms: float) -> ForwardReport:
        attempts = forward.attempts + 1
        answer = judge(code)
        state = {Answer.DELIVERED: ForwardState.DELIVERED, Answer.FINAL: ForwardState.FAILED}.get(answer)
        retry_in = None
        if state is None:
            retry_in = backoff(attempts, self.options.min_backoff, self.options.max_backoff, self.rand)
            if self.clock() + retry_in > forward.expires_at:
                state, error = (
                    ForwardState.FAILED,
                    error or f"still failing when its retry window ended ({code})",
                )
                retry_in = None
            else:
                state = ForwardState.PENDING
        return ForwardReport(forward.id, forward.route, forward.message_uuid, forward.target, state, attempts,
                             code, error, ms, retry_in)  # fmt: skip


def _describe(exc: BaseException) -> str:
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return f"TLS failure: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def marker(report: ForwardReport) -> str:
    """The live table's forward column: `→ 200 12 ms`, `→ retry 3`, `→ failed 400`."""
    if report.state is ForwardState.DELIVERED:
        return f"→ {report.code} {report.ms:.0f} ms"
    if report.state is ForwardState.FAILED:
        return f"→ failed {report.code or 'no answer'}"
    return f"→ retry {report.attempts}"
