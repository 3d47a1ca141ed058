"""`smsctl reconcile`: ask the Reports API about every message that has no final status past the grace
period, and store what it knows as events of source `reports`, through the writer and the same status
rules as webhooks (duplicates counted, a final never overwritten: a different one is a disagreement).

With `since`, it also walks the records of that period in 24 h windows: messages the store never saw
(sent by another tool or machine) are added, marked `via reports`, and stored finals are checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from smsctl.codec import iso_utc
from smsctl.config import Settings
from smsctl.errors import ExitCode
from smsctl.history.events import FINAL_STATUSES, StatusEvent
from smsctl.history.interface import Applied, HistoryStore, ReportDetails, Unresolved
from smsctl.history.writer import StoreWriter
from smsctl.messages.reports import IDS_PER_REQUEST, Record, ReportsClient
from smsctl.webhooks.listening import Companion, Listener

CONCURRENCY = 4  # requests in flight; the pacer keeps them under the API's 10/s
MAX_MESSAGES = 1_000_000  # per run: the oldest first
Progress = Callable[[int, int], None]  # (messages checked so far, to check)
Applied_ = Callable[[StatusEvent, Applied, float], None]  # a record stored: (event, what it did, when)
LEASE = "reconcile"  # one listener of a store reconciles at a time


@dataclass(frozen=True)
class ReconcileOptions:
    older_than: float  # seconds: the grace period before a message counts as unresolved
    since: float | None = None  # seconds back to walk the records of, by date window
    dry_run: bool = False


@dataclass(frozen=True)
class Disagreement:
    """A record whose final status differs from the one stored: flagged, the stored one stands."""

    message_uuid: str
    stored: str
    reported: str
    raw_status: str

    def to_json(self) -> dict[str, Any]:
        return {"message_uuid": self.message_uuid, "stored": self.stored, "reported": self.reported,
                "raw_status": self.raw_status}  # fmt: skip


@dataclass(frozen=True)
class Change:
    """A message whose status the run moved (or, with --dry-run, would move)."""

    message_uuid: str
    before: str | None
    after: str

    def to_json(self) -> dict[str, Any]:
        return {"message_uuid": self.message_uuid, "before": self.before, "after": self.after}


@dataclass
class ReconcileReport:
    """What a run found; one renderer in cli/reconcile.py, `to_json` for --json."""

    checked: int = 0  # unresolved messages asked about by UUID
    updated: int = 0  # now final (or, with --dry-run, would be)
    still_pending: int = 0  # Vonage knows them, without a final status yet
    unknown: int = 0  # Vonage has no record of them
    discovered: int = 0  # records of messages the store had never seen (--since)
    records: int = 0  # records read in all
    disagreements: list[Disagreement] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    dry_run: bool = False
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    started_at: float = 0.0

    @property
    def unresolved(self) -> int:
        """Messages still without a final status past the grace period after this run."""
        return self.still_pending + self.unknown

    def summary(self) -> str:
        """One line, for the listener's notices."""
        return (f"reconciled: {self.checked:,} checked, {self.updated:,} now final, {self.still_pending:,} "
                f"pending, {self.unknown:,} unknown to Vonage, {len(self.disagreements):,} disagreements")  # fmt: skip

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if not (self.unresolved or self.disagreements) else ExitCode.UNRESOLVED

    def to_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked, "updated": self.updated, "still_pending": self.still_pending,
            "unknown": self.unknown, "discovered": self.discovered, "records": self.records,
            "unresolved": self.unresolved, "disagreements": [d.to_json() for d in self.disagreements],
            "changes": [c.to_json() for c in self.changes], "dry_run": self.dry_run,
            "requests": self.requests, "retries": self.retries, "seconds": round(self.seconds, 3),
            "started_at": iso_utc(self.started_at),
        }  # fmt: skip


def reports_client(settings: Settings) -> ReportsClient:
    """The Reports API client from the settings; ConfigError naming what is missing."""
    why = "for the Reports API (`smsctl reconcile`), which takes the account's key and secret"
    key = settings.require("VONAGE_API_KEY", why)
    secret = settings.require("VONAGE_API_SECRET", why)
    return ReportsClient(
        settings.api_url, key, secret, timeout=settings.http_timeout, rate=settings.reports_rate
    )


def event_of(record: Record) -> tuple[StatusEvent, ReportDetails]:
    """A record as a status event of source `reports` (its body is the record itself)."""
    event = StatusEvent(
        message_uuid=record.message_uuid, status=record.status, timestamp=record.timestamp, to=record.to,
        from_=record.from_, client_ref=record.client_ref, error_code=record.error_code, error_detail=None,
        price=record.price, currency=record.currency, segments=None, body=record.raw,
    )  # fmt: skip
    return event, ReportDetails(record.network, record.country, record.latency_ms)


class Reconciler:
    """One run over one store: `await Reconciler(writer, client, options).run()`."""

    def __init__(self, writer: StoreWriter, client: ReportsClient, options: ReconcileOptions, *,
                 clock: Callable[[], float] = time.time, progress: Progress | None = None,
                 on_applied: Applied_ | None = None) -> None:  # fmt: skip
        self.writer, self.client, self.options = writer, client, options
        self.clock = clock
        self.on_applied = on_applied or (lambda event, applied, received: None)
        self.progress = progress or (lambda done, total: None)
        self.report = ReconcileReport(dry_run=options.dry_run)
        self._seen: set[str] = set()

    async def run(self) -> ReconcileReport:
        report = self.report
        report.started_at = now = self.clock()
        open_ = await self.writer.run(lambda s: s.unresolved(now - self.options.older_than, MAX_MESSAGES))
        await self._by_ids(open_)
        if self.options.since is not None:
            async for page in self.client.window(now - self.options.since, now):
                await self._apply(page, asked=False)
        report.requests, report.retries = self.client.requests, self.client.retries
        report.seconds = self.clock() - now
        return report

    async def check(self, uuids: list[str]) -> ReconcileReport:
        """Ask about these messages only (`send --wait`'s fallback)."""
        await self._by_ids([Unresolved(u, 0.0) for u in uuids])
        self.report.requests, self.report.retries = self.client.requests, self.client.retries
        return self.report

    async def _by_ids(self, open_: list[Unresolved]) -> None:
        uuids = [u.message_uuid for u in open_]
        self.report.checked = len(uuids)
        chunks = [uuids[i : i + IDS_PER_REQUEST] for i in range(0, len(uuids), IDS_PER_REQUEST)]
        gate = asyncio.Semaphore(CONCURRENCY)
        done = 0

        async def one(chunk: list[str]) -> None:
            nonlocal done
            async with gate:
                records = await self.client.by_ids(chunk)
            answered = await self._apply([r for r in records if r.message_uuid in set(chunk)], asked=True)
            self.report.unknown += len(set(chunk) - answered)
            done += len(chunk)
            self.progress(done, len(uuids))

        self.progress(0, len(uuids))
        await _all(one(c) for c in chunks)

    async def _apply(self, records: list[Record], *, asked: bool) -> set[str]:
        """Store a page of records in one transaction (or, dry, only read); the UUIDs it answered."""
        records = [r for r in records if r.message_uuid not in self._seen]  # a UUID twice: its first record
        self._seen.update(r.message_uuid for r in records)
        self.report.records += len(records)
        if not records:
            return set()
        uuids = [r.message_uuid for r in records]
        received = self.clock()

        def work(store: HistoryStore) -> tuple[dict[str, tuple[str, bool]], set[str], list[Any]]:
            before, known, done = store.statuses(uuids), store.known(uuids), []
            if not self.options.dry_run:
                for record in records:
                    event, details = event_of(record)
                    done.append((event, store.apply_report(event, received, details).applied))
            return before, known, done

        before, known, done = await self.writer.run(work)
        for event, applied in done:  # after the commit: what the listener's view shows is stored
            self.on_applied(event, applied, received)
        for record in records:
            self._classify(record, before.get(record.message_uuid), record.message_uuid in known, asked=asked)
        return set(uuids)

    def _classify(self, record: Record, stored: tuple[str, bool] | None, known: bool, *, asked: bool) -> None:
        report, final = self.report, record.status in FINAL_STATUSES
        if not known:
            report.discovered += 1
        if stored is not None and stored[1]:  # the store has a final status already
            if final and record.status != stored[0]:
                report.disagreements.append(
                    Disagreement(record.message_uuid, stored[0], record.status, record.raw_status)
                )
            return
        if final:
            report.updated += 1
            before = (
                stored[0] if stored else ("accepted" if asked else None)
            )  # asked: a send with no status yet
            report.changes.append(Change(record.message_uuid, before, record.status))
        elif asked:
            report.still_pending += 1


async def _all(jobs: Iterable[Awaitable[None]]) -> None:
    """Run them together; the first failure cancels the rest and is raised as itself (not in a group)."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def reconcile(settings: Settings, options: ReconcileOptions, *, progress: Progress | None = None,
                    clock: Callable[[], float] = time.time) -> ReconcileReport:  # fmt: skip
    """`smsctl reconcile`: one run over the configured store."""
    client = reports_client(settings)  # ConfigError before the store is opened
    with StoreWriter.for_settings(settings) as writer:
        async with client:
            return await Reconciler(writer, client, options, clock=clock, progress=progress).run()


def every(settings: Settings, interval: float, options: ReconcileOptions) -> Companion:
    """`listen --reconcile-every`: a task beside the listener that reconciles every `interval` seconds,
    while it holds the store's reconcile lease (one listener at a time: a lease row on SQLite, an
    advisory lock on PostgreSQL). Its statuses reach the live table like webhooks; a failure is shown
    and retried at the next interval. ConfigError now, before the listener starts, without credentials."""
    reports_client(settings)  # the credentials exist: refuse to start otherwise
    holder = f"{socket.gethostname()}:{os.getpid()}"

    async def companion(listener: Listener) -> None:
        said_held = False
        try:
            while True:
                if not await _one_round(listener, holder, interval, options) and not said_held:
                    said_held = True  # said once: the other listener's rounds are its own to report
                    listener.sink(_event("reconcile_held", "another listener of this store reconciles it"))
                await asyncio.sleep(interval)
        finally:
            with contextlib.suppress(Exception):
                await listener.writer.run(lambda s: s.release_lease(LEASE, holder))

    return companion


async def _one_round(listener: Listener, holder: str, interval: float, options: ReconcileOptions) -> bool:
    """One reconcile round if this listener holds the lease; False when another listener holds it."""
    from smsctl.errors import SmsctlError
    from smsctl.webhooks.server import ListenerEvent

    def shown(event: StatusEvent, applied: Applied, received: float) -> None:
        if not applied.duplicate:
            listener.counters.reconciled += applied.changed
            listener.sink(ListenerEvent("reported", received, status_event=event, applied=applied))

    try:
        ttl = max(3 * interval, 60.0)
        if not await listener.writer.run(lambda s: s.hold_lease(LEASE, holder, time.time(), ttl)):
            return False
        async with reports_client(listener.settings) as client:
            report = await Reconciler(listener.writer, client, options, on_applied=shown).run()
        listener.sink(_event("reconciled", report.summary()))
        await listener.count_stale()
    except SmsctlError as exc:
        listener.sink(_event("reconcile_failed", f"reconcile failed: {exc.message}"))
    return True


def _event(kind: str, detail: str) -> Any:
    from smsctl.webhooks.server import ListenerEvent

    return ListenerEvent(kind, time.time(), detail=detail)


def inspector_action(
    settings: Settings,
) -> Callable[[StoreWriter], Callable[[str], Awaitable[dict[str, Any]]]] | None:
    """The inspector's Reconcile button: ask the Reports API about one message now (None without the
    account's key and secret, which the Reports API needs)."""
    if not (settings.api_key and settings.api_secret):
        return None

    def bound(writer: StoreWriter) -> Callable[[str], Awaitable[dict[str, Any]]]:
        async def one(uuid: str) -> dict[str, Any]:
            report = await fill_in(settings, writer, [uuid])
            if report is None:
                return {"summary": "no Reports API credentials"}
            return {"summary": report.summary(), "changes": [c.to_json() for c in report.changes]}

        return one

    return bound


async def fill_in(settings: Settings, writer: StoreWriter, uuids: list[str]) -> ReconcileReport | None:
    """`send --wait` / `bulk --wait` past --timeout: ask the Reports API about the messages still without
    a final status, when the account's key and secret are set; None when they are not. The answers are
    stored as events of source `reports`, so the wait's result says where its final status came from."""
    if not (settings.api_key and settings.api_secret) or not uuids:
        return None
    async with reports_client(settings) as client:
        return await Reconciler(writer, client, ReconcileOptions(older_than=0.0)).check(uuids)
