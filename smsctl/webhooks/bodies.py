"""Webhook bodies shaped as Vonage sends them (the spec's v1 SMS status and inbound schemas): what the
emulator delivers and `smsctl trigger` sends."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from smsctl.encoding import text_cost


@dataclass(frozen=True)
class Step:
    """One status webhook `delay` seconds after the 202."""

    delay: float
    status: str
    error_code: str | None = None
    copies: int = 1  # >1: the same webhook delivered again (a duplicate)
    unsigned_first: bool = False  # first attempt without Authorization, as Vonage rarely does


def _iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# The emulator's price list, EUR per segment by calling code: real prices vary by country and network;
# these stand-ins differ by country so spend estimates (bulk --dry-run, SMSCTL_DAILY_SPEND) can be tried.
SANDBOX_PRICES = {"1": 0.0057, "44": 0.0396}
SANDBOX_OTHER_PRICE = 0.05


def sandbox_price(to: str, segments: int) -> str:
    """What the emulator charges for a message to `to` (digits) of `segments` segments, as Vonage writes it."""
    per_segment = SANDBOX_PRICES.get(to[:1], SANDBOX_PRICES.get(to[:2], SANDBOX_OTHER_PRICE))
    return f"{per_segment * segments:.4f}"


def status_body(message_uuid: str, sent: dict[str, Any], step: Step, segments: int, breakdown: bool,
                timestamp: str | None = None) -> bytes:  # fmt: skip
    """A status webhook shaped as the spec's SMS status schema, as compact JSON (at `timestamp`, else now)."""
    now = timestamp or _iso_now()
    body: dict[str, Any] = {
        "message_uuid": message_uuid,
        "to": sent["to"],
        "from": sent["from"],
        "timestamp": now,
        "status": step.status,
        "channel": "sms",
        "destination": {"network_code": "310260"},
        "sms": {"count_total": str(segments)},
        "usage": {"currency": "EUR", "price": sandbox_price(str(sent["to"]), segments)},
    }
    if breakdown and step.status != "submitted":
        body["sms"]["segments"] = [{"timestamp": now, "status": step.status} for _ in range(segments)]
    if sent.get("client_ref"):
        body["client_ref"] = sent["client_ref"]
    if step.error_code:
        from smsctl.history.events import error_meaning

        body["error"] = {
            "type": f"https://developer.vonage.com/api-errors/messages#{step.error_code}",
            "title": step.error_code,
            "detail": error_meaning(step.error_code) or "",
            "instance": uuid.uuid4().hex,
        }
    return json.dumps(body, separators=(",", ":")).encode()


def inbound_body(message_uuid: str, from_: str, to: str, text: str) -> bytes:
    """An inbound SMS webhook shaped as the spec's v1 `inboundMessageSMS` (with `message_type: text`,
    as the SDKs' models have it), as compact JSON."""
    body = {
        "channel": "sms", "message_uuid": message_uuid, "to": to.lstrip("+"), "from": from_.lstrip("+"),
        "timestamp": _iso_now(), "message_type": "text", "text": text,
        "sms": {"num_messages": str(text_cost(text).segments), "keyword": (text.split() or [""])[0].upper()},
        "usage": {"currency": "EUR", "price": "0.0000"},
    }  # fmt: skip
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
