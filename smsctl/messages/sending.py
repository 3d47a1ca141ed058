"""Sending one message: validate and build the body, record it, POST it, record the outcome."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from smsctl.config import Settings
from smsctl.encoding import EncodingChoice, TextCost, text_cost
from smsctl.errors import (
    ApiRefused,
    ApiUnavailable,
    ConfigError,
    GuardRefused,
    OptedOut,
    OutcomeUnknown,
    SentNotRecorded,
    StoreBug,
    StoreUnavailable,
    UsageError,
)
from smsctl.history.deferred import Deferred
from smsctl.history.interface import Attempt, HistoryStore, LocalState, SentMessage
from smsctl.history.optouts import OptoutState
from smsctl.messages.guards import NO_CAPS, Caps
from smsctl.messages.numbers import parse_destination, parse_sender
from smsctl.messages.runtime import DEFAULT_RECORDING, Recording

if TYPE_CHECKING:  # the HTTP client and the writer are loaded only once input has been validated
    from smsctl.history.writer import StoreWriter
    from smsctl.messages.client import MessagesClient

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
    ignore_optout: bool = False  # --ignore-optout: send to an opted-out number, recorded on the message


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
    repeated_uuid: bool = False  # the API gave another send this uuid too (a mock, a replayed answer)

    def to_dict(self) -> dict[str, Any]:
        from smsctl.codec import e164

        data = asdict(self)
        data.update(to=e164(self.to), **{"from": e164(data.pop("from_"))})
        return data


def new_client_ref() -> str:
    """A reference to find the message by when the API's answer is lost."""
    return f"smsctl-{uuid.uuid4().hex[:16]}"


async def emulator_listener_url(settings: Settings, writer: StoreWriter) -> str | None:
    """Where a send without --wait asks for its statuses when the API is the local emulator and nothing
    else says (no --webhook-url, no BASE_URL): a `smsctl listen` running on this store on this machine.
    The emulator can reach a local URL; the real API cannot, and there the application's URL decides.
    Kept light (the store's registrations and a pid check): a send's start-up does not load the listener."""
    if settings.base_url or not settings.api_is_local:
        return None
    import socket

    from smsctl.running import process_alive

    here = socket.gethostname()
    for listener in await writer.run(lambda s: s.fresh_listeners()):
        if listener.host in (None, here) and process_alive(listener.pid):
            return f"{listener.local_url}/webhooks/status"
    return None


def default_webhook_url(settings: Settings) -> str | None:
    """BASE_URL + /webhooks/status, when BASE_URL is set."""
    return f"{settings.base_url}/webhooks/status" if settings.base_url else None


def preflight(settings: Settings, sender: str | None, *, wait: bool = False) -> None:
    """Before anything is sent: every setting a send needs that is missing or unusable, in one error."""
    from smsctl.messages.auth import credential_problems, settings_error

    problems = credential_problems(settings)
    if not (sender or settings.sender):
        problems.append("no sender: give --from or set VONAGE_NUMBER (your Vonage number, e.g. +14155550100, or "
                        "an alphanumeric sender ID)")  # fmt: skip
    if wait and not settings.signature_secret:
        problems.append("VONAGE_SIGNATURE_SECRET is not set; --wait needs it to verify the status webhooks")
    if problems:
        raise settings_error(problems)


def prepare(request: SendRequest, settings: Settings, *, batch: tuple[str, int] | None = None,
            check_sender: bool = True) -> Prepared:  # fmt: skip
    """Validate everything and build the body with the SDK's `Sms` model; nothing is sent. Without
    `check_sender`, a missing sender is left to `preflight`, which reports it with the rest."""
    to, country = parse_destination(request.to)
    allowed = settings.allowed_countries
    if allowed is not None and country not in allowed:
        raise GuardRefused(
            f"+{to} is in {country or 'no known country'}, not one of SMSCTL_ALLOW_COUNTRIES ({', '.join(sorted(allowed))})",
            hint="check the number (a typo in a list can text the world); if it is right, add its country to "
            "SMSCTL_ALLOW_COUNTRIES",
        )
    sender_raw = request.sender or settings.sender
    if sender_raw is None and not check_sender:
        sender_raw = "smsctl"  # a stand-in, only so the text and number are checked
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
        client_ref, to, sender, request.text if settings.store_text else None, cost.encoding, cost.segments,
        batch[0] if batch else None, batch[1] if batch else None, request.ignore_optout, country,
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


def with_webhook(prepared: Prepared, webhook_url: str) -> Prepared:
    """The same message with its statuses sent to `webhook_url` (in the v1 shape we parse)."""
    from dataclasses import replace

    return replace(prepared, body={**prepared.body, "webhook_url": webhook_url, "webhook_version": "v1"})


def _absolute_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


async def send_prepared(
    client: MessagesClient,
    writer: StoreWriter,
    prepared: Prepared,
    *,
    earlier: SentMessage | None = None,
    recording: Recording = DEFAULT_RECORDING,
    caps: Caps | None = None,
    uncounted: bool = False,
) -> SendResult:
    """Send, recording each step durably: `pending` just before the request is written (never while
    it waits for the rate limiter), then what the API said, whatever it said.

    `earlier` is the row of an earlier attempt as it was read (a bulk rerun); else a row is made at the
    first write. Every later write to the row is conditional on the version (state, updated_at) this run
    last wrote or read (`HistoryStore.claim`): when another run of the batch has changed it since, this
    one stops (BatchRowTaken) and writes nothing more.
    `uncounted`: that earlier attempt never went out (a cap or the opt-out ledger stopped it), so this
    one counts toward the caps as a new send does.
    """
    attempt = prepared.attempt
    row = earlier.id if earlier is not None else None
    version = (earlier.state, earlier.updated_at) if earlier is not None else None  # as last written or read
    caps = caps or NO_CAPS

    async def leaving() -> None:  # from here the message may reach the API: `pending` = maybe sent
        nonlocal row, version
        row, refusal, version = await writer.run_deferred(
            lambda store: first_write(store, attempt, row, caps, uncounted, version)
        )
        if row is None:
            raise BatchRowTaken(attempt.batch_id, attempt.batch_row)
        if isinstance(refusal, str):
            raise caps.refusal(refusal)
        if refusal is not None:
            raise OptedOut(attempt.to, refusal.sender, refusal.source, refusal.changed_at)

    async def held_back() -> None:  # a 429 or no connection: provably not sent while we wait again
        nonlocal version
        known, was = row, version
        if known is not None and was is not None:
            at = await writer.run(
                lambda store: store.claim(known, LocalState.UNSENT, "waiting to retry", was)
            )
            if at is None:
                raise BatchRowTaken(attempt.batch_id, attempt.batch_row)
            version = (LocalState.UNSENT, at)

    try:
        accepted = await client.send(prepared.body, attempt.client_ref, leaving=leaving, held_back=held_back)
    except (OptedOut, GuardRefused, BatchRowTaken):  # recorded (here or by another run); never sent
        raise
    except BaseException as exc:
        if row is not None and version is not None:
            await _record_failure(writer, row, version, exc)
        raise
    assert row is not None  # `leaving` ran before the request that was accepted
    repeated = await record_accepted(writer, row, accepted.message_uuid, recording)
    return SendResult(
        accepted.message_uuid, "+" + attempt.to,
        attempt.from_, attempt.client_ref, attempt.segments, attempt.encoding, "accepted", repeated,
    )  # fmt: skip


class BatchRowTaken(Exception):
    """Another run of the same batch recorded this row first (two `bulk` runs of one file at once): it
    sends it, this run does not."""


FirstWrite = tuple[int | None, "OptoutState | str | None", tuple[LocalState, float] | None]


def first_write(store: HistoryStore, attempt: Attempt, row: int | None, caps: Caps = NO_CAPS, uncounted: bool = False,
                seen: tuple[LocalState, float] | None = None) -> Deferred[FirstWrite]:  # fmt: skip
    """The write just before a request leaves: the attempt recorded `pending` (or marked so again), in
    the same transaction as the opt-out ledger's check, which every send obeys: an opted-out recipient
    is recorded `suppressed` instead (so `batch` and `export` show it), and the caller raises OptedOut
    before any request. One write per send; the check rides with it (bench/sender.py).
    Resolves to the row (None: another run of the batch recorded or changed it first, and sends it),
    the refusal if any, and the row's version as written.

    A new row's check and insert are only queued here and read when the writer resolves them before
    its commit: on PostgreSQL a whole group commit's sends then share one round trip, not one each."""
    asked = (
        Deferred.ready(None) if attempt.optout_ignored else store.queue_optout_of(attempt.to, attempt.from_)
    )
    if row is None:
        now = time.time()
        recorded = store.queue_attempt(attempt, now)

        def settle() -> FirstWrite:
            new_row, optout = recorded.resolve(), asked.resolve()
            if new_row is None:  # the batch row was taken by another run: nothing more to write
                return None, None, None
            if optout is not None:
                store.mark_failed(new_row, LocalState.SUPPRESSED, f"opted out ({optout.source})")
                return new_row, optout, None
            return _counted(store, attempt, caps, new_row, (LocalState.PENDING, now))

        return Deferred(settle)
    assert seen is not None, "an earlier attempt's row comes with the version it was read at"
    optout = asked.resolve()
    suppressed = None if optout is None else f"opted out ({optout.source})"
    state = LocalState.PENDING if suppressed is None else LocalState.SUPPRESSED
    at = store.claim(row, state, suppressed, seen)
    if at is None:
        return Deferred.ready((None, None, None))
    if optout is not None:
        return Deferred.ready((row, optout, None))
    if uncounted:  # that earlier attempt never went out: this one counts toward the caps
        return Deferred.ready(_counted(store, attempt, caps, row, (state, at)))
    return Deferred.ready((row, None, (state, at)))


def _counted(
    store: HistoryStore, attempt: Attempt, caps: Caps, row: int, version: tuple[LocalState, float]
) -> FirstWrite:
    """Count a send toward the caps, once, when it first goes out; a refused one is recorded unsent."""
    counters, refused = caps.counters(store, attempt, time.time())
    if refused is not None or (refused := store.count_send(counters)) is not None:
        store.mark_failed(row, LocalState.UNSENT, caps.row_error(refused))
        return row, refused, None
    return row, None, version


async def record_accepted(writer: StoreWriter, row: int, message_uuid: str, recording: Recording) -> bool:
    """Record a 202, retrying while the store is unavailable; past `retry_for`, spool it and raise
    SentNotRecorded (the message exists: never say anything that invites a resend)."""
    import asyncio

    from smsctl.history import spool

    deadline = time.monotonic() + recording.retry_for
    while True:
        try:
            return await writer.run_deferred(lambda store: store.queue_accepted(row, message_uuid))
        except (StoreUnavailable, StoreBug) as exc:
            if isinstance(exc, StoreBug) or time.monotonic() >= deadline:  # a bug will not pass by waiting
                kept = spool.keep(writer.spool_path, row, message_uuid)
                reason = exc.reason if isinstance(exc, StoreUnavailable) else exc.message
                raise SentNotRecorded.one(message_uuid, reason, str(kept) if kept else None) from None
            await asyncio.sleep(recording.pause)


def failure_state(exc: BaseException) -> LocalState:
    """refused: the API said no; unsent: it was never reached; unknown: it may exist."""
    if isinstance(exc, ApiRefused):
        return LocalState.REFUSED
    if isinstance(exc, ApiUnavailable) and not isinstance(exc, OutcomeUnknown):
        return LocalState.UNSENT
    return LocalState.UNKNOWN  # OutcomeUnknown, or interrupted while the request was in flight


async def _record_failure(
    writer: StoreWriter, row: int, seen: tuple[LocalState, float], exc: BaseException
) -> None:
    error = getattr(exc, "message", "") or type(exc).__name__
    try:  # only as this run left it: another run of the batch may have taken the row since
        await writer.run(lambda store: store.claim(row, failure_state(exc), error, seen))
    except Exception:  # the original error matters more than this bookkeeping
        pass


async def send_one(settings: Settings, request: SendRequest) -> tuple[SendResult, TextCost]:
    """Validate, then send one message with credentials from the settings."""
    from smsctl.messages.runtime import Runtime

    prepared = prepare(request, settings)
    async with Runtime(settings) as rt:
        if request.webhook_url is None and (url := await emulator_listener_url(settings, rt.writer)):
            prepared = with_webhook(prepared, url)
        client = await rt.client()
        caps = Caps.from_settings(settings)
        return await send_prepared(
            client, rt.writer, prepared, recording=rt.recording, caps=caps
        ), prepared.cost
