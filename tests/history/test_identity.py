"""Message identity: each send is its own row; references may repeat; a uuid may come back twice; an
accepted send the store cannot record is never reported as unsent; old stores carry over intact."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from smsctl.history.sqlite import Store
from tests.helpers import BackgroundSandbox, StaticApi, stored

runner = CliRunner()
FIXTURE = Path(__file__).parents[1] / "fixtures" / "store-c15c868.db"  # made by the release before m004


def test_a_reused_client_ref_keeps_both_messages(on_backend: object, sandbox: BackgroundSandbox) -> None:
    first = runner.invoke(app, ["send", "+14155550101", "one", "--client-ref", "order-42"])
    second = runner.invoke(app, ["send", "+14155550102", "two", "--client-ref", "order-42"])
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    for result, to in ((first, "+14155550101"), (second, "+14155550102")):
        status = runner.invoke(app, ["status", result.stdout.strip(), "--json"])
        assert status.exit_code == 0, status.output
        shown = json.loads(status.stdout)
        assert (shown["to"], shown["client_ref"], shown["local_state"]) == (to, "order-42", "accepted")


def test_the_same_uuid_twice_keeps_both_sends_and_warns(on_backend: object,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    uuid = "99999999-0000-4000-8000-000000000001"
    with StaticApi(lambda n: uuid) as api:
        monkeypatch.setenv("VONAGE_API_URL", api.url)
        first = runner.invoke(app, ["send", "+14155550101", "one"])
        second = runner.invoke(app, ["send", "+14155550102", "two"])
    assert first.exit_code == 0 and second.exit_code == 0, second.output
    assert first.stdout.strip() == second.stdout.strip() == uuid
    assert "an earlier send has too" not in first.stderr and "an earlier send has too" in second.stderr
    status = json.loads(runner.invoke(app, ["status", uuid, "--json"]).stdout)
    assert status["sends"] == 2 and status["to"] == "+14155550102"
    rows = json.loads(runner.invoke(app, ["log", "--json"]).stdout)
    assert [r["to"] for r in rows] == ["+14155550102", "+14155550101"]


def _lock_after(
    db_path: Path, request_number: int, held: threading.Event, release: threading.Event
) -> object:
    """A `before_answer` that takes the store's write lock when the API gets the n-th request."""

    def hold() -> None:
        conn = sqlite3.connect(db_path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait(60)
        conn.execute("ROLLBACK")
        conn.close()

    def before_answer(n: int) -> None:
        if n == request_number:
            threading.Thread(target=hold, daemon=True).start()
            held.wait(10)

    return before_answer


@pytest.mark.integration
@pytest.mark.integration
def test_accepted_but_unrecordable_is_sent_not_recorded_never_retry(
    credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch, db_path: Path
) -> None:
    monkeypatch.setenv("SMSCTL_BUSY_TIMEOUT", "0.05")
    monkeypatch.setenv("SMSCTL_RECORD_RETRY", "0.3")
    held, release = threading.Event(), threading.Event()
    uuids = [f"99999999-0000-4000-8000-00000000000{n}" for n in range(10)]
    with StaticApi(lambda n: uuids[n], _lock_after(db_path, 2, held, release)) as api:  # type: ignore[arg-type]
        monkeypatch.setenv("VONAGE_API_URL", api.url)
        assert runner.invoke(app, ["send", "+14155550101", "first"]).exit_code == 0  # makes the store
        result = runner.invoke(app, ["send", "+14155550101", "your code is 1234"])
        assert result.exit_code == 8, result.output
        assert result.stdout.strip() == uuids[2], "the accepted uuid is printed as data"
        assert "was sent (message_uuid" in result.stderr and "do NOT send it again" in result.stderr
        assert "retry shortly" not in result.stderr
        spool = Path(f"{db_path}.unrecorded")
        assert spool.exists() and spool.stat().st_mode & 0o777 == 0o600
        not_yet = runner.invoke(app, ["status", uuids[2]])
        assert not_yet.exit_code == 7 and "sent but not recorded yet" in not_yet.stderr
        release.set()
        assert runner.invoke(app, ["send", "+14155550101", "third"]).exit_code == 0  # any writer replays
    shown = json.loads(runner.invoke(app, ["status", uuids[2], "--json"]).stdout)
    assert shown["local_state"] == "accepted" and not spool.exists()


@pytest.mark.integration
@pytest.mark.integration
def test_bulk_stops_when_the_store_cannot_record_and_a_rerun_sends_nothing_twice(
    credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch, db_path: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("SMSCTL_BUSY_TIMEOUT", "0.05")
    monkeypatch.setenv("SMSCTL_RECORD_RETRY", "0.3")
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("".join(f"+1415555010{n}\n" for n in range(6)))
    held, release = threading.Event(), threading.Event()
    with StaticApi(
        lambda n: f"88888888-0000-4000-8000-00000000000{n}", _lock_after(db_path, 3, held, release)
    ) as api:  # type: ignore[arg-type]
        monkeypatch.setenv("VONAGE_API_URL", api.url)
        args = ["bulk", str(numbers), "hi", "--concurrency", "1", "--rate", "0", "--json"]
        first = runner.invoke(app, args)
        assert first.exit_code == 8, first.output
        assert len(api.bodies) == 3, "the batch stops at the row it could not record"
        release.set()
        second = runner.invoke(app, args)
        assert second.exit_code == 0, second.output
        summary = json.loads(second.stdout.splitlines()[-1])
        assert summary["counts"] == {"already_sent": 3, "accepted": 3}
    refs = [b["client_ref"] for b in api.bodies]
    assert len(refs) == 6 == len(set(refs)), "no row sent twice"


def test_a_store_from_the_previous_release_is_carried_over_whole(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    shutil.copy(FIXTURE, path)
    before = sqlite3.connect(path)
    old_rows = before.execute("SELECT id, client_ref, message_uuid, state, to_number, batch_id, batch_row"
                              " FROM messages ORDER BY id").fetchall()  # fmt: skip
    old_counts = {t: before.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                  for t in ("messages", "events", "message_status", "inbound", "dead_letters")}  # fmt: skip
    before.close()
    with Store(path) as store:
        assert store.counts() == {**old_counts, "optout_events": 0}  # a table the old release lacked
        new_rows = store.conn.execute("SELECT id, client_ref, message_uuid, state, to_number, batch_id, batch_row"
                                      " FROM messages ORDER BY id").fetchall()  # fmt: skip
        assert [tuple(r) for r in new_rows] == old_rows
        assert (
            store.message_in_batch("b0123456789a", 3).message_uuid == "11111111-0000-4000-8000-000000000004"
        )
        assert store.find_message("11111111-0000-4000-8000-000000000002").status == "rejected"
        # Its events were folded onto their status rows by the migration, so stats see them all: two
        # messages with a submitted and a final event (Vonage's times), two with a final one only.
        from smsctl.history.stats import StatsQuery

        figures = store.delivery_stats(StatsQuery(now=2e9))
        assert (figures.latency.count, figures.latency.vonage, figures.latency.received) == (4, 2, 2)
        assert figures.errors == {"1240": 1, "1260": 1}
        with store.transaction():  # client_ref is no longer unique
            store.conn.execute("INSERT INTO messages (client_ref, to_number, from_number, encoding, segments,"
                               " state, created_at, updated_at) VALUES ('order-42', '1', 'x', 'GSM-7', 1,"
                               " 'pending', 0, 0)")  # fmt: skip
    assert stored(path, lambda s: s.counts())["messages"] == old_counts["messages"] + 1
