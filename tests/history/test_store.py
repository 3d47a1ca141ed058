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
from smsctl.history.sqlite import Store
from smsctl.history.sqlite_migrations import MIGRATIONS, m001_initial, migrate
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
    db_path.chmod(0o644)
    before = db_path.read_bytes()
    for args in (["log"], ["status", "deadbeef"], ["send", "+14155550101", "hi"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 3, result.output
        assert "not an smsctl store" in result.stderr and "left untouched" in result.stderr
    assert db_path.read_bytes() == before
    assert db_path.stat().st_mode & 0o777 == 0o644, "refused first: not even its mode was changed"
    assert not Path(f"{db_path}-wal").exists(), "not even switched to WAL"


def test_a_file_that_is_not_a_database_is_refused_with_an_error_not_a_traceback(
    credentials: dict[str, str], db_path: Path, tmp_path: Path
) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_text("message_uuid,to,status\naaaa,14155550101,delivered\n")
    db_path.chmod(0o644)
    before = db_path.read_bytes()
    for args in (["log"], ["log", "--json"], ["status", "aaaa"], ["send", "+14155550101", "hi"],
                 ["db", "copy", str(db_path), str(tmp_path / "copy.db")]):  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 3, (args, result.output, result.exception)
        assert "file is not a database" in result.stderr, args
    assert db_path.read_bytes() == before and db_path.stat().st_mode & 0o777 == 0o644
    assert not (tmp_path / "copy.db").exists()


def test_a_store_from_a_newer_smsctl_is_refused(db_path: Path) -> None:
    Store(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("INSERT INTO _smsctl_migrations VALUES ('m999_from_the_future', 0)")
    with pytest.raises(StoreError, match="newer smsctl"):
        Store(db_path)
    with pytest.raises(StoreError, match="newer smsctl"):
        Store.reader(db_path)


@pytest.mark.integration
@pytest.mark.integration
def test_processes_opening_a_new_store_at_once_migrate_it_once(db_path: Path) -> None:
    code = "import sys; from smsctl.history.sqlite import Store; Store(sys.argv[1]).close()"
    processes = [subprocess.Popen([sys.executable, "-c", code, str(db_path)], stderr=subprocess.PIPE, text=True)
                 for _ in range(6)]  # fmt: skip
    # Wait for every process before asserting, so one failure does not leave the others running.
    outcomes = [(process.communicate(timeout=60)[1], process.returncode) for process in processes]
    assert [code for _, code in outcomes] == [0] * len(processes), [err for err, _ in outcomes]
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


def _without_write_access(directory: Path) -> list[str]:
    """Run a command that cannot write `directory`. Root (CI) ignores file modes, so it sees the
    directory through a read-only bind mount in a mount namespace of its own; another user (such as
    `nobody`) could not even read a checkout that lives under a private (0700) directory."""
    if os.geteuid() != 0:
        return []
    return ["unshare", "--mount", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(directory)]


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
            done = subprocess.run([*_without_write_access(directory), sys.executable, "-m", "smsctl", *args], env=env,
                                  capture_output=True, text=True, timeout=60, cwd=directory)  # fmt: skip
            assert done.returncode == code, done.stderr
            assert says in done.stdout
        refused = subprocess.run([*_without_write_access(directory), sys.executable, "-m", "smsctl", "send", "+14155550101", "x"],
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


def _m006_store(path: Path) -> sqlite3.Connection:
    """A store as smsctl left it before m007."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE _smsctl_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    for migration in MIGRATIONS[:6]:
        migration(conn)
        conn.execute("INSERT INTO _smsctl_migrations VALUES (?, 0)", (migration.__name__,))
    assert MIGRATIONS[5].__name__ == "m006_forwarding"
    return conn


@pytest.mark.parametrize("events", [99, 100])
def test_a_big_store_says_before_its_long_upgrade_starts(
    tmp_path: Path, events: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """m007 rewrites the events table: a store at the threshold is told how long, one below is not."""
    from smsctl.history import sqlite_migrations as migrations

    monkeypatch.setattr(migrations, "LONG_UPGRADE_EVENTS", 100)
    conn = _m006_store(tmp_path / "old.db")
    uuid = "aaaaaaaa-0000-4000-8000-000000000001"
    conn.execute("INSERT INTO message_status (message_uuid, status, final, first_seen, updated_at) VALUES (?, 'submitted', 0, 1, 1)", (uuid,))  # fmt: skip
    conn.executemany(
        "INSERT INTO events (message_uuid, status, timestamp, received_at, body) VALUES (?, 'submitted', ?, 1.0, '{}')",
        [(uuid, f"2026-11-30T12:00:00.{i:03d}Z") for i in range(events)],
    )
    conn.close()
    with caplog.at_level("WARNING", logger="smsctl.history.sqlite"), Store(tmp_path / "old.db") as store:
        assert store.counts()["events"] == events  # every event carried over either way
    said = [r.getMessage() for r in caplog.records if "upgrading" in r.getMessage()]
    assert said == ([] if events < 100 else [
        "upgrading this store's event index once (100 events, about 0 s); other smsctl commands"
        " wait for it or report the store busy until it finishes"])  # fmt: skip


def test_an_m006_store_keys_its_events_by_message_id_after_upgrading(tmp_path: Path) -> None:
    """m007: every row carried over (event ids too), deduplication unchanged, no index keyed by UUID."""
    import json

    from smsctl.history.events import parse_status

    path = tmp_path / "old.db"
    conn = _m006_store(path)
    a, b, orphan = (
        "aaaaaaaa-0000-4000-8000-000000000001",
        "bbbbbbbb-0000-4000-8000-000000000002",
        "cccc-orphan",
    )
    conn.executemany(
        "INSERT INTO message_status (message_uuid, status, final, duplicates, first_seen, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(b, "delivered", 1, 2, 5.0, 9.0), (a, "submitted", 0, 0, 1.0, 1.0)],
    )
    conn.executemany(
        "INSERT INTO events (id, message_uuid, status, timestamp, received_at, body, token) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(10, a, "submitted", "2026-11-30T12:00:01Z", 1.0, "{}", "t1"),
         (20, b, "submitted", "2026-11-30T12:00:01Z", 5.0, "{}", None),
         (30, b, "delivered", "2026-11-30T12:00:04Z", 9.0, "{}", None),
         (40, orphan, "rejected", "2026-11-30T12:00:04Z", 7.0, "{}", None)],
    )  # fmt: skip
    conn.close()

    with Store(path) as store:
        assert store.migrated == [
            "m007_sequential_event_keys",
            "m008_forward_routes",
            "m009_app_urls",
            "m010_reconcile",
            "m011_optouts",
            "m012_send_counts",
            "m013_destination_country",
            "m014_folded_events",
            "m015_folded_prices_are_numbers",
        ]
        ids = dict(store.conn.execute("SELECT message_uuid, id FROM message_status").fetchall())
        keyed = store.conn.execute("SELECT id, msg_id, token FROM events ORDER BY id").fetchall()
        assert [tuple(row) for row in keyed] == [(10, ids[a], "t1"), (20, ids[b], None), (30, ids[b], None),
                                                 (40, ids[orphan], None)]  # fmt: skip
        assert ids[a] < ids[b]  # numbered by first_seen
        current = store.current_status(b)
        assert current is not None and (current.status, current.final) == ("delivered", True)
        assert store.current_status(orphan) is not None  # a status row made from its event
        assert [e.status for e in store.timeline(b)] == ["submitted", "delivered"]

        def status(uuid: str, name: str, second: int) -> bytes:
            return json.dumps({"message_uuid": uuid, "status": name, "timestamp": f"2026-11-30T12:00:0{second}Z",
                               "to": "14155550101", "from": "x", "channel": "sms"}).encode()  # fmt: skip

        with store.transaction():
            again = store.apply_status(parse_status(status(a, "submitted", 1)), 11.0)
            final = store.apply_status(parse_status(status(a, "delivered", 4)), 12.0)
            fresh = store.apply_status(parse_status(status("dddd-new", "submitted", 1)), 13.0)
        assert again.duplicate and not final.duplicate and final.changed and fresh.changed
        assert [e.status for e in store.timeline(a)] == ["submitted", "delivered"]
        assert store.counts()["events"] == 6
        unique = [
            [col[2] for col in store.conn.execute(f"PRAGMA index_info('{index[1]}')")]
            for index in store.conn.execute("PRAGMA index_list('events')")
        ]
        assert unique == [["msg_id", "status", "timestamp"]]  # the only index: no random UUID keys
