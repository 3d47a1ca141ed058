"""The opt-out ledger's store side, for both backends: who opted out of which sender, and every change.

A recipient opts out of one of our numbers or sender IDs (`sender`), or of all of them (`*`). The
current state of each pair is one row; each change appends an event with its source, so nothing is
ever silently overwritten (`optout_history`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from smsctl.history.deferred import Deferred
from smsctl.history.dialect import DialectSql

if TYPE_CHECKING:
    from smsctl.history.events import InboundMessage

ALL_SENDERS = "*"


class OptoutSource(StrEnum):
    INBOUND = "inbound"  # an inbound SMS with an opt-out (or opt-in) keyword
    MANUAL = "manual"  # `smsctl optout add` / `remove`
    IMPORT = "import"  # `smsctl optout import FILE`
    CARRIER = "carrier"  # a send rejected with 1240 (Illegal Number: the network's own list)


@dataclass(frozen=True)
class OptoutChange:
    number: str  # digits, no +
    sender: str  # digits or a sender ID; ALL_SENDERS for all
    opted_out: bool
    source: OptoutSource
    reference: str | None
    at: float


@dataclass(frozen=True)
class OptoutState:
    """A pair's current state (and what last changed it)."""

    number: str
    sender: str
    opted_out: bool
    source: str
    reference: str | None
    changed_at: float


class Optouts(DialectSql):
    """The mixin (history/sqlite.py `Store`, history/postgres.py `PgStore`)."""

    def change_optout(self, change: OptoutChange) -> bool:
        """Record a change (always, as an event); True when it changed the pair's state."""
        self._run(
            "INSERT INTO optout_events (number, sender, opted_out, source, reference, at)"
            " VALUES ({m}, {m}, {m}, {m}, {m}, {m})",
            (change.number, change.sender, change.opted_out, change.source, change.reference, change.at),
        )
        before = self._run(
            "SELECT opted_out FROM optouts WHERE number = {m} AND sender = {m}",
            (change.number, change.sender),
        ).fetchone()
        self._run(
            "INSERT INTO optouts (number, sender, opted_out, source, reference, changed_at)"
            " VALUES ({m}, {m}, {m}, {m}, {m}, {m}) ON CONFLICT (number, sender) DO UPDATE SET"
            " opted_out = excluded.opted_out, source = excluded.source, reference = excluded.reference,"
            " changed_at = excluded.changed_at",
            (change.number, change.sender, change.opted_out, change.source, change.reference, change.at),
        )
        return (
            before is None and change.opted_out or before is not None and bool(before[0]) != change.opted_out
        )

    def import_optout_events(self, rows: list[tuple[object, ...]]) -> int:
        """`db copy`: the events this ledger lacks (same pair, time, source and state), each applied to
        its pair unless the pair changed later here; how many were new."""
        new = 0
        for number, sender, opted_out, source, reference, at in rows:
            if self._run(
                "SELECT 1 FROM optout_events WHERE number = {m} AND sender = {m} AND at = {m} AND source = {m}"
                " AND opted_out = {m}", (number, sender, at, source, bool(opted_out))
            ).fetchone():  # fmt: skip
                continue
            new += 1
            self._run(
                "INSERT INTO optout_events (number, sender, opted_out, source, reference, at)"
                " VALUES ({m}, {m}, {m}, {m}, {m}, {m})", (number, sender, bool(opted_out), source, reference, at)
            )  # fmt: skip
            self._run(
                "INSERT INTO optouts (number, sender, opted_out, source, reference, changed_at)"
                " VALUES ({m}, {m}, {m}, {m}, {m}, {m}) ON CONFLICT (number, sender) DO UPDATE SET"
                " opted_out = excluded.opted_out, source = excluded.source, reference = excluded.reference,"
                " changed_at = excluded.changed_at WHERE optouts.changed_at <= excluded.changed_at",
                (number, sender, bool(opted_out), source, reference, at),
            )
        return new

    def optout_of(self, number: str, sender: str) -> OptoutState | None:
        """The opt-out that stops a send from `sender` to `number`, if any (of that sender, or of all)."""
        return self.queue_optout_of(number, sender).resolve()

    def queue_optout_of(self, number: str, sender: str) -> Deferred[OptoutState | None]:
        """`optout_of`, read when resolved: on PostgreSQL the send's record travels in the same round trip."""
        cursor = self._run(
            "SELECT number, sender, opted_out, source, reference, changed_at FROM optouts"
            " WHERE number = {m} AND sender IN ({m}, {m}) AND opted_out = {true} ORDER BY changed_at DESC LIMIT 1",
            (number, sender, ALL_SENDERS),
        )

        def fetch() -> OptoutState | None:
            row = cursor.fetchone()
            return _state(row) if row else None

        return Deferred(fetch)

    def opted_out_among(self, numbers: list[str], sender: str) -> set[str]:
        """Which of these numbers may not be sent to from `sender` (`bulk` validation: one query a chunk)."""
        found: set[str] = set()
        for start in range(0, len(numbers), 400):  # under SQLite's variable limit
            chunk = numbers[start : start + 400]
            marks = ",".join(["{m}"] * len(chunk))
            rows = self._run(
                f"SELECT number FROM optouts WHERE opted_out = {{true}} AND sender IN ({{m}}, {{m}})"
                f" AND number IN ({marks})", [sender, ALL_SENDERS, *chunk]
            ).fetchall()  # fmt: skip
            found.update(str(r[0]) for r in rows)
        return found

    def optouts(self, limit: int, include_opted_in: bool = False) -> list[OptoutState]:
        """The ledger's pairs, most recently changed first."""
        where = "" if include_opted_in else " WHERE opted_out = {true}"
        rows = self._run(
            "SELECT number, sender, opted_out, source, reference, changed_at FROM optouts"
            + where + " ORDER BY changed_at DESC, number LIMIT {m}", (limit,)
        ).fetchall()  # fmt: skip
        return [_state(r) for r in rows]

    def count_send(self, keys: list[tuple[str, int, int | None]]) -> str | None:
        """Add a send's amount under each key (`day:…`, `batch:…`: 1 message; `spend-day:…`, `spend-batch:…`:
        its estimated cost in millionths) unless that would pass the key's cap; the first such key, or None.

        One upsert per key, in the send's own transaction: it locks the counter row (SQLite: the write
        lock; PostgreSQL: the row, re-checking the cap against the latest committed count after any wait),
        always in the same key order, so no two senders deadlock and a cap holds exactly across every
        sender of the store. A key that refuses undoes the keys counted before it."""
        counted: list[tuple[str, int]] = []
        for key, amount, cap in keys:
            if cap is None:
                self._run(
                    "INSERT INTO send_counts (key, messages) VALUES ({m}, {m}) ON CONFLICT (key) DO UPDATE"
                    " SET messages = send_counts.messages + excluded.messages", (key, amount)
                )  # fmt: skip
            elif self._run(
                "INSERT INTO send_counts (key, messages) SELECT {m}, {m} WHERE {m} <= {m} ON CONFLICT (key) DO UPDATE"
                " SET messages = send_counts.messages + excluded.messages"
                " WHERE send_counts.messages + excluded.messages <= {m} RETURNING messages", (key, amount, amount, cap, cap)
            ).fetchone() is None:  # fmt: skip
                for done, added in counted:
                    self._run(
                        "UPDATE send_counts SET messages = messages - {m} WHERE key = {m}", (added, done)
                    )
                return key
            counted.append((key, amount))
        return None

    def refusals_since(self, since: float) -> tuple[int, int]:
        """(sends suppressed by the ledger, sends a guard cap stopped) among those recorded since `since`:
        a range of the `messages_created` index, so the listener can count them every 30 s."""
        row = self._run(
            "SELECT COALESCE(SUM(CASE WHEN state = 'suppressed' THEN 1 ELSE 0 END), 0),"
            " COALESCE(SUM(CASE WHEN state = 'unsent' AND (substr(error, 1, 16) IN ('SMSCTL_DAILY_CAP',"
            " 'SMSCTL_BATCH_CAP') OR substr(error, 1, 18) IN ('SMSCTL_DAILY_SPEND', 'SMSCTL_BATCH_SPEND'))"
            " THEN 1 ELSE 0 END), 0) FROM messages WHERE created_at >= {m}", (since,)
        ).fetchone()  # fmt: skip
        return int(row[0]), int(row[1])

    def optout_history(self, number: str) -> list[OptoutState]:
        """Every change for a number, oldest first."""
        rows = self._run(
            "SELECT number, sender, opted_out, source, reference, at FROM optout_events WHERE number = {m}"
            " ORDER BY id", (number,)
        ).fetchall()  # fmt: skip
        return [_state(r) for r in rows]


def _state(row: Any) -> OptoutState:
    return OptoutState(str(row[0]), str(row[1]), bool(row[2]), str(row[3]), row[4], float(row[5]))


def from_inbound(message: InboundMessage, at: float) -> OptoutChange | None:
    """The ledger change an inbound SMS asks for: STOP (of the number it was sent to), STOPALL, START."""
    from smsctl.history.events import OptKeyword

    if message.keyword is None or not message.from_:
        return None
    sender = ALL_SENDERS if message.keyword is OptKeyword.STOP_ALL or not message.to else message.to
    if message.keyword is OptKeyword.START:  # opting in again undoes what they opted out of
        sender = message.to or ALL_SENDERS
    return OptoutChange(message.from_, sender, message.keyword is not OptKeyword.START, OptoutSource.INBOUND,
                        message.message_uuid, at)  # fmt: skip
