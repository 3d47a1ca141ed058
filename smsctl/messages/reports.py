"""The Vonage Reports API (synchronous records), as `smsctl reconcile` uses it.

`GET /v2/reports/records` with Basic auth (the account's API key and secret, never the application
JWT), `product=MESSAGES`, `direction=outbound`, and either `id=` (a comma-separated list of message
UUIDs) or a `date_start`/`date_end` window of at most 24 h, paged through `_links.next.href` while
`request_status` is `TRUNCATED` (shared/vonage/reports-api.md). Requests are paced at the API's
10/s; 429 and 5xx are retried with backoff, and a 401 names the credential to check.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp

from smsctl.codec import json_object, read_at_most
from smsctl.errors import ApiRefused, ApiUnavailable, ConfigError, Problem
from smsctl.messages.client import MAX_RETRY_AFTER, USER_AGENT, _retry_after
from smsctl.messages.ratelimit import RateLimiter

RECORDS_PATH = "/v2/reports/records"
RATE_LIMIT = 10.0  # requests per second, the synchronous endpoint's documented limit
# Paced a tenth below it: at exactly 10/s, jitter puts an 11th request in some one-second window, and each
# 429 then holds every request back for a whole Retry-After (bench/reconcile.py: 4 of 54 requests, 536/s).
PACE = 9.0  # the default of SMSCTL_REPORTS_RATE
IDS_PER_REQUEST = 100  # the facts name no limit; 100 UUIDs keep the URL under 4 KB
WINDOW = 24 * 3600.0  # the synchronous endpoint's longest date window
RETRIES = 5
MAX_RESPONSE = 32 * 1024 * 1024  # a page is 1,000 records of ~1 KB; anything far larger is not a page
Sleep = Callable[[float], Awaitable[None]]

# Records carry the channel's delivery states; our status model has submitted and three finals. The raw
# value stays in the stored record (the event's body), so nothing is lost by the mapping.
STATUS_MAP = {
    "delivered": "delivered",
    "rejected": "rejected",
    "undeliverable": "undeliverable",
    "expired": "undeliverable",
    "failed": "undeliverable",
    "submitted": "submitted",
    "accepted": "submitted",
    "buffered": "submitted",
}


@dataclass(frozen=True)
class Record:
    """One MESSAGES outbound record, the fields reconciliation uses; `raw` is the record as sent."""

    message_uuid: str
    status: str  # mapped onto our model (STATUS_MAP); an unknown value is kept as it came
    raw_status: str
    timestamp: str  # date_finalized for a final status, else date_received
    to: str | None
    from_: str | None
    client_ref: str | None
    error_code: str | None
    price: str | None
    currency: str | None
    network: str | None
    country: str | None
    latency_ms: float | None
    raw: str

    @classmethod
    def parse(cls, data: Any) -> Record | None:
        """A record from the API's JSON; None for one without a usable `message_id` and `status`."""
        if not isinstance(data, dict):
            return None
        uuid, raw_status = _text(data.get("message_id")), _text(data.get("status"))
        if not uuid or not raw_status or len(uuid) > 200:
            return None
        status = STATUS_MAP.get(raw_status.lower(), raw_status.lower())
        final = status in ("delivered", "rejected", "undeliverable")
        timestamp = _text(data.get("date_finalized")) if final else None
        return cls(
            message_uuid=uuid,
            status=status,
            raw_status=raw_status,
            timestamp=timestamp or _text(data.get("date_received")) or "",
            to=_text(data.get("to")),
            from_=_text(data.get("from")),
            client_ref=_text(data.get("client_ref")),
            error_code=_text(data.get("error_code"))
            if _text(data.get("error_code")) not in ("0", "")
            else None,
            price=_text(data.get("total_price")) or _text(data.get("estimated_price")),
            currency=_text(data.get("currency")),
            network=_text(data.get("network_name")) or _text(data.get("network")),
            country=_text(data.get("country")),
            latency_ms=_number(data.get("latency")),
            raw=json.dumps(data, separators=(",", ":"), ensure_ascii=False),
        )


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list | bool):
        return None
    return str(value)


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def iso(epoch: float) -> str:
    """A window bound as the API takes it: ISO 8601 in UTC, whole seconds."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ReportsClient:
    """`async with ReportsClient(base_url, key, secret) as reports:`; one session, paced requests."""

    def __init__(self, base_url: str, api_key: str, api_secret: str, *, timeout: float = 15.0,
                 rate: float | None = PACE, sleep: Sleep = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        import base64

        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._auth = "Basic " + base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()
        self._timeout = timeout
        self._sleep = sleep
        self.limiter = RateLimiter(rate, clock=clock, sleep=sleep)
        self.requests = 0
        self.retries = 0
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ReportsClient:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout), headers={"User-Agent": USER_AGENT}
        )
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:  # fmt: skip
        if self._session is not None:
            await self._session.close()

    def _params(self, **more: str) -> dict[str, str]:
        return {"account_id": self.api_key, "product": "MESSAGES", "direction": "outbound", **more}

    async def by_ids(self, uuids: list[str]) -> list[Record]:
        """The records of these messages (at most IDS_PER_REQUEST); a message Vonage does not know is absent."""
        records: list[Record] = []
        async for page in self._pages(self._url(self._params(id=",".join(uuids)))):
            records.extend(page)
        return records

    async def window(self, start: float, end: float) -> AsyncIterator[list[Record]]:
        """Every record from `start` to `end` (epoch seconds), a page at a time, in windows of 24 h. The
        bounds go out in whole seconds, so the period is widened to whole seconds, never narrowed."""
        low, end = float(math.floor(start)), float(math.ceil(end))
        while low < end:
            high = min(low + WINDOW, end)
            async for page in self._pages(self._url(self._params(date_start=iso(low), date_end=iso(high)))):
                yield page
            low = high

    def _url(self, params: dict[str, str]) -> str:
        return f"{self.base_url}{RECORDS_PATH}?{urlencode(params)}"

    async def _pages(self, url: str) -> AsyncIterator[list[Record]]:
        while True:
            data = await self._get(url)
            records = data.get("records") if isinstance(data.get("records"), list) else []
            yield [r for r in map(Record.parse, records or []) if r is not None]
            following = _next_link(data)
            if following is None or str(data.get("request_status", "")).upper() != "TRUNCATED":
                return
            url = self._same_origin(following)

    def _same_origin(self, href: str) -> str:
        """The next page's link, sent only to the API we were told to use: a link elsewhere would carry
        our Basic credentials to another host."""
        base, link = urlsplit(self.base_url), urlsplit(href)
        if not link.scheme:  # a relative link
            return f"{self.base_url}{href if href.startswith('/') else '/' + href}"
        if (link.scheme, link.netloc) != (base.scheme, base.netloc):
            raise ApiUnavailable(
                f"the Reports API's next-page link points at another host ({link.netloc}); not following it",
            )
        return href

    async def _get(self, url: str) -> dict[str, Any]:
        assert self._session is not None, "use ReportsClient as `async with`"
        delay = 0.5
        for attempt in range(RETRIES + 1):
            await self.limiter.acquire()
            self.requests += 1
            headers: Any = {}
            try:
                async with self._session.get(
                    url, headers={"Authorization": self._auth, "Accept": "application/json"}
                ) as response:
                    status, headers = response.status, response.headers
                    raw = await read_at_most(response.content, MAX_RESPONSE)
                    if len(raw) > MAX_RESPONSE:
                        raise ApiUnavailable(
                            f"the Reports API sent more than {MAX_RESPONSE >> 20} MiB for one page"
                        )
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, raw = 0, str(exc).encode()
            if status == 200:
                return json_object(raw, "Reports API")
            if attempt == RETRIES or not (status == 0 or status == 429 or status >= 500):
                raise _failure(status, raw)
            self.retries += 1
            if status == 429:  # every request waits for Retry-After: the limit is the account's
                self.limiter.pause(min(_retry_after(headers), MAX_RETRY_AFTER))
            else:
                await self._sleep(delay)
                delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")


def _next_link(data: dict[str, Any]) -> str | None:
    links = data.get("_links")
    following = links.get("next") if isinstance(links, dict) else None
    href = following.get("href") if isinstance(following, dict) else None
    return href if isinstance(href, str) and href else None


def _failure(status: int, raw: bytes) -> Exception:
    if status == 401:
        return ConfigError(
            "the Reports API refused the credentials (401): VONAGE_API_KEY or VONAGE_API_SECRET is wrong",
            hint="the Reports API takes the account's API key and secret (Basic auth), not the application's "
            "key; check both in the Vonage dashboard, then `smsctl config`",
        )
    if status == 0:
        return ApiUnavailable(f"the Reports API could not be reached: {raw.decode(errors='replace')}")
    if status == 429 or status >= 500:
        problem = Problem.from_response(status, raw)
        return ApiUnavailable(f"the Reports API kept failing after {RETRIES} retries: {problem.describe()}")
    hint = "the account may not have the Reports API enabled" if status == 403 else None
    return ApiRefused(Problem.from_response(status, raw), hint=hint)
