"""Sending one message: validate and build the body, record it, POST it, record the outcome."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from smsctl.config import Settings
from smsctl.errors import ApiRefused, ApiUnavailable, ConfigError, OutcomeUnknown, UsageError
from smsctl.numbers import EncodingChoice, TextCost, parse_recipient, parse_sender, text_cost
from smsctl.store import Attempt

if TYPE_CHECKING:  # the HTTP client and the writer are loaded only once input has been validated
    from smsctl.client import MessagesClient
    from smsctl.writer import StoreWriter

MAX_CLIENT_REF = 100


@dataclass(frozen=True)
class SendRequest:
    """What the user asked to send."""

    to: str
    text: str
    sender: str | None = None
    client_ref: str | None = None
    webhook_url: str | None = None
    ttl: int | None = None
    encoding: EncodingChoice = EncodingChoice.AUTO


@dataclass(frozen=True)
class Prepared:
    """A validated message: the API body and the row to record before sending."""

    body: dict[str, Any]
    attempt: Attempt
    cost: TextCost


@dataclass(frozen=True)
class SendResult:
    """A message the API accepted."""

    message_uuid: str
    to: str
    from_: str
    client_ref: str
    segments: int
    encoding: str
    status: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["from"] = data.pop("from_")
        return data


def new_client_ref() -> str:
    """A reference to find the message by when the API's answer is lost."""
    return f"smsctl-{uuid.uuid4().hex[:16]}"


def default_webhook_url(settings: Settings) -> str | None:
    """BASE_URL + /webhooks/status, when BASE_URL is set."""
    base = settings.get("BASE_URL")
    return f"{base.rstrip('/')}/webhooks/status" if base else None


def prepare(request: SendRequest, settings: Settings, *, batch: tuple[str, int] | None = None) -> Prepared:
    """Validate everything and build the body with the SDK's `Sms` model; nothing is sent."""
    to = parse_recipient(request.to)
    sender_raw = request.sender or settings.get("VONAGE_NUMBER")
    if sender_raw is None:
        raise ConfigError(
            "no sender: give --from or set VONAGE_NUMBER",
            hint="use your Vonage number, e.g. --from +14155550100, or an alphanumeric sender ID",
        )
    sender = parse_sender(sender_raw)
    cost = text_cost(request.text, request.encoding)
    client_ref = request.client_ref or new_client_ref()
    if len(client_ref) > MAX_CLIENT_REF:
        raise UsageError(f"--client-ref is {len(client_ref)} characters; at most {MAX_CLIENT_REF}")
    body = build_body(to, sender, request, client_ref, request.webhook_url or default_webhook_url(settings))
    attempt = Attempt(
        client_ref, to, sender, request.text, cost.encoding, cost.segments,
        batch[0] if batch else None, batch[1] if batch else None,
    )  # fmt: skip
    return Prepared(body, attempt, cost)


def build_body(
    to: str, sender: str, request: SendRequest, client_ref: str, webhook_url: str | None
) -> dict[str, Any]:
    """The Messages API body: exactly what `vonage_messages.Sms(...).model_dump(by_alias=True,
    exclude_none=True)` gives for the same fields (tests/test_body.py holds the two to each other).

    Built here rather than through the SDK model because importing `vonage_messages` (every
    channel's pydantic models) cost a single send ~220 ms; every field is validated before this.
    """
    body: dict[str, Any] = {"to": to, "from": sender, "text": request.text, "channel": "sms",
                            "message_type": "text", "client_ref": client_ref}  # fmt: skip
    if webhook_url is not None:
        if not _absolute_http_url(webhook_url):
            raise UsageError(
                f"webhook URL {webhook_url!r} is not an absolute http(s) URL",
                hint="e.g. https://abc.ngrok.app/webhooks/status (or set BASE_URL to https://abc.ngrok.app)",
            )
        # The version of the status body we parse; the account's default may still be v0.1.
        body.update(webhook_url=webhook_url, webhook_version="v1")
    if request.ttl is not None:
        body["ttl"] = request.ttl
    if request.encoding != EncodingChoice.AUTO:
        body["sms"] = {"encoding_type": request.encoding.value}
    return body


def _absolute_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


async def send_prepared(client: MessagesClient, writer: StoreWriter, prepared: Prepared) -> SendResult:
    """Record the attempt, send it, and record what the API said, whatever it said."""
    attempt = prepared.attempt
    await writer.run(lambda store: store.record_attempt(attempt))
    try:
        accepted = await client.send(prepared.body, attempt.client_ref)
    except BaseException as exc:
        await _record_failure(writer, attempt.client_ref, exc)
        raise
    await writer.run(lambda store: store.mark_accepted(attempt.client_ref, accepted.message_uuid))
    return SendResult(
        accepted.message_uuid, "+" + attempt.to,
        attempt.from_, attempt.client_ref, attempt.segments, attempt.encoding, "accepted",
    )  # fmt: skip


def failure_state(exc: BaseException) -> str:
    """refused: the API said no; unsent: it was never reached; unknown: it may exist."""
    if isinstance(exc, ApiRefused):
        return "refused"
    if isinstance(exc, ApiUnavailable) and not isinstance(exc, OutcomeUnknown):
        return "unsent"
    return "unknown"  # OutcomeUnknown, or interrupted while the request was in flight


async def _record_failure(writer: StoreWriter, client_ref: str, exc: BaseException) -> None:
    error = getattr(exc, "message", "") or type(exc).__name__
    try:
        await writer.run(lambda store: store.mark_failed(client_ref, failure_state(exc), error))
    except Exception:  # the original error matters more than this bookkeeping
        pass


async def send_one(settings: Settings, request: SendRequest) -> tuple[SendResult, TextCost]:
    """Validate, then send one message with credentials from the settings."""
    from smsctl.auth import credentials_from
    from smsctl.client import MessagesClient
    from smsctl.writer import StoreWriter

    prepared = prepare(request, settings)
    credentials, api_url = credentials_from(settings), settings.api_url
    writer = StoreWriter(settings.db_path)
    try:
        async with MessagesClient(api_url, credentials, timeout=settings.http_timeout) as client:
            return await send_prepared(client, writer, prepared), prepared.cost
    finally:
        writer.close()
