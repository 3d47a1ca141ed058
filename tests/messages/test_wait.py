"""`send --wait` end to end against the emulator: each outcome, both status sources, races, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from smsctl.history.sqlite import Store
from tests import warm
from tests.helpers import BackgroundSandbox, ListenProcess, stored
from tests.pg import free_port

runner = CliRunner()


@pytest.mark.parametrize(
    ("to", "code", "status", "message"),
    [
        ("+14155550101", 0, "delivered", None),
        ("+14155550110", 1, "rejected", "error 1240: Illegal Number"),
        ("+14155550120", 1, "undeliverable", "error 1260: Destination unreachable"),
        ("+14155550160", 0, "delivered", None),  # final before submitted
        ("+14155550180", 0, "delivered", None),  # unsigned first: the listener 503s, the retry is signed
    ],
)
def test_wait_with_the_embedded_listener(sandbox: BackgroundSandbox, to: str, code: int, status: str,
                                         message: str | None) -> None:  # fmt: skip
    result = runner.invoke(app, ["send", to, "hi", "--wait", "--timeout", "30"])
    assert result.exit_code == code, result.output
    uuid, shown = result.stdout.split()
    assert shown == status and uuid == sandbox.requests[-1].message_uuid
    assert "embedded listener at http://127.0.0.1:" in result.stderr
    assert sandbox.requests[-1].body["webhook_url"].endswith("/webhooks/status")
    if message:
        assert message in result.stderr


def test_wait_times_out_with_the_last_known_status(sandbox: BackgroundSandbox) -> None:
    result = runner.invoke(app, ["send", "+14155550140", "hi", "--wait", "--timeout", "1", "--json"])
    assert result.exit_code == 6, result.output
    data = json.loads(result.stdout)
    assert (data["status"], data["final"]) == ("submitted", False)
    assert [e["status"] for e in data["events"]] == ["submitted"]
    assert "last known status: submitted" in result.stderr


def test_wait_json_has_the_whole_timeline(sandbox: BackgroundSandbox) -> None:
    result = runner.invoke(app, ["send", "+14155550150", "hi", "--wait", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"message_uuid", "to", "from", "client_ref", "segments", "encoding", "status", "events"} <= set(
        data
    )
    assert data["status"] == "delivered" and data["final"] is True
    assert [e["status"] for e in data["events"]] == ["submitted", "delivered"]


def test_failed_wait_json_keeps_one_document_on_stdout(sandbox: BackgroundSandbox) -> None:
    result = runner.invoke(app, ["send", "+14155550110", "hi", "--wait", "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)  # exactly one JSON document
    assert data["status"] == "rejected" and data["events"][-1]["error_code"] == "1240"


@pytest.mark.integration
def test_wait_through_a_running_listener(
    credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with ListenProcess() as listener, BackgroundSandbox.from_environment() as running:
        ready = listener.ready()
        monkeypatch.setenv("VONAGE_API_URL", running.url)
        result = runner.invoke(app, ["send", "+14155550101", "via listen", "--wait", "--timeout", "30"])
        assert result.exit_code == 0, result.output
        uuid = result.stdout.split()[0]
        assert f"smsctl listen at {ready['local_url']}" in result.stderr
        assert running.requests[-1].body["webhook_url"] == ready["status_url"]
        listener.wait_for(lambda line: line.get("message_uuid") == uuid and line.get("final") is True)
        listener.stop()


@pytest.mark.integration
def test_early_webhooks_are_not_missed(
    credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch, db_path: Path
) -> None:
    """With no delay at all, statuses can land before `send` has recorded the 202."""
    with BackgroundSandbox.from_environment(time_scale=0.0) as running:
        monkeypatch.setenv("VONAGE_API_URL", running.url)
        for _ in range(5):
            result = runner.invoke(app, ["send", "+14155550101", "fast", "--wait", "--timeout", "10"])
            assert result.exit_code == 0, result.output
    with Store(db_path) as store:
        assert {m.status for m in store.recent_messages(10)} == {"delivered"}
        assert store.counts()["events"] == 10


@pytest.mark.integration
def test_no_way_for_statuses_to_arrive_exits_3_before_sending(credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                                              db_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("VONAGE_API_URL", "https://api.nexmo.com")  # never contacted: we stop first
    monkeypatch.setenv("PORT", "0")
    result = runner.invoke(app, ["send", "+14155550101", "hi", "--wait"])
    assert result.exit_code == 3, result.output
    assert "statuses cannot reach this machine" in result.stderr and "ngrok http" in result.stderr
    assert stored(db_path, lambda s: s.recent_messages(5)) == []


def test_wait_needs_a_signature_secret(sandbox: BackgroundSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VONAGE_SIGNATURE_SECRET")
    result = runner.invoke(app, ["send", "+14155550101", "hi", "--wait"])
    assert result.exit_code == 3 and "VONAGE_SIGNATURE_SECRET" in result.stderr
    assert sandbox.requests == []


def test_ctrl_c_during_wait_exits_130_and_keeps_the_message(sandbox: BackgroundSandbox) -> None:
    process = warm.popen([sys.executable, "-m", "smsctl", "send", "+14155550140", "hi", "--wait"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    assert process.stderr is not None
    first = process.stderr.readline()
    assert "waiting for statuses" in first, first
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 130
    uuid = sandbox.requests[-1].message_uuid
    assert process.stdout is not None and process.stdout.read() == f"{uuid} submitted\n", "the uuid, not lost"
    assert f"Check it later with `smsctl status {uuid}`" in process.stderr.read()
    status = runner.invoke(app, ["status", uuid, "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["status"] == "submitted"
    process.stdout.close() if process.stdout else None
    process.stderr.close()


@pytest.mark.long
@pytest.mark.integration
def test_warns_when_the_listener_stops_mid_wait(
    credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The listener beats every 0.2 s, so it counts as gone after 1 s of silence (5 missed beats).
    with (
        ListenProcess(env={"SMSCTL_HEARTBEAT": "0.2"}) as listener,
        BackgroundSandbox.from_environment() as running,
    ):
        listener.ready()
        monkeypatch.setenv("VONAGE_API_URL", running.url)
        killer = threading.Timer(0.5, listener.process.kill)
        killer.start()
        result = runner.invoke(app, ["send", "+14155550140", "hi", "--wait", "--timeout", "3"])
        killer.join()
    assert result.exit_code == 6, result.output
    assert "smsctl listen has stopped" in result.stderr


def test_wait_with_base_url_listens_on_port(
    sandbox: BackgroundSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BASE_URL forwards to PORT (as ngrok does), so the embedded listener must listen on PORT."""
    port = free_port()
    monkeypatch.setenv("PORT", str(port))
    monkeypatch.setenv("BASE_URL", f"http://127.0.0.1:{port}")
    result = runner.invoke(app, ["send", "+14155550101", "hi", "--wait", "--timeout", "5"])
    assert result.exit_code == 0, result.output
    assert f"embedded listener at http://127.0.0.1:{port}" in result.stderr
    assert sandbox.requests[-1].body["webhook_url"] == f"http://127.0.0.1:{port}/webhooks/status"


def test_bulk_wait_with_base_url_listens_on_port(sandbox: BackgroundSandbox, monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:  # fmt: skip
    port = free_port()
    monkeypatch.setenv("PORT", str(port))
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("+14155550101\n+14155550102\n")
    result = runner.invoke(app, ["bulk", str(numbers), "hi", "--wait", "--timeout", "5", "--json",
                                 "--public-url", f"http://127.0.0.1:{port}"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["final"] == {"delivered": 2}
    assert {r.body["webhook_url"] for r in sandbox.requests} == {f"http://127.0.0.1:{port}/webhooks/status"}


def test_a_second_wait_never_adopts_the_first_waits_listener(sandbox: BackgroundSandbox) -> None:
    """The first wait's embedded listener disappears when it exits: the second must use its own."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = warm.popen([sys.executable, "-m", "smsctl", "send", "+14155550140", "silent", "--wait"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        assert first.stderr is not None
        assert "via embedded listener" in first.stderr.readline()
        second = runner.invoke(app, ["send", "+14155550101", "hi", "--wait", "--timeout", "30"])
        assert second.exit_code == 0, second.output
        assert "via embedded listener" in second.stderr and "smsctl listen at" not in second.stderr
    finally:
        first.kill()
        first.communicate(timeout=30)


def test_registrations_of_dead_or_silent_listeners_are_not_trusted(
    sandbox: BackgroundSandbox, db_path: Path
) -> None:
    """A killed listener leaves its row; a clock stepped back makes it look fresh. Check the process."""
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(gone.stdout)
    with Store(db_path) as store, store.transaction():
        store.conn.execute(
            "INSERT INTO listeners (pid, host, local_url, public_url, started_at, heartbeat_at)"
            " VALUES (?, ?, 'http://127.0.0.1:9', NULL, ?, ?), (?, ?, 'http://127.0.0.1:9', NULL, ?, ?)",
            (dead_pid, socket.gethostname(), time.time(), time.time() + 3600,  # heartbeat "from the future"
             os.getpid(), socket.gethostname(), time.time() - 1, time.time() + 3600),  # alive, no /healthz
        )  # fmt: skip
    result = runner.invoke(app, ["send", "+14155550101", "hi", "--wait", "--timeout", "30"])
    assert result.exit_code == 0, result.output
    assert "via embedded listener" in result.stderr
    pids = {listener.pid for listener in stored(db_path, lambda s: s.fresh_listeners())}
    assert dead_pid not in pids and os.getpid() in pids, "a dead listener's row is removed, a live one kept"


@pytest.mark.integration
def test_a_stopped_listener_unregisters(credentials: dict[str, str], db_path: Path) -> None:
    with ListenProcess() as listener:
        listener.ready()
        assert len(stored(db_path, lambda s: s.fresh_listeners())) == 1
        assert listener.stop() == 0
    assert stored(db_path, lambda s: s.fresh_listeners()) == []


def test_the_elapsed_time_moves_between_events() -> None:
    from rich.console import Console
    from rich.text import Text

    from smsctl.cli.send import _Ticking

    now = [100.0]
    line = _Ticking(Text("submitted"), 0.2, clock=lambda: now[0])
    console = Console(width=80, file=__import__("io").StringIO())
    with console.capture() as first:
        console.print(line)
    now[0] += 42.5
    with console.capture() as later:
        console.print(line)
    assert first.get().strip() == "submitted  (0.2 s)" and later.get().strip() == "submitted  (42.7 s)"
