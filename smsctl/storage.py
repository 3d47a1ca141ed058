"""The storage interface: what commands and the listener need from the history, and nothing else.

The core talks to `HistoryStore` and gets frozen dataclasses back; no driver rows and no SQL leave a
backend, and each backend sorts its own failures into "unavailable" (the machine's: busy, full,
read-only) and bugs. `open_store` picks the backend from SMSCTL_DB: a file path is SQLite (store.py), a
postgresql:// URL is PostgreSQL (pgstore.py), each with its own migrations. Writes run inside a backend's transaction, through its writer
(`open_writer`), which commits concurrent work together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, Union

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from smsctl.config import Settings, StoreLocation
    from smsctl.errors import StoreBug, StoreUnavailable
    from smsctl.events import InboundMessage, StatusEvent
    from smsctl.writer import StoreWriter


T = TypeVar("T")


class LocalState(StrEnum):
    """What smsctl knows of a send before Vonage says anything; never one of Vonage's statuses."""

    PENDING = "pending"  # its request may have reached the API
    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNSENT = "unsent"  # provably never reached the API
    UNKNOWN = "unknown"  # went out, no usable answer: it may exist


class Source(StrEnum):
    """Where the history learned of a message."""

    SMSCTL = "smsctl"  # smsctl sent it
    WEBHOOK = "webhook"  # seen only through its status webhooks (another program sent it)


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


@dataclass(frozen=True)
class Applied:
    """What storing one status event did."""

    duplicate: bool
    status: str  # the message's current status after this event
    final: bool
    anomaly: str | None
    changed: bool


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


def found(uuid: str, sends: int, latest: SentMessage | None, current: CurrentStatus | None) -> FoundMessage:
    """A FoundMessage from what a backend read: its sends (count and latest) and its current status."""
    if current is None:
        assert latest is not None, "a uuid known from neither a send nor a status"
        return FoundMessage(uuid, latest.state, False, False, 0, sends, latest)
    return FoundMessage(
        uuid, current.status, current.final, current.conflict, current.duplicates, sends, latest
    )


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
# (received_at, route).
COPY_TABLES: dict[str, tuple[str, ...]] = {
    "messages": ("client_ref", "message_uuid", "to_number", "from_number", "text", "encoding", "segments",
                 "batch_id", "batch_row", "state", "error", "repeated_uuid", "created_at", "updated_at"),
    "events": ("message_uuid", "status", "timestamp", "received_at", "to_number", "from_number", "client_ref",
               "error_code", "error_detail", "price", "currency", "segments", "anomaly", "body"),
    "message_status": ("message_uuid", "status", "final", "conflict", "duplicates", "first_seen", "updated_at"),
    "inbound": ("message_uuid", "from_number", "to_number", "text", "timestamp", "received_at", "body"),
    "dead_letters": ("received_at", "route", "reason", "body"),
}  # fmt: skip
BOOL_COLUMNS = frozenset({"repeated_uuid", "final", "conflict"})


class Deferred(Generic[T]):
    """A write's result that the backend fetches later in the same transaction.

    PostgreSQL sends a whole group commit's status events in one pipeline (one round trip instead
    of one per event); the writer resolves every Deferred before the commit. SQLite's are ready at once.
    """

    __slots__ = ("_fetch",)

    def __init__(self, fetch: Callable[[], T]) -> None:
        self._fetch = fetch

    @classmethod
    def ready(cls, value: T) -> Deferred[T]:
        return cls(lambda: value)

    def resolve(self) -> T:
        return self._fetch()


class HistoryStore(Protocol):
    """Everything smsctl reads and writes. Writes run inside `transaction()`, through the writer."""

    path: str  # what to show the user: a file path, or a URL with its password replaced
    spool_path: Path  # where accepted sends wait when this store cannot record them (spool.py)
    migrated: list[str]  # the migrations applied when this store was opened

    def transaction(self) -> AbstractContextManager[None]: ...
    def classify(self, exc: BaseException) -> StoreUnavailable | StoreBug: ...

    # sends
    def record_attempt(self, attempt: Attempt) -> int: ...
    def message_in_batch(self, batch_id: str, row: int) -> SentMessage | None: ...
    def mark_pending(self, local_id: int) -> None: ...
    def mark_accepted(self, local_id: int, message_uuid: str) -> bool: ...
    def mark_failed(self, local_id: int, state: LocalState, error: str) -> None: ...

    # webhooks
    def apply_status(self, event: StatusEvent, received_at: float) -> Applied: ...
    def queue_status(self, event: StatusEvent, received_at: float) -> Deferred[Applied]: ...
    def add_inbound(self, message: InboundMessage, received_at: float) -> bool: ...
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

    # copying between stores (`smsctl db copy`): rows in a backend-neutral shape, keyset-paged
    def export_rows(self, table: str, after: int, limit: int) -> list[tuple[int, tuple[object, ...]]]: ...
    def import_rows(self, table: str, rows: list[tuple[object, ...]]) -> int: ...

    def close(self) -> None: ...


Location = Union["StoreLocation", Path, str]


def _location(where: Location) -> StoreLocation:
    from smsctl.config import StoreKind, StoreLocation, store_location

    if isinstance(where, StoreLocation):
        return where
    if isinstance(where, Path) or "://" not in str(where):
        return StoreLocation(StoreKind.SQLITE, path=Path(where))
    return store_location(str(where))


def _pgstore() -> ModuleType:
    """The PostgreSQL backend, or a ConfigError that says how to install its driver."""
    try:
        from smsctl import pgstore
    except ImportError as exc:
        from smsctl.errors import ConfigError

        raise ConfigError(
            f"SMSCTL_DB is a PostgreSQL URL, but its driver cannot be loaded ({exc})",
            hint="pip install 'smsctl[postgresql]' (psycopg 3), or set SMSCTL_DB to a file path",
        ) from None
    return pgstore


def open_reader(where: Location) -> HistoryStore | None:
    """The store opened read-only; None when there is none yet. Never creates or migrates one."""
    location = _location(where)
    if location.url is not None:
        reader: HistoryStore | None = _pgstore().PgStore.reader(location)
        return reader
    from smsctl.store import Store

    return Store.reader(location.path or Path())


def open_store(where: Location, *, busy_timeout: float = 5.0) -> HistoryStore:
    """The store opened for writing (created and migrated as needed)."""
    location = _location(where)
    if location.url is not None:
        store: HistoryStore = _pgstore().PgStore(location, busy_timeout=busy_timeout)
        return store
    from smsctl.store import Store

    return Store(location.path or Path(), busy_timeout=busy_timeout)


async def watch_changes(where: Location, timeout: float, read: Callable[[HistoryStore], bool]) -> None:
    """Call `read(store)` each time the store may have changed (another process committed), until it
    returns True or `timeout` passes: how waiters notice statuses stored by a listener."""
    location = _location(where)
    if location.url is not None:
        await _pgstore().watch_changes(location, timeout, read)
        return
    from smsctl import store

    await store.watch_changes(location.path or Path(), timeout, read)


def environment_notes(where: Location) -> list[str]:
    """What the backend wants the user to know about this machine (`smsctl config` shows it)."""
    if _location(where).url is not None:
        return []
    from smsctl import store

    return store.environment_notes()


def open_writer(settings: Settings) -> StoreWriter:
    """The writer for the configured store: group-committed writes off the event loop."""
    from smsctl.writer import StoreWriter

    return StoreWriter.for_settings(settings)
