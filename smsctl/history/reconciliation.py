"""Reconciliation's store side, for both backends: the messages still without a final status, a
Reports API record stored through the same status rules as a webhook, and a lease so one listener at a
time reconciles a shared store.

Mixed into `Store` (history/sqlite.py) and `PgStore` (history/postgres.py); the SQL is the same in both
but for the parameter mark and how an event is keyed, which each backend names.
"""

from __future__ import annotations

from typing import Any

from smsctl.history.dialect import DialectSql
from smsctl.history.events import StatusEvent
from smsctl.history.interface import Applied, ReportApplied, ReportDetails, Source, Unresolved

# Sends the API accepted that have no status at all yet, and messages whose status is not final: the
# second half is a range scan of the partial index `message_status_open` (schema.RECONCILE).
_OPEN_SENDS = """
    FROM messages m WHERE m.message_uuid IS NOT NULL AND m.state = 'accepted' AND m.created_at < {m}
    AND NOT EXISTS (SELECT 1 FROM message_status s WHERE s.message_uuid = m.message_uuid)"""
_OPEN_STATUSES = """
    FROM message_status s WHERE s.final = {false} AND s.first_seen < {m}"""


class Reconciliation(DialectSql):
    """The mixin. A backend sets its dialect (history/dialect.py) and `_event_key` (SQL naming one event
    by message uuid, status and timestamp, in that order)."""

    _event_key: str

    def apply_status(self, event: StatusEvent, received_at: float, token: str | None = None) -> Applied:
        raise NotImplementedError  # the backend's

    def unresolved(self, cutoff: float, limit: int) -> list[Unresolved]:
        """Messages sent or first heard of before `cutoff` that have no final status, oldest first."""
        rows = self._run(
            f"SELECT m.message_uuid, MIN(m.created_at) {_OPEN_SENDS} GROUP BY m.message_uuid"
            f" UNION ALL SELECT s.message_uuid, s.first_seen {_OPEN_STATUSES} ORDER BY 2, 1 LIMIT {{m}}",
            (cutoff, cutoff, limit),
        ).fetchall()
        return [Unresolved(str(r[0]), float(r[1])) for r in rows]

    def stale_count(self, cutoff: float) -> int:
        """How many messages `unresolved(cutoff, …)` would list: the `stale` ones."""
        row = self._run(
            f"SELECT (SELECT COUNT(*) {_OPEN_SENDS}) + (SELECT COUNT(*) {_OPEN_STATUSES})", (cutoff, cutoff)
        ).fetchone()
        return int(row[0])

    def apply_report(self, event: StatusEvent, received_at: float, details: ReportDetails) -> ReportApplied:
        """Store a Reports API record as a status event of source `reports`, by the webhook rules (a
        duplicate is counted, a different final is a conflict and the first one stands)."""
        uuid = event.message_uuid
        current = self._run(
            "SELECT status, final FROM message_status WHERE message_uuid = {m}", (uuid,)
        ).fetchone()
        if current is not None and current[1] and current[0] == event.status:  # nothing new: keep it once
            return ReportApplied(Applied(True, current[0], True, None, False), discovered=False)
        known = current or self._run("SELECT 1 FROM messages WHERE message_uuid = {m}", (uuid,)).fetchone()
        applied = self.apply_status(event, received_at)
        if not applied.duplicate:
            self._run(
                f"UPDATE events SET source = 'reports', network = {{m}}, country = {{m}}, latency_ms = {{m}}"
                f" WHERE {self._event_key}",
                (details.network, details.country, details.latency_ms, uuid, event.status, event.timestamp),
            )
        if known is None:
            self._run("UPDATE message_status SET via = {m} WHERE message_uuid = {m}", (Source.REPORTS, uuid))
        return ReportApplied(applied, discovered=known is None)

    def known(self, uuids: list[str]) -> set[str]:
        """Which of these messages the store has heard of (sent, or seen through any event)."""
        found: set[str] = set()
        for start in range(0, len(uuids), 400):  # under SQLite's variable limit, twice over
            chunk = uuids[start : start + 400]
            marks = ",".join(["{m}"] * len(chunk))
            rows = self._run(
                f"SELECT message_uuid FROM message_status WHERE message_uuid IN ({marks})"
                f" UNION SELECT message_uuid FROM messages WHERE message_uuid IN ({marks})",
                [*chunk, *chunk],
            ).fetchall()
            found.update(str(r[0]) for r in rows)
        return found

    def hold_lease(self, name: str, holder: str, now: float, ttl: float) -> bool:
        """Take or renew the lease `name` for `holder` until `now + ttl`; False while another holds it."""
        self._run(
            "INSERT INTO leases (name, holder, until) VALUES ({m}, {m}, {m}) ON CONFLICT (name) DO UPDATE"
            " SET holder = excluded.holder, until = excluded.until"
            " WHERE leases.holder = excluded.holder OR leases.until < {m}",
            (name, holder, now + ttl, now),
        )
        row = self._run("SELECT holder FROM leases WHERE name = {m}", (name,)).fetchone()
        return row is not None and row[0] == holder

    def release_lease(self, name: str, holder: str) -> None:
        self._run("DELETE FROM leases WHERE name = {m} AND holder = {m}", (name, holder))


class AdvisoryLease:
    """PostgreSQL's lease (mixed into PgStore before Reconciliation): a session-level advisory lock."""

    _conn: Any
    conn: Any
    _locks: dict[str, Any]

    def hold_lease(self, name: str, holder: str, now: float, ttl: float) -> bool:
        """A session-level advisory lock on this connection instead of a lease row: PostgreSQL frees it
        the moment the holder's connection ends (a crash included), so no lease has to run out first.
        Taken once per connection: a reopened connection (the server restarted) takes it again."""
        if self._locks.get(name) is self._conn and self._conn is not None and not self._conn.closed:
            return True
        row = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (_lock_key(name),)).fetchone()
        if row is not None and row[0]:
            self._locks[name] = self._conn
            return True
        return False

    def release_lease(self, name: str, holder: str) -> None:
        if self._locks.pop(name, None) is self._conn and self._conn is not None and not self._conn.closed:
            self.conn.execute("SELECT pg_advisory_unlock(%s)", (_lock_key(name),))


def _lock_key(name: str) -> int:
    """An advisory lock's 64-bit key for a lease name: "smsctl" in the high bits, so other programs'
    keys on a shared database are unlikely to collide."""
    import zlib

    return (0x736D7363 << 32) | zlib.crc32(name.encode())
