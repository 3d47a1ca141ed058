"""Reading the history: one message's timeline, and recent messages."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from smsctl.codec import count, e164, iso_utc
from smsctl.errors import NotFound, UsageError
from smsctl.history import spool
from smsctl.history.events import error_meaning, error_title
from smsctl.history.interface import (
    HistoryStore,
    InboundRecord,
    LocalState,
    MessageSummary,
    Source,
    StoredEvent,
)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


STALE = "stale"  # a display state, never one of Vonage's statuses
STALE_HINT = "run `smsctl reconcile` to ask the Reports API (its status webhooks were probably missed)"
_NEVER_STALE = frozenset({LocalState.REFUSED, LocalState.UNSENT, LocalState.PENDING, LocalState.UNKNOWN})


def stale_test(now: float, window: float) -> Callable[[MessageSummary], bool]:
    """Whether a message is `stale`: the API accepted it (it has a UUID), more than `window` seconds ago
    (SMSCTL_STALE_AFTER), and it still has no final status. A message seen only through webhooks counts
    from its last activity."""
    cutoff = now - window

    def stale(m: MessageSummary) -> bool:
        if m.final or m.message_uuid is None or m.status in _NEVER_STALE:
            return False
        return (m.sent_at if m.sent_at is not None else m.last_activity) < cutoff

    return stale


def parse_duration(text: str, option: str = "--since") -> float:
    """`90s`, `15m`, `2h`, `7d` → seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise UsageError(f"{option} {text!r} is not a duration", hint="use e.g. 30s, 15m, 2h or 7d")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class TimelineEvent:
    """One status event as `status`, `send --wait` and the demo show it."""

    status: str
    timestamp: str
    received_at: float
    error_code: str | None
    error_meaning: str | None
    price: str | None
    currency: str | None
    segments: str | None
    anomaly: str | None
    source: str = "webhook"  # or `reports` (`smsctl reconcile`)

    def to_json(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies, and `export` calls this for millions of events.
        return {"status": self.status, "timestamp": self.timestamp, "received_at": iso_utc(self.received_at),
                "error_code": self.error_code, "error_meaning": self.error_meaning, "price": self.price,
                "currency": self.currency, "segments": count(self.segments), "anomaly": self.anomaly,
                "source": self.source}  # fmt: skip


def timeline_event(event: StoredEvent) -> TimelineEvent:
    return TimelineEvent(event.status, event.timestamp, event.received_at, event.error_code,
                         error_meaning(event.error_code) or event.error_detail, event.price, event.currency,
                         event.segments, event.anomaly, event.source)  # fmt: skip


@dataclass(frozen=True)
class MessageReport:
    """One message with its whole timeline (`smsctl status`)."""

    message_uuid: str
    status: str
    final: bool
    conflict: bool
    duplicates: int
    sends: int  # more than 1: the API gave several sends this uuid (a mock, a replay)
    to: str | None
    from_: str | None
    client_ref: str | None
    segments: int | str | None
    encoding: str | None
    sent_at: float | None
    source: Source
    local_state: LocalState | None
    events: list[TimelineEvent]
    stale: bool = False  # accepted long ago (SMSCTL_STALE_AFTER), still no final status

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["from"] = e164(data.pop("from_"))
        data.update(to=e164(self.to), segments=count(self.segments), sent_at=iso_utc(self.sent_at),
                    events=[e.to_json() for e in self.events])  # fmt: skip
        return data


def message_status(store: HistoryStore, ref: str, *, now: float | None = None,
                   stale_after: float = 900.0) -> MessageReport:  # fmt: skip
    """A message (by UUID or unique prefix) with its whole timeline; NotFound otherwise."""
    found = store.find_message(ref)
    if found is None and (spooled := spool.lookup(store.spool_path, ref)) is not None:
        raise NotFound(
            f"message {spooled} was sent but not recorded yet: the store could not write when it was accepted",
            hint=f"it is kept in {store.spool_path}; the next `smsctl send`, `bulk` or `listen` "
            "records it. Do not send it again",
        )
    if found is None:
        raise NotFound(
            f"no message {ref!r} in the local history",
            hint="give the full message UUID (or 8+ characters of it); `smsctl log` lists recent ones",
        )
    timeline = store.timeline(found.message_uuid)
    sent = found.sent

    def heard(field: str) -> Any:
        """What its status webhooks said, for a message smsctl did not send."""
        return next((getattr(e, field) for e in timeline if getattr(e, field) is not None), None)

    activity = max((e.received_at for e in timeline), default=sent.created_at if sent else 0.0)
    stale = stale_test(time.time() if now is None else now, stale_after)(MessageSummary(
        found.message_uuid, Source.SMSCTL, None, None, None, found.status, found.final, None,
        sent.created_at if sent else None, activity, None, None, None, None))  # fmt: skip
    return MessageReport(
        found.message_uuid, found.status, found.final, found.conflict, found.duplicates, found.sends,
        to=sent.to if sent else heard("to"),
        from_=sent.from_ if sent else heard("from_"),
        client_ref=sent.client_ref if sent else heard("client_ref"),
        segments=sent.segments if sent else heard("segments"),
        encoding=sent.encoding if sent else None,
        sent_at=sent.created_at if sent else None,
        source=Source.SMSCTL if sent else found.via,
        local_state=sent.state if sent else None,
        events=[timeline_event(e) for e in timeline],
        stale=stale,
    )  # fmt: skip


def recent(
    store: HistoryStore,
    *,
    limit: int,
    status: str | None,
    since: str | None,
    batch: str | None,
    now: float | None = None,
    stale_after: float = 900.0,
) -> list[MessageSummary]:
    """Every message the store knows (sent by smsctl or seen through webhooks), newest activity first,
    each marked stale or not."""
    now = time.time() if now is None else now
    after = now - parse_duration(since) if since else None
    stale = stale_test(now, stale_after)
    return [replace(m, stale=True) if stale(m) else m
            for m in store.recent_messages(limit, status=status, since=after, batch=batch)]  # fmt: skip


def summary_json(m: MessageSummary, stale: bool | None = None) -> dict[str, Any]:
    """One `log` row as JSON (`stale`: as `m` says, unless given)."""
    return {
        "message_uuid": m.message_uuid, "to": e164(m.to), "from": e164(m.from_), "client_ref": m.client_ref,
        "status": m.status, "final": m.final, "stale": m.stale if stale is None else stale,
        "segments": count(m.segments),
        "source": m.source,  # smsctl: sent by smsctl; webhook: seen only through its statuses
        "sent_at": iso_utc(m.sent_at), "last_activity": iso_utc(m.last_activity), "error": m.error,
        "error_code": m.error_code,
        "batch_id": m.batch_id, "batch_row": m.batch_row,
    }  # fmt: skip


def recent_inbound(store: HistoryStore, *, limit: int, since: str | None) -> list[InboundRecord]:
    """Inbound SMS, newest first."""
    after = time.time() - parse_duration(since) if since else None
    return store.recent_inbound(limit, since=after)


def inbound_json(r: InboundRecord) -> dict[str, Any]:
    """One `log --inbound` row as JSON."""
    return {"message_uuid": r.message_uuid, "from": e164(r.from_), "to": e164(r.to), "text": r.text,
            "timestamp": r.timestamp, "received_at": iso_utc(r.received_at)}  # fmt: skip


FAILED_OR_UNSURE = ("rejected", "undeliverable", "refused", "unsent", "unknown", "pending")


@dataclass(frozen=True)
class BatchFailure:
    row: int | None
    to: str | None
    message_uuid: str | None
    status: str
    error_code: str | None
    error: str | None


@dataclass(frozen=True)
class BatchSummary:
    """A bulk batch (`smsctl batch`): messages per current status, and every failure."""

    batch_id: str
    messages: int
    counts: dict[str, int]
    failures: list[BatchFailure]
    stale: int = 0  # accepted long ago, still without a final status: `smsctl reconcile`

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def batch_summary(store: HistoryStore, batch_id: str, *, now: float | None = None,
                  stale_after: float = 900.0) -> BatchSummary:  # fmt: skip
    """Counts per current status and every failure with its error code, for one batch; stale messages
    are listed among the failures with status `stale`."""
    messages = recent(store, limit=1_000_000, status=None, since=None, batch=batch_id, now=now,
                      stale_after=stale_after)  # fmt: skip
    if not messages:
        raise NotFound(
            f"no batch {batch_id!r} in the local history",
            hint="`smsctl log --json` shows each message's batch_id; `smsctl bulk` prints it",
        )
    failures = [
        BatchFailure(m.batch_row, m.to, m.message_uuid, STALE if m.stale else m.status, m.error_code,
                     error_title(m.error_code) if m.error_code else m.error)
        for m in sorted(messages, key=lambda m: m.batch_row or 0)
        if m.status in FAILED_OR_UNSURE or m.stale
    ]  # fmt: skip
    counts = dict(Counter(m.status for m in messages))
    return BatchSummary(batch_id, len(messages), counts, failures, stale=sum(m.stale for m in messages))
