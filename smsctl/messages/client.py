"""The Messages API client: one aiohttp session, explicit timeouts, and errors turned into domain errors."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp

from smsctl import __version__
from smsctl.errors import ApiRefused, ApiUnavailable, OutcomeUnknown, Problem
from smsctl.messages.auth import Credentials
from smsctl.messages.ratelimit import RateLimiter

USER_AGENT = f"smsctl/{__version__}"
Hook = Callable[[], Awaitable[None]]
MAX_RETRY_AFTER = 60.0  # never sleep longer than this on one 429, whatever the server says

_REFUSAL_HINTS = {
    401: "check VONAGE_APPLICATION_ID and the private key (or VONAGE_API_KEY/SECRET); `smsctl config`",
    402: "the account balance is too low: top it up in the Vonage dashboard",
    403: "these credentials may not use the Messages API; check the account's API settings",
    404: "check VONAGE_API_URL: it should be the API base, e.g. https://api.nexmo.com",
    422: "fix the parameters named above and send again",
}


@dataclass(frozen=True)
class Accepted:
    """A 202 from the API."""

    message_uuid: str
    request_id: str | None


CLOCK_TOLERANCE = 60.0  # seconds; beyond it a JWT's `iat`/`exp` can be judged wrong by the API


def clock_hint(date_header: str | None, now: float) -> str | None:
    """When a 401 comes with a `Date` far from our clock, the clock is the likelier culprit: the
    application JWT's `iat` and `exp` come from it."""
    from email.utils import parsedate_to_datetime

    if not date_header:
        return None
    try:
        offset = now - parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError, OverflowError):
        return None
    if abs(offset) <= CLOCK_TOLERANCE:
        return None
    direction = "ahead of" if offset > 0 else "behind"
    return (
        f"this machine's clock is {abs(offset):.0f} s {direction} the API's: the application JWT's iat/exp "
        "come from it, so fix the clock (NTP) before the credentials"
    )


def _retry_after(headers: Any) -> float:
    try:
        return min(max(float(headers.get("Retry-After", "1")), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return 1.0


class MessagesClient:
    """Sends messages to `{api_url}/v1/messages`; use as `async with`."""

    def __init__(
        self,
        api_url: str,
        credentials: Credentials,
        *,
        timeout: float = 15.0,
        limiter: RateLimiter | None = None,
        max_throttle_retries: int = 3,
        max_connect_retries: int = 3,
        connections: int = 100,
    ) -> None:
        self.url = f"{api_url}/v1/messages"
        self.credentials = credentials
        self.timeout = timeout
        self.limiter = limiter or RateLimiter(None)
        self.max_throttle_retries = max_throttle_retries
        self.max_connect_retries = max_connect_retries
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> MessagesClient:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=min(self.timeout, 5.0)),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            connector=aiohttp.TCPConnector(limit=self.connections),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(
        self,
        body: dict[str, Any],
        client_ref: str,
        *,
        leaving: Hook | None = None,
        held_back: Hook | None = None,
    ) -> Accepted:
        """POST one message; retry only where nothing can have been sent or the API said so (429).

        `leaving` is awaited after the rate limiter's turn and before each request is written, so a
        send waiting its turn is never recorded as maybe sent; `held_back` is awaited when an
        attempt provably did not send (429, no connection) and the send waits to try again.
        """
        payload = json.dumps(body, separators=(",", ":")).encode()
        throttled = connect_failures = 0
        while True:
            await self.limiter.acquire()
            if leaving is not None:
                await leaving()
            try:
                status, headers, raw = await self._post(payload)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                # refused, DNS failure, connect timeout: the request never left this machine
                connect_failures += 1
                if connect_failures > self.max_connect_retries:
                    raise ApiUnavailable(
                        f"cannot connect to {self.url}: {exc}",
                        hint="nothing was sent; check VONAGE_API_URL and your network, then retry",
                    ) from None
                if held_back is not None:
                    await held_back()
                await asyncio.sleep(0.25 * 2 ** (connect_failures - 1))
                continue
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise self._unknown(f"no answer from the API ({type(exc).__name__})", client_ref) from None
            if status == 429:
                throttled += 1
                if throttled > self.max_throttle_retries:
                    raise ApiUnavailable(
                        f"the API is still throttling after {self.max_throttle_retries} retries (429)",
                        hint="slow down (bulk: --rate) or ask Vonage to raise the account's limit",
                    )
                self.limiter.pause(_retry_after(headers))
                if held_back is not None:
                    await held_back()
                continue
            return self._interpret(status, headers, raw, client_ref)

    async def _post(self, payload: bytes) -> tuple[int, Any, bytes]:
        assert self._session is not None, "use MessagesClient as `async with`"
        headers = {
            "Content-Type": "application/json",
            "Authorization": self.credentials.authorization(),
        }
        async with self._session.post(self.url, data=payload, headers=headers) as response:
            return response.status, response.headers, await response.read()

    def _interpret(self, status: int, headers: Any, raw: bytes, client_ref: str) -> Accepted:
        if status == 202:
            try:
                uuid = json.loads(raw)["message_uuid"]
            except (ValueError, KeyError, TypeError):
                raise self._unknown(
                    "the API accepted the message but its answer is unreadable", client_ref
                ) from None
            return Accepted(str(uuid), headers.get("X-Request-Id"))
        if 400 <= status < 500:
            hint = (
                clock_hint(headers.get("Date"), time.time()) if status == 401 else None
            ) or _REFUSAL_HINTS.get(status)
            raise ApiRefused(Problem.from_response(status, raw), hint=hint)
        problem = Problem.from_response(status, raw)
        raise self._unknown(f"the API failed: {problem.describe()}", client_ref)

    def _unknown(self, what: str, client_ref: str) -> OutcomeUnknown:
        return OutcomeUnknown(
            f"{what}; the message may or may not have been sent",
            hint=f"do not resend blindly: look for client_ref {client_ref!r} in `smsctl log` "
            "or the Vonage dashboard first",
        )
