"""The store's migrations: a blank database gets every one, once; a database from m001 is upgraded."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from smsctl.errors import StoreError
from smsctl.migrations import MIGRATIONS, m001_initial, migrate
from smsctl.store import Store
from tests.helpers import BackgroundSandbox, stored

runner = CliRunner()


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


def test_another_applications_database_is_refused_and_left_untouched(
    credentials: dict[str, str], db_path: Path
) -> None:
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, phone TEXT)")
    conn.execute("INSERT INTO customers (phone) VALUES ('+14155550101')")
    conn.commit()
    conn.close()
    before = db_path.read_bytes()
    for args in (["log"], ["status", "deadbeef"], ["send", "+14155550101", "hi"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 3, result.output
        assert "not an smsctl store" in result.stderr and "left untouched" in result.stderr
    assert db_path.read_bytes() == before
    assert not Path(f"{db_path}-wal").exists(), "not even switched to WAL"


def test_a_store_from_a_newer_smsctl_is_refused(db_path: Path) -> None:
    Store(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("INSERT INTO _smsctl_migrations VALUES ('m999_from_the_future', 0)")
    with pytest.raises(StoreError, match="newer smsctl"):
        Store(db_path)
    with pytest.raises(StoreError, match="newer smsctl"):
        Store.reader(db_path)


def test_processes_opening_a_new_store_at_once_migrate_it_once(db_path: Path) -> None:
    code = "import sys; from smsctl.store import Store; Store(sys.argv[1]).close()"
    processes = [subprocess.Popen([sys.executable, "-c", code, str(db_path)], stderr=subprocess.PIPE, text=True)
                 for _ in range(6)]  # fmt: skip
    for process in processes:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
    names = [row[0] for row in sqlite3.connect(db_path).execute("SELECT name FROM _smsctl_migrations")]
    assert sorted(names) == sorted(m.__name__ for m in MIGRATIONS)


def test_readers_never_create_a_store(credentials: dict[str, str], db_path: Path) -> None:
    assert runner.invoke(app, ["log"]).exit_code == 0
    assert runner.invoke(app, ["status", "deadbeef"]).exit_code == 7
    assert runner.invoke(app, ["batch", "bnope"]).exit_code == 7
    assert not db_path.exists() and not db_path.parent.exists()


def test_the_store_is_private(sandbox: BackgroundSandbox, db_path: Path) -> None:
    Store(db_path).close()
    assert db_path.parent.stat().st_mode & 0o777 == 0o700
    assert db_path.stat().st_mode & 0o777 == 0o600
    db_path.chmod(0o644)
    result = runner.invoke(app, ["send", "+14155550101", "hi", "--from", "Acme"])  # opens it for writing
    assert "was readable by other users (mode 644); it is now 600" in result.stderr
    assert db_path.stat().st_mode & 0o777 == 0o600


def _as_another_user() -> list[str]:
    """Run a command without write access to files we own: as `nobody` when we are root (CI)."""
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if os.geteuid() == 0 else []


def test_a_read_only_store_can_still_be_read_and_writers_say_read_only(
    sandbox: BackgroundSandbox, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = Path(tempfile.mkdtemp(prefix="smsctl-ro-"))  # outside pytest's 0700 tree
    try:
        db = directory / "smsctl.db"
        key = directory / "private.key"  # readable by the other user too: this test is about the store
        shutil.copy(os.environ["VONAGE_PRIVATE_KEY_PATH"], key)
        key.chmod(0o644)
        env = {**os.environ, "SMSCTL_DB": str(db), "VONAGE_PRIVATE_KEY_PATH": str(key)}
        sent = subprocess.run([sys.executable, "-m", "smsctl", "send", "+14155550101", "kept"], env=env,
                              capture_output=True, text=True, timeout=60, cwd=directory)  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        directory.chmod(0o755)
        db.chmod(0o644 if os.geteuid() == 0 else 0o444)
        if os.geteuid() != 0:
            directory.chmod(0o555)
        for args, code, says in ((["log", "--json"], 0, sent.stdout.strip()),
                                 (["status", sent.stdout.strip()], 0, "accepted")):  # fmt: skip
            done = subprocess.run([*_as_another_user(), sys.executable, "-m", "smsctl", *args], env=env,
                                  capture_output=True, text=True, timeout=60, cwd=directory)  # fmt: skip
            assert done.returncode == code, done.stderr
            assert says in done.stdout
        refused = subprocess.run([*_as_another_user(), sys.executable, "-m", "smsctl", "send", "+14155550101", "x"],
                                 env=env, capture_output=True, text=True, timeout=60, cwd=directory)  # fmt: skip
        assert refused.returncode == 3, refused.stderr
        assert "read-only" in refused.stderr and "retry shortly" not in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        directory.chmod(0o755)
        shutil.rmtree(directory)


def test_a_listener_is_judged_by_its_own_heartbeat_interval(db_path: Path) -> None:
    import time

    with Store(db_path) as store, store.transaction():
        now = time.time()
        store.conn.execute(
            "INSERT INTO listeners (pid, host, local_url, started_at, heartbeat_at, heartbeat_every) VALUES"
            " (1, 'h', 'http://a', ?, ?, 0.1), (2, 'h', 'http://b', ?, ?, 2.0)",
            (now, now - 1.0, now, now - 1.0),  # both silent for 1 s: 10 missed beats vs half of one
        )
    assert [listener.pid for listener in stored(db_path, lambda s: s.fresh_listeners())] == [2]


def test_on_postgresql_listeners_are_judged_by_the_database_clock(pg_url: str) -> None:
    """Machines' clocks differ; every heartbeat and every judgement uses the server's."""
    import psycopg

    from smsctl.config import StoreKind, StoreLocation

    where = StoreLocation(StoreKind.POSTGRESQL, url=pg_url)
    stored(where, lambda s: s.counts())  # creates the store
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO listeners (pid, host, local_url, started_at, heartbeat_at, heartbeat_every)"
            " SELECT pid, 'h', url, now, now - 1.0, every FROM (VALUES (1, 'http://a', 0.1), (2, 'http://b', 2.0))"
            " AS l (pid, url, every), (SELECT extract(epoch FROM clock_timestamp()) AS now) AS t"
        )
    assert [listener.pid for listener in stored(where, lambda s: s.fresh_listeners())] == [2]
