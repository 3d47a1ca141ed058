"""The PostgreSQL backend's schema migrations; each runs once and is recorded in `_smsctl_migrations`.

PostgreSQL stores start at the schema SQLite reached through m001–m005, as one migration. They run
under a transaction-scoped advisory lock, so processes starting at once against a new database
queue on it and only the first one migrates. DDL is transactional here: a failed migration leaves
nothing behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from smsctl.history.schema import (
    APP_URLS,
    DESTINATION_COUNTRY,
    FOLD_FROM,
    FOLDED_COLUMNS,
    FORWARD_ROUTES,
    FORWARDS_TABLE,
    OPTOUTS,
    PG_EPOCH,
    PG_PRICE_OK,
    RECONCILE,
    SEND_COUNTS,
    folded_backfill,
    folded_sets,
)

if TYPE_CHECKING:
    import psycopg

# pg_advisory_xact_lock's key: any constant no other program on the database is likely to use.
MIGRATION_LOCK = 0x736D7363746C  # "smsctl"


def m001_initial(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Every table of the SQLite store, with PostgreSQL types; listeners keyed by host and pid,
    because a team's listeners run on many machines."""
    conn.execute(
        """
        CREATE TABLE messages (
            id BIGSERIAL PRIMARY KEY,
            client_ref TEXT NOT NULL,
            message_uuid TEXT,
            to_number TEXT NOT NULL,
            from_number TEXT NOT NULL,
            text TEXT,
            encoding TEXT NOT NULL,
            segments INTEGER NOT NULL,
            batch_id TEXT,
            batch_row INTEGER,
            state TEXT NOT NULL,
            error TEXT,
            repeated_uuid BOOLEAN NOT NULL DEFAULT FALSE,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX messages_client_ref ON messages (client_ref);
        CREATE INDEX messages_uuid ON messages (message_uuid);
        CREATE UNIQUE INDEX messages_batch_row ON messages (batch_id, batch_row) WHERE batch_id IS NOT NULL;
        CREATE INDEX messages_created ON messages (created_at);

        CREATE TABLE events (
            id BIGSERIAL PRIMARY KEY,
            message_uuid TEXT NOT NULL,
            status TEXT NOT NULL,
            timestamp TEXT NOT NULL,
            received_at DOUBLE PRECISION NOT NULL,
            to_number TEXT,
            from_number TEXT,
            client_ref TEXT,
            error_code TEXT,
            error_detail TEXT,
            price TEXT,
            currency TEXT,
            segments TEXT,
            anomaly TEXT,
            body TEXT NOT NULL,
            token TEXT,                    -- the original bearer token (`replay --original-token`)
            UNIQUE (message_uuid, status, timestamp)
        );

        CREATE TABLE message_status (
            id BIGSERIAL UNIQUE,
            message_uuid TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            final BOOLEAN NOT NULL,
            rank SMALLINT NOT NULL,        -- events.status_rank(status): statuses only move up it
            conflict BOOLEAN NOT NULL DEFAULT FALSE,
            duplicates INTEGER NOT NULL DEFAULT 0,
            first_seen DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        );

        CREATE TABLE dead_letters (
            id BIGSERIAL PRIMARY KEY,
            received_at DOUBLE PRECISION NOT NULL,
            route TEXT NOT NULL,
            reason TEXT NOT NULL,
            body BYTEA NOT NULL
        );
        CREATE INDEX dead_letters_received ON dead_letters (received_at);

        CREATE TABLE inbound (
            id BIGSERIAL PRIMARY KEY,
            message_uuid TEXT NOT NULL UNIQUE,
            from_number TEXT,
            to_number TEXT,
            text TEXT,
            timestamp TEXT,
            received_at DOUBLE PRECISION NOT NULL,
            body TEXT NOT NULL,
            token TEXT
        );

        CREATE TABLE listeners (
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            local_url TEXT NOT NULL,
            public_url TEXT,
            started_at DOUBLE PRECISION NOT NULL,
            heartbeat_at DOUBLE PRECISION NOT NULL,
            heartbeat_every DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (host, pid)
        );
        """
    )


def m002_apply_status_function(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Applying a status event in one round trip instead of three: lock or create the message's
    status row, flag the anomaly, insert the event (or count a duplicate), move the status forward.

    The rules are the SQLite backend's (events.anomaly_of, status_rank); the caller passes the
    event's rank and the facts about it, so the ranking itself is decided in Python only. The
    listener tests run on both backends and hold them to the same results.
    """
    conn.execute(
        """
        CREATE OR REPLACE FUNCTION smsctl_apply_status(
            p_uuid TEXT, p_status TEXT, p_rank SMALLINT, p_final BOOLEAN, p_bad_time BOOLEAN,
            p_unreadable BOOLEAN, p_timestamp TEXT, p_received DOUBLE PRECISION, p_to TEXT,
            p_from TEXT, p_client_ref TEXT, p_error_code TEXT, p_error_detail TEXT, p_price TEXT,
            p_currency TEXT, p_segments TEXT, p_body TEXT, p_token TEXT,
            OUT o_duplicate BOOLEAN, OUT o_status TEXT, OUT o_final BOOLEAN, OUT o_anomaly TEXT,
            OUT o_changed BOOLEAN)
        LANGUAGE plpgsql AS $fn$
        DECLARE
            cur_status TEXT;
            cur_final BOOLEAN;
            cur_rank SMALLINT;
            advance BOOLEAN;
        BEGIN
            SELECT status, final, rank INTO cur_status, cur_final, cur_rank
                FROM message_status WHERE message_uuid = p_uuid FOR UPDATE;
            IF NOT FOUND THEN
                INSERT INTO message_status (message_uuid, status, final, rank, first_seen, updated_at)
                    VALUES (p_uuid, p_status, p_final, p_rank, p_received, p_received)
                    ON CONFLICT (message_uuid) DO NOTHING;
                IF FOUND THEN
                    o_anomaly := CASE WHEN p_bad_time THEN 'bad_timestamp'
                                      WHEN p_rank = 0 THEN 'unknown_status'
                                      WHEN p_unreadable THEN 'unreadable_fields' END;
                    INSERT INTO events (message_uuid, status, timestamp, received_at, to_number,
                            from_number, client_ref, error_code, error_detail, price, currency,
                            segments, anomaly, body, token)
                        VALUES (p_uuid, p_status, p_timestamp, p_received, p_to, p_from, p_client_ref,
                            p_error_code, p_error_detail, p_price, p_currency, p_segments, o_anomaly, p_body,
                            p_token)
                        ON CONFLICT (message_uuid, status, timestamp) DO NOTHING;
                    o_duplicate := FALSE; o_status := p_status; o_final := p_final; o_changed := TRUE;
                    RETURN;
                END IF;
                -- Another listener created it meanwhile; it has committed: lock it and go on.
                SELECT status, final, rank INTO cur_status, cur_final, cur_rank
                    FROM message_status WHERE message_uuid = p_uuid FOR UPDATE;
            END IF;
            o_anomaly := CASE WHEN p_bad_time THEN 'bad_timestamp'
                              WHEN p_rank = 0 THEN 'unknown_status'
                              WHEN cur_final AND p_final AND p_status <> cur_status THEN 'conflicting_final'
                              WHEN p_rank < cur_rank THEN 'late'
                              WHEN p_unreadable THEN 'unreadable_fields' END;
            INSERT INTO events (message_uuid, status, timestamp, received_at, to_number, from_number,
                    client_ref, error_code, error_detail, price, currency, segments, anomaly, body, token)
                VALUES (p_uuid, p_status, p_timestamp, p_received, p_to, p_from, p_client_ref,
                    p_error_code, p_error_detail, p_price, p_currency, p_segments, o_anomaly, p_body, p_token)
                ON CONFLICT (message_uuid, status, timestamp) DO NOTHING;
            IF NOT FOUND THEN
                UPDATE message_status SET duplicates = duplicates + 1 WHERE message_uuid = p_uuid;
                o_duplicate := TRUE; o_status := cur_status; o_final := cur_final; o_anomaly := NULL;
                o_changed := FALSE;
                RETURN;
            END IF;
            advance := NOT cur_final AND p_rank > cur_rank;
            IF advance THEN
                UPDATE message_status SET status = p_status, final = p_final, rank = p_rank,
                    updated_at = p_received WHERE message_uuid = p_uuid;
            ELSIF o_anomaly = 'conflicting_final' THEN
                UPDATE message_status SET conflict = TRUE, updated_at = p_received WHERE message_uuid = p_uuid;
            END IF;
            o_duplicate := FALSE;
            o_status := CASE WHEN advance THEN p_status ELSE cur_status END;
            o_final := CASE WHEN advance THEN p_final ELSE cur_final END;
            o_changed := advance;
        END
        $fn$
        """
    )


def m003_forwarding(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """The forwarding outbox (as SQLite's m006)."""
    conn.execute(FORWARDS_TABLE.format(id="BIGSERIAL PRIMARY KEY", real="DOUBLE PRECISION", blob="BYTEA"))


def m004_forward_routes(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Forwards belong to a route, and wait explicitly behind an earlier one (as SQLite's m008)."""
    conn.execute(FORWARD_ROUTES.format(bool="BOOLEAN", false="false", true="true", greatest="GREATEST"))


def m005_app_urls(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """The application's own webhook URLs and those smsctl listeners set (as SQLite's m009)."""
    conn.execute(APP_URLS.format(real="DOUBLE PRECISION"))


def m006_reconcile(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Events' source and Reports API details, a message's `via`, the open-messages index (as SQLite's
    m010; the leases table is there for symmetry: PostgreSQL listeners take an advisory lock)."""
    conn.execute(RECONCILE.format(real="DOUBLE PRECISION", false="false"))


def m007_optouts(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """The opt-out ledger (as SQLite's m011)."""
    conn.execute(
        OPTOUTS.format(bool="BOOLEAN", real="DOUBLE PRECISION", id="BIGSERIAL PRIMARY KEY", false="false")
    )


def m008_send_counts(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Messages per UTC day and per batch, for the send caps (as SQLite's m012)."""
    conn.execute(SEND_COUNTS)


def m009_destination_country(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """A send's destination country, indexed (as SQLite's m013)."""
    conn.execute(DESTINATION_COUNTRY)


def m010_folded_events(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Each message's events folded onto its status row, kept by a trigger (as SQLite's m014)."""
    for column in FOLDED_COLUMNS:
        conn.execute(f"ALTER TABLE message_status ADD COLUMN {column.format(real='DOUBLE PRECISION')}")
    names = ", ".join(FOLD_FROM)
    conn.execute(
        f"""UPDATE message_status s SET ({names}) = ({", ".join(f"f.{c}" for c in FOLD_FROM)})
            FROM (SELECT message_uuid, {folded_backfill(PG_EPOCH.format(p=""), PG_PRICE_OK)} FROM events GROUP BY message_uuid) f
            WHERE f.message_uuid = s.message_uuid"""
    )
    _define_fold_function(conn)
    conn.execute(
        "CREATE TRIGGER events_fold AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION smsctl_fold_event()"
    )


def _define_fold_function(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.execute(
        f"""CREATE OR REPLACE FUNCTION smsctl_fold_event() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE vonage_at DOUBLE PRECISION := {PG_EPOCH.format(p="NEW.")};
        BEGIN
            UPDATE message_status SET {folded_sets("vonage_at", PG_PRICE_OK)}
            WHERE message_uuid = NEW.message_uuid;
            RETURN NULL;
        END $$"""
    )


def m011_folded_prices_are_numbers(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Fold only prices that are plain decimals (schema.PG_PRICE_OK), as SQLite's m015: the trigger's
    function again, and each folded price worked out again from its events (m010 folded any text)."""
    _define_fold_function(conn)
    conn.execute(
        f"""UPDATE message_status s SET price = f.price
            FROM (SELECT message_uuid, MAX(CASE WHEN {PG_PRICE_OK.format(c="price")} THEN price END) AS price
                  FROM events WHERE price IS NOT NULL GROUP BY message_uuid) f
            WHERE f.message_uuid = s.message_uuid AND s.price IS DISTINCT FROM f.price"""
    )


MIGRATIONS: list[Callable[[psycopg.Connection[tuple[object, ...]]], None]] = [
    m001_initial,
    m002_apply_status_function,
    m003_forwarding,
    m004_forward_routes,
    m005_app_urls,
    m006_reconcile,
    m007_optouts,
    m008_send_counts,
    m009_destination_country,
    m010_folded_events,
    m011_folded_prices_are_numbers,
]
KNOWN = frozenset(m.__name__ for m in MIGRATIONS)


class NotOurs(Exception):
    """The database holds tables but no smsctl store, or one from a newer smsctl: leave it untouched."""


def applied(conn: psycopg.Connection[tuple[object, ...]]) -> set[str] | None:
    """The migrations this database has had; None when it has no smsctl store yet (tables of other
    applications are fine: a team may share a database, so ours are recognised by name)."""
    # pg_tables, not to_regclass(): a catalog query sees what other sessions committed while we
    # waited for the lock; the relation cache behind to_regclass() may not have caught up yet.
    present = {
        str(row[0])
        for row in conn.execute(
            "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema()"
            " AND tablename IN ('_smsctl_migrations', 'messages')"
        )
    }
    if "_smsctl_migrations" not in present:
        if "messages" in present:
            raise NotOurs("it has a `messages` table that is not smsctl's: use another database or schema")
        return None
    names = {str(row[0]) for row in conn.execute("SELECT name FROM _smsctl_migrations")}
    if unknown := names - KNOWN:
        raise NotOurs(f"it was written by a newer smsctl (migration {sorted(unknown)[0]}): upgrade smsctl")
    return names


def migrate(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """Apply the missing migrations in one transaction, under the advisory lock; their names."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        done = applied(conn) or set()
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _smsctl_migrations (name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION)"
        )
        names = []
        for migration in MIGRATIONS:
            if migration.__name__ not in done:
                migration(conn)
                conn.execute(
                    "INSERT INTO _smsctl_migrations (name, applied_at) VALUES (%s, %s)",
                    (migration.__name__, time.time()),
                )
                names.append(migration.__name__)
    return names
