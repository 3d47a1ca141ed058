"""Bulk sending: a list of recipients, validated up front, paced, resumable, and never sent twice.

Each row gets a deterministic client_ref (`<batch id>-<line>`), recorded before its request and
updated after. A rerun of the same batch skips rows already accepted, resends rows that provably
never left (refused, unreachable), and reports rows whose outcome is unknown instead of resending
them (`--resend-unknown` overrides).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import string
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from smsctl.config import Settings
from smsctl.encoding import EncodingChoice
from smsctl.errors import (
    ApiRefused,
    ApiUnavailable,
    GuardRefused,
    MessageFailed,
    OptedOut,
    RowsRefused,
    SentNotRecorded,
    SmsctlError,
    StoreError,
    StoreUnavailable,
    UsageError,
    WaitTimeout,
)
from smsctl.history.events import FAILED_STATUSES
from smsctl.history.interface import LocalState
from smsctl.history.writer import StoreWriter
from smsctl.messages.client import MessagesClient
from smsctl.messages.guards import NO_CAPS, Caps, never_counted
from smsctl.messages.pricing import PriceBook
from smsctl.messages.ratelimit import RateLimiter
from smsctl.messages.recipients import Recipients, Row
from smsctl.messages.runtime import DEFAULT_RECORDING, Recording
from smsctl.messages.sending import (
    BatchRowTaken,
    Prepared,
    SendRequest,
    emulator_listener_url,
    failure_state,
    prepare,
    send_prepared,
    with_webhook,
)
from smsctl.messages.waiting import WaitOptions, status_route, watch_many

log = logging.getLogger("smsctl.bulk")


@dataclass(frozen=True)
class Checked:
    """A row after validation: ready to send, or why not."""

    row: Row
    prepared: Prepared | None
    error: str | None


@dataclass(frozen=True)
class BulkOptions:
    """What the user asked of the batch."""

    text: str | None
    sender: str | None = None
    batch_id: str | None = None
    rate: float | None = 30.0
    concurrency: int = 10
    skip_invalid: bool = False
    resend_unknown: bool = False
    ttl: int | None = None
    encoding: EncodingChoice = EncodingChoice.AUTO
    webhook_url: str | None = None


MAX_INVALID_SHOWN = 100  # the report lists this many invalid rows and counts the rest


@dataclass
class Report:
    """The validation report: what would be sent. Counts only, so a million rows cost no memory."""

    batch_id: str
    rows: int = 0
    valid: int = 0
    invalid_count: int = 0
    invalid: list[Checked] = field(default_factory=list)  # the first MAX_INVALID_SHOWN
    segments: int = 0
    encodings: Counter[str] = field(default_factory=Counter)
    opted_out: int = 0  # valid rows the opt-out ledger will suppress
    countries: dict[str, list[int]] = field(default_factory=dict)  # country: [rows, segments]
    prices: PriceBook | None = None  # what the store has seen Vonage charge, per country
    new_countries: list[str] = field(default_factory=list)  # not sent to before from this store

    def add(self, checked: Checked) -> None:
        self.rows += 1
        if checked.prepared is None:
            self.invalid_count += 1
            if len(self.invalid) < MAX_INVALID_SHOWN:
                self.invalid.append(checked)
            return
        self.valid += 1
        self.segments += checked.prepared.cost.segments
        self.encodings[checked.prepared.cost.encoding] += 1
        tally = self.countries.setdefault(checked.prepared.attempt.country or UNKNOWN_COUNTRY, [0, 0])
        tally[0] += 1
        tally[1] += checked.prepared.cost.segments

    def costs(self) -> list[CountryCost]:
        """Rows, segments and estimated cost per destination country, costliest first."""
        book = self.prices or PriceBook()
        rows = []
        for country, (count, segments) in self.countries.items():
            estimate = book.estimate(country, segments)
            rows.append(CountryCost(country, count, segments, estimate.cost if estimate else None,
                                    bool(estimate and estimate.known)))  # fmt: skip
        return sorted(rows, key=lambda c: (-(c.cost or 0), -c.rows, c.country))

    def estimated_cost(self) -> float | None:
        """The batch's estimated cost; None when some country cannot be estimated at all."""
        costs = [c.cost for c in self.costs()]
        return None if None in costs else sum(c for c in costs if c is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "rows": self.rows,
            "valid": self.valid,
            "invalid_count": self.invalid_count,
            "invalid": [{"line": c.row.line, "to": c.row.to, "error": c.error} for c in self.invalid],
            "segments": self.segments,
            "encodings": dict(self.encodings),
            "opted_out": self.opted_out,
            "countries": [c.to_dict() for c in self.costs()],
            "estimated_cost": _rounded(self.estimated_cost()),
            "currency": self.prices.currency if self.prices else None,
            "new_countries": self.new_countries,
        }


UNKNOWN_COUNTRY = "??"  # a valid number in no one country (a non-geographic +800, +882 …)


@dataclass(frozen=True)
class CountryCost:
    country: str
    rows: int
    segments: int
    cost: float | None  # None: no price seen for any country, and no SMSCTL_FALLBACK_PRICE
    priced: bool  # from this country's own prices; False: the highest price seen (or the fallback)

    def to_dict(self) -> dict[str, Any]:
        return {"country": self.country, "rows": self.rows, "segments": self.segments,
                "estimated_cost": _rounded(self.cost), "priced": self.priced}  # fmt: skip


def _rounded(amount: float | None) -> float | None:
    return None if amount is None else round(amount, 4)


@dataclass
class RowOutcome:
    """What happened to one row in this run."""

    line: int
    to: str
    client_ref: str
    state: str  # accepted | already_sent | suppressed | capped | refused | unsent | unknown | skipped_unknown | another_run | not_recorded
    message_uuid: str | None = None
    error: str | None = None
    store_error: str | None = None  # the store could not record: the batch stops

    def to_dict(self) -> dict[str, Any]:
        from smsctl.codec import e164

        return {"row": self.line, "to": e164(self.to), "client_ref": self.client_ref, "state": self.state,
                "message_uuid": self.message_uuid, "error": self.error}  # fmt: skip


@dataclass
class BulkResult:
    """What a run did: outcomes per state; the accepted uuids only when they will be waited for."""

    batch_id: str
    states: Counter[str] = field(default_factory=Counter)
    accepted: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    throttle_pauses: int = 0
    store_failed: str | None = None  # why the batch stopped early: the store could not record
    capped: str | None = None  # why the batch stopped early: SMSCTL_DAILY_CAP or SMSCTL_BATCH_CAP

    def counts(self) -> dict[str, int]:
        return dict(self.states)


def render(template: str, fields: dict[str, str]) -> str:
    """Fill `{placeholders}` from the row; only plain names, so no attribute or index access."""
    out = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        out.append(literal)
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise UsageError(f"placeholder {{{name}}} is not a plain column name")
        if name.lower() not in fields:
            raise UsageError(f"placeholder {{{name}}} has no column in the file")
        out.append(fields[name.lower()])
    return "".join(out)


def batch_id_for(recipients: Recipients, options: BulkOptions) -> str:
    """The same file, text and sender always give the same batch ID, so a rerun resumes."""
    digest = hashlib.sha256(recipients.digest.encode())
    digest.update(f"\0{options.text or ''}\0{options.sender or ''}".encode())
    return "b" + digest.hexdigest()[:11]


def checked_rows(
    recipients: Recipients, settings: Settings, options: BulkOptions, batch_id: str
) -> Iterator[Checked]:
    """Every row validated (number, rendered text, length, encoding), one at a time."""
    for row in recipients.rows():
        try:
            template = row.text or options.text
            if template is None:
                raise UsageError("no text: give TEXT or a `text` column")
            request = SendRequest(row.to, render(template, row.fields), options.sender,
                                  row.client_ref or f"{batch_id}-{row.line}", options.webhook_url,
                                  options.ttl, options.encoding)  # fmt: skip
            yield Checked(row, prepare(request, settings, batch=(batch_id, row.line)), None)
        except (UsageError, GuardRefused) as exc:  # a row to a country not allowed is an invalid row
            yield Checked(row, None, exc.message)


def check(recipients: Recipients, settings: Settings, options: BulkOptions) -> Report:
    """Validate every row before anything is sent, keeping counts (not rows), and count the rows the
    opt-out ledger will suppress (read-only, a query per 2,000 rows; none without a store yet). Then the
    estimated cost per country, from the prices the store has seen, and, unless SMSCTL_ALLOW_COUNTRIES
    says where sends may go, the countries this store has never sent to (a typo, or a list gone wrong)."""
    import contextlib

    from smsctl.history.backends import open_reader

    report = Report(options.batch_id or batch_id_for(recipients, options))
    try:
        store = open_reader(settings.store)
    except StoreError:  # a store this run will migrate (an upgrade), or one away: the sends still check
        store = None
    pending: list[tuple[str, str]] = []

    def count_opted_out() -> None:
        if store is not None and pending:
            for sender in {s for _, s in pending}:
                numbers = [n for n, s in pending if s == sender]
                opted_out = store.opted_out_among(numbers, sender)  # once per chunk and sender
                report.opted_out += sum(n in opted_out for n in numbers)
        pending.clear()

    with contextlib.closing(store) if store else contextlib.nullcontext():
        for checked in checked_rows(recipients, settings, options, report.batch_id):
            report.add(checked)
            if checked.prepared is not None:
                pending.append((checked.prepared.attempt.to, checked.prepared.attempt.from_))
                if len(pending) >= 2000:
                    count_opted_out()
        count_opted_out()
        report.prices = PriceBook.learn(store.prices_seen() if store else [], settings.fallback_price)
        if store is not None and settings.allowed_countries is None and (before := store.countries_sent()):
            report.new_countries = sorted(set(report.countries) - before - {UNKNOWN_COUNTRY})
    return report


class BatchRows:
    """The batch's recorded rows, read a block of lines at a time (one query per 1,000 rows, not one per
    row). What a block says is acted on only where it cannot have gone stale: `accepted` is final (the
    row is already sent); a row not recorded then is recorded by this run unless another run of the batch
    recorded it since, which the insert itself detects (history: record_attempt → another_run). Any
    other recorded row is looked up again just before it is sent."""

    BLOCK = 1000

    def __init__(self, writer: StoreWriter, batch_id: str) -> None:
        self.writer, self.batch_id = writer, batch_id
        self._blocks: dict[int, asyncio.Future[dict[int, tuple[LocalState, str | None]]]] = {}

    async def recorded(self, line: int) -> tuple[LocalState, str | None] | None:
        """The row's state and message UUID when its block was read; None if it was not recorded then."""
        block = line // self.BLOCK
        if block not in self._blocks:  # the first worker to need a block reads it; the others await it
            if len(self._blocks) >= 16:  # workers move forward together: the oldest blocks are done with
                del self._blocks[min(self._blocks)]
            first, last = block * self.BLOCK, block * self.BLOCK + self.BLOCK - 1
            batch_id = self.batch_id
            self._blocks[block] = asyncio.ensure_future(
                self.writer.run(lambda s: s.rows_in_batch(batch_id, first, last))
            )
        reading = self._blocks[block]
        try:
            return (await asyncio.shield(reading)).get(line)
        except Exception:
            if self._blocks.get(block) is reading:  # the store was away: the next row reads it again
                del self._blocks[block]
            raise


async def _send_row(client: MessagesClient, writer: StoreWriter, prepared: Prepared, options: BulkOptions,
                    recording: Recording, caps: Caps, rows: BatchRows) -> RowOutcome:  # fmt: skip
    attempt = prepared.attempt
    assert attempt.batch_id is not None and attempt.batch_row is not None
    batch_id, line = attempt.batch_id, attempt.batch_row
    outcome = RowOutcome(line, attempt.to, attempt.client_ref, "accepted")
    recorded = await rows.recorded(line)
    if recorded is not None and recorded[0] == LocalState.ACCEPTED:
        outcome.state, outcome.message_uuid = "already_sent", recorded[1]
        return outcome
    existing = None if recorded is None else await writer.run(lambda s: s.message_in_batch(batch_id, line))
    if existing is not None:
        if existing.state == LocalState.ACCEPTED:
            outcome.state, outcome.message_uuid = "already_sent", existing.message_uuid
            return outcome
        if existing.state in (LocalState.PENDING, LocalState.UNKNOWN) and not options.resend_unknown:
            outcome.state = "skipped_unknown"
            outcome.error = (
                "outcome unknown from an earlier run (the request may have reached the API); not resent"
            )
            return outcome
    try:
        result = await send_prepared(client, writer, prepared, earlier=existing, recording=recording, caps=caps,
                                     uncounted=existing is not None and never_counted(existing))  # fmt: skip
        outcome.message_uuid = result.message_uuid
    except SentNotRecorded as exc:
        outcome.state, outcome.message_uuid, outcome.error = "not_recorded", exc.message_uuid, exc.message
        outcome.store_error = exc.message
    except StoreUnavailable as exc:  # could not record the attempt, so it was not sent
        outcome.state, outcome.error, outcome.store_error = "unsent", exc.message, exc.reason
    except BatchRowTaken:  # two runs of one batch at once: the other recorded this row first and sends it
        outcome.state = "another_run"
        outcome.error = "another run of this batch recorded this row first and sends it; not sent twice"
    except OptedOut as exc:  # recorded as suppressed; the batch goes on
        outcome.state, outcome.error = "suppressed", exc.message
    except GuardRefused as exc:  # a cap is reached: recorded unsent; the batch stops taking rows
        outcome.state, outcome.error = "capped", exc.message
    except (ApiRefused, ApiUnavailable) as exc:
        outcome.state, outcome.error = failure_state(exc), exc.message
    return outcome


async def send_batch(
    client: MessagesClient,
    writer: StoreWriter,
    messages: Iterator[Prepared],
    result: BulkResult,
    options: BulkOptions,
    on_row: Callable[[RowOutcome], None],
    *,
    webhook_url: str | None = None,
    recording: Recording = DEFAULT_RECORDING,
    keep_uuids: bool = False,
    caps: Caps = NO_CAPS,
) -> BulkResult:
    """Send every message with bounded concurrency, paced by the client's rate limiter.

    When the store cannot record, the batch stops taking rows: nothing more is sent until a rerun.
    """
    started = time.monotonic()
    rows = BatchRows(writer, result.batch_id)

    async def worker() -> None:
        for prepared in messages:  # shared by the workers: each takes the next row when it is free
            if webhook_url is not None:
                prepared = with_webhook(prepared, webhook_url)
            if result.capped is not None:
                return  # a cap was reached: nothing more is sent
            outcome = await _send_row(client, writer, prepared, options, recording, caps, rows)
            result.states[outcome.state] += 1
            if keep_uuids and outcome.state == "accepted" and outcome.message_uuid:
                result.accepted.append(outcome.message_uuid)
            on_row(outcome)
            if outcome.store_error is not None:
                result.store_failed = outcome.store_error
                return
            if outcome.state == "capped":
                result.capped = outcome.error
                return

    await asyncio.gather(*(worker() for _ in range(max(1, options.concurrency))))
    result.elapsed = time.monotonic() - started
    result.throttle_pauses = client.limiter.pauses
    return result


def require_all_valid(report: Report, options: BulkOptions) -> None:
    """Nothing is sent when any row is invalid, unless --skip-invalid."""
    if report.invalid_count and not options.skip_invalid:
        lines = ", ".join(str(c.row.line) for c in report.invalid[:10])
        more = "…" if report.invalid_count > 10 else ""
        raise UsageError(
            f"{report.invalid_count} of {report.rows} rows are invalid (lines {lines}{more}); nothing was sent",
            hint="fix them, or pass --skip-invalid to send the valid rows",
        )
    if not report.valid:
        raise UsageError("no valid rows to send")


async def run_bulk(
    settings: Settings,
    recipients: Recipients,
    report: Report,
    options: BulkOptions,
    *,
    wait: WaitOptions | None,
    on_row: Callable[[RowOutcome], None],
    on_wait: Callable[[dict[str, str]], None],
) -> tuple[BulkResult, dict[str, tuple[str, bool]] | None]:
    """Send the batch (the file is streamed again), then with `wait` watch every accepted message."""
    from smsctl.messages.auth import credentials_from
    from smsctl.messages.runtime import Runtime

    credentials_from(settings)  # missing credentials fail before a listener starts
    messages = (
        c.prepared
        for c in checked_rows(recipients, settings, options, report.batch_id)
        if c.prepared is not None
    )
    result = BulkResult(report.batch_id)
    async with Runtime(settings) as rt, contextlib.AsyncExitStack() as stack:
        webhook_url = None
        if wait is not None:
            route = await stack.enter_async_context(
                status_route(settings, rt.writer, wait, options.webhook_url)
            )
            webhook_url = route.webhook_url
        elif options.webhook_url is None:
            webhook_url = await emulator_listener_url(settings, rt.writer)
        client = await rt.client(limiter=RateLimiter(options.rate or None), connections=options.concurrency)
        await send_batch(client, rt.writer, messages, result, options, on_row, webhook_url=webhook_url,
                         recording=rt.recording, keep_uuids=wait is not None,
                         caps=Caps.from_settings(settings))  # fmt: skip
        if wait is None:
            return result, None
        states = await watch_many(settings.store, result.accepted, wait.timeout, on_wait)
        return result, await _after_timeout(settings, rt.writer, states, on_wait)


async def _after_timeout(settings: Settings, writer: StoreWriter, states: dict[str, tuple[str, bool]],
                         on_wait: Callable[[dict[str, str]], None]) -> dict[str, tuple[str, bool]]:  # fmt: skip
    """`bulk --wait` past --timeout: the Reports API is asked about the messages still open (when the
    key and secret are set); what it knows is stored, and the statuses read again."""
    from smsctl.messages.reconciling import fill_in

    open_ = [uuid for uuid, (_, final) in states.items() if not final]
    try:
        if await fill_in(settings, writer, open_) is None:
            return states
    except SmsctlError as exc:
        log.warning("after --timeout, the Reports API could not be asked: %s", exc.message)
        return states
    states.update(await writer.run(lambda s: s.statuses(open_)))
    on_wait({uuid: status for uuid, (status, _) in states.items()})
    return states


def outcome_error(result: BulkResult, states: dict[str, tuple[str, bool]] | None) -> SmsctlError | None:
    """The exit a batch ends in: rows not accepted first, then (with --wait) failures and timeouts."""
    counts = result.counts()
    if counts.get("not_recorded"):
        return SentNotRecorded.rows(counts["not_recorded"], result.store_failed or "the store is unavailable")
    if result.store_failed:
        return StoreUnavailable(
            result.store_failed,
            hint="the batch stopped and nothing more was sent: rerun the same command once the store is writable",
        )
    if result.capped:
        return GuardRefused(result.capped, hint="the batch stopped there; rows not sent are sent by a rerun once "
                            "the cap allows (tomorrow, or a raised cap): nothing is sent twice")  # fmt: skip
    if counts.get("refused"):
        return RowsRefused(f"{counts['refused']} row(s) were refused by the API",
                           hint="see the rows marked refused; fix them and run the same command again")  # fmt: skip
    if counts.get("another_run"):
        return ApiUnavailable(f"{counts['another_run']} row(s) were being sent by another run of this batch at the "
                              "same time (nothing was sent twice)",
                              hint=f"let the other run finish, then `smsctl batch {result.batch_id}` shows every row; "
                              "rerunning the same command sends only rows neither run sent")  # fmt: skip
    unsure = counts.get("unknown", 0) + counts.get("skipped_unknown", 0) + counts.get("unsent", 0)
    if unsure:
        return ApiUnavailable(f"{unsure} row(s) were not confirmed sent (unsent or outcome unknown)",
                              hint="rerun the same command: unsent rows are retried; add --resend-unknown "
                              "only once you have checked the unknown ones were not delivered")  # fmt: skip
    if states is None:
        return None
    failed = sum(1 for status, final in states.values() if final and status in FAILED_STATUSES)
    if failed:
        return MessageFailed(f"{failed} of {len(states)} message(s) failed (rejected or undeliverable)",
                             hint=f"`smsctl batch {result.batch_id}` lists them with their error codes")  # fmt: skip
    waiting = sum(1 for _, final in states.values() if not final)
    if waiting:
        return WaitTimeout(f"{waiting} of {len(states)} message(s) have no final status yet",
                           hint=f"check later with `smsctl batch {result.batch_id}`")  # fmt: skip
    return None
