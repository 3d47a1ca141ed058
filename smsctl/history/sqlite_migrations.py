"""Named, ordered schema migrations; each runs once and is recorded in `_smsctl_migrations`."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable

from smsctl.history.events import FINAL_STATUSES
from smsctl.history.schema import (
    APP_URLS,
    DESTINATION_COUNTRY,
    FOLD_FROM,
    FOLDED_COLUMNS,
    FORWARD_ROUTES,
    FORWARDS_TABLE,
    OPTOUTS,
    RECONCILE,
    SEND_COUNTS,
    SQLITE_EPOCH,
    SQLITE_PRICE_OK,
    folded_backfill,
    folded_sets,
)

log = logging.getLogger("smsctl.history.sqlite")
LONG_UPGRADE_EVENTS = 100_000  # about a second's work: below it an upgrade goes unannounced
UPGRADE_EVENTS_PER_SECOND = 80_000  # m007's rewrite, measured: 2,000,000 events in 25 s


def m001_initial(conn: sqlite3.Connection) -> None:
    """Messages sent, status events, current status, dead letters, inbound SMS, listeners."""
    _run_script(
        conn,
        """
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            client_ref TEXT NOT NULL UNIQUE,
            message_uuid TEXT UNIQUE,
            to_number TEXT NOT NULL,
            from_number TEXT NOT NULL,
            text TEXT NOT NULL,
            encoding TEXT NOT NULL,
            segments INTEGER NOT NULL,
            batch_id TEXT,
            batch_row INTEGER,
            state TEXT NOT NULL,           -- local: pending | accepted | refused | unsent | unknown
            error TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX messages_batch ON messages (batch_id, batch_row);
        CREATE INDEX messages_created ON messages (created_at);

        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            message_uuid TEXT NOT NULL,
            status TEXT NOT NULL,
            timestamp TEXT NOT NULL,       -- Vonage's event time, as sent
            received_at REAL NOT NULL,
            to_number TEXT,
            from_number TEXT,
            client_ref TEXT,
            error_code TEXT,
            error_detail TEXT,
            price TEXT,
            currency TEXT,
            segments TEXT,
            anomaly TEXT,                  -- late | conflicting_final | unknown_status | bad_timestamp
            body TEXT NOT NULL,
            UNIQUE (message_uuid, status, timestamp)
        );

        CREATE TABLE message_status (
            message_uuid TEXT PRIMARY KEY,
            status TEXT NOT NULL,          -- current status, never regresses
            final INTEGER NOT NULL,
            conflict INTEGER NOT NULL DEFAULT 0,
            duplicates INTEGER NOT NULL DEFAULT 0,
            first_seen REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX message_status_updated ON message_status (updated_at);

        CREATE TABLE dead_letters (
            id INTEGER PRIMARY KEY,
            received_at REAL NOT NULL,
            route TEXT NOT NULL,
            reason TEXT NOT NULL,
            body BLOB NOT NULL
        );

        CREATE TABLE inbound (
            id INTEGER PRIMARY KEY,
            message_uuid TEXT NOT NULL UNIQUE,
            from_number TEXT,
            to_number TEXT,
            text TEXT,
            timestamp TEXT,
            received_at REAL NOT NULL,
            body TEXT NOT NULL
        );

        CREATE TABLE listeners (
            pid INTEGER PRIMARY KEY,
            local_url TEXT NOT NULL,
            public_url TEXT,
            started_at REAL NOT NULL,
            heartbeat_at REAL NOT NULL
        );
        """,
    )


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run each complete statement in the migration's transaction. Not executescript(): it COMMITs
    first. Split by `sqlite3.complete_statement`, not on `;`, which may sit inside a string."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete statement in a migration: {statement.strip()[:60]}")


def m002_drop_unused_status_index(conn: sqlite3.Connection) -> None:
    """No query orders by message_status.updated_at; the index cost the listener ~11 µs an event."""
    conn.execute("DROP INDEX IF EXISTS message_status_updated")


def m003_listener_host(conn: sqlite3.Connection) -> None:
    """Which machine a listener runs on, so its process can be checked before it is trusted."""
    conn.execute("ALTER TABLE listeners ADD COLUMN host TEXT")


def m004_message_identity(conn: sqlite3.Connection) -> None:
    """Each send is its own row, keyed by a local id and then by message_uuid, never by client_ref.

    People reuse references (an order number on a retry, a campaign tag), and a mock API may answer
    every send with one uuid: neither may merge two sends. Bulk rows are found by (batch, row). The
    text may be NULL (SMSCTL_STORE_TEXT=false). Every existing row is carried over, ids included.
    """
    _run_script(
        conn,
        """
        CREATE TABLE messages_v4 (
            id INTEGER PRIMARY KEY,
            client_ref TEXT NOT NULL,
            message_uuid TEXT,
            to_number TEXT NOT NULL,
            from_number TEXT NOT NULL,
            text TEXT,
            encoding TEXT NOT NULL,
            segments INTEGER NOT NULL,
            batch_id TEXT,
            batch_row INTEGER,
            state TEXT NOT NULL,           -- local: pending | accepted | refused | unsent | unknown
            error TEXT,
            repeated_uuid INTEGER NOT NULL DEFAULT 0,  -- the API gave another send this uuid too
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        INSERT INTO messages_v4 (id, client_ref, message_uuid, to_number, from_number, text, encoding,
                                 segments, batch_id, batch_row, state, error, created_at, updated_at)
            SELECT id, client_ref, message_uuid, to_number, from_number, text, encoding, segments,
                   batch_id, batch_row, state, error, created_at, updated_at FROM messages;
        DROP TABLE messages;
        ALTER TABLE messages_v4 RENAME TO messages;
        CREATE INDEX messages_client_ref ON messages (client_ref);
        CREATE INDEX messages_uuid ON messages (message_uuid);
        CREATE UNIQUE INDEX messages_batch_row ON messages (batch_id, batch_row) WHERE batch_id IS NOT NULL;
        CREATE INDEX messages_created ON messages (created_at);
        """,
    )


def m005_listener_heartbeat_interval(conn: sqlite3.Connection) -> None:
    """Each listener says how often it beats, so it is judged gone after missing a few of its own."""
    conn.execute("ALTER TABLE listeners ADD COLUMN heartbeat_every REAL NOT NULL DEFAULT 2.0")


def m006_forwarding(conn: sqlite3.Connection) -> None:
    """The forwarding outbox (`listen --forward-to`), and each event's original token (`replay
    --original-token`). An outbox row is written in the commit that stores its event, so a forward
    is never lost and never made for an event that was not stored."""
    _run_script(conn, FORWARDS_TABLE.format(id="INTEGER PRIMARY KEY", real="REAL", blob="BLOB"))
    conn.execute("ALTER TABLE events ADD COLUMN token TEXT")
    conn.execute("ALTER TABLE inbound ADD COLUMN token TEXT")


def m007_sequential_event_keys(conn: sqlite3.Connection) -> None:
    """Each message gets a sequential id, and its events are keyed by that id, not by its UUID.

    A message's events arrive seconds apart, so inserts into the events' unique index land on the
    index's newest pages, which a group commit shares, instead of one random page per event: the
    listener's writer dirties one random page an event (the message's status row) instead of two.
    Every row is carried over, event ids included (the forwarding outbox and exports refer to them).
    It rewrites both tables once: ~1.2 s per 100,000 events (25 s for a store of two million, measured),
    during which other processes find the store locked, so a big store says so before it starts.
    """
    events = conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]  # O(log n), unlike COUNT
    if events >= LONG_UPGRADE_EVENTS:
        log.warning(
            "upgrading this store's event index once (%s events, about %.0f s); other smsctl commands"
            " wait for it or report the store busy until it finishes",
            f"{events:,}",
            events / UPGRADE_EVENTS_PER_SECOND,
        )
    finals = ", ".join(f"'{status}'" for status in sorted(FINAL_STATUSES))
    _run_script(
        conn,
        f"""
        CREATE TABLE message_status_v7 (
            id INTEGER PRIMARY KEY,
            message_uuid TEXT NOT NULL UNIQUE,
            status TEXT NOT NULL,          -- current status, never regresses
            final INTEGER NOT NULL,
            conflict INTEGER NOT NULL DEFAULT 0,
            duplicates INTEGER NOT NULL DEFAULT 0,
            first_seen REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        INSERT INTO message_status_v7 (message_uuid, status, final, conflict, duplicates, first_seen, updated_at)
            SELECT message_uuid, status, final, conflict, duplicates, first_seen, updated_at
            FROM message_status ORDER BY first_seen, message_uuid;
        -- An event whose message had no status row (none is written that way; kept safe anyway)
        INSERT INTO message_status_v7 (message_uuid, status, final, first_seen, updated_at)
            SELECT e.message_uuid, e.status, e.status IN ({finals}), MIN(e.received_at), MAX(e.received_at)
            FROM events e WHERE NOT EXISTS (SELECT 1 FROM message_status s WHERE s.message_uuid = e.message_uuid)
            GROUP BY e.message_uuid;
        CREATE TABLE events_v7 (
            id INTEGER PRIMARY KEY,
            msg_id INTEGER NOT NULL,       -- message_status.id
            message_uuid TEXT NOT NULL,
            status TEXT NOT NULL,
            timestamp TEXT NOT NULL,       -- Vonage's event time, as sent
            received_at REAL NOT NULL,
            to_number TEXT,
            from_number TEXT,
            client_ref TEXT,
            error_code TEXT,
            error_detail TEXT,
            price TEXT,
            currency TEXT,
            segments TEXT,
            anomaly TEXT,                  -- late | conflicting_final | unknown_status | bad_timestamp
            body TEXT NOT NULL,
            token TEXT,
            UNIQUE (msg_id, status, timestamp)
        );
        INSERT INTO events_v7 (id, msg_id, message_uuid, status, timestamp, received_at, to_number, from_number,
                               client_ref, error_code, error_detail, price, currency, segments, anomaly, body, token)
            SELECT e.id, s.id, e.message_uuid, e.status, e.timestamp, e.received_at, e.to_number, e.from_number,
                   e.client_ref, e.error_code, e.error_detail, e.price, e.currency, e.segments, e.anomaly, e.body,
                   e.token
            FROM events e JOIN message_status_v7 s ON s.message_uuid = e.message_uuid;
        DROP TABLE events;
        ALTER TABLE events_v7 RENAME TO events;
        DROP TABLE message_status;
        ALTER TABLE message_status_v7 RENAME TO message_status;
        """,
    )


def m008_forward_routes(conn: sqlite3.Connection) -> None:
    """Forwards belong to a route (target and options), and wait explicitly behind an earlier one of
    their message (schema.FORWARD_ROUTES); a lease is folded into `next_at`."""
    _run_script(conn, FORWARD_ROUTES.format(bool="INTEGER", false="0", true="1", greatest="MAX"))


def m009_app_urls(conn: sqlite3.Connection) -> None:
    """The application's own webhook URLs and those smsctl listeners set (`listen --update-app`)."""
    _run_script(conn, APP_URLS.format(real="REAL"))


def m010_reconcile(conn: sqlite3.Connection) -> None:
    """Events' source and Reports API details, a message's `via`, the open-messages index, leases."""
    _run_script(conn, RECONCILE.format(real="REAL", false="0"))


def m011_optouts(conn: sqlite3.Connection) -> None:
    """The opt-out ledger and its history; a send's override of it (schema.OPTOUTS)."""
    _run_script(conn, OPTOUTS.format(bool="INTEGER", real="REAL", id="INTEGER PRIMARY KEY", false="0"))


def m012_send_counts(conn: sqlite3.Connection) -> None:
    """Messages per UTC day and per batch, for the send caps (schema.SEND_COUNTS)."""
    _run_script(conn, SEND_COUNTS)


def m013_destination_country(conn: sqlite3.Connection) -> None:
    """A send's destination country, indexed (schema.DESTINATION_COUNTRY); earlier sends have none."""
    _run_script(conn, DESTINATION_COUNTRY)


def m014_folded_events(conn: sqlite3.Connection) -> None:
    """Each message's events folded onto its status row, kept by a trigger (schema.FOLDED_COLUMNS)."""
    for column in FOLDED_COLUMNS:
        conn.execute(f"ALTER TABLE message_status ADD COLUMN {column.format(real='REAL')}")
    names = ", ".join(FOLD_FROM)
    conn.execute(
        f"""UPDATE message_status SET ({names}) = (SELECT {folded_backfill(SQLITE_EPOCH.format(p=""), SQLITE_PRICE_OK)}
            FROM events WHERE events.msg_id = message_status.id)"""
    )
    _create_fold_trigger(conn)


def _create_fold_trigger(conn: sqlite3.Connection) -> None:
    conn.execute(
        f"""CREATE TRIGGER events_fold AFTER INSERT ON events BEGIN
            UPDATE message_status SET {folded_sets(SQLITE_EPOCH.format(p="NEW."), SQLITE_PRICE_OK)} WHERE id = NEW.msg_id;
        END"""
    )


def m015_folded_prices_are_numbers(conn: sqlite3.Connection) -> None:
    """Fold only prices that are plain decimals (schema.SQLITE_PRICE_OK): the trigger again, and each
    folded price worked out again from its events (m014 folded any text)."""
    conn.execute("DROP TRIGGER events_fold")
    _create_fold_trigger(conn)
    ok = SQLITE_PRICE_OK.format(c="price")
    conn.execute(
        f"""UPDATE message_status SET price = (SELECT MAX(CASE WHEN {ok} THEN price END) FROM events
            WHERE events.msg_id = message_status.id) WHERE price IS NOT NULL"""
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    m001_initial,
    m002_drop_unused_status_index,
    m003_listener_host,
    m004_message_identity,
    m005_listener_heartbeat_interval,
    m006_forwarding,
    m007_sequential_event_keys,
    m008_forward_routes,
    m009_app_urls,
    m010_reconcile,
    m011_optouts,
    m012_send_counts,
    m013_destination_country,
    m014_folded_events,
    m015_folded_prices_are_numbers,
]


KNOWN = frozenset(m.__name__ for m in MIGRATIONS)


class NotOurs(Exception):
    """The database is not an smsctl store, or one from a newer smsctl: leave it untouched."""


def applied(conn: sqlite3.Connection) -> set[str] | None:
    """The migrations this database has had; None for an empty database. NotOurs for one that has
    tables but is not an smsctl store (another application's), or has migrations we do not know."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return None
    if "_smsctl_migrations" not in tables:
        raise NotOurs("it holds tables but is not an smsctl store (another application's database?)")
    names = {row[0] for row in conn.execute("SELECT name FROM _smsctl_migrations")}
    if unknown := names - KNOWN:
        raise NotOurs(f"it was written by a newer smsctl (migration {sorted(unknown)[0]}): upgrade smsctl")
    return names


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations this database has not had yet, all in one write transaction; their names.

    The transaction starts with BEGIN IMMEDIATE, before anything is read, so processes opening a new
    store at the same moment queue on the lock and the later ones find every migration applied.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        done = applied(conn) or set()
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _smsctl_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        names = []
        for migration in MIGRATIONS:
            if migration.__name__ not in done:
                migration(conn)
                conn.execute(
                    "INSERT INTO _smsctl_migrations (name, applied_at) VALUES (?, ?)",
                    (migration.__name__, time.time()),
                )
                names.append(migration.__name__)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return names
