"""Bulk sending against the emulator: validation, pacing, 429 back-off, resume after kill -9, --wait."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from smsctl.config import StoreLocation
from tests import warm
from tests.helpers import BackgroundSandbox, stored

runner = CliRunner()
MIX = {"+14155550101": "delivered", "+14155550110": "rejected", "+14155550120": "undeliverable",
       "+14155550150": "delivered", "+14155550160": "delivered"}  # fmt: skip


def write_csv(path: Path, count: int, numbers: list[str] | None = None) -> Path:
    numbers = numbers or list(MIX)
    lines = ["to,name"] + [f"{numbers[i % len(numbers)]},Person {i}" for i in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return path


def bulk(*args: str) -> tuple[int, list[dict], str]:
    result = runner.invoke(app, ["bulk", *args, "--json"])
    return result.exit_code, [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def accepted_per_ref(sandbox: BackgroundSandbox) -> collections.Counter[str]:
    return collections.Counter(r.body["client_ref"] for r in sandbox.requests if r.status == 202)


@pytest.mark.long
def test_a_thousand_mixed_rows_to_their_final_status(on_backend: object, sandbox: BackgroundSandbox,
                                                    tmp_path: Path) -> None:  # fmt: skip
    csv = write_csv(tmp_path / "list.csv", 1000)
    code, lines, stderr = bulk(
        str(csv), "Hi {name}", "--rate", "0", "--concurrency", "20", "--wait", "--timeout", "60"
    )
    assert code == 1, stderr  # some messages are rejected or undeliverable by design
    rows = [line for line in lines if line["event"] == "row"]
    # Once the first 1240 (Illegal Number) has come back, +14155550110 is in the opt-out ledger and the
    # rest of its rows are suppressed, never sent (issue 23): how many depends on when it came back.
    suppressed = [r for r in rows if r["state"] == "suppressed"]
    assert len(rows) == 1000 and {r["state"] for r in rows} <= {"accepted", "suppressed"}
    assert {r["to"] for r in suppressed} <= {"+14155550110"}
    summary = lines[-1]
    assert summary["counts"] == {"accepted": 1000 - len(suppressed)} | (
        {"suppressed": len(suppressed)} if suppressed else {}
    )
    assert summary["final"] == {"delivered": 600, "rejected": 200 - len(suppressed), "undeliverable": 200}
    per_ref = accepted_per_ref(sandbox)
    assert len(per_ref) == 1000 - len(suppressed) and set(per_ref.values()) == {1}
    assert sandbox.requests[0].body["text"].startswith("Hi Person ")
    batch = json.loads(runner.invoke(app, ["batch", summary["batch_id"], "--json"]).stdout)
    assert batch["counts"] == {"delivered": 600, "rejected": 200 - len(suppressed), "undeliverable": 200} | (
        {"suppressed": len(suppressed)} if suppressed else {})  # fmt: skip
    assert {f["error_code"] for f in batch["failures"] if f["error_code"]} == {"1240", "1260"}


@pytest.mark.long
def test_the_rate_limit_holds(sandbox: BackgroundSandbox, tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "list.csv", 45, ["+14155550101"])
    code, _, stderr = bulk(str(csv), "paced", "--rate", "15", "--concurrency", "8")
    assert code == 0, stderr
    times = sorted(r.at for r in sandbox.requests)
    assert len(times) == 45
    # Starts are 1/15 s apart, so the 45 span 44/15 s and any 16 consecutive ones span a second. They are
    # timed here as the emulator receives them, and on a loaded 2-core machine a request can arrive a
    # little late (the first also opens a connection), bunching it with the next: 0.25 s of that jitter
    # is allowed (CI once saw the first arrive 0.16 s late). An unpaced batch spans ~0.01 s.
    assert times[-1] - times[0] >= 44 / 15 - 0.25
    tightest = min(times[i + 15] - times[i] for i in range(len(times) - 15))
    assert tightest >= 0.75, tightest


@pytest.mark.long
@pytest.mark.integration
def test_429_slows_the_whole_batch(
    credentials: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = write_csv(tmp_path / "list.csv", 60, ["+14155550101"])
    with BackgroundSandbox.from_environment(rate=20) as running:
        monkeypatch.setenv("VONAGE_API_URL", running.url)
        code, lines, stderr = bulk(str(csv), "burst", "--rate", "0", "--concurrency", "20")
        assert code == 0, stderr
        statuses = collections.Counter(r.status for r in running.requests)
    assert statuses[202] == 60 and statuses[429] > 0
    assert statuses[429] <= 60, "a 429 must pause every sender, not let each keep hammering"
    assert lines[-1]["throttle_pauses"] > 0


def test_invalid_rows_are_reported_and_nothing_is_sent(sandbox: BackgroundSandbox, tmp_path: Path) -> None:
    csv = tmp_path / "list.csv"
    csv.write_text("to,name\n+14155550101,Ann\n14155550101,Bob\n+1415555,Cy\n+14155550101,{oops\n")
    code, lines, stderr = bulk(str(csv), "Hi {name}")
    assert code == 2, stderr
    report = lines[0]
    assert report["event"] == "validation" and report["valid"] == 2
    errors = {bad["line"]: bad["error"] for bad in report["invalid"]}
    assert set(errors) == {3, 4}
    assert "not in E.164 form" in errors[3] and "not a valid number" in errors[4]
    error = json.loads(stderr.splitlines()[-1])["error"]  # JSON errors go to stderr; stdout holds data
    assert error["message"] == "2 of 4 rows are invalid (lines 3, 4); nothing was sent"
    assert sandbox.requests == []
    code, lines, _ = bulk(str(csv), "Hi {name} {missing}")
    assert code == 2 and "{missing} has no column" in lines[0]["invalid"][0]["error"]


def test_skip_invalid_sends_the_rest(sandbox: BackgroundSandbox, tmp_path: Path) -> None:
    csv = tmp_path / "list.csv"
    csv.write_text("to,text\n+14155550101,one\nbad,two\n+14155550101,\n")
    code, lines, stderr = bulk(str(csv), "--skip-invalid")
    assert code == 0, stderr
    assert [r.body["text"] for r in sandbox.requests] == ["one"]
    assert {bad["line"] for bad in lines[0]["invalid"]} == {3, 4}


def test_placeholders_cannot_reach_attributes(sandbox: BackgroundSandbox, tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "list.csv", 1)
    code, lines, _ = bulk(str(csv), "{name.__class__}")
    assert code == 2 and "not a plain column name" in lines[0]["invalid"][0]["error"]


def test_dry_run_reports_and_sends_nothing(sandbox: BackgroundSandbox, tmp_path: Path) -> None:
    plain = tmp_path / "numbers.txt"
    plain.write_text("# one number a line\n+14155550101\n\n+14155550110\n")
    code, lines, stderr = bulk(str(plain), "€" * 100, "--dry-run")
    assert code == 0, stderr
    report = lines[0]
    assert (report["rows"], report["valid"], report["segments"], report["encodings"]) == (
        2,
        2,
        4,
        {"GSM-7": 2},
    )
    assert sandbox.requests == []


def test_a_rerun_sends_nothing_twice(on_backend: object, sandbox: BackgroundSandbox, tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "list.csv", 30)
    first = bulk(str(csv), "once", "--rate", "0")
    second = bulk(str(csv), "once", "--rate", "0")
    assert first[0] == second[0] == 0
    assert second[1][-1]["counts"] == {"already_sent": 30}
    assert len(sandbox.requests) == 30


def test_kill_9_and_rerun_sends_no_row_twice(
    sandbox: BackgroundSandbox, tmp_path: Path, db_path: Path
) -> None:
    csv = write_csv(tmp_path / "list.csv", 400, ["+14155550101"])
    process = warm.popen([sys.executable, "-m", "smsctl", "bulk", str(csv), "resume me", "--rate", "150"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    deadline = time.monotonic() + 60
    while len(sandbox.requests) < 120 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    before = len(sandbox.requests)
    assert 120 <= before < 400, before

    code, lines, stderr = bulk(str(csv), "resume me", "--rate", "0")
    counts = lines[-1]["counts"]
    assert counts.get("already_sent", 0) + counts.get("accepted", 0) + counts.get("skipped_unknown", 0) == 400
    assert code == (5 if counts.get("skipped_unknown") else 0), stderr
    assert set(accepted_per_ref(sandbox).values()) == {1}, "no row may be accepted twice"

    states = collections.Counter(m.status for m in stored(db_path, lambda s: s.recent_messages(1000)))
    assert states["accepted"] == 400 - counts.get("skipped_unknown", 0)
    if counts.get("skipped_unknown"):  # rows in flight at the kill: resent only when asked
        code, lines, _ = bulk(str(csv), "resume me", "--rate", "0", "--resend-unknown")
        assert code == 0 and lines[-1]["counts"]["accepted"] == counts["skipped_unknown"]


def test_batch_for_an_unknown_id_exits_7(credentials: dict[str, str]) -> None:
    result = runner.invoke(app, ["batch", "nope"])
    assert result.exit_code == 7 and "no batch" in result.stderr


def test_log_filters_by_batch(on_backend: object, sandbox: BackgroundSandbox, tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "list.csv", 3)
    _, lines, _ = bulk(str(csv), "logged", "--batch-id", "mybatch")
    rows = json.loads(runner.invoke(app, ["log", "--batch", "mybatch", "--json"]).stdout)
    assert len(rows) == 3 and {r["batch_id"] for r in rows} == {"mybatch"}
    assert sorted(r["batch_row"] for r in rows) == [2, 3, 4]
    human = runner.invoke(app, ["batch", "mybatch"])
    assert human.exit_code == 0 and "3 messages" in human.stdout


def _bulk_process(csv: Path, *args: str) -> subprocess.Popen[str]:
    return warm.popen([sys.executable, "-m", "smsctl", "bulk", str(csv), "paced", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip


def _wait_for_requests(sandbox: BackgroundSandbox, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(sandbox.requests) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(sandbox.requests) >= count


@pytest.mark.long
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_rows_waiting_for_the_rate_limiter_are_plainly_unsent(
    sandbox: BackgroundSandbox, tmp_path: Path, db_path: Path, sig: signal.Signals
) -> None:
    """Ten workers, one request a second: nine rows wait their turn. Stopped there, they must not
    look "maybe sent" (the rerun would skip them, and --resend-unknown would double-send the rest)."""
    csv = write_csv(tmp_path / "list.csv", 10, ["+14155550101"])
    process = _bulk_process(csv, "--rate", "1")
    _wait_for_requests(sandbox, 2)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=30)
    if sig == signal.SIGTERM:
        assert process.returncode == 143, stderr
        assert "terminated" in stderr and "Traceback" not in stderr
        assert "Run the same command again to resume: rows already sent are never sent twice" in stderr
    reached = {r.body["client_ref"] for r in sandbox.requests}
    rows = stored(db_path, lambda s: s.recent_messages(100))
    maybe_sent = {m.client_ref for m in rows if m.status in ("pending", "unknown")}
    assert maybe_sent <= reached, "only a request that left can be 'maybe sent'"
    assert len(rows) <= len(reached) + 1, "rows still waiting for their turn are not recorded at all"

    code, lines, stderr = bulk(str(csv), "paced", "--rate", "0")
    counts = lines[-1]["counts"]
    assert counts.get("skipped_unknown", 0) <= 1 and counts.get("accepted", 0) >= 8, counts
    assert set(accepted_per_ref(sandbox).values()) == {1}, "no row may be accepted twice"


@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp: str(tmp / "missing.csv"), "cannot read"),
    (lambda tmp: str(tmp), "is a directory"),
])  # fmt: skip
def test_unreadable_input_is_a_usage_error(sandbox: BackgroundSandbox, tmp_path: Path, make: Any,
                                           message: str) -> None:  # fmt: skip
    result = runner.invoke(app, ["bulk", make(tmp_path), "hi"])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert sandbox.requests == []


def test_stdin_is_read_once(sandbox: BackgroundSandbox) -> None:
    result = runner.invoke(app, ["bulk", "-", "hi", "--json", "--rate", "0"],
                           input="to,name\n+14155550101,Ann\n+14155550102,Bob\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1])["counts"] == {"accepted": 2}
    assert sorted(r.body["to"] for r in sandbox.requests) == ["14155550101", "14155550102"]


def test_a_fifo_is_read_once_and_does_not_hang(sandbox: BackgroundSandbox, tmp_path: Path) -> None:
    """A FIFO (what `bulk <(…)` hands us) can be read only once: it is copied, not read twice."""
    import threading

    fifo = tmp_path / "numbers"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "w") as writer:
            writer.write("+14155550101\n+14155550102\n+14155550103\n")

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    process = warm.run([sys.executable, "-m", "smsctl", "bulk", str(fifo), "hi", "--json", "--rate", "0"],
                             capture_output=True, text=True, timeout=60, env=os.environ.copy())  # fmt: skip
    feeder.join(timeout=5)
    assert process.returncode == 0, process.stderr
    assert json.loads(process.stdout.splitlines()[-1])["counts"] == {"accepted": 3}


def test_a_semicolon_csv_is_recognised(sandbox: BackgroundSandbox, tmp_path: Path) -> None:
    csv = tmp_path / "excel.csv"
    csv.write_text("\ufeffto;name\n+14155550101;Ann\n+14155550102;Bob\n", encoding="utf-8")
    code, lines, stderr = bulk(str(csv), "Hi {name}", "--rate", "0")
    assert code == 0, stderr
    assert sorted(r.body["text"] for r in sandbox.requests) == ["Hi Ann", "Hi Bob"]


def test_a_header_without_to_names_the_likely_delimiter(sandbox: BackgroundSandbox, tmp_path: Path) -> None:
    csv = tmp_path / "mixed.csv"
    csv.write_text("phone,name;age\n+14155550101,Ann;3\n")
    result = runner.invoke(app, ["bulk", str(csv), "hi"])
    assert result.exit_code == 2 and "has no `to` column" in result.stderr


@pytest.mark.integration
def test_without_wait_a_running_listener_gets_the_emulators_statuses(
    credentials: dict[str, str], tmp_path: Path, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20, item 19: with the emulator (no status URL of its own) and `smsctl listen` running on
    the same store, `bulk` and `send` without --wait still end final instead of 'accepted' forever."""
    from tests.helpers import ListenProcess, until

    with ListenProcess() as listener, BackgroundSandbox.from_environment(status_url=None) as emulator:
        monkeypatch.setenv("VONAGE_API_URL", emulator.url)
        listener.ready()
        csv = write_csv(tmp_path / "list.csv", 40, ["+14155550101", "+14155550110"])
        code, lines, stderr = bulk(str(csv), "no wait")
        assert code == 0, stderr
        accepted = sum(
            1 for line in lines if line.get("state") == "accepted"
        )  # after a 1240, the rest suppressed
        sent = runner.invoke(app, ["send", "+14155550101", "one more"])
        assert sent.exit_code == 0, sent.output

        def finals() -> int:
            return sum(1 for m in stored(db_path, lambda s: s.recent_messages(100)) if m.final)

        until(finals_reach(finals, accepted + 1), "every message's final status through the running listener")
        listener.stop()
    assert all(r.body.get("webhook_url", "").endswith("/webhooks/status") for r in emulator.requests)


def finals_reach(read: Any, count: int) -> Any:
    return lambda: read() >= count


@pytest.mark.long
@pytest.mark.integration
def test_one_batch_run_twice_at_once_sends_each_row_once_and_says_so(
    sandbox: BackgroundSandbox, credentials: dict[str, str], tmp_path: Path
) -> None:
    """The same file and text in two terminals at once: one batch, so the runs share its rows. Each row is
    sent by the run that records it first; the other says so (it was an internal error: a UNIQUE violation)."""
    csv = tmp_path / "list.csv"
    csv.write_text("to\n" + "".join(f"+1212555{n:04d}\n" for n in range(300)))
    env = {**os.environ, "VONAGE_API_URL": sandbox.url}
    runs = [warm.popen([sys.executable, "-m", "smsctl", "bulk", str(csv), "same", "--rate", "200",
                              "--concurrency", "8", "--json"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
    outcomes = [run.communicate(timeout=120) for run in runs]
    summaries = [json.loads(out.splitlines()[-1]) for out, _ in outcomes]
    assert all(s["event"] == "summary" for s in summaries), [err[-500:] for _, err in outcomes]
    sent = sum(s["counts"].get("accepted", 0) for s in summaries)
    assert sent == 300 and len([r for r in sandbox.requests if r.status == 202]) == 300  # each row once
    for summary, (_, err), run in zip(summaries, outcomes, runs, strict=True):
        # A row the other run has recorded: `another_run`; one it is sending right now, looked up before
        # this run's turn: `skipped_unknown` (pending, as after a crash). Neither is sent, both exit 5.
        taken, in_flight = (
            summary["counts"].get("another_run", 0),
            summary["counts"].get("skipped_unknown", 0),
        )
        assert run.returncode == (5 if taken or in_flight else 0), err[-500:]
        assert "internal error" not in err
        if taken:
            assert "being sent by another run of this batch" in err


def test_a_row_another_run_took_is_neither_sent_again_nor_overwritten(store_at: StoreLocation) -> None:
    """Two runs of one batch: run A sends row 2, gets a 429 and marks it unsent while it waits; run B
    reads it unsent and takes it. A's retry must then stop (it sent such a row a second time: 3 of
    2,000 rows in two throttled runs) and must not overwrite what B wrote. Each write is conditional
    on the version the run last wrote or read (HistoryStore.claim)."""
    from smsctl.history.backends import open_store
    from smsctl.history.interface import Attempt, LocalState
    from smsctl.messages.sending import first_write

    attempt = Attempt("b1-2", "14155550101", "Acme", None, "GSM-7", 1, "b1", 2, False, "US")
    store = open_store(store_at)
    try:
        with store.transaction():
            row, refusal, mine = first_write(
                store, attempt, None
            ).resolve()  # run A: recorded pending, request sent
        assert row is not None and refusal is None and mine is not None
        with store.transaction():
            at = store.claim(row, LocalState.UNSENT, "waiting to retry", mine)  # A: 429, waits to retry
        assert at is not None
        mine = (LocalState.UNSENT, at)
        with store.transaction():
            assert store.record_attempt(attempt) is None  # B cannot record the row again
        existing = store.message_in_batch("b1", 2)
        assert existing is not None and existing.state == LocalState.UNSENT
        with store.transaction():  # run B takes it, from the version it read
            taken = first_write(
                store, attempt, existing.id, seen=(existing.state, existing.updated_at)
            ).resolve()
        assert taken[0] == row and taken[2] is not None and taken[2][0] == LocalState.PENDING
        with store.transaction():  # run A's retry: the row changed since A last wrote it
            assert first_write(store, attempt, row, seen=mine).resolve() == (None, None, None)
            assert store.claim(row, LocalState.UNKNOWN, "no answer", mine) is None
        after = store.message_in_batch("b1", 2)
        assert after is not None and after.state == LocalState.PENDING  # B's, untouched
    finally:
        store.close()
