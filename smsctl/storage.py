"""The storage interface: what commands and the listener need from the history, and nothing else.

The core talks to `HistoryStore` and gets frozen dataclasses back; no driver rows and no SQL leave a
backend, and each backend sorts its own failures into "unavailable" (the machine's: busy, full,
read-only) and bugs. `open_store` picks the backend from SMSCTL_DB, so a second one (PostgreSQL) is
one new module and its migrations. Writes run inside a backend's transaction, through its writer
(`open_writer`), which commits concurrent work together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from smsctl.config import Settings
    from smsctl.events import InboundMessage, StatusEvent
    from smsctl.writer import StoreWriter


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


class HistoryStore(Protocol):
    """Everything smsctl reads and writes. Writes run inside a transaction of the backend's writer."""

    path: str

    # sends
    def record_attempt(self, attempt: Attempt) -> int: ...
    def message_in_batch(self, batch_id: str, row: int) -> SentMessage | None: ...
    def mark_pending(self, local_id: int) -> None: ...
    def mark_accepted(self, local_id: int, message_uuid: str) -> bool: ...
    def mark_failed(self, local_id: int, state: LocalState, error: str) -> None: ...

    # webhooks
    def apply_status(self, event: StatusEvent, received_at: float) -> Applied: ...
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

    def close(self) -> None: ...


def open_reader(path: Path) -> HistoryStore | None:
    """The store opened read-only; None when there is none yet. Never creates or migrates one."""
    from smsctl.store import Store

    return Store.reader(path)


def open_store(path: Path, *, busy_timeout: float = 5.0) -> HistoryStore:
    """The store opened for writing (created and migrated as needed)."""
    from smsctl.store import Store

    return Store(path, busy_timeout=busy_timeout)


async def watch_changes(path: Path, timeout: float, read: Callable[[HistoryStore], bool]) -> None:
    """Call `read(store)` each time the store may have changed (another process committed), until it
    returns True or `timeout` passes: how waiters notice statuses stored by a listener."""
    from smsctl import store

    await store.watch_changes(path, timeout, read)


def environment_notes() -> list[str]:
    """What the backend wants the user to know about this machine (`smsctl config` shows it)."""
    from smsctl import store

    return store.environment_notes()


def open_writer(settings: Settings) -> StoreWriter:
    """The writer for the configured store: group-committed writes off the event loop."""
    from smsctl.writer import StoreWriter

    return StoreWriter.for_settings(settings)
