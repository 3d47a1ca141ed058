"""Webhook bodies turned into typed events: status updates and inbound SMS, or a dead-letter reason."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from smsctl.codec import loads

FINAL_STATUSES = frozenset({"delivered", "rejected", "undeliverable"})
FAILED_STATUSES = frozenset({"rejected", "undeliverable"})
KNOWN_STATUSES = FINAL_STATUSES | {"submitted"}


def status_rank(status: str) -> int:
    """Order used so a status never regresses: unknown 0 < submitted 1 < final 2."""
    if status in FINAL_STATUSES:
        return 2
    return 1 if status == "submitted" else 0


def anomaly_of(event: StatusEvent, current: tuple[str, bool] | None) -> str | None:
    """What is odd about this event, given the message's current (status, final): every backend
    flags the same things."""
    if event.event_time() is None:
        return "bad_timestamp"
    if status_rank(event.status) == 0:
        return "unknown_status"
    if current is None:
        return "unreadable_fields" if event.unreadable else None
    status, final = current
    if final and event.is_final and event.status != status:
        return "conflicting_final"
    if status_rank(event.status) < status_rank(status):
        return "late"
    return "unreadable_fields" if event.unreadable else None  # v0.1/v1 fields in a shape we cannot read


class Unusable(Exception):
    """A signed body that cannot be used: kept as a dead letter with this reason."""


@dataclass(frozen=True)
class StatusEvent:
    """One status webhook."""

    message_uuid: str
    status: str
    timestamp: str
    to: str | None
    from_: str | None
    client_ref: str | None
    error_code: str | None
    error_detail: str | None
    price: str | None
    currency: str | None
    segments: str | None
    body: str
    unreadable: tuple[str, ...] = ()  # fields present in a shape we cannot read: flagged, never dropped

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def event_time(self) -> float | None:
        """Vonage's timestamp as epoch seconds, or None when it is malformed."""
        return parse_timestamp(self.timestamp)


@dataclass(frozen=True)
class InboundMessage:
    """One inbound SMS webhook."""

    message_uuid: str
    from_: str | None
    to: str | None
    text: str | None
    timestamp: str | None
    body: str
    keyword: OptKeyword | None = None  # an opt-out or opt-in keyword, read before any text is dropped

    def without_text(self) -> InboundMessage:
        """The message as kept with SMSCTL_STORE_TEXT=false: no text, not even in the raw body."""
        data = json.loads(self.body)
        message = data.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        for holder in (data, content):  # v1 `text`; v0.1 `message.content.text`
            if isinstance(holder, dict) and "text" in holder:
                holder["text"] = None
        return replace(self, text=None, body=json.dumps(data, ensure_ascii=False))


def parse_timestamp(value: str) -> float | None:
    """ISO 8601 in the forms Vonage uses (`Z`, fractional seconds, `… UTC`) to epoch seconds."""
    text = value.strip().replace(" UTC", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo else None


def _object(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Unusable("body is not valid UTF-8") from None
    try:
        data = loads(text)
    except RecursionError:
        raise Unusable("body is nested too deeply") from None
    except ValueError as exc:  # includes JSONDecodeError and the >4300-digit integer limit
        raise Unusable(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Unusable(f"body is a JSON {type(data).__name__}, not an object")
    if _SURROGATE_ESCAPE.search(raw) and not _encodable(data):
        # JSON may escape half a UTF-16 pair ("\ud800"); no UTF-8 text (nor the store) can hold it.
        raise Unusable("body holds a lone surrogate escape, which is not text")
    return data


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # cheap pre-check: most bodies have none


def _encodable(data: Any) -> bool:
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(data: dict[str, Any], *path: str) -> str | None:
    value: Any = data
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def _required(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > 200:
        raise Unusable(f"no usable `{key}`")
    return value


def parse_status(raw: bytes) -> StatusEvent:
    """A status webhook body, v1 or the legacy v0.1 shape; raises Unusable for what can only be a dead
    letter. v0.1 (accounts still set to it) has `to`/`from` as `{type, number}` and `error` as
    `{code, reason}`; v1 has plain numbers and `error` as `{title, detail}`."""
    data = _object(raw)
    unreadable: list[str] = []
    to, from_ = _party(data, "to", unreadable), _party(data, "from", unreadable)
    error_code, error_detail = _error(data, unreadable)
    return StatusEvent(
        message_uuid=_required(data, "message_uuid"),
        status=_required(data, "status"),
        timestamp=_text(data, "timestamp") or "",
        to=to,
        from_=from_,
        client_ref=_text(data, "client_ref"),
        error_code=error_code,
        error_detail=error_detail,
        price=_text(data, "usage", "price"),
        currency=_text(data, "usage", "currency"),
        # The spec says sms.count_total; one docs example says sms.total_count.
        segments=_text(data, "sms", "count_total") or _text(data, "sms", "total_count"),
        body=raw.decode("utf-8"),
        unreadable=tuple(unreadable),
    )


def _party(data: dict[str, Any], key: str, unreadable: list[str]) -> str | None:
    """`to`/`from`: a number (v1), or `{type, number}` (v0.1)."""
    value = data.get(key)
    if isinstance(value, dict):
        number = _text(value, "number")
        if number is None:
            unreadable.append(key)
        return number
    if value is not None and not isinstance(value, str | int):
        unreadable.append(key)
        return None
    return None if value is None else str(value)


def _error(data: dict[str, Any], unreadable: list[str]) -> tuple[str | None, str | None]:
    """(code, detail): v1 `{title: "1240", detail}` or v0.1 `{code: 1240, reason}`."""
    error = data.get("error")
    if error is None:
        return None, None
    code = _text(data, "error", "title") or _text(data, "error", "code")
    detail = _text(data, "error", "detail") or _text(data, "error", "reason")
    if code is None and detail is None:
        unreadable.append("error")
    return code, detail


def parse_inbound(raw: bytes, keywords: Keywords | None = None) -> InboundMessage:
    """An inbound SMS body (v1, or the legacy v0.1 shape); raises Unusable otherwise."""
    keywords = keywords or DEFAULT_KEYWORDS
    data = _object(raw)
    legacy = isinstance(data.get("from"), dict)
    return InboundMessage(
        message_uuid=_required(data, "message_uuid"),
        from_=_text(data, "from", "number") if legacy else _text(data, "from"),
        to=_text(data, "to", "number") if legacy else _text(data, "to"),
        text=_text(data, "message", "content", "text") if legacy else _text(data, "text"),
        timestamp=_text(data, "timestamp"),
        body=raw.decode("utf-8"),
        keyword=keywords.of(_text(data, "message", "content", "text") if legacy else _text(data, "text")),
    )


class OptKeyword(StrEnum):
    STOP = "stop"  # opt out of the number it was sent to
    STOP_ALL = "stop_all"  # opt out of every sender
    START = "start"  # opt back in


# Short-code and 10DLC opt-out keywords (shared/vonage/reports-api.md, "Opt-out facts"), matched on the
# whole text, case- and space-insensitive: "stop", " Stop ", "S T O P" all count; "stop it" does not.
OPT_OUT_WORDS = frozenset({"STOP", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_OUT_ALL_WORDS = frozenset({"STOPALL"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP", "YES"})


def keyword_form(text: str) -> str:
    """A text as keywords are compared: spaces removed, upper case, a trailing . or ! dropped."""
    return "".join(text.split()).upper().strip(".!")


@dataclass(frozen=True)
class Keywords:
    """The opt-out and opt-in words (SMSCTL_OPTOUT_KEYWORDS, SMSCTL_OPTIN_KEYWORDS replace the defaults;
    STOPALL always opts out of every sender)."""

    opt_out: frozenset[str] = OPT_OUT_WORDS
    opt_in: frozenset[str] = OPT_IN_WORDS

    def of(self, text: str | None) -> OptKeyword | None:
        """The opt-out or opt-in keyword an inbound text is, if it is one."""
        if not text or len(text) > 40:
            return None
        word = keyword_form(text)
        if word in self.opt_out:
            return OptKeyword.STOP
        if word in OPT_OUT_ALL_WORDS:
            return OptKeyword.STOP_ALL
        return OptKeyword.START if word in self.opt_in else None


DEFAULT_KEYWORDS = Keywords()


def opt_keyword(text: str | None) -> OptKeyword | None:
    """The default keywords' reading of a text (the emulator plays a network with the standard words)."""
    return DEFAULT_KEYWORDS.of(text)


def error_meaning(code: str | None) -> str | None:
    """The Messages API's description of a numeric error code (from the spec's x-errors table)."""
    if not code:
        return None
    return _error_codes().get(code)


def error_title(code: str | None) -> str | None:
    """The short name of an error code, e.g. `1240` → `Illegal Number`."""
    meaning = error_meaning(code)
    return meaning.split(" - ")[0].strip() if meaning else None


_ERROR_CODES: dict[str, str] | None = None


def _error_codes() -> dict[str, str]:
    global _ERROR_CODES
    if _ERROR_CODES is None:
        from importlib.resources import files

        data = json.loads(files("smsctl").joinpath("data/error_codes.json").read_text())
        _ERROR_CODES = {k: " ".join(v.split()) for k, v in data["codes"].items()}
    return _ERROR_CODES
