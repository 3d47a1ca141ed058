"""The SQLite backend's outbox (`listen --forward-to`), the application URLs `--update-app` keeps, and
the bulk reads and writes of replay, export and `db copy`: mixed into `Store` (history/sqlite.py), kept
apart so that module stays readable."""

from __future__ import annotations

import sqlite3

from smsctl.history.app_urls import app_urls, remember_app_urls
from smsctl.history.events import FINAL_STATUSES
from smsctl.history.interface import (
    BOOL_COLUMNS,
    COPY_TABLES,
    AppUrls,
    ExportedMessage,
    Forward,
    ForwardState,
    LocalState,
    LogFilters,
    NewForward,
    Outcome,
    Retried,
    SentMessage,
    StoredEvent,
    event_from,
    forward_from,
    hook_page,
    sent_page,
)


class SqliteOutbox:
    conn: sqlite3.Connection

    # --- forwarding (`listen --forward-to`) -------------------------------------------------------

    def add_forward(self, forward: NewForward, now: float, retry_for: float) -> None:
        """Queue an event for the user's app, in the transaction that stores the event; blocked behind
        an earlier pending forward of its message on its route, if there is one."""
        self.conn.execute(
            """INSERT INTO forwards (route, route_key, message_uuid, target, body, content_type, token, state,
                   next_at, expires_at, created_at, blocked)
               VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, EXISTS (SELECT 1 FROM forwards
                   WHERE state = 'pending' AND route_key = ? AND message_uuid = ?))""",
            (str(forward.route), forward.route_key, forward.message_uuid, forward.target, forward.body,
             forward.content_type, forward.token, now, now + retry_for, now, forward.route_key,
             forward.message_uuid),
        )  # fmt: skip

    def claim_forwards(self, route_key: str, now: float, lease: float, limit: int) -> list[Forward]:
        """Due forwards of one route, each the head of its message's queue (so a message's events
        arrive in order), leased until `now + lease` (their next_at) so no other worker takes them
        meanwhile: a range of the `forwards_due` index, however many are pending."""
        rows = self.conn.execute(
            """UPDATE forwards SET next_at = ?, lease_until = ? WHERE id IN (
                   SELECT id FROM forwards WHERE state = 'pending' AND blocked = 0 AND route_key = ?
                   AND next_at <= ? ORDER BY next_at LIMIT ?)
               RETURNING *""",
            (now + lease, now + lease, route_key, now, limit),
        ).fetchall()
        return sorted((forward_from(r) for r in rows), key=lambda f: f.id)

    def record_forward(self, forward_id: int, outcome: Outcome, now: float) -> None:
        """An attempt's outcome; the lease ends. A delivered forward's body is dropped (the event keeps
        it). Once a forward is done, the next one of its message on its route may go."""
        done = outcome.state is not ForwardState.PENDING
        row = self.conn.execute(
            """UPDATE forwards SET state = ?, attempts = ?, next_at = ?, lease_until = 0, last_code = ?,
                   last_error = ?, last_ms = ?, done_at = ?,
                   body = CASE WHEN ? = 'delivered' THEN X'' ELSE body END WHERE id = ?
               RETURNING route_key, message_uuid""",
            (str(outcome.state), outcome.attempts, outcome.next_at, outcome.code, outcome.error, outcome.ms,
             now if done else None, str(outcome.state), forward_id),
        ).fetchone()  # fmt: skip
        if done and row is not None:
            self.conn.execute(
                """UPDATE forwards SET blocked = 0 WHERE id = (SELECT MIN(id) FROM forwards
                       WHERE state = 'pending' AND route_key = ? AND message_uuid = ?)""",
                (row["route_key"], row["message_uuid"]),
            )

    def forwards(
        self, states: list[ForwardState], limit: int, message_uuid: str | None = None
    ) -> list[Forward]:
        marks = ",".join("?" * len(states))
        rows = self.conn.execute(
            f"SELECT * FROM forwards WHERE state IN ({marks}) AND (? IS NULL OR message_uuid = ?) ORDER BY id LIMIT ?",
            (*map(str, states), message_uuid, message_uuid, limit),
        ).fetchall()
        return [forward_from(r) for r in rows]

    def retry_forwards(self, ids: list[int] | None, now: float, retry_for: float) -> Retried:
        """Make failed (or waiting) forwards due now, with a fresh retry window, each queued behind any
        earlier pending one of its message; a failed one whose message already had a newer forward
        delivered on its route stays as it is (it would reach the app after the newer one)."""
        chosen, params = "state != 'delivered'", [now, now + retry_for]
        if ids is not None:
            chosen += f" AND id IN ({','.join('?' * len(ids))})"
            params.extend(ids)
        superseded = """state = 'failed' AND EXISTS (SELECT 1 FROM forwards g WHERE g.state = 'delivered'
                             AND g.route_key = forwards.route_key AND g.message_uuid = forwards.message_uuid
                             AND g.id > forwards.id)"""  # fmt: skip
        skipped = self.conn.execute(
            f"SELECT COUNT(*) FROM forwards WHERE {chosen} AND {superseded}", params[2:]
        ).fetchone()[0]
        retried = self.conn.execute(
            f"""UPDATE forwards SET state = 'pending', attempts = 0, next_at = ?, expires_at = ?,
                    lease_until = 0, done_at = NULL WHERE {chosen} AND NOT ({superseded})""",
            params,
        ).rowcount
        self.conn.execute(
            """UPDATE forwards SET blocked = EXISTS (SELECT 1 FROM forwards g WHERE g.state = 'pending'
                   AND g.route_key = forwards.route_key AND g.message_uuid = forwards.message_uuid
                   AND g.id < forwards.id) WHERE state = 'pending'"""
        )
        return Retried(retried, skipped)

    def next_forward_at(self, route_key: str) -> float | None:
        """When the next forward of this route falls due (or its lease ends); None when there is none."""
        row = self.conn.execute(
            "SELECT MIN(next_at) FROM forwards WHERE state = 'pending' AND blocked = 0 AND route_key = ?",
            (route_key,),
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    # --- `listen --update-app` ------------------------------------------------------------------

    def remember_app_urls(
        self, application_id: str, found: AppUrls, ours: AppUrls, now: float
    ) -> AppUrls | None:
        return remember_app_urls(self.conn.execute, "?", application_id, found, ours, now)

    def app_urls(self, application_id: str) -> tuple[AppUrls | None, set[str]]:
        return app_urls(self.conn.execute, "?", application_id)


class SqliteTransfer:
    conn: sqlite3.Connection

    # --- replay and export ----------------------------------------------------------------------

    def events_of(self, uuids: list[str]) -> list[StoredEvent]:
        """Every stored event of these messages, in the order they were received."""
        found: list[StoredEvent] = []
        for start in range(0, len(uuids), 500):
            chunk = uuids[start : start + 500]
            rows = self.conn.execute(
                "SELECT * FROM events WHERE msg_id IN (SELECT id FROM message_status WHERE message_uuid IN"
                f" ({','.join('?' * len(chunk))}))",
                chunk,
            ).fetchall()
            found.extend(event_from(r) for r in rows)
        return sorted(found, key=lambda e: e.received_at)

    def export_page(self, after: tuple[int, str], limit: int, status: str | None, since: float | None,
                    batch: str | None) -> tuple[list[ExportedMessage], tuple[int, str] | None]:  # fmt: skip
        """One page of messages with their timelines: first those smsctl sent (by local id), then those
        seen only through webhooks (by uuid); the cursor for the next page, None after the last."""
        f = LogFilters.build(status, since, batch, mark="?", greatest="MAX")
        phase, key = after
        if phase == 0:
            rows = self.conn.execute(
                f"""SELECT m.*, s.status AS cur_status, s.final AS cur_final, s.updated_at AS cur_updated
                    FROM messages m LEFT JOIN message_status s ON s.message_uuid = m.message_uuid
                    WHERE m.id > ? AND {" AND ".join(f.sent_where)} ORDER BY m.id LIMIT ?""",
                (int(key or 0), *f.sent_params, limit),
            ).fetchall()
            return sent_page(rows, sent_message, self.events_of, limit)
        rows = self.conn.execute(
            f"""SELECT s.* FROM message_status s
                WHERE s.message_uuid > ? AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.message_uuid = s.message_uuid)
                  AND {" AND ".join(f.hook_where)} ORDER BY s.message_uuid LIMIT ?""",
            (key, *f.hook_params, limit),
        ).fetchall()
        return hook_page(rows, self.events_of, limit)

    # --- copying (`smsctl db copy`) -------------------------------------------------------------

    def export_rows(self, table: str, after: int, limit: int) -> list[tuple[int, tuple[object, ...]]]:
        """Up to `limit` rows of a table after rowid `after`, in COPY_TABLES' column order."""
        columns = COPY_TABLES[table]
        rows = self.conn.execute(
            f"SELECT rowid, {', '.join(columns)} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (after, limit),
        ).fetchall()
        return [(row[0], tuple(_neutral(c, v) for c, v in zip(columns, tuple(row)[1:], strict=True)))
                for row in rows]  # fmt: skip

    def import_rows(self, table: str, rows: list[tuple[object, ...]]) -> int:
        """Insert rows this store does not have yet (by each table's natural key); how many were new."""
        columns = COPY_TABLES[table]
        marks = ", ".join("?" * len(columns))
        if table == "optout_events":
            return int(self.import_optout_events(rows))  # type: ignore[attr-defined]
        new = 0
        for row in rows:
            if table == "messages" and self._has_message(row):
                continue
            if (
                table == "dead_letters"
                and self.conn.execute(
                    "SELECT 1 FROM dead_letters WHERE received_at = ? AND route = ?", (row[0], row[1])
                ).fetchone()
            ):
                continue
            if table == "events":
                new += self._import_event(columns, row)
                continue
            new += self.conn.execute(
                f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({marks})", row
            ).rowcount
        return new

    def _import_event(self, columns: tuple[str, ...], row: tuple[object, ...]) -> int:
        """An event keyed by its message's status row (copying.ORDER copies statuses first; made here if missing)."""
        uuid, status, received_at = row[0], row[1], row[3]
        found = self.conn.execute("SELECT id FROM message_status WHERE message_uuid = ?", (uuid,)).fetchone()
        msg_id = found[0] if found else self.conn.execute(
            "INSERT INTO message_status (message_uuid, status, final, first_seen, updated_at) VALUES (?, ?, ?, ?, ?)",
            (uuid, status, status in FINAL_STATUSES, received_at, received_at),
        ).lastrowid  # fmt: skip
        marks = ", ".join("?" * (len(columns) + 1))
        return int(self.conn.execute(
            f"INSERT OR IGNORE INTO events (msg_id, {', '.join(columns)}) VALUES ({marks})", (msg_id, *row)
        ).rowcount)  # fmt: skip

    def _has_message(self, row: tuple[object, ...]) -> bool:
        client_ref, to_number, created_at = row[0], row[2], row[12]
        return bool(self.conn.execute(
            "SELECT 1 FROM messages WHERE created_at = ? AND client_ref = ? AND to_number = ?",
            (created_at, client_ref, to_number),
        ).fetchone())  # fmt: skip

    def counts(self) -> dict[str, int]:
        """Row counts per table, for tests and health checks."""
        tables = ("messages", "events", "message_status", "dead_letters", "inbound", "optout_events")
        return {t: self.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}


def _neutral(column: str, value: object) -> object:
    if column in BOOL_COLUMNS:
        return bool(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def sent_message(row: sqlite3.Row) -> SentMessage:
    return SentMessage(
        row["id"], row["client_ref"], row["message_uuid"], row["to_number"], row["from_number"], row["text"],
        row["encoding"], row["segments"], row["batch_id"], row["batch_row"], LocalState(row["state"]),
        row["error"], bool(row["repeated_uuid"]), row["created_at"], row["updated_at"],
    )  # fmt: skip
