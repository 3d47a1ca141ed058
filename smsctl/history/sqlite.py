"""The SQLite backend of the storage interface (storage.py): every message sent, every status
event, inbound SMS and dead letters, in one file.

Rows never leave this module: every method returns the interface's frozen dataclasses. Writes run
inside `transaction()` (BEGIN IMMEDIATE); the writer thread batches them (see writer.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from smsctl.errors import StoreBug, StoreError, StoreUnavailable
from smsctl.history.batch_rows import BatchRowsSql
from smsctl.history.deferred import Deferred
from smsctl.history.events import InboundMessage, StatusEvent, anomaly_of, status_rank
from smsctl.history.interface import (
    Applied,
    Attempt,
    CurrentStatus,
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
)
from smsctl.history.optouts import Optouts
from smsctl.history.pricing import Pricing
from smsctl.history.reconciliation import Reconciliation
from smsctl.history.sqlite_migrations import KNOWN, NotOurs, applied, migrate
from smsctl.history.sqlite_outbox import SqliteOutbox, SqliteTransfer, sent_message
from smsctl.history.stats import SqliteStats

log = logging.getLogger("smsctl.history.sqlite")
WAL_RESET_FIXED = (3, 51, 3)
POLL_INTERVAL = 0.05  # seconds between `PRAGMA data_version` checks: well inside the 250 ms budget
REREAD_EVERY = 1.0  # read anyway this often, to notice a listener that stopped (it commits nothing)
_UUID_CHARS = re.compile(r"[0-9A-Fa-f-]{8,36}")
MISSED_HEARTBEATS = 5  # a listener that missed this many of its own heartbeats counts as gone


_HINTS = {
    "locked": "another process holds the store's lock (a long query, a stuck smsctl, a backup): "
    "wait for it or stop it, or raise SMSCTL_BUSY_TIMEOUT",
    "busy": "another process holds the store's lock: wait for it or stop it, or raise SMSCTL_BUSY_TIMEOUT",
    "full": "the disk holding the store is full: free some space",
    "readonly": "the store is read-only for this user: check the permissions of SMSCTL_DB and its "
    "directory (`smsctl log` and `status` can still read it)",
    "I/O": "the disk holding the store reported an I/O error: check it",
}
_HINTS["read-only"] = _HINTS["readonly"]


_MACHINE_CONDITIONS = ("locked", "busy", "full", "readonly", "read-only", "I/O", "unable to open", "disk")


def classify(exc: BaseException) -> StoreUnavailable | StoreBug:
    """The machine's problem (locked, full, read-only, I/O: retry later, fix the disk) or ours (any
    other failure, such as an SQL or schema error: a bug, never disguised as "unavailable")."""
    if isinstance(exc, sqlite3.OperationalError) and any(c in str(exc) for c in _MACHINE_CONDITIONS):
        return unavailable(exc)
    return StoreBug(exc)


def unavailable(exc: sqlite3.OperationalError, context: str = "") -> StoreUnavailable:
    """A store failure that is the machine's, not ours, with what the user can do about it."""
    text = str(exc)
    hint = next((h for key, h in _HINTS.items() if key in text), None)
    error = StoreUnavailable(text, hint=hint)
    if context:
        error.message = context + text
    return error


def private_files(db: Path) -> None:
    """Create the store's directory 0700 and file 0600 (it holds phone numbers and one-time codes);
    tighten existing files that others can read, with a warning."""
    # exist_ok: several processes may open a new store at once; the loser of the race must not fail.
    db.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    if not db.exists():
        os.close(os.open(db, os.O_RDWR | os.O_CREAT, 0o600))
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        try:
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                path.chmod(0o600)
                log.warning("%s was readable by other users (mode %o); it is now 600", path, mode)
        except OSError:
            pass


def _writable(db: Path) -> bool:
    """Whether this user can write the store and the directory its journal files go in (False on a
    read-only file system too, even for root)."""
    return os.access(db.parent, os.W_OK) and (not db.exists() or os.access(db, os.W_OK))


def _refuse_foreign(db: Path) -> None:
    """NotOurs (or sqlite3.DatabaseError) for an existing file that is not an smsctl store, found
    through a read-only connection, so a refused file keeps its contents and its mode."""
    try:
        if db.stat().st_size == 0:
            return  # an empty file becomes a new store
    except FileNotFoundError:
        return
    except OSError as exc:
        raise sqlite3.OperationalError(f"unable to open database file: {exc.strerror}") from None
    probe = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    try:
        # Unreadable to this probe (a WAL store whose -shm we may not create, say): the real connection
        # decides, as before. "file is not a database" is a DatabaseError, not this: it propagates.
        with contextlib.suppress(sqlite3.OperationalError):
            applied(probe)
    finally:
        probe.close()


class Store(SqliteOutbox, SqliteTransfer, Reconciliation, Optouts, Pricing, BatchRowsSql, SqliteStats):
    """A connection to the store. Not thread-safe: one per thread.

    `Store(path)` opens it for writing: it creates a missing store (private: directory 0700, files
    0600), refuses a database that is not an smsctl store or is from a newer smsctl (changing
    nothing), and applies pending migrations. `Store.reader(path)` opens an existing store read-only,
    so `log` and `status` work on a store they cannot write.
    """

    _mark, _false, _true = "?", "0", "1"  # the dialect of the shared SQL (history/dialect.py)
    _lock_row = ""  # SQLite's write transaction already holds the whole database
    _event_key = (
        "msg_id = (SELECT id FROM message_status WHERE message_uuid = ?) AND status = ? AND timestamp = ?"
    )

    def __init__(self, path: Path | str, *, busy_timeout: float = 5.0, readonly: bool = False) -> None:
        self.path = str(path)
        self.spool_path = Path(f"{path}.unrecorded")
        self.migrated: list[str] = []  # migrations this connection applied when it opened
        self._closed = True  # until the connection exists
        try:
            if readonly:
                self.conn = self._connect_readonly(busy_timeout)
            else:
                self.conn = self._connect_for_writing(busy_timeout)
            self._closed = False
            self.conn.row_factory = sqlite3.Row
            self._prepare_when_unlocked(readonly, busy_timeout)
        except NotOurs as exc:
            self.close()
            raise StoreError(
                f"SMSCTL_DB={self.path} is not usable as an smsctl store: {exc}",
                hint="point SMSCTL_DB at an smsctl store (or a new file); this one was left untouched",
            ) from None
        except sqlite3.OperationalError as exc:  # locked, read-only, disk full, I/O: the machine's
            self.close()
            if not readonly and "unable to open" in str(exc) and not _writable(Path(self.path)):
                exc = sqlite3.OperationalError("unable to open database file: it is read-only for this user")
            raise unavailable(exc, f"cannot open the store at {self.path}: ") from None
        except sqlite3.DatabaseError as exc:  # not a database at all, or a damaged one
            self.close()
            raise StoreError(
                f"cannot open the store at {self.path}: {exc}",
                hint="check SMSCTL_DB points at an smsctl store; it is never deleted or recreated for you",
            ) from None

    @classmethod
    def reader(cls, path: Path | str) -> Store | None:
        """The store opened read-only; None when there is none yet (nothing is created)."""
        return cls(path, readonly=True) if path == ":memory:" or Path(path).exists() else None

    def _connect_for_writing(self, busy_timeout: float) -> sqlite3.Connection:
        if self.path != ":memory:":
            _refuse_foreign(Path(self.path))  # before anything (even its mode) is changed
            private_files(Path(self.path))
        return sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)

    def _connect_readonly(self, busy_timeout: float) -> sqlite3.Connection:
        uri = Path(self.path).resolve().as_uri()
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=busy_timeout, isolation_level=None,
                               check_same_thread=False)  # fmt: skip
        try:
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.OperationalError:
            # A WAL store in a directory we cannot write (no -shm to create): nobody can be writing
            # it either, so it can be read as an immutable file.
            conn.close()
            conn = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None,
                                   check_same_thread=False)  # fmt: skip
        return conn

    def _prepare_when_unlocked(self, readonly: bool, busy_timeout: float) -> None:
        """`_prepare`, again while another process holds a lock it must not wait on: processes opening a new
        store at once can get "database is locked" straight away (switching a new file to WAL, or reading the
        WAL index while another process recovers it) instead of from the busy handler. Each step is
        idempotent, so retrying it until the busy timeout is safe."""
        deadline = time.monotonic() + busy_timeout
        pause = 0.01
        while True:
            try:
                return self._prepare(readonly)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                    raise
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
            time.sleep(pause)  # a lock held by another process: nothing to poll but the lock itself
            pause = min(pause * 2, 0.2)

    def _prepare(self, readonly: bool) -> None:
        done = applied(self.conn)  # NotOurs before anything is changed
        outdated = done is None or not KNOWN <= done
        if readonly:
            if outdated:
                raise sqlite3.OperationalError(
                    "it was made by an older smsctl and needs upgrading, which takes a write: run "
                    "`smsctl listen` or `smsctl send` once with write access"
                )
            return
        if self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        if outdated:
            self.migrated = migrate(self.conn)

    def close(self) -> None:
        if (conn := getattr(self, "conn", None)) is not None:  # None: refused before it connected
            conn.close()
        self._closed = True

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):  # opened, never closed: a file handle leaked
            warnings.warn(f"store {self.path} was not closed", ResourceWarning, stacklevel=1)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def classify(self, exc: BaseException) -> StoreUnavailable | StoreBug:
        return classify(exc)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT, so a write never fails half-way on a lock upgrade."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    # --- messages we send -------------------------------------------------------------------

    def record_attempt(self, attempt: Attempt, at: float | None = None) -> int | None:
        """Record a send about to leave (`pending`: it may reach the API from now on); its local id. None
        when its batch row is already recorded: another run of the same batch took it first. `at`: its
        created_at and updated_at (the version `claim` compares), now by default."""
        now = time.time() if at is None else at
        found = self.conn.execute(
            """INSERT INTO messages (client_ref, to_number, from_number, text, encoding, segments,
                   batch_id, batch_row, state, created_at, updated_at, optout_ignored, country)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)
               ON CONFLICT (batch_id, batch_row) WHERE batch_id IS NOT NULL DO NOTHING RETURNING id""",
            (attempt.client_ref, attempt.to, attempt.from_, attempt.text, attempt.encoding,
             attempt.segments, attempt.batch_id, attempt.batch_row, now, now, attempt.optout_ignored,
             attempt.country),
        ).fetchall()  # fmt: skip
        return int(found[0][0]) if found else None

    def queue_attempt(self, attempt: Attempt, at: float) -> Deferred[int | None]:
        return Deferred.ready(self.record_attempt(attempt, at))

    def message_in_batch(self, batch_id: str, row: int) -> SentMessage | None:
        """The send recorded for this row of a bulk batch, if any (how a rerun resumes)."""
        found = self.conn.execute(
            "SELECT * FROM messages WHERE batch_id = ? AND batch_row = ?", (batch_id, row)
        ).fetchone()
        return sent_message(found) if found else None

    def mark_accepted(self, local_id: int, message_uuid: str) -> bool:
        """The API answered 202 with this uuid; True when another send already has it (both kept, flagged)."""
        repeated = self.conn.execute(
            "SELECT 1 FROM messages WHERE message_uuid = ? AND id != ? LIMIT 1", (message_uuid, local_id)
        ).fetchone()
        self.conn.execute(
            "UPDATE messages SET state = 'accepted', message_uuid = ?, error = NULL, updated_at = ?,"
            " repeated_uuid = ? WHERE id = ?",
            (message_uuid, time.time(), bool(repeated), local_id),
        )
        if repeated:
            self.conn.execute("UPDATE messages SET repeated_uuid = 1 WHERE message_uuid = ?", (message_uuid,))
        return bool(repeated)

    def queue_accepted(self, local_id: int, message_uuid: str) -> Deferred[bool]:
        return Deferred.ready(self.mark_accepted(local_id, message_uuid))

    def mark_failed(self, local_id: int, state: LocalState, error: str) -> None:
        """The API refused the send (`refused`), never got it (`unsent`), or may have (`unknown`)."""
        self._set_state(local_id, state, error)

    def _set_state(self, local_id: int, state: LocalState, error: str | None) -> None:
        self.conn.execute(
            "UPDATE messages SET state = ?, error = ?, updated_at = ? WHERE id = ?",
            (state, error, time.time(), local_id),
        )

    # --- webhooks -----------------------------------------------------------------------------

    def apply_status(self, event: StatusEvent, received_at: float, token: str | None = None) -> Applied:
        """Store one status event idempotently; move the current status forward, never back.

        The message's status row comes first (created for a new message): its sequential id keys the
        event (migrations.m007), so the events' unique index grows at its newest pages.
        """
        current = self.conn.execute(
            "SELECT id, status, final FROM message_status WHERE message_uuid = ?", (event.message_uuid,)
        ).fetchone()
        anomaly = anomaly_of(event, (current["status"], bool(current["final"])) if current else None)
        if current is None:
            msg_id = self.conn.execute(
                "INSERT INTO message_status (message_uuid, status, final, first_seen, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (event.message_uuid, event.status, event.is_final, received_at, received_at),
            ).lastrowid
            self._insert_event(msg_id, event, received_at, anomaly, token)  # new message: not a duplicate
            return Applied(False, event.status, event.is_final, anomaly, True)
        msg_id = current["id"]
        if not self._insert_event(msg_id, event, received_at, anomaly, token):
            self.conn.execute("UPDATE message_status SET duplicates = duplicates + 1 WHERE id = ?", (msg_id,))
            return Applied(True, current["status"], bool(current["final"]), None, False)
        advance = not current["final"] and status_rank(event.status) > status_rank(current["status"])
        status = event.status if advance else current["status"]
        final = event.is_final if advance else bool(current["final"])
        conflict = anomaly == "conflicting_final"
        if advance or conflict:
            self.conn.execute(
                "UPDATE message_status SET status = ?, final = ?, conflict = MAX(conflict, ?),"
                " updated_at = ? WHERE id = ?",
                (status, final, conflict, received_at, msg_id),
            )
        return Applied(False, status, final, anomaly, advance)

    def _insert_event(
        self,
        msg_id: int | None,
        event: StatusEvent,
        received_at: float,
        anomaly: str | None,
        token: str | None,
    ) -> bool:
        """Insert the event unless the message already has it (same status and timestamp)."""
        return bool(self.conn.execute(
            """INSERT INTO events (msg_id, message_uuid, status, timestamp, received_at, to_number,
                   from_number, client_ref, error_code, error_detail, price, currency, segments,
                   anomaly, body, token)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (msg_id, status, timestamp) DO NOTHING""",
            (msg_id, event.message_uuid, event.status, event.timestamp, received_at, event.to,
             event.from_, event.client_ref, event.error_code, event.error_detail, event.price,
             event.currency, event.segments, anomaly, event.body, token),
        ).rowcount)  # fmt: skip

    def queue_status(
        self, event: StatusEvent, received_at: float, token: str | None = None
    ) -> Deferred[Applied]:
        """`apply_status` for the writer's batches; SQLite has no round trips to save, so it is ready now."""
        return Deferred.ready(self.apply_status(event, received_at, token))

    def add_inbound(self, message: InboundMessage, received_at: float, token: str | None = None) -> bool:
        """Store an inbound SMS; False when it was already stored (a re-delivery)."""
        return bool(
            self.conn.execute(
                """INSERT INTO inbound (message_uuid, from_number, to_number, text, timestamp,
                       received_at, body, token) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (message_uuid) DO NOTHING""",
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
            ).rowcount  # fmt: skip
        )

    def add_dead_letter(self, route: str, reason: str, body: bytes, received_at: float) -> None:
        """Keep a signed body that cannot be used, with the reason."""
        self.conn.execute(
            "INSERT INTO dead_letters (received_at, route, reason, body) VALUES (?, ?, ?, ?)",
            (received_at, route, reason, body),
        )

    # --- listeners ------------------------------------------------------------------------------

    def register_listener(self, local_url: str, public_url: str | None, heartbeat_every: float) -> None:
        """Announce a running `smsctl listen` so `send --wait` can use it."""
        now = time.time()
        self.conn.execute(
            "INSERT OR REPLACE INTO listeners (pid, host, local_url, public_url, started_at, heartbeat_at,"
            " heartbeat_every) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (os.getpid(), socket.gethostname(), local_url, public_url, now, now, heartbeat_every),
        )

    def heartbeat(self) -> None:
        self.conn.execute("UPDATE listeners SET heartbeat_at = ? WHERE pid = ?", (time.time(), os.getpid()))

    def unregister_listener(self) -> None:
        self.conn.execute("DELETE FROM listeners WHERE pid = ?", (os.getpid(),))

    def fresh_listeners(self) -> list[ListenerRecord]:
        """Registered listeners whose heartbeat is recent, newest first. A heartbeat rests on the wall
        clock, so callers check the process too before they trust one."""
        rows = self.conn.execute(
            "SELECT * FROM listeners WHERE heartbeat_at > ? - ? * heartbeat_every ORDER BY started_at DESC",
            (time.time(), MISSED_HEARTBEATS),
        ).fetchall()
        return [ListenerRecord(r["pid"], r["host"], r["local_url"], r["public_url"], r["started_at"],
                               r["heartbeat_at"]) for r in rows]  # fmt: skip

    def forget_listener(self, pid: int, host: str | None) -> None:
        """Drop the registration of a listener that is gone (killed: it could not unregister)."""
        self.conn.execute("DELETE FROM listeners WHERE pid = ? AND host IS ?", (pid, host))

    # --- reading ----------------------------------------------------------------------------------

    def data_version(self) -> int:
        """Changes whenever another connection commits: a cheap 'anything new?' check."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def current_status(self, message_uuid: str) -> CurrentStatus | None:
        """The message's current status (status, final, conflict, duplicates)."""
        row = self.conn.execute(
            "SELECT * FROM message_status WHERE message_uuid = ?", (message_uuid,)
        ).fetchone()
        if row is None:
            return None
        return CurrentStatus(row["message_uuid"], row["status"], bool(row["final"]), bool(row["conflict"]),
                             row["duplicates"], Source(row["via"]))  # fmt: skip

    def statuses(self, uuids: list[str]) -> dict[str, tuple[str, bool]]:
        """Current (status, final) of each message that has any status yet."""
        found: dict[str, tuple[str, bool]] = {}
        for start in range(0, len(uuids), 500):  # stay under SQLite's variable limit
            chunk = uuids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                f"SELECT message_uuid, status, final FROM message_status WHERE message_uuid IN ({marks})",
                chunk,
            ):
                found[row["message_uuid"]] = (row["status"], bool(row["final"]))
        return found

    def find_message(self, ref: str) -> FoundMessage | None:
        """A message by UUID (or a unique UUID prefix of 8+ characters), with its current status.

        `sends` counts the sends the API answered with this uuid (more than one only for a mock or a
        replayed answer); `sent` is the latest of them.
        """
        if len(ref) < 8 or not _UUID_CHARS.fullmatch(ref):  # also keeps LIKE wildcards out
            return None
        pattern = ref if len(ref) >= 36 else ref + "%"
        uuids = self.conn.execute(
            """SELECT message_uuid FROM message_status WHERE message_uuid LIKE ?
               UNION SELECT message_uuid FROM messages WHERE message_uuid LIKE ? LIMIT 2""",
            (pattern, pattern),
        ).fetchall()
        if len(uuids) != 1:
            return None
        uuid = uuids[0][0]
        sends = self.conn.execute(
            "SELECT * FROM messages WHERE message_uuid = ? ORDER BY id DESC", (uuid,)
        ).fetchall()
        return found(uuid, len(sends), sent_message(sends[0]) if sends else None, self.current_status(uuid))

    def timeline(self, message_uuid: str) -> list[StoredEvent]:
        """Every stored event of a message, in the order they were received."""
        rows = self.conn.execute(
            "SELECT * FROM events WHERE msg_id = (SELECT id FROM message_status WHERE message_uuid = ?)"
            " ORDER BY received_at, id",
            (message_uuid,),
        ).fetchall()
        return [event_from(r) for r in rows]

    def recent_messages(
        self,
        limit: int,
        status: str | None = None,
        since: float | None = None,
        batch: str | None = None,
    ) -> list[MessageSummary]:
        """Every message the store knows, newest activity first: those smsctl sent, and those seen
        only through status webhooks (sent by another program; `source` = 'webhook').

        The first query orders and limits on indexed keys only; details are read for the rows shown.
        """
        f = LogFilters.build(status, since, batch, mark="?", greatest="MAX")
        rows = self.conn.execute(
            f"""WITH recent AS (
                    SELECT m.id AS mid, m.message_uuid AS uuid,
                           MAX(m.updated_at, COALESCE(s.updated_at, 0)) AS activity, s.id AS sid
                    FROM messages m LEFT JOIN message_status s ON s.message_uuid = m.message_uuid
                    WHERE {" AND ".join(f.sent_where)}
                    UNION ALL
                    SELECT NULL, s.message_uuid, s.updated_at, s.id FROM message_status s
                    WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.message_uuid = s.message_uuid)
                      AND {" AND ".join(f.hook_where)}
                    ORDER BY activity DESC, mid DESC LIMIT ?)
                SELECT r.uuid AS message_uuid, r.activity,
                       CASE WHEN r.mid IS NULL THEN COALESCE(s.via, 'webhook') ELSE 'smsctl' END AS source,
                       COALESCE(m.to_number, (SELECT e.to_number FROM events e WHERE e.msg_id = r.sid
                                AND e.to_number IS NOT NULL LIMIT 1)) AS to_number,
                       COALESCE(m.from_number, (SELECT e.from_number FROM events e WHERE e.msg_id = r.sid
                                AND e.from_number IS NOT NULL LIMIT 1)) AS from_number,
                       COALESCE(m.client_ref, (SELECT e.client_ref FROM events e WHERE e.msg_id = r.sid
                                AND e.client_ref IS NOT NULL LIMIT 1)) AS client_ref,
                       COALESCE(m.segments, (SELECT CAST(e.segments AS INTEGER) FROM events e
                                WHERE e.msg_id = r.sid AND e.segments IS NOT NULL LIMIT 1)) AS segments,
                       m.created_at, m.error, m.batch_id, m.batch_row, m.state,
                       COALESCE(s.status, m.state) AS status, s.final, s.conflict,
                       (SELECT e.error_code FROM events e WHERE e.msg_id = r.sid
                        AND e.error_code IS NOT NULL ORDER BY e.id DESC LIMIT 1) AS error_code
                FROM recent r LEFT JOIN messages m ON m.id = r.mid
                     LEFT JOIN message_status s ON s.message_uuid = r.uuid
                ORDER BY r.activity DESC, r.mid DESC""",
            (*f.sent_params, *f.hook_params, limit),
        ).fetchall()
        return [
            MessageSummary(r["message_uuid"], Source(r["source"]), r["to_number"], r["from_number"],
                           r["client_ref"], r["status"], bool(r["final"]), r["segments"], r["created_at"],
                           r["activity"], r["error"], r["error_code"], r["batch_id"], r["batch_row"])
            for r in rows
        ]  # fmt: skip

    def recent_inbound(self, limit: int, since: float | None = None) -> list[InboundRecord]:
        """Inbound SMS, newest first."""
        rows = self.conn.execute(
            "SELECT * FROM inbound WHERE received_at >= ? ORDER BY received_at DESC, id DESC LIMIT ?",
            (since or 0, limit),
        ).fetchall()
        return [InboundRecord(r["message_uuid"], r["from_number"], r["to_number"], r["text"], r["timestamp"],
                              r["received_at"]) for r in rows]  # fmt: skip


async def watch_changes(path: Path | str, timeout: float, read: Callable[[Store], bool]) -> None:
    """Call `read(store)` whenever another connection has committed (and at least every second),
    until it returns True or time is up.

    `PRAGMA data_version` is a cheap "anything new?" check, so this neither busy-loops on queries nor
    holds locks; a busy or recovering database is simply read again on the next tick.
    """
    import asyncio
    import contextlib

    with Store(path) as store:
        deadline, seen_version, last_read = time.monotonic() + timeout, -1, 0.0
        while time.monotonic() < deadline:
            with contextlib.suppress(sqlite3.OperationalError):
                version = store.data_version()
                if version != seen_version or time.monotonic() - last_read >= REREAD_EVERY:
                    seen_version, last_read = version, time.monotonic()
                    if read(store):
                        return
            await asyncio.sleep(POLL_INTERVAL)


def environment_notes() -> list[str]:
    """Facts about this machine's SQLite worth knowing, shown by `smsctl config` (not on every start:
    the user can rarely act on them)."""
    if sqlite3.sqlite_version_info >= WAL_RESET_FIXED:
        return []
    return [
        f"SQLite {sqlite3.sqlite_version} predates 3.51.3, which fixed a rare WAL race between processes "
        "writing one store at the same moment (listen + send); a Python built with a newer SQLite removes it"
    ]
