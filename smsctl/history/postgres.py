"""The PostgreSQL backend of the storage interface (interface.py): one history shared by a team.

Same contract as the SQLite backend (sqlite.py), proven by the same tests. What differs:
- Several listeners write at once, so a message's current status is read `FOR UPDATE` before an
  event is applied: two conflicting events for one message, committed by two listeners at the same
  moment, are applied one after the other and the status never regresses.
- Each transaction that changes a status sends `NOTIFY smsctl_status`, delivered at its commit, so a
  `send --wait` on any machine wakes within milliseconds (`watch_changes`).
- Listener heartbeats use the database's clock, not each machine's.
- A dropped connection (the server restarted) is reopened on next use: the listener answers 503 while
  the database is away and recovers without a restart.

The driver is psycopg 3, used synchronously on the writer's thread (like sqlite3), and
asynchronously for LISTEN in `watch_changes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from smsctl.errors import StoreBug, StoreError, StoreUnavailable
from smsctl.history.batch_rows import BatchRowsSql
from smsctl.history.deferred import Deferred
from smsctl.history.events import InboundMessage, StatusEvent, status_rank
from smsctl.history.interface import (
    COPY_TABLES,
    Applied,
    Attempt,
    CurrentStatus,
    ExportedMessage,
    FoundMessage,
    InboundRecord,
    ListenerRecord,
    LocalState,
    LogFilters,
    MessageSummary,
    SentMessage,
    Source,
    StoredEvent,
    event_from,
    found,
    hook_page,
    sent_page,
)
from smsctl.history.optouts import Optouts
from smsctl.history.postgres_errors import classify, first_line, hint_for
from smsctl.history.postgres_migrations import KNOWN, NotOurs, applied, migrate
from smsctl.history.postgres_outbox import PostgresOutbox
from smsctl.history.pricing import Pricing
from smsctl.history.reconciliation import AdvisoryLease, Reconciliation
from smsctl.history.stats import PostgresStats

if TYPE_CHECKING:
    from smsctl.config import StoreLocation

_IN_TRANSACTION, _IN_ERROR = TransactionStatus.INTRANS, TransactionStatus.INERROR
CHANNEL = "smsctl_status"
CONNECT_TIMEOUT = 5  # seconds: a database that does not answer is unavailable, not a hang
REREAD_EVERY = 1.0  # waiters read anyway this often: the safety net under LISTEN/NOTIFY
RECONNECT_PAUSE = 0.25
MISSED_HEARTBEATS = 5
_UUID_CHARS = re.compile(r"[0-9A-Fa-f-]{8,36}")
Row = tuple[Any, ...]


def _connect(url: str, *, readonly: bool, busy_timeout: float) -> psycopg.Connection[Row]:
    conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT, application_name="smsctl")
    # Durability before the 2xx whatever the server's default; a lock held by a stuck process fails
    # like SQLite's busy timeout instead of hanging the listener.
    conn.execute("SET synchronous_commit = on")
    conn.execute(f"SET lock_timeout = {int(busy_timeout * 1000)}")
    if readonly:
        conn.execute("SET default_transaction_read_only = on")
    return conn


class PgStore(PostgresOutbox, AdvisoryLease, Reconciliation, Optouts, Pricing, BatchRowsSql, PostgresStats):
    """A connection to a PostgreSQL store. Not thread-safe: one per thread.

    `PgStore(location)` opens it for writing: it refuses a database holding someone else's tables or
    a newer smsctl's (changing nothing) and applies pending migrations under an advisory lock.
    `PgStore.reader(location)` never creates or migrates anything.
    """

    _mark, _false, _true = "%s", "false", "true"  # the dialect of the shared SQL (history/dialect.py)
    _lock_row = " FOR UPDATE"
    _event_key = "message_uuid = %s AND status = %s AND timestamp = %s"

    def __init__(self, location: StoreLocation, *, busy_timeout: float = 5.0, readonly: bool = False) -> None:
        assert location.url is not None
        self.url = location.url
        self.path = location.display
        self.spool_path = location.spool_path
        self._busy_timeout, self._readonly = busy_timeout, readonly
        self._notify = False  # a status changed in the current transaction
        self.migrated: list[str] = []  # migrations this connection applied when it opened
        self._conn: psycopg.Connection[Row] | None = None
        self._locks: dict[str, psycopg.Connection[Row] | None] = {}  # advisory locks held, by name
        try:
            self._conn = self._open()
            self._prepare()
        except NotOurs as exc:
            self.close()
            raise StoreError(
                f"SMSCTL_DB={self.path} is not usable as an smsctl store: {exc}",
                hint="point SMSCTL_DB at another database; this one was left untouched",
            ) from None
        except psycopg.Error as exc:
            self.close()
            raise StoreError(
                f"cannot open the store SMSCTL_DB={self.path}: {first_line(exc)}", hint=hint_for(exc)
            ) from None

    @classmethod
    def reader(cls, location: StoreLocation) -> PgStore | None:
        """The store opened read-only; None when the database has no smsctl store yet."""
        store = cls(location, readonly=True)
        if store._empty:
            store.close()
            return None
        return store

    def _open(self) -> psycopg.Connection[Row]:
        return _connect(self.url, readonly=self._readonly, busy_timeout=self._busy_timeout)

    def _prepare(self) -> None:
        done = applied(self.conn)
        self._empty = done is None
        if done is not None and KNOWN <= done:
            return
        if self._readonly:
            if done is not None:
                raise psycopg.OperationalError(
                    "it was made by an older smsctl and needs upgrading: run `smsctl db migrate`"
                )
            return
        self.migrated = migrate(self.conn)
        self._empty = False

    @property
    def conn(self) -> psycopg.Connection[Row]:
        """The connection, reopened when the previous one broke (the server restarted)."""
        if self._conn is None or self._conn.closed:
            with contextlib.suppress(psycopg.Error):
                if self._conn is not None:
                    self._conn.close()
            self._conn = self._open()
        return self._conn

    def classify(self, exc: BaseException) -> StoreUnavailable | StoreBug:
        return classify(exc)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __del__(self) -> None:
        if getattr(self, "_conn", None) is not None and not self._conn.closed:  # type: ignore[union-attr]
            warnings.warn(f"store {self.path} was not closed", ResourceWarning, stacklevel=1)

    def __enter__(self) -> PgStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction; waiters are notified at its commit when a status changed in it.

        BEGIN and COMMIT are statements in the pipeline, so a commit costs one round trip (plus
        the fetches its statements ask for). psycopg's own transaction() block syncs the pipeline
        at each edge (three or four round trips). A failure before COMMIT leaves the transaction
        open or failed on the server: it is rolled back once the pipeline has synced."""
        self._notify = False
        conn = self.conn
        try:
            with conn.pipeline():
                conn.execute("BEGIN")
                yield
                if self._notify:
                    conn.execute(f"NOTIFY {CHANNEL}")
                conn.execute("COMMIT")
        finally:
            if not conn.closed and conn.info.transaction_status in (_IN_TRANSACTION, _IN_ERROR):
                with contextlib.suppress(psycopg.Error):  # the failure that got us here is what counts
                    conn.execute("ROLLBACK")

    def _one(self, query: str, params: Sequence[Any] = ()) -> Row | None:
        return self.conn.execute(query, params).fetchone()

    def _all(self, query: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.conn.execute(query, params).fetchall()

    # --- messages we send -------------------------------------------------------------------

    def record_attempt(self, attempt: Attempt, at: float | None = None) -> int | None:
        return self.queue_attempt(attempt, time.time() if at is None else at).resolve()

    def queue_attempt(self, attempt: Attempt, at: float) -> Deferred[int | None]:
        """The insert, answered at the commit (a group commit's sends share one round trip)."""
        cursor = self.conn.execute(
            """INSERT INTO messages (client_ref, to_number, from_number, text, encoding, segments,
                   batch_id, batch_row, state, created_at, updated_at, optout_ignored, country)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'pending', %s, %s, %s, %s)
               ON CONFLICT (batch_id, batch_row) WHERE batch_id IS NOT NULL DO NOTHING RETURNING id""",
            (attempt.client_ref, attempt.to, attempt.from_, attempt.text, attempt.encoding,
             attempt.segments, attempt.batch_id, attempt.batch_row, at, at, attempt.optout_ignored,
             attempt.country),
        )  # fmt: skip

        def fetch() -> int | None:
            row = cursor.fetchone()
            return (
                None if row is None else int(row[0])
            )  # None: another run of the batch recorded the row first

        return Deferred(fetch)

    def message_in_batch(self, batch_id: str, row: int) -> SentMessage | None:
        found = self._one(
            f"SELECT {_SENT} FROM messages WHERE batch_id = %s AND batch_row = %s", (batch_id, row)
        )
        return _sent(found) if found else None

    def mark_accepted(self, local_id: int, message_uuid: str) -> bool:
        return self.queue_accepted(local_id, message_uuid).resolve()

    def queue_accepted(self, local_id: int, message_uuid: str) -> Deferred[bool]:
        """One statement, answered at the commit: a batch's 202s travel in one pipeline. Any other
        send holding the uuid is flagged in the same statement (both kept, flagged)."""
        cursor = self.conn.execute(
            "WITH others AS (UPDATE messages SET repeated_uuid = TRUE WHERE message_uuid = %s AND id != %s"
            " RETURNING 1) UPDATE messages SET state = 'accepted', message_uuid = %s, error = NULL,"
            " updated_at = %s, repeated_uuid = EXISTS (SELECT 1 FROM others) WHERE id = %s RETURNING repeated_uuid",
            (message_uuid, local_id, message_uuid, time.time(), local_id),
        )

        def fetch() -> bool:
            row = cursor.fetchone()
            return bool(row and row[0])

        return Deferred(fetch)

    def mark_failed(self, local_id: int, state: LocalState, error: str) -> None:
        self._set_state(local_id, state, error)

    def _set_state(self, local_id: int, state: LocalState, error: str | None) -> None:
        self.conn.execute(
            "UPDATE messages SET state = %s, error = %s, updated_at = %s WHERE id = %s",
            (str(state), error, time.time(), local_id),
        )

    # --- webhooks -----------------------------------------------------------------------------

    def apply_status(self, event: StatusEvent, received_at: float, token: str | None = None) -> Applied:
        """Store one status event idempotently; move the current status forward, never back."""
        return self.queue_status(event, received_at, token).resolve()

    def queue_status(
        self, event: StatusEvent, received_at: float, token: str | None = None
    ) -> Deferred[Applied]:
        """Send one status event's application (smsctl_apply_status, pgmigrations.m002) without
        waiting for its answer: a batch's events travel in one pipeline.

        The function locks the message's status row first (creating it if new), so concurrent
        listeners apply events for one message one after the other, each seeing the other's
        committed result.
        """
        cursor = self.conn.execute(
            "SELECT * FROM smsctl_apply_status(%s, %s, %s::smallint, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " %s, %s, %s, %s)",
            (event.message_uuid, event.status, status_rank(event.status), event.is_final,
             event.event_time() is None, bool(event.unreadable), event.timestamp, received_at, event.to,
             event.from_, event.client_ref, event.error_code, event.error_detail, event.price, event.currency,
             event.segments, event.body, token),
        )  # fmt: skip
        self._notify = True  # NOTIFY is one statement per commit; waiters re-read what they wait for

        def fetch() -> Applied:
            row = cursor.fetchone()
            assert row is not None
            return Applied(bool(row[0]), str(row[1]), bool(row[2]), row[3], bool(row[4]))

        return Deferred(fetch)

    def add_inbound(self, message: InboundMessage, received_at: float, token: str | None = None) -> bool:
        return (
            self._one(
                """INSERT INTO inbound (message_uuid, from_number, to_number, text, timestamp,
                       received_at, body, token) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (message_uuid) DO NOTHING RETURNING 1""",
                (
                    message.message_uuid,
                    message.from_,
                    message.to,
                    message.text,
                    message.timestamp,
                    received_at,
                    message.body,
                    token,
                ),
            )  # fmt: skip
            is not None
        )

    def add_dead_letter(self, route: str, reason: str, body: bytes, received_at: float) -> None:
        self.conn.execute(
            "INSERT INTO dead_letters (received_at, route, reason, body) VALUES (%s, %s, %s, %s)",
            (received_at, route, reason, body),
        )

    # --- listeners (the database's clock, shared by every machine) -------------------------------

    def register_listener(self, local_url: str, public_url: str | None, heartbeat_every: float) -> None:
        self.conn.execute(
            """INSERT INTO listeners (host, pid, local_url, public_url, started_at, heartbeat_at, heartbeat_every)
               VALUES (%s, %s, %s, %s, extract(epoch FROM clock_timestamp()),
                       extract(epoch FROM clock_timestamp()), %s)
               ON CONFLICT (host, pid) DO UPDATE SET local_url = EXCLUDED.local_url,
                   public_url = EXCLUDED.public_url, started_at = EXCLUDED.started_at,
                   heartbeat_at = EXCLUDED.heartbeat_at, heartbeat_every = EXCLUDED.heartbeat_every""",
            (socket.gethostname(), os.getpid(), local_url, public_url, heartbeat_every),
        )

    def heartbeat(self) -> None:
        self.conn.execute(
            "UPDATE listeners SET heartbeat_at = extract(epoch FROM clock_timestamp()) WHERE host = %s AND pid = %s",
            (socket.gethostname(), os.getpid()),
        )

    def unregister_listener(self) -> None:
        self.conn.execute(
            "DELETE FROM listeners WHERE host = %s AND pid = %s", (socket.gethostname(), os.getpid())
        )

    def fresh_listeners(self) -> list[ListenerRecord]:
        rows = self._all(
            """SELECT pid, host, local_url, public_url, started_at, heartbeat_at FROM listeners
               WHERE heartbeat_at > extract(epoch FROM clock_timestamp()) - %s * heartbeat_every
               ORDER BY started_at DESC""",
            (MISSED_HEARTBEATS,),
        )
        return [ListenerRecord(int(r[0]), r[1], r[2], r[3], float(r[4]), float(r[5])) for r in rows]

    def forget_listener(self, pid: int, host: str | None) -> None:
        self.conn.execute(
            "DELETE FROM listeners WHERE pid = %s AND host IS NOT DISTINCT FROM %s", (pid, host)
        )

    # --- reading ----------------------------------------------------------------------------------

    def current_status(self, message_uuid: str) -> CurrentStatus | None:
        row = self._one(
            "SELECT message_uuid, status, final, conflict, duplicates, via FROM message_status WHERE message_uuid = %s",
            (message_uuid,),
        )
        return (
            CurrentStatus(row[0], row[1], bool(row[2]), bool(row[3]), int(row[4]), Source(row[5]))
            if row
            else None
        )

    def statuses(self, uuids: list[str]) -> dict[str, tuple[str, bool]]:
        rows = self._all(
            "SELECT message_uuid, status, final FROM message_status WHERE message_uuid = ANY(%s)", (uuids,)
        )
        return {r[0]: (r[1], bool(r[2])) for r in rows}

    def find_message(self, ref: str) -> FoundMessage | None:
        if len(ref) < 8 or not _UUID_CHARS.fullmatch(ref):  # also keeps LIKE wildcards out
            return None
        pattern = ref if len(ref) >= 36 else ref + "%"
        uuids = self._all(
            """SELECT message_uuid FROM message_status WHERE message_uuid LIKE %s
               UNION SELECT message_uuid FROM messages WHERE message_uuid LIKE %s LIMIT 2""",
            (pattern, pattern),
        )
        if len(uuids) != 1:
            return None
        uuid = uuids[0][0]
        sends = self._all(f"SELECT {_SENT} FROM messages WHERE message_uuid = %s ORDER BY id DESC", (uuid,))
        return found(uuid, len(sends), _sent(sends[0]) if sends else None, self.current_status(uuid))

    def timeline(self, message_uuid: str) -> list[StoredEvent]:
        rows = self._dicts(
            "SELECT * FROM events WHERE message_uuid = %s ORDER BY received_at, id", (message_uuid,)
        )
        return [event_from(r) for r in rows]

    def _dicts(self, query: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.conn.cursor(row_factory=dict_row) as cursor:
            return cursor.execute(query, params).fetchall()

    def recent_messages(
        self, limit: int, status: str | None = None, since: float | None = None, batch: str | None = None
    ) -> list[MessageSummary]:
        """Every message the store knows, newest activity first (see the SQLite backend)."""
        f = LogFilters.build(status, since, batch, mark="%s", greatest="GREATEST")
        rows = self._all(
            f"""WITH recent AS (
                    (SELECT m.id AS mid, m.message_uuid AS uuid,
                           GREATEST(m.updated_at, COALESCE(s.updated_at, 0)) AS activity
                    FROM messages m LEFT JOIN message_status s ON s.message_uuid = m.message_uuid
                    WHERE {" AND ".join(f.sent_where)}
                    UNION ALL
                    SELECT NULL, s.message_uuid, s.updated_at FROM message_status s
                    WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.message_uuid = s.message_uuid)
                      AND {" AND ".join(f.hook_where)})
                    ORDER BY activity DESC, mid DESC NULLS LAST LIMIT %s)
                SELECT r.uuid, CASE WHEN r.mid IS NULL THEN COALESCE(s.via, 'webhook') ELSE 'smsctl' END,
                       COALESCE(m.to_number, (SELECT e.to_number FROM events e WHERE e.message_uuid = r.uuid
                                AND e.to_number IS NOT NULL LIMIT 1)),
                       COALESCE(m.from_number, (SELECT e.from_number FROM events e WHERE e.message_uuid = r.uuid
                                AND e.from_number IS NOT NULL LIMIT 1)),
                       COALESCE(m.client_ref, (SELECT e.client_ref FROM events e WHERE e.message_uuid = r.uuid
                                AND e.client_ref IS NOT NULL LIMIT 1)),
                       COALESCE(s.status, m.state), COALESCE(s.final, FALSE),
                       COALESCE(m.segments, (SELECT CAST(e.segments AS INTEGER) FROM events e
                                WHERE e.message_uuid = r.uuid AND e.segments ~ '^[0-9]{{1,9}}$' LIMIT 1)),
                       m.created_at, r.activity, m.error,
                       (SELECT e.error_code FROM events e WHERE e.message_uuid = r.uuid
                        AND e.error_code IS NOT NULL ORDER BY e.id DESC LIMIT 1),
                       m.batch_id, m.batch_row
                FROM recent r LEFT JOIN messages m ON m.id = r.mid
                     LEFT JOIN message_status s ON s.message_uuid = r.uuid
                ORDER BY r.activity DESC, r.mid DESC NULLS LAST""",
            (*f.sent_params, *f.hook_params, limit),
        )
        return [
            MessageSummary(r[0], Source(r[1]), r[2], r[3], r[4], r[5], bool(r[6]), r[7], r[8], r[9], r[10],
                           r[11], r[12], r[13])
            for r in rows
        ]  # fmt: skip

    def recent_inbound(self, limit: int, since: float | None = None) -> list[InboundRecord]:
        rows = self._all(
            """SELECT message_uuid, from_number, to_number, text, timestamp, received_at FROM inbound
               WHERE received_at >= %s ORDER BY received_at DESC, id DESC LIMIT %s""",
            (since or 0, limit),
        )
        return [InboundRecord(*r) for r in rows]

    def counts(self) -> dict[str, int]:
        tables = ("messages", "events", "message_status", "dead_letters", "inbound", "optout_events")
        return {t: int((self._one(f"SELECT COUNT(*) FROM {t}") or (0,))[0]) for t in tables}

    # --- replay and export ----------------------------------------------------------------------

    def events_of(self, uuids: list[str]) -> list[StoredEvent]:
        rows = self._dicts(
            "SELECT * FROM events WHERE message_uuid = ANY(%s) ORDER BY received_at, id", (uuids,)
        )
        return [event_from(r) for r in rows]

    def export_page(self, after: tuple[int, str], limit: int, status: str | None, since: float | None,
                    batch: str | None) -> tuple[list[ExportedMessage], tuple[int, str] | None]:  # fmt: skip
        f = LogFilters.build(status, since, batch, mark="%s", greatest="GREATEST")
        phase, key = after
        if phase == 0:
            rows = self._dicts(
                f"""SELECT {_SENT_M}, s.status AS cur_status, s.final AS cur_final, s.updated_at AS cur_updated
                    FROM messages m LEFT JOIN message_status s ON s.message_uuid = m.message_uuid
                    WHERE m.id > %s AND {" AND ".join(f.sent_where)} ORDER BY m.id LIMIT %s""",
                (int(key or 0), *f.sent_params, limit),
            )
            return sent_page(rows, lambda r: _sent(tuple(r[c] for c in _SENT_COLUMNS)), self.events_of, limit)
        rows = self._dicts(
            f"""SELECT s.* FROM message_status s
                WHERE s.message_uuid > %s AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.message_uuid = s.message_uuid)
                  AND {" AND ".join(f.hook_where)} ORDER BY s.message_uuid LIMIT %s""",
            (key, *f.hook_params, limit),
        )
        return hook_page(rows, self.events_of, limit)

    # --- copying (`smsctl db copy`) -------------------------------------------------------------

    def export_rows(self, table: str, after: int, limit: int) -> list[tuple[int, tuple[object, ...]]]:
        columns = COPY_TABLES[table]
        rows = self._all(
            f"SELECT id, {', '.join(columns)} FROM {table} WHERE id > %s ORDER BY id LIMIT %s", (after, limit)
        )
        return [(int(r[0]), tuple(bytes(v) if isinstance(v, memoryview) else v for v in r[1:])) for r in rows]

    def import_rows(self, table: str, rows: list[tuple[object, ...]]) -> int:
        columns = COPY_TABLES[table]
        if table == "optout_events":
            return self.import_optout_events(rows)
        if table == "message_status":  # the rank column is PostgreSQL's own: derived, never copied
            columns, rows = (*columns, "rank"), [(*row, status_rank(str(row[1]))) for row in rows]
        marks = ", ".join(["%s"] * len(columns))
        where = {
            "messages": "NOT EXISTS (SELECT 1 FROM messages WHERE created_at = %s AND client_ref = %s"
            " AND to_number = %s)",
            "dead_letters": "NOT EXISTS (SELECT 1 FROM dead_letters WHERE received_at = %s AND route = %s)",
        }.get(table, "TRUE")
        cursors = []
        with self.conn.pipeline():  # one round trip for the page; leaving the block syncs, so counts are in
            for row in rows:
                guard: tuple[object, ...] = ()
                if table == "messages":
                    guard = (row[12], row[0], row[2])
                elif table == "dead_letters":
                    guard = (row[0], row[1])
                cursors.append(self.conn.execute(
                    f"INSERT INTO {table} ({', '.join(columns)}) SELECT {marks} WHERE {where} ON CONFLICT DO NOTHING",
                    (*row, *guard),
                ))  # fmt: skip
        new = sum(max(cursor.rowcount, 0) for cursor in cursors)
        if table == "message_status" and new:
            self._notify = True
        return new


_SENT_COLUMNS = ("id", "client_ref", "message_uuid", "to_number", "from_number", "text", "encoding", "segments",
                 "batch_id", "batch_row", "state", "error", "repeated_uuid", "created_at", "updated_at")  # fmt: skip
_SENT = ", ".join(_SENT_COLUMNS)
_SENT_M = ", ".join(f"m.{c}" for c in _SENT_COLUMNS)


def _sent(row: Row) -> SentMessage:
    return SentMessage(
        int(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], int(row[7]), row[8], row[9],
        LocalState(row[10]), row[11], bool(row[12]), float(row[13]), float(row[14]),
    )  # fmt: skip


async def watch_changes(location: StoreLocation, timeout: float, read: Callable[[PgStore], bool]) -> None:
    """Call `read(store)` at the start, at each NOTIFY (a status changed, committed anywhere), and at
    least every REREAD_EVERY, until it returns True or time is up.

    LISTEN is issued before each read, so a change committed between a read and the wait is never
    missed. A dropped connection (the server restarted) is reopened, and a read follows at once.
    """
    assert location.url is not None
    deadline = time.monotonic() + timeout
    store: PgStore | None = None
    listening: psycopg.AsyncConnection[Row] | None = None
    try:
        while time.monotonic() < deadline:
            try:
                if store is None:
                    store = await asyncio.to_thread(PgStore, location, readonly=True)
                if listening is None:
                    listening = await psycopg.AsyncConnection.connect(
                        location.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT
                    )
                    await listening.execute(f"LISTEN {CHANNEL}")
                if read(store):
                    return
                wait = max(0.0, min(REREAD_EVERY, deadline - time.monotonic()))
                async for _ in listening.notifies(timeout=wait, stop_after=1):
                    pass
            except (psycopg.OperationalError, psycopg.InterfaceError, StoreError):
                # The server restarted or is away: the message was sent, so keep waiting for it.
                if listening is not None:
                    with contextlib.suppress(psycopg.Error):
                        await listening.close()
                listening = None
                await asyncio.sleep(min(RECONNECT_PAUSE, max(0.0, deadline - time.monotonic())))
    finally:
        if listening is not None:
            with contextlib.suppress(psycopg.Error):
                await listening.close()
        if store is not None:
            store.close()
