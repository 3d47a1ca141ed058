"""The emulator's Reports API: `GET /v2/reports/records` over the emulator's own message history.

Built from shared/vonage/reports-api.md: Basic auth with the API key and secret (the application JWT
is refused), `account_id`, `product=MESSAGES`, `direction=outbound`, then either `id` (comma-separated
message UUIDs) or a `date_start`/`date_end` window of at most 24 h; `request_status` is `TRUNCATED`
while more pages follow `_links.next.href` (with `cursor` and `iv`); errors are problem+json; the
synchronous endpoint allows 10 requests a second, beyond which it answers 429.

Every accepted message has a record from the moment it is accepted, and its status moves as its
scenario runs, whether or not its webhooks were ever delivered: that is the point.
"""

from __future__ import annotations

import base64
import bisect
import collections
import functools
import json
import math
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from smsctl.sandbox.throttle import SlidingWindow
from smsctl.webhooks.bodies import sandbox_price

RATE = 10.0  # requests per second, as the real synchronous endpoint
PAGE_SIZE = 1000  # records per page, as the real endpoint
MAX_WINDOW = 24 * 3600.0
FINAL = ("delivered", "rejected", "undeliverable")


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class ReportsSettings:
    """What tests and the CLI may turn: the page size, the rate, and faults to answer in order."""

    page_size: int = PAGE_SIZE
    rate: float | None = RATE
    faults: collections.deque[int] = field(default_factory=collections.deque)  # HTTP statuses to answer next


class Ledger:
    """Every message the emulator accepted, as a Reports API record, in order of acceptance.

    A record's status is worked out when it is read, from its scenario's steps (each with the time it
    happens): no task or timer per message, so the emulator's send path pays only for an append."""

    def __init__(self) -> None:
        self._records: dict[str, dict[str, Any]] = {}
        self._steps: dict[str, list[tuple[float, str, str | None]]] = {}  # (at, status, error code)
        self._times: list[float] = []  # acceptance times, ascending (the 202s are answered in order)
        self._order: list[str] = []

    def accepted(self, message_uuid: str, body: dict[str, Any], segments: int, at: float,
                 steps: list[tuple[float, str, str | None]] | None = None) -> None:  # fmt: skip
        price = sandbox_price(str(body["to"]), segments)
        self._records[message_uuid] = {
            "account_id": None, "message_id": message_uuid, "client_ref": body.get("client_ref") or None,
            "direction": "outbound", "from": body["from"], "to": body["to"], "country": None,
            "network": "99999", "network_name": None, "provider": "sandbox",
            "status": "submitted", "error_code": "0", "provider_error_code": None,
            "date_received": iso(at), "date_finalized": None, "latency": None,
            "estimated_price": price, "total_price": price, "currency": "EUR", "product": "MESSAGES",
            "channel": "sms", "message_body": body.get("text"),
        }  # fmt: skip
        self._steps[message_uuid] = list(steps or [])
        self._times.append(at)
        self._order.append(message_uuid)

    def status(self, message_uuid: str, status: str, error_code: str | None, at: float) -> None:
        """One more step of a message's life, at `at` (tests add history this way)."""
        self._steps[message_uuid].append((at, status, error_code))

    def _as_of(self, message_uuid: str, now: float) -> dict[str, Any]:
        """The record as it stands at `now`: the steps that happened by then, in time order; a final
        status is never left (a late `submitted` changes nothing)."""
        record = dict(self._records[message_uuid])
        country = _country(record["to"])
        record.update(country=country, network_name=f"Sandbox {country or 'network'}")
        received = _epoch(record["date_received"])
        for at, status, error_code in sorted(s for s in self._steps[message_uuid] if s[0] <= now):
            if record["status"] in FINAL:
                break
            record["status"] = status
            if status in FINAL:
                record["date_finalized"] = iso(at)  # the final webhook's own timestamp: the two agree
                record["latency"] = max(0, round((at - received) * 1000))
                record["error_code"] = error_code or "0"
        return record

    def by_ids(self, ids: list[str], now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        return [self._as_of(i, now) for i in ids if i in self._records]

    def window(self, start: float, end: float, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        low, high = bisect.bisect_left(self._times, start), bisect.bisect_left(self._times, end)
        return [self._as_of(u, now) for u in self._order[low:high]]

    def __len__(self) -> int:
        return len(self._records)


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@functools.lru_cache(maxsize=4096)
def _country(number: str) -> str | None:
    import phonenumbers

    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse("+" + number)) or None
    except phonenumbers.NumberParseException:
        return None


Authenticate = Callable[[str], str | None]  # an Authorization header → "basic" | "jwt" | None


class ReportsApi:
    """The route handler; `ReportsApi(ledger, api_key, authenticate).add_to(app)`."""

    def __init__(self, ledger: Ledger, api_key: str | None, authenticate: Authenticate,
                 settings: ReportsSettings | None = None) -> None:  # fmt: skip
        self.ledger, self.api_key, self.authenticate = ledger, api_key, authenticate
        self.settings = settings or ReportsSettings()
        self.requests = 0
        self._window = SlidingWindow(self.settings.rate)
        self._cursor_key = secrets.token_bytes(16)

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/v2/reports/records", self.records)

    async def records(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.settings.faults:
            code = self.settings.faults.popleft()
            return _problem(code, "Injected fault", "the emulator was told to fail this request",
                            {"Retry-After": "1"} if code == 429 else None)  # fmt: skip
        if self.authenticate(request.headers.get("Authorization", "")) != "basic":
            return _problem(401, "Unauthorized", "You did not provide correct credentials: the Reports API "
                            "takes Basic auth with the API key and secret.")  # fmt: skip
        if throttled := self._throttle():
            return throttled
        query = request.query
        invalid = self._invalid(query)
        if invalid:
            return _problem(
                400, "Bad Request", "The request failed due to validation errors", invalid=invalid
            )
        if "id" in query:
            found = self.ledger.by_ids([i for i in query["id"].split(",") if i])
        else:
            start, end = _when(query["date_start"]), _when(query["date_end"])
            assert start is not None and end is not None
            found = self.ledger.window(start, end)
        offset = self._offset(query)
        if offset is None:
            return _problem(400, "Bad Request", "cursor or iv is not valid for this query")
        page = found[offset : offset + self.settings.page_size]
        more = offset + len(page) < len(found)
        body: dict[str, Any] = {
            "_links": {"self": {"href": str(request.url)}},
            "request_id": str(uuid.uuid4()),
            "request_status": "TRUNCATED" if more else "SUCCESS",
            "received_at": iso(time.time()),
            "items_count": len(page),
            "records": [_shown(r, self.api_key, query.get("include_message") == "true") for r in page],
        }
        if more:
            cursor, iv = self._cursor(query, offset + len(page))
            params = {k: v for k, v in query.items() if k not in ("cursor", "iv")}
            next_url = request.url.with_query(None)
            body["_links"]["next"] = {
                "href": f"{next_url}?{urlencode({**params, 'cursor': cursor, 'iv': iv})}"
            }
            body["cursor"], body["iv"] = cursor, iv
        return web.json_response(body)

    def _invalid(self, query: Any) -> list[dict[str, str]]:
        invalid = []
        if query.get("account_id") != self.api_key:
            invalid.append(
                {"name": "account_id", "reason": "must be the API key of the authenticated account"}
            )
        if query.get("product") not in ("MESSAGES", "SMS"):
            invalid.append(
                {"name": "product", "reason": "must be one of the supported products, e.g. MESSAGES"}
            )
        if query.get("direction") not in ("outbound", "inbound"):
            invalid.append(
                {"name": "direction", "reason": "is required for this product: outbound or inbound"}
            )
        has_ids, has_dates = "id" in query, "date_start" in query or "date_end" in query
        if has_ids == has_dates:
            invalid.append({"name": "id", "reason": "give either id or date_start and date_end"})
        elif has_dates:
            start, end = _when(query.get("date_start", "")), _when(query.get("date_end", ""))
            if start is None or end is None:
                invalid.append(
                    {"name": "date_start", "reason": "date_start and date_end must be ISO 8601 times"}
                )
            elif not 0 < end - start <= MAX_WINDOW:
                invalid.append(
                    {"name": "date_end", "reason": "the window must be positive and at most 24 hours"}
                )
        return invalid

    def _cursor(self, query: Any, offset: int) -> tuple[str, str]:
        iv = secrets.token_urlsafe(16)
        mac = _mac(self._cursor_key, iv, _query_key(query), offset)
        return base64.urlsafe_b64encode(f"{offset}:{mac}".encode()).decode(), iv

    def _offset(self, query: Any) -> int | None:
        if "cursor" not in query:
            return 0
        try:
            offset_text, mac = base64.urlsafe_b64decode(query["cursor"]).decode().split(":", 1)
            offset = int(offset_text)
        except ValueError:
            return None
        valid = mac == _mac(self._cursor_key, query.get("iv", ""), _query_key(query), offset)
        return offset if valid else None

    def _throttle(self) -> web.Response | None:
        if self._window.rate != self.settings.rate:  # tests and `--reports-rate` may change it
            self._window = SlidingWindow(self.settings.rate)
        reset = self._window.take()
        if reset is None:
            return None
        return _problem(429, "Too Many Requests", f"the synchronous Reports API allows {self.settings.rate:g} "
                        "requests a second", {"Retry-After": str(max(1, math.ceil(reset)))})  # fmt: skip


def _shown(record: dict[str, Any], account_id: str | None, include_message: bool) -> dict[str, Any]:
    """A record as served: the account filled in, the text only when asked for (`include_message`)."""
    shown = dict(record, account_id=account_id)
    if not include_message:
        del shown["message_body"]
    return shown


def _query_key(query: Any) -> str:
    return urlencode(sorted((k, v) for k, v in query.items() if k not in ("cursor", "iv")))


def _mac(key: bytes, iv: str, query: str, offset: int) -> str:
    import hashlib
    import hmac

    return hmac.new(key, f"{iv}|{query}|{offset}".encode(), hashlib.sha256).hexdigest()[:32]


def _when(text: str) -> float | None:
    try:
        parsed = datetime.fromisoformat(
            text.replace(" ", "+")
        )  # a `+` in a query string may arrive as a space
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo else None


def _problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None,
             invalid: list[dict[str, str]] | None = None) -> web.Response:  # fmt: skip
    body: dict[str, Any] = {"type": f"https://developer.vonage.com/api-errors/reports#{status}", "title": title,
                            "detail": detail, "instance": str(uuid.uuid4())}  # fmt: skip
    if invalid:
        body["invalid_parameters"] = invalid
    return web.Response(status=status, text=json.dumps(body), content_type="application/problem+json",
                        headers=headers)  # fmt: skip
