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
from typing import TYPE_CHECKING, Any

from smsctl.errors import StoreError
from smsctl.storage import Forward, ForwardState, Outcome, Route

if TYPE_CHECKING:
    import aiohttp

    from smsctl.config import Settings
    from smsctl.writer import StoreWriter

log = logging.getLogger("smsctl.forward")
CLAIM_BATCH = 32
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
    """Where events go (`--forward-to`, `--forward-inbound-to`) and for how long failures are retried."""

    status_url: str | None
    inbound_url: str | None
    retry_for: float = RETRY_WINDOW

    def target(self, route: Route) -> str | None:
        return self.status_url if route is Route.STATUS else self.inbound_url


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
    """`listen`'s forwarding options, checked: UsageError for a bad URL, header or duration."""
    from smsctl.errors import UsageError
    from smsctl.history import parse_duration

    for option, url in (("--forward-to", status_url), ("--forward-inbound-to", inbound_url)):
        if url is not None and not _is_http_url(url):
            raise UsageError(f"{option} {url!r} is not an http:// or https:// URL",
                             hint="e.g. --forward-to http://localhost:3000/webhooks/status")  # fmt: skip
    parsed = []
    for header in headers:
        name, colon, value = header.partition(":")
        if (
            not colon
            or not name.strip()
            or any(c in name for c in " \t\r\n")
            or any(c in value for c in "\r\n")
        ):
            raise UsageError(
                f"--forward-header {header!r} is not `Name: value`", hint='e.g. --forward-header "X-Env: dev"'
            )
        parsed.append((name.strip(), value.strip()))
    window = parse_duration(retry_for, "--forward-retry-for")
    targets = ForwardTargets(status_url, inbound_url, window) if status_url or inbound_url else None
    if resign and targets is None:
        raise UsageError("--forward-resign needs --forward-to or --forward-inbound-to")
    secret = settings.signature_secrets()[0].decode() if resign else None
    low, high = settings.forward_backoff
    return targets, DeliveryOptions(secret, tuple(parsed), timeout, low, high)


def _is_http_url(url: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def fresh_token(original: str | None, body: bytes, secret: str) -> str:
    """A new token for the same body: fresh `iat` and `jti`, the same `payload_hash`, and the
    original's `api_key` and `application_id` (the original was verified before it was stored)."""
    import jwt

    from smsctl.signing import sign

    claims: dict[str, Any] = {}
    if original:
        with contextlib.suppress(jwt.PyJWTError):
            claims = jwt.decode(original, options={"verify_signature": False})
    return sign(
        body, secret, api_key=_text(claims.get("api_key")), application_id=_text(claims.get("application_id"))
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass
class Forwarder:
    """Delivers the outbox until stopped; `wake()` after a commit that queued something."""

    writer: StoreWriter
    options: DeliveryOptions
    report: Callable[[ForwardReport], None]
    clock: Callable[[], float] = time.time
    rand: Callable[[], float] = random.random
    concurrency: int = 8
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.options.timeout)
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            while not stop.is_set():
                delay = await self._round(session)
                self._wake.clear()
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
                await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()

    async def _round(self, session: aiohttp.ClientSession) -> float:
        """Deliver what is due; how long to sleep before the next look (unless woken)."""
        now = self.clock()
        try:
            due = await self.writer.run(lambda s: s.claim_forwards(now, self.options.lease, CLAIM_BATCH))
        except StoreError as exc:  # the store is away: the outbox is safe in it; look again soon
            log.warning("forwarding paused: %s", exc.message)
            return IDLE_CHECK
        if due:
            await asyncio.gather(*(self._deliver(session, forward) for forward in due))
            return 0.0  # more may be due (or unblocked by these): look again at once
        try:
            upcoming = await self.writer.run(lambda s: s.next_forward_at())
        except StoreError:
            return IDLE_CHECK
        return IDLE_CHECK if upcoming is None else max(0.0, min(IDLE_CHECK, upcoming - self.clock()))

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
            async with session.post(
                forward.target, data=forward.body, headers=headers, allow_redirects=False
            ) as r:
                code = r.status
                await r.read()
        except TimeoutError:
            error = f"no answer within {self.options.timeout:g} s"
        except aiohttp.ClientError as exc:
            error = _describe(exc)
        ms = (time.perf_counter() - started) * 1000
        report = self._outcome(forward, code, error, ms)
        outcome = Outcome(
            report.state, report.attempts, self.clock() + (report.retry_in or 0), code, error, ms
        )
        try:
            await self.writer.run(lambda s: s.record_forward(forward.id, outcome, self.clock()))
        except StoreError:  # the lease runs out and the forward is tried again: at least once
            log.warning("could not record forward %d; it will be retried", forward.id)
        self.report(report)

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
