"""The store's migrations: a blank database gets every one, once; a database from m001 is upgraded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from smsctl.migrations import MIGRATIONS, m001_initial, migrate
from smsctl.store import Store


def test_a_blank_store_gets_every_migration_once(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    names = [row[0] for row in conn.execute("SELECT name FROM _smsctl_migrations ORDER BY name")]
    assert names == [m.__name__ for m in MIGRATIONS]
    assert migrate(conn) == []  # re-running is a no-op
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_m001_store_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE _smsctl_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    m001_initial(conn)
    conn.execute("INSERT INTO _smsctl_migrations VALUES ('m001_initial', 0)")
    conn.close()
    Store(path).close()
    indexes = {
        row[0] for row in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='index'")
    }
    assert "message_status_updated" not in indexes and "messages_batch_row" in indexes


def test_every_connection_is_durable(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()
