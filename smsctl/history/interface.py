"""The storage interface: what commands and the listener need from the history, and nothing else.

The core talks to `HistoryStore` and gets frozen dataclasses back; no driver rows and no SQL leave a
backend, and each backend sorts its own failures into "unavailable" (the machine's: busy, full,
read-only) and bugs. Opening a store is history/backends.py's: a file path is SQLite
(history/sqlite.py), a postgresql:// URL is PostgreSQL (history/postgres.py), each with its own
migrations. Writes run inside a backend's transaction, through the writer (history/writer.py), which
commits concurrent work together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from smsctl.history.deferred import Deferred

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from smsctl.errors import StoreBug, StoreUnavailable
    from smsctl.history.events import InboundMessage, StatusEvent
    from smsctl.history.optouts import OptoutChange, OptoutState
    from smsctl.history.pricing import PriceSeen
    from smsctl.history.stats import StatsFigures, StatsQuery


class LocalState(StrEnum):
    """What smsctl knows of a send before Vonage says anything; never one of Vonage's statuses."""

    PENDING = "pending"  # its request may have reached the API
    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNSENT = "unsent"  # provably never reached the API
    UNKNOWN = "unknown"  # went out, no usable answer: it may exist
    SUPPRESSED = "suppressed"  # never sent: the recipient opted out (the opt-out ledger)


class StatusFilter(StrEnum):
    """What `--status` may name: one of Vonage's SMS statuses, or a local state (LocalState)."""

    SUBMITTED = "submitted"
    DELIVERED = "delivered"
    REJECTED = "rejected"
    UNDELIVERABLE = "undeliverable"
    PENDING = "pending"
    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNSENT = "unsent"
    UNKNOWN = "unknown"
    SUPPRESSED = "suppressed"


class Source(StrEnum):
    """Where the history learned of a message."""

    SMSCTL = "smsctl"  # smsctl sent it
    WEBHOOK = "webhook"  # seen only through its status webhooks (another program sent it)
    REPORTS = "reports"  # known only from the Reports API (`smsctl reconcile --since`)


@dataclass(frozen=True)
class Attempt:
    """A message about to be sent, recorded before the request goes out."""

    client_ref: str
    to: str
    from_: str
    text: str | None  # None with SMSCTL_STORE_TEXT=false
    encoding: str
    segments: int
    batch_id: str | None = None
    batch_row: int | None = None
    optout_ignored: bool = False  # sent with --ignore-optout (a documented transactional exception)
    country: str | None = None  # ISO 3166 code of the destination, from the numbering plans


@dataclass(frozen=True)
class Applied:
    """What storing one status event did."""

    duplicate: bool
    status: str  # the message's current status after this event
    final: bool
    anomaly: str | None
    changed: bool


@dataclass(frozen=True)
class Unresolved:
    """A message with no final status yet: `reconcile` asks the Reports API about it."""

    message_uuid: str
    since: float  # when it was sent (or first heard of)


@dataclass(frozen=True)
class ReportDetails:
    """What a Reports API record adds to a status event."""

    network: str | None
    country: str | None
    latency_ms: float | None


@dataclass(frozen=True)
class ReportApplied:
    """What storing one Reports API record did: the status rules' answer, and whether the store had
    never heard of the message (it is then marked `via reports`)."""

    applied: Applied
    discovered: bool


@dataclass(frozen=True)
class SentMessage:
    """A send smsctl recorded."""

    id: int
    client_ref: str
    message_uuid: str | None
    to: str
    from_: str
    text: str | None
    encoding: str
    segments: int
    batch_id: str | None
    batch_row: int | None
    state: LocalState
    error: str | None
    repeated_uuid: bool
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class CurrentStatus:
    """A message's current status, which never regresses."""

    message_uuid: str
    status: str
    final: bool
    conflict: bool  # two different final statuses arrived; the first stands
    duplicates: int
    via: Source = Source.WEBHOOK  # how the store first heard of it, when smsctl did not send it


@dataclass(frozen=True)
class StoredEvent:
    """One status event as stored."""

    message_uuid: str
    status: str
    timestamp: str
    received_at: float
    to: str | None
    from_: str | None
    client_ref: str | None
    error_code: str | None
    error_detail: str | None
    price: str | None
    currency: str | None
    segments: str | None
    anomaly: str | None
    body: str
    token: str | None = None  # the original bearer token (`replay --original-token`); None before m006
    source: str = "webhook"  # or `reports`: a Reports API record (`smsctl reconcile`)
    network: str | None = None  # from a Reports API record
    country: str | None = None
    latency_ms: float | None = None


class Route(StrEnum):
    """Which webhook an event came in on (and so where it is forwarded)."""

    STATUS = "status"
    INBOUND = "inbound"


class ForwardState(StrEnum):
    PENDING = "pending"  # waiting for its first attempt, or for a retry
    DELIVERED = "delivered"  # the app answered 2xx
    FAILED = "failed"  # a final answer (4xx but 408/429), or retried until --forward-retry-for ran out


@dataclass(frozen=True)
class NewForward:
    """An event to hand on to the user's app, written in the commit that stores the event."""

    route: Route
    message_uuid: str
    target: str
    body: bytes  # the exact raw body
    content_type: str
    token: str | None  # the original bearer token
    route_key: str = ""  # the forward route (forwarding.route_key): only a listener serving it delivers it


@dataclass(frozen=True)
class Forward:
    """One forward in the outbox and how its deliveries went."""

    id: int
    route: Route
    message_uuid: str
    target: str
    body: bytes  # empty once delivered
    content_type: str
    token: str | None
    state: ForwardState
    attempts: int
    next_at: float
    expires_at: float
    last_code: int | None
    last_error: str | None
    last_ms: float | None
    created_at: float
    done_at: float | None
    route_key: str = ""


@dataclass(frozen=True)
class Retried:
    """What `forwards retry` did: forwards made due again, and failed ones left alone because a newer
    forward of their message was already delivered (sent now, they would reach the app out of order)."""

    retried: int
    superseded: int


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt leaves in the outbox."""

    state: ForwardState
    attempts: int
    next_at: float  # for PENDING: when to try again
    code: int | None  # the app's HTTP status; None when it did not answer
    error: str | None
    ms: float | None


@dataclass(frozen=True)
class AppUrls:
    """An application's Messages webhook URLs (None: not set)."""

    status_url: str | None
    inbound_url: str | None

    def to_json(self) -> dict[str, str | None]:
        return {"status_url": self.status_url, "inbound_url": self.inbound_url}


@dataclass(frozen=True)
class ExportedMessage:
    """One message with its whole timeline (`smsctl export`)."""

    summary: MessageSummary
    events: list[StoredEvent]


@dataclass(frozen=True)
class FoundMessage:
    """A message looked up by uuid: its status and, if smsctl sent it, the latest send with that uuid."""

    message_uuid: str
    status: str
    final: bool
    conflict: bool
    duplicates: int
    sends: int  # more than 1: the API gave several sends this uuid (a mock, a replayed answer)
    sent: SentMessage | None
    via: Source = Source.WEBHOOK


def found(uuid: str, sends: int, latest: SentMessage | None, current: CurrentStatus | None) -> FoundMessage:
    """A FoundMessage from what a backend read: its sends (count and latest) and its current status."""
    if current is None:
        assert latest is not None, "a uuid known from neither a send nor a status"
        return FoundMessage(uuid, latest.state, False, False, 0, sends, latest)
    return FoundMessage(
        uuid, current.status, current.final, current.conflict, current.duplicates, sends, latest, current.via
    )


def event_from(r: Mapping[str, Any]) -> StoredEvent:
    """A stored event from a backend's row (any mapping of column names; a store a read-only reader
    opened before migration m010 has no `source` and Reports columns)."""
    event = StoredEvent(r["message_uuid"], r["status"], r["timestamp"], r["received_at"], r["to_number"],
                        r["from_number"], r["client_ref"], r["error_code"], r["error_detail"], r["price"],
                        r["currency"], r["segments"], r["anomaly"], r["body"], r["token"])  # fmt: skip
    if "source" not in r.keys():
        return event
    return replace(
        event, source=r["source"], network=r["network"], country=r["country"], latency_ms=r["latency_ms"]
    )


def forward_from(r: Mapping[str, Any]) -> Forward:
    """An outbox row from a backend's row (any mapping of column names)."""
    return Forward(int(r["id"]), Route(r["route"]), r["message_uuid"], r["target"], bytes(r["body"]),
                   r["content_type"], r["token"], ForwardState(r["state"]), r["attempts"], r["next_at"],
                   r["expires_at"], r["last_code"], r["last_error"], r["last_ms"], r["created_at"],
                   r["done_at"], r["route_key"])  # fmt: skip


def by_message(events: Iterable[StoredEvent]) -> dict[str, list[StoredEvent]]:
    """Events grouped by message, each message's in the order given."""
    timelines: dict[str, list[StoredEvent]] = {}
    for event in events:
        timelines.setdefault(event.message_uuid, []).append(event)
    return timelines


ExportPage = tuple[list["ExportedMessage"], tuple[int, str] | None]


def sent_page(rows: list[Any], sent_of: Callable[[Any], SentMessage],
              events_of: Callable[[list[str]], Iterable[StoredEvent]], limit: int) -> ExportPage:  # fmt: skip
    """An export page of messages smsctl sent, from a backend's rows (a send's columns plus the
    current status as `cur_status`, `cur_final`, `cur_updated`); the cursor goes on by local id,
    then to the webhook-only messages."""
    timelines = by_message(events_of([r["message_uuid"] for r in rows if r["message_uuid"]]))
    page = [
        exported(sent_of(r), r["message_uuid"] or "",
                 (r["cur_status"], bool(r["cur_final"]), r["cur_updated"]) if r["cur_status"] else None,
                 timelines.get(r["message_uuid"], []))
        for r in rows
    ]  # fmt: skip
    return page, ((0, str(rows[-1]["id"])) if len(rows) == limit else (1, ""))


def hook_page(
    rows: list[Any], events_of: Callable[[list[str]], Iterable[StoredEvent]], limit: int
) -> ExportPage:
    """An export page of messages seen only through webhooks, from `message_status` rows; the
    cursor goes on by uuid, None after the last."""
    timelines = by_message(events_of([r["message_uuid"] for r in rows]))
    page = [exported(None, r["message_uuid"], (r["status"], bool(r["final"]), r["updated_at"]),
                     timelines.get(r["message_uuid"], []), via=Source(r["via"])) for r in rows]  # fmt: skip
    return page, ((1, rows[-1]["message_uuid"]) if len(rows) == limit else None)


def exported(sent: SentMessage | None, uuid: str, current: tuple[str, bool, float] | None,
             events: list[StoredEvent], via: Source = Source.WEBHOOK) -> ExportedMessage:  # fmt: skip
    """A message for `export` from what a backend read: its send (if smsctl sent it), its current
    (status, final, updated_at), and its events in the order received. Fields a webhook-only message
    lacks come from its events, as in `log`."""

    def first(values: Iterable[str | None]) -> str | None:
        return next((v for v in values if v), None)

    counted = first(e.segments for e in events)
    segments = sent.segments if sent else (int(counted) if counted and counted.isdigit() else None)
    activity = max(([sent.updated_at] if sent else []) + ([current[2]] if current else []), default=0.0)
    summary = MessageSummary(
        message_uuid=uuid or None,
        source=Source.SMSCTL if sent else via,
        to=sent.to if sent else first(e.to for e in events),
        from_=sent.from_ if sent else first(e.from_ for e in events),
        client_ref=sent.client_ref if sent else first(e.client_ref for e in events),
        status=current[0] if current else (sent.state if sent else "unknown"),
        final=bool(current and current[1]),
        segments=segments,
        sent_at=sent.created_at if sent else None,
        last_activity=activity,
        error=sent.error if sent else None,
        error_code=first(e.error_code for e in reversed(events)),
        batch_id=sent.batch_id if sent else None,
        batch_row=sent.batch_row if sent else None,
    )
    return ExportedMessage(summary, events)


@dataclass(frozen=True)
class LogFilters:
    """`log`'s filters as SQL conditions for both halves of its query (sent by smsctl; seen only
    through webhooks), in a backend's dialect: its parameter mark and its two-argument maximum."""

    sent_where: list[str]
    hook_where: list[str]
    sent_params: list[object]
    hook_params: list[object]

    @classmethod
    def build(cls, status: str | None, since: float | None, batch: str | None, *, mark: str,
              greatest: str) -> LogFilters:  # fmt: skip
        f = cls(["1 = 1"], ["1 = 1"], [], [])
        if status:
            f.sent_where.append(f"COALESCE(s.status, m.state) = {mark}")
            f.hook_where.append(f"s.status = {mark}")
            f.sent_params.append(status)
            f.hook_params.append(status)
        if since is not None:
            f.sent_where.append(f"{greatest}(m.updated_at, COALESCE(s.updated_at, 0)) >= {mark}")
            f.hook_where.append(f"s.updated_at >= {mark}")
            f.sent_params.append(since)
            f.hook_params.append(since)
        if batch:
            f.sent_where.append(f"m.batch_id = {mark}")
            f.hook_where.append("1 = 0")  # webhook-only messages belong to no batch
            f.sent_params.append(batch)
        return f


@dataclass(frozen=True)
class MessageSummary:
    """One message of `log` and `batch`: sent by smsctl, or seen only through webhooks."""

    message_uuid: str | None
    source: Source
    to: str | None
    from_: str | None
    client_ref: str | None
    status: str  # Vonage's current status, else the local state
    final: bool
    segments: int | None
    sent_at: float | None
    last_activity: float
    error: str | None
    error_code: str | None
    batch_id: str | None
    batch_row: int | None
    stale: bool = False  # a display state (history/reading.stale_test), set by `log` and `batch`


@dataclass(frozen=True)
class InboundRecord:
    """One inbound SMS as stored."""

    message_uuid: str
    from_: str | None
    to: str | None
    text: str | None
    timestamp: str | None
    received_at: float


@dataclass(frozen=True)
class ListenerRecord:
    """A registered `smsctl listen`."""

    pid: int
    host: str | None
    local_url: str
    public_url: str | None
    started_at: float
    heartbeat_at: float


# What `smsctl db copy` moves, table by table, in a backend-neutral row shape (flags as bool, dead
# letter bodies as bytes). Each table's rows are recognised in the target by a natural key, so a
# rerun copies nothing twice: messages by (created_at, client_ref, to_number), events by
# (message_uuid, status, timestamp), statuses and inbound SMS by message_uuid, dead letters by
# (received_at, route), the opt-out ledger's events by (number, sender, at, source, state): each
# applied to the target's ledger unless its pair changed later there.
COPY_TABLES: dict[str, tuple[str, ...]] = {
    "messages": ("client_ref", "message_uuid", "to_number", "from_number", "text", "encoding", "segments",
                 "batch_id", "batch_row", "state", "error", "repeated_uuid", "created_at", "updated_at",
                 "optout_ignored", "country"),
    "events": ("message_uuid", "status", "timestamp", "received_at", "to_number", "from_number", "client_ref",
               "error_code", "error_detail", "price", "currency", "segments", "anomaly", "body",
               "source", "network", "country", "latency_ms"),
    "message_status": ("message_uuid", "status", "final", "conflict", "duplicates", "first_seen", "updated_at",
                       "via"),
    "inbound": ("message_uuid", "from_number", "to_number", "text", "timestamp", "received_at", "body"),
    "dead_letters": ("received_at", "route", "reason", "body"),
    "optout_events": ("number", "sender", "opted_out", "source", "reference", "at"),
}  # fmt: skip
BOOL_COLUMNS = frozenset({"repeated_uuid", "final", "conflict", "optout_ignored", "opted_out"})


class HistoryStore(Protocol):
    """Everything smsctl reads and writes. Writes run inside `transaction()`, through the writer."""

    path: str  # what to show the user: a file path, or a URL with its password replaced
    spool_path: Path  # where accepted sends wait when this store cannot record them (spool.py)
    migrated: list[str]  # the migrations applied when this store was opened

    def transaction(self) -> AbstractContextManager[None]: ...
    def classify(self, exc: BaseException) -> StoreUnavailable | StoreBug: ...

    # sends
    def record_attempt(self, attempt: Attempt, at: float | None = None) -> int | None: ...
    def queue_attempt(self, attempt: Attempt, at: float) -> Deferred[int | None]: ...
    def message_in_batch(self, batch_id: str, row: int) -> SentMessage | None: ...
    def rows_in_batch(
        self, batch_id: str, first: int, last: int
    ) -> dict[int, tuple[LocalState, str | None]]: ...
    def claim(
        self, local_id: int, state: LocalState, error: str | None, seen: tuple[LocalState, float]
    ) -> float | None: ...
    def mark_accepted(self, local_id: int, message_uuid: str) -> bool: ...
    def queue_accepted(self, local_id: int, message_uuid: str) -> Deferred[bool]: ...
    def mark_failed(self, local_id: int, state: LocalState, error: str) -> None: ...

    # webhooks
    def apply_status(self, event: StatusEvent, received_at: float, token: str | None = None) -> Applied: ...
    def queue_status(
        self, event: StatusEvent, received_at: float, token: str | None = None
    ) -> Deferred[Applied]: ...
    def add_inbound(self, message: InboundMessage, received_at: float, token: str | None = None) -> bool: ...
    def add_dead_letter(self, route: str, reason: str, body: bytes, received_at: float) -> None: ...

    # listeners
    def register_listener(self, local_url: str, public_url: str | None, heartbeat_every: float) -> None: ...
    def heartbeat(self) -> None: ...
    def unregister_listener(self) -> None: ...
    def fresh_listeners(self) -> list[ListenerRecord]: ...
    def forget_listener(self, pid: int, host: str | None) -> None: ...

    # reading
    def current_status(self, message_uuid: str) -> CurrentStatus | None: ...
    def statuses(self, uuids: list[str]) -> dict[str, tuple[str, bool]]: ...
    def find_message(self, ref: str) -> FoundMessage | None: ...
    def timeline(self, message_uuid: str) -> list[StoredEvent]: ...
    def recent_messages(self, limit: int, status: str | None = None, since: float | None = None,
                        batch: str | None = None) -> list[MessageSummary]: ...  # fmt: skip
    def recent_inbound(self, limit: int, since: float | None = None) -> list[InboundRecord]: ...
    def counts(self) -> dict[str, int]: ...

    # reconciliation (`smsctl reconcile`, `listen --reconcile-every`): history/reconciliation.py
    def unresolved(self, cutoff: float, limit: int) -> list[Unresolved]: ...
    def stale_count(self, cutoff: float) -> int: ...
    def apply_report(
        self, event: StatusEvent, received_at: float, details: ReportDetails
    ) -> ReportApplied: ...
    def known(self, uuids: list[str]) -> set[str]: ...
    def hold_lease(self, name: str, holder: str, now: float, ttl: float) -> bool: ...

    # the opt-out ledger (issue 23): history/optouts.py
    def change_optout(self, change: OptoutChange) -> bool: ...
    def optout_of(self, number: str, sender: str) -> OptoutState | None: ...
    def queue_optout_of(self, number: str, sender: str) -> Deferred[OptoutState | None]: ...
    def opted_out_among(self, numbers: list[str], sender: str) -> set[str]: ...
    def optouts(self, limit: int, include_opted_in: bool = False) -> list[OptoutState]: ...
    def optout_history(self, number: str) -> list[OptoutState]: ...
    def count_send(self, keys: list[tuple[str, int, int | None]]) -> str | None: ...
    def refusals_since(self, since: float) -> tuple[int, int]: ...
    def import_optout_events(self, rows: list[tuple[object, ...]]) -> int: ...

    # spend (issue 23): history/pricing.py
    def prices_seen(self, limit: int = 5_000) -> list[PriceSeen]: ...
    def countries_sent(self) -> set[str]: ...

    # insight (issue 24): history/stats.py
    def delivery_stats(self, query: StatsQuery) -> StatsFigures: ...
    def change_marker(self) -> tuple[int, int]: ...
    def release_lease(self, name: str, holder: str) -> None: ...

    # forwarding (`listen --forward-to`): an outbox, claimed with a lease so listeners never share a delivery
    def add_forward(self, forward: NewForward, now: float, retry_for: float) -> None: ...
    def claim_forwards(self, route_key: str, now: float, lease: float, limit: int) -> list[Forward]: ...
    def record_forward(self, forward_id: int, outcome: Outcome, now: float) -> None: ...
    def forwards(
        self, states: list[ForwardState], limit: int, message_uuid: str | None = None
    ) -> list[Forward]: ...
    def retry_forwards(self, ids: list[int] | None, now: float, retry_for: float) -> Retried: ...
    def next_forward_at(self, route_key: str) -> float | None: ...

    # `listen --update-app`: the application's own webhook URLs, and those smsctl listeners set
    def remember_app_urls(
        self, application_id: str, found: AppUrls, ours: AppUrls, now: float
    ) -> AppUrls | None: ...
    def app_urls(self, application_id: str) -> tuple[AppUrls | None, set[str]]: ...

    # replay and export: stored events in their original order; messages page by page
    def events_of(self, uuids: list[str]) -> list[StoredEvent]: ...
    def export_page(self, after: tuple[int, str], limit: int, status: str | None, since: float | None,
                    batch: str | None) -> tuple[list[ExportedMessage], tuple[int, str] | None]: ...  # fmt: skip

    # copying between stores (`smsctl db copy`): rows in a backend-neutral shape, keyset-paged
    def export_rows(self, table: str, after: int, limit: int) -> list[tuple[int, tuple[object, ...]]]: ...
    def import_rows(self, table: str, rows: list[tuple[object, ...]]) -> int: ...

    def close(self) -> None: ...
