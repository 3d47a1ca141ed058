"""Team mode: one PostgreSQL history shared by processes, against a real server the tests start.

The store-level and listener guarantees are proven on both backends by the parametrized tests in
test_listener.py and test_store.py; these are the ones only a shared server has: connection errors,
migrations racing, concurrent listeners, NOTIFY wake-ups, `db copy`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from smsctl.config import StoreKind, StoreLocation
from smsctl.history.backends import open_store
from smsctl.history.events import parse_status
from smsctl.history.interface import ReportDetails
from smsctl.history.optouts import OptoutChange, OptoutSource
from smsctl.history.writer import StoreWriter
from tests import warm
from tests.helpers import BackgroundSandbox, ListenProcess, signed_headers, stored, until
from tests.pg import PASSWORD, Cluster

runner = CliRunner()

# Every PostgreSQL migration, in order, as a new database gets them (written out, not read from the code).
ALL_MIGRATIONS = ["m001_initial", "m002_apply_status_function", "m003_forwarding", "m004_forward_routes",
                  "m005_app_urls", "m006_reconcile", "m007_optouts", "m008_send_counts",
                  "m009_destination_country", "m010_folded_events", "m011_folded_prices_are_numbers"]  # fmt: skip


def pg(url: str) -> StoreLocation:
    return StoreLocation(StoreKind.POSTGRESQL, url=url)


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def status(uuid: str, value: str, ts: str) -> bytes:
    body = {"message_uuid": uuid, "to": "14155550101", "from": "14155550199", "timestamp": ts,
            "status": value, "channel": "sms"}  # fmt: skip
    return json.dumps(body).encode()


# --- choosing the store, and errors that say what to fix -------------------------------------------


def test_config_shows_the_url_with_the_password_redacted(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSCTL_DB", pg_url + "?sslmode=disable&password=other-secret")
    result = runner.invoke(app, ["config", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)["SMSCTL_DB"]["value"]
    assert PASSWORD not in shown and "other-secret" not in shown
    assert shown.startswith("postgresql://postgres:•••@127.0.0.1:") and "password=•••" in shown


@pytest.mark.parametrize(
    ("where", "hint"),
    [
        ("unknown-host", "check the host name in SMSCTL_DB"),
        ("refused", "is running and reachable"),
        ("bad-password", "check the user and password in SMSCTL_DB"),
        ("no-database", "create the database"),
    ],
)
@pytest.mark.parametrize("command", [["log"], ["send", "+14155550101", "hi"]])
def test_a_database_that_cannot_be_reached_exits_3_naming_smsctl_db(
    pg_cluster: Cluster, credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    where: str, hint: str, command: list[str],
) -> None:  # fmt: skip
    secret = PASSWORD if where == "no-database" else "hunter2-" + where
    url = {
        "unknown-host": f"postgresql://team:{secret}@db.invalid:5432/sms",
        "refused": f"postgresql://team:{secret}@127.0.0.1:1/sms",
        "bad-password": pg_cluster.url(password=secret),
        "no-database": pg_cluster.url("no_such_db"),
    }[where]
    monkeypatch.setenv("SMSCTL_DB", url)
    monkeypatch.setenv("VONAGE_API_URL", "http://127.0.0.1:1")  # never reached: the store fails first
    result = runner.invoke(app, command)
    assert result.exit_code == 3, result.output
    assert "SMSCTL_DB=postgresql://" in result.stderr and hint in result.stderr
    assert secret not in result.output + result.stderr, "the password is never printed"


# --- migrations and readers ---------------------------------------------------------------------


def test_processes_opening_a_new_database_at_once_migrate_it_once(pg_url: str) -> None:
    code = "import sys; from smsctl.history.backends import open_store; open_store(sys.argv[1]).close()"
    processes = [subprocess.Popen([sys.executable, "-c", code, pg_url]) for _ in range(6)]
    assert [p.wait(timeout=60) for p in processes] == [0] * 6
    with psycopg.connect(pg_url) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM _smsctl_migrations").fetchall()]
    assert sorted(names) == ALL_MIGRATIONS


def test_readers_never_create_a_store(
    pg_url: str, credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSCTL_DB", pg_url)
    for command in (["log"], ["status", "aaaaaaaa-bbbb"], ["batch", "b1"]):
        runner.invoke(app, command)
    assert tables(pg_url) == set()


def test_a_database_with_another_applications_messages_table_is_refused_untouched(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE messages (id INT)")
    from smsctl.errors import StoreError

    with pytest.raises(StoreError, match="not usable as an smsctl store"):
        open_store(pg(pg_url))
    assert tables(pg_url) == {"messages"}


def test_a_store_from_a_newer_smsctl_is_refused(pg_url: str) -> None:
    open_store(pg(pg_url)).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO _smsctl_migrations VALUES ('m999_future', 0)")
    from smsctl.errors import StoreError

    with pytest.raises(StoreError, match="newer smsctl"):
        open_store(pg(pg_url))


# --- concurrent listeners -------------------------------------------------------------------------


def test_two_writers_committing_conflicting_events_at_once_never_regress(pg_url: str) -> None:
    """Two listeners (two writers, two connections) get the same messages' events in opposite
    orders at the same moment, with conflicting finals: one row per distinct event, the first
    final stands, the conflict is flagged, nothing regresses, no error reaches a handler."""
    uuids = [f"{i:08d}-aaaa-4bbb-8ccc-000000000000" for i in range(150)]
    one = [status(u, s, ts) for u in uuids for s, ts in (("submitted", "2025-01-01T00:00:01Z"),
                                                          ("delivered", "2025-01-01T00:00:02Z"))]  # fmt: skip
    other = [status(u, s, ts) for u in reversed(uuids) for s, ts in (("rejected", "2025-01-01T00:00:03Z"),
                                                                      ("submitted", "2025-01-01T00:00:01Z"))]  # fmt: skip
    writers = [StoreWriter(pg(pg_url)), StoreWriter(pg(pg_url))]
    errors: list[BaseException] = []
    start = threading.Barrier(len(writers) * 4)

    def feed(writer: StoreWriter, bodies: list[bytes]) -> None:
        start.wait()
        for body in bodies:
            event = parse_status(body)
            try:
                writer.run_sync(lambda s, e=event: s.apply_status(e, time.time()))  # type: ignore[misc]
            except BaseException as exc:  # noqa: BLE001 - collected and asserted on below
                errors.append(exc)

    threads = []
    for writer, bodies in zip(writers, (one, other), strict=True):
        for part in range(4):  # several handlers per listener, so each writer commits in groups
            threads.append(threading.Thread(target=feed, args=(writer, bodies[part::4])))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for writer in writers:
        writer.close()
    assert errors == []
    counts = stored(pg(pg_url), lambda s: s.counts())
    assert counts["events"] == 3 * len(uuids) and counts["message_status"] == len(uuids)
    for uuid in uuids[:: len(uuids) // 15]:
        current = stored(pg(pg_url), lambda s, u=uuid: s.current_status(u))  # type: ignore[misc]
        assert current is not None and current.final and current.status in ("delivered", "rejected")
        assert current.conflict, "two different finals arrived: flagged, the first stands"
        # "First" is the order the two writers took the message's row lock, not the handlers'
        # received_at: each writer stamps an event before queueing it, so a later stamp can commit
        # first. The final applied second is the one flagged as the conflict.
        finals = {e.status: e.anomaly for e in stored(pg(pg_url), lambda s, u=uuid: s.timeline(u))  # type: ignore[misc]
                  if e.status != "submitted"}  # fmt: skip
        loser = "rejected" if current.status == "delivered" else "delivered"
        assert finals == {current.status: None, loser: "conflicting_final"}


# --- end to end: listeners and waiters on several "machines" ---------------------------------------


def _other_machine(tmp_path: Path, name: str, env: dict[str, str]) -> dict[str, str]:
    """A second working directory and HOME: nothing shared with the first but the database."""
    home = tmp_path / name
    (home / "work").mkdir(parents=True)
    return {
        **os.environ,
        **env,
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "PYTHONUNBUFFERED": "1",
    }


def test_send_wait_on_another_machine_finishes_through_a_listener_it_did_not_start(
    pg_url: str, credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SMSCTL_DB", pg_url)
    with ListenProcess() as listener, BackgroundSandbox.from_environment(time_scale=0.05) as api:
        ready = listener.ready()
        assert ready["store"].startswith("postgresql://postgres:•••@") and ready["listeners"] == 1
        env = _other_machine(
            tmp_path, "ci-runner", {**credentials, "SMSCTL_DB": pg_url, "VONAGE_API_URL": api.url}
        )
        done = warm.run(
            [sys.executable, "-m", "smsctl", "send", "+14155550101", "from CI", "--wait", "--timeout", "30", "--json"],
            capture_output=True, text=True, env=env, cwd=Path(env["HOME"]) / "work", timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["status"] == "delivered"
        assert api.requests[-1].body["webhook_url"] == ready["status_url"], "the running listener's URL"
        assert f"smsctl listen at {ready['local_url']}" in done.stderr
        listener.stop()
    assert not (tmp_path / "ci-runner" / "data").exists(), "the second machine keeps no local store"


@pytest.mark.long
def test_two_listeners_one_killed_halfway_lose_and_double_nothing(
    pg_url: str, credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every event goes to both listeners (duplicates across instances); one is `kill -9`ed halfway,
    so what it never acknowledged reached only the other."""
    import asyncio

    import aiohttp

    monkeypatch.setenv("SMSCTL_DB", pg_url)
    uuids = [f"{i:08d}-bbbb-4ccc-8ddd-000000000000" for i in range(300)]
    bodies = [status(u, s, ts) for u in uuids for s, ts in (("submitted", "2025-01-01T00:00:01Z"),
                                                            ("delivered", "2025-01-01T00:00:02Z"))]  # fmt: skip

    async def deliver(urls: list[str], kill_after: int, victim: ListenProcess) -> list[bytes]:
        retry: list[bytes] = []
        async with aiohttp.ClientSession() as session:

            async def post(url: str, body: bytes) -> bool:
                try:
                    async with session.post(url, data=body, headers=signed_headers(body)) as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            for index, body in enumerate(bodies):
                if index == kill_after:
                    victim.process.kill()
                    victim.process.wait()
                ok = await asyncio.gather(*(post(url, body) for url in urls))
                if not ok[0]:
                    retry.append(body)
                assert ok[1], "the surviving listener acknowledges every event"
        return retry

    with ListenProcess() as first:
        first_url = first.ready()["status_url"]
        with ListenProcess() as second:
            urls = [first_url, second.ready()["status_url"]]
            assert second.ready()["listeners"] == 2, "a listener shows how many share the store"
            unacknowledged = asyncio.run(deliver(urls, len(bodies) // 2, first))
            assert len(unacknowledged) >= len(bodies) // 2 - 1
            second.stop()
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = _other_machine(tmp_path, "laptop", {"SMSCTL_DB": pg_url})
    log = warm.run([sys.executable, "-m", "smsctl", "log", "--json", "--limit", "1000"],
                         capture_output=True, text=True, env=env, cwd=cwd, timeout=60)  # fmt: skip
    assert log.returncode == 0, log.stderr
    messages = json.loads(log.stdout)
    assert len(messages) == len(uuids) and {m["status"] for m in messages} == {"delivered"}
    counts = stored(pg(pg_url), lambda s: s.counts())
    assert counts["events"] == len(bodies), "exactly one row per distinct event"


@pytest.mark.long
def test_send_wait_survives_a_database_restart(
    pg_cluster: Cluster, pg_url: str, credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The waiter's LISTEN connection drops with the server; it reconnects, re-reads, and finishes."""
    monkeypatch.setenv("SMSCTL_DB", pg_url)
    with ListenProcess() as listener, BackgroundSandbox.from_environment(time_scale=0.1) as api:
        health = listener.ready()["local_url"] + "/healthz"
        monkeypatch.setenv("VONAGE_API_URL", api.url)
        # The emulator's slow number: delivered 30 s × 0.1 after the send, after the pause (a status the
        # paused store refuses is retried by the emulator, so a slow pause still ends delivered).
        waiter = warm.popen(
            [sys.executable, "-m", "smsctl", "send", "+14155550130", "restart", "--wait", "--timeout", "60", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not api.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert api.requests, "the send reached the emulator"
        pg_cluster.pause()  # statuses arriving now get 503 from the listener; the emulator retries
        try:
            until(lambda: _get_json(health)["store_unavailable"] > 0, "the listener to answer 503")
        finally:
            pg_cluster.resume()
        out, err = waiter.communicate(timeout=90)
        assert waiter.returncode == 0, err
        assert json.loads(out)["status"] == "delivered"
        listener.stop()


def _get_json(url: str) -> Any:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


# --- db copy and db migrate ---------------------------------------------------------------------------


def _fill(where: StoreLocation | Path, messages: int) -> None:
    """A history with sends, statuses (one conflicting), inbound SMS and a dead letter."""
    from smsctl.history.events import parse_inbound
    from smsctl.history.interface import Attempt, LocalState

    store = open_store(where)
    try:
        with store.transaction():
            for i in range(messages):
                uuid = f"{i:08d}-cccc-4ddd-8eee-000000000000"
                local = store.record_attempt(Attempt(f"ref-{i % 7}", "14155550101", "SMSCTL", "code 1234", "text", 1,
                                                     "batch-1" if i % 2 else None, i if i % 2 else None,
                                                     i % 3 == 0, "US" if i % 5 else None))  # fmt: skip
                assert local is not None
                if i % 10 == 9:
                    store.mark_failed(local, LocalState.REFUSED, "422 invalid")
                    continue
                store.mark_accepted(local, uuid)
                for value, ts in (
                    ("submitted", "2025-01-01T00:00:01Z"),
                    ("delivered", "2025-01-01T00:00:02Z"),
                ):
                    store.apply_status(parse_status(status(uuid, value, ts)), time.time())
            store.apply_status(parse_status(status("00000000-cccc-4ddd-8eee-000000000000", "rejected",
                                                   "2025-01-01T00:00:03Z")), time.time())  # fmt: skip
            inbound = {"message_uuid": "in-1", "from": "14155550123", "to": "14155550199", "text": "STOP",
                       "timestamp": "2025-01-01T00:00:04Z", "channel": "sms", "message_type": "text"}  # fmt: skip
            store.add_inbound(parse_inbound(json.dumps(inbound).encode()), time.time())
            store.add_dead_letter("/webhooks/status", "not_json", b"\xff\xfe", time.time())
            for number, sender, out, source, at in (("14155550123", "*", True, "inbound", 1.0),
                                                     ("14155550123", "*", False, "manual", 2.0),
                                                     ("14155550124", "SMSCTL", True, "carrier", 3.0)):  # fmt: skip
                store.change_optout(OptoutChange(number, sender, out, OptoutSource(source), f"ref {at}", at))
            record = status("11111111-cccc-4ddd-8eee-000000000000", "delivered", "2025-01-01T00:00:05Z")
            store.apply_report(parse_status(record), time.time(), ReportDetails("Sandbox US", "US", 1234.0))
    finally:
        store.close()


def _log(db: str) -> list[dict[str, Any]]:
    result = runner.invoke(app, ["log", "--json", "--limit", "100000"], env={"SMSCTL_DB": db})
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def test_db_copy_sqlite_to_postgresql_and_back_is_whole_and_idempotent(pg_url: str, tmp_path: Path) -> None:
    source, back = tmp_path / "laptop.db", tmp_path / "back.db"
    _fill(source, 1_500)
    first = runner.invoke(app, ["db", "copy", str(source), pg_url, "--json"])
    assert first.exit_code == 0, first.output
    copied = json.loads(first.stdout)
    assert PASSWORD not in first.stdout + first.stderr
    counts = stored(source, lambda s: s.counts())
    assert {t: v["copied"] for t, v in copied["tables"].items()} == counts
    again = json.loads(runner.invoke(app, ["db", "copy", str(source), pg_url, "--json"]).stdout)
    assert again["copied"] == 0, "a rerun copies nothing twice"
    assert stored(pg(pg_url), lambda s: s.counts()) == counts
    assert runner.invoke(app, ["db", "copy", pg_url, str(back)]).exit_code == 0
    assert stored(back, lambda s: s.counts()) == counts
    assert _log(pg_url) == _log(str(source)) == _log(str(back))
    conflicted = stored(pg(pg_url), lambda s: s.current_status("00000000-cccc-4ddd-8eee-000000000000"))
    assert conflicted is not None and conflicted.conflict and conflicted.status == "delivered"
    dead = stored(pg(pg_url), lambda s: s.export_rows("dead_letters", 0, 10))
    assert dead[0][1][3] == b"\xff\xfe"
    for where in (pg(pg_url), back):  # a status from the Reports API stays one, with what it told
        [event] = stored(where, lambda s: s.events_of(["11111111-cccc-4ddd-8eee-000000000000"]))
        assert (event.source, event.network, event.country, event.latency_ms) == (
            "reports",
            "Sandbox US",
            "US",
            1234.0,
        )
        found = stored(where, lambda s: s.find_message("11111111-cccc-4ddd-8eee-000000000000"))
        assert found is not None and found.via == "reports"
    ledger = [stored(where, lambda s: (s.optouts(10, include_opted_in=True), s.optout_history("14155550123"),
                                       s.opted_out_among(["14155550123", "14155550124"], "SMSCTL")))
              for where in (source, pg(pg_url), back)]  # fmt: skip
    assert ledger[0] == ledger[1] == ledger[2] and ledger[0][2] == {
        "14155550124"
    }  # the opt-out ledger, whole
    sent = "SELECT optout_ignored, country FROM messages ORDER BY created_at, client_ref, to_number"
    flags = [stored(where, lambda s: [(bool(a), b) for a, b in s.conn.execute(sent).fetchall()])
             for where in (source, pg(pg_url), back)]  # fmt: skip
    assert flags[0] == flags[1] == flags[2] and {c for _, c in flags[0]} == {"US", None}


def test_db_copy_from_nothing_is_a_clear_error_and_creates_nothing(pg_url: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["db", "copy", str(tmp_path / "missing.db"), pg_url])
    assert result.exit_code == 7 and f"no smsctl store at {tmp_path / 'missing.db'}\n" in result.stderr
    assert tables(pg_url) == set() and not (tmp_path / "missing.db").exists()


def test_db_migrate_applies_once_and_then_says_current(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSCTL_DB", pg_url)
    first = runner.invoke(app, ["db", "migrate", "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["applied"] == ALL_MIGRATIONS
    second = runner.invoke(app, ["db", "migrate"])
    assert second.exit_code == 0 and "schema already current" in second.stdout


def test_postgresql_stopped_under_load_never_acknowledges_an_event_it_did_not_store(
    pg_cluster: Cluster, pg_url: str, credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent webhooks while the database stops and starts again: every 200 is a stored event,
    everything else is 503 (+ Retry-After), and what Vonage then retries is stored without a restart."""
    import asyncio

    import aiohttp

    monkeypatch.setenv("SMSCTL_DB", pg_url)
    bodies = [
        status(f"{i:08d}-dddd-4ccc-8ddd-000000000000", "submitted", "2025-01-01T00:00:01Z")
        for i in range(600)
    ]

    async def load(url: str, stop_at: int) -> dict[bytes, int]:
        answers: dict[bytes, int] = {}
        # The restart waits for the stop to finish: 150 quick 503s can come back while `pg_ctl stop`
        # still waits for the old server, and a new one started then makes that stop time out.
        stopped = asyncio.Event()
        async with aiohttp.ClientSession() as session:
            semaphore = asyncio.Semaphore(16)

            async def post(index: int, body: bytes) -> None:
                async with semaphore:
                    if index == stop_at:
                        await asyncio.to_thread(pg_cluster.pause)
                        stopped.set()
                    if index == stop_at + 150:
                        await stopped.wait()
                        await asyncio.to_thread(pg_cluster.resume)
                    async with session.post(url, data=body, headers=signed_headers(body)) as response:
                        answers[body] = response.status
                        if response.status == 503:
                            assert response.headers["Retry-After"]

            await asyncio.gather(*(post(i, b) for i, b in enumerate(bodies)))
        return answers

    try:
        with ListenProcess() as listener:
            url = listener.ready()["status_url"]
            answers = asyncio.run(load(url, stop_at=200))
            assert set(answers.values()) <= {200, 503} and 503 in answers.values() and 200 in answers.values()
            stored_now = {
                e.message_uuid
                for e in stored(
                    pg(pg_url), lambda s: s.events_of([json.loads(b)["message_uuid"] for b in bodies])
                )
            }
            acknowledged = {json.loads(b)["message_uuid"] for b, code in answers.items() if code == 200}
            assert acknowledged <= stored_now, "never a 2xx for an event that was not stored"
            retried = asyncio.run(load(url, stop_at=-1000))  # Vonage retries what got 503: all stored now
            assert set(retried.values()) == {200}
            listener.stop()
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            pg_cluster.resume()  # whatever happened, leave the session's server running
    assert stored(pg(pg_url), lambda s: s.counts())["events"] == len(bodies)


def test_status_and_log_read_a_shared_history_by_prefix_and_filter(
    pg_url: str, credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSCTL_DB", pg_url)
    uuids = {}
    with ListenProcess() as listener, BackgroundSandbox.from_environment(time_scale=0.01) as api:
        listener.ready()
        monkeypatch.setenv("VONAGE_API_URL", api.url)
        for to, ref in (("+14155550101", "ok-1"), ("+14155550110", "no-1")):
            result = runner.invoke(
                app, ["send", to, "team", "--client-ref", ref, "--wait", "--timeout", "30"]
            )
            assert result.exit_code in (0, 1), result.output
            uuids[ref] = result.stdout.split()[0]
        listener.stop()
    human = runner.invoke(app, ["status", uuids["no-1"][:8]])
    assert human.exit_code == 0 and uuids["no-1"] in human.stdout and "1240 Illegal Number" in human.stdout
    shown = json.loads(runner.invoke(app, ["status", uuids["ok-1"], "--json"]).stdout)
    assert (shown["status"], shown["client_ref"], [e["status"] for e in shown["events"]]) == (
        "delivered", "ok-1", ["submitted", "delivered"])  # fmt: skip
    rejected = json.loads(runner.invoke(app, ["log", "--status", "rejected", "--json"]).stdout)
    assert [r["message_uuid"] for r in rejected] == [uuids["no-1"]]
    assert runner.invoke(app, ["status", "%%%%%%%%"]).exit_code == 7, "LIKE wildcards are not a prefix"
