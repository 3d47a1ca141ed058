"""Sending one message: validate and build the body, record it, POST it, record the outcome."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

from smsctl.client import MessagesClient, OutcomeUnknown
from smsctl.config import Settings
from smsctl.errors import ApiRefused, ApiUnavailable, ConfigError, UsageError
from smsctl.numbers import EncodingChoice, TextCost, parse_recipient, parse_sender, text_cost
from smsctl.store import Attempt
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
    """The Messages API body, built and validated by `vonage_messages.Sms`."""
    from pydantic import ValidationError
    from vonage_messages import Sms, SmsOptions

    try:
        sms = Sms(
            to=to,
            from_=sender,
            text=request.text,
            client_ref=client_ref,
            webhook_url=webhook_url,
            ttl=request.ttl,
            sms=SmsOptions(encoding_type=request.encoding.value)
            if request.encoding != EncodingChoice.AUTO
            else None,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise UsageError(f"invalid message: {field}: {first['msg']}") from None
    body: dict[str, Any] = sms.model_dump(by_alias=True, exclude_none=True, mode="json")
    return body


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

    prepared = prepare(request, settings)
    credentials, api_url = credentials_from(settings), settings.api_url
    writer = StoreWriter(settings.db_path)
    try:
        async with MessagesClient(api_url, credentials, timeout=settings.http_timeout) as client:
            return await send_prepared(client, writer, prepared), prepared.cost
    finally:
        writer.close()
