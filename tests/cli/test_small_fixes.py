"""The smaller things a new user hit (issue 20, item 20), each held by a test."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from tests import warm
from tests.helpers import ListenProcess, taken_port

runner = CliRunner()


def smsctl(*args: str) -> subprocess.Popen[str]:
    return warm.popen([sys.executable, "-m", "smsctl", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.integration
def test_the_sandbox_stopped_by_a_signal_exits_with_the_documented_code(
    credentials: dict[str, str], sig: signal.Signals, code: int
) -> None:
    process = smsctl("sandbox", "--port", "0", "--json")
    assert process.stdout is not None and '"url"' in process.stdout.readline()
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == code, stderr


@pytest.mark.integration
def test_a_taken_port_is_one_clear_error_without_a_leaked_session(credentials: dict[str, str]) -> None:
    with taken_port() as port:
        result = warm.run([sys.executable, "-m", "smsctl", "sandbox", "--port", str(port)], capture_output=True,
                                text=True, timeout=60)  # fmt: skip
    assert result.returncode == 3 and "another program uses that port" in result.stderr
    assert "Unclosed" not in result.stderr


@pytest.mark.integration
def test_a_port_held_by_another_smsctl_listener_says_so(credentials: dict[str, str]) -> None:
    with ListenProcess() as first:
        port = first.ready()["local_url"].rsplit(":", 1)[1]
        result = runner.invoke(app, ["listen", "--port", port])
        first.stop()
    assert result.exit_code == 3 and "another smsctl listener already serves that port" in result.stderr


def test_config_keeps_machine_notes_for_verbose(credentials: dict[str, str]) -> None:
    from smsctl.history.backends import environment_notes

    notes = environment_notes(Path("x.db"))
    plain = runner.invoke(app, ["config"])
    verbose = runner.invoke(app, ["config", "--verbose"])
    assert plain.exit_code == verbose.exit_code == 0
    assert "note:" not in plain.stderr
    assert ("note:" in verbose.stderr) == bool(notes)


def test_db_copy_names_the_argument_not_smsctl_db(credentials: dict[str, str], tmp_path: Path) -> None:
    other = tmp_path / "customers.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    result = runner.invoke(app, ["db", "copy", str(other), str(tmp_path / "new.db")])
    assert result.exit_code == 3, result.output
    assert "SOURCE" in result.stderr and "SMSCTL_DB" not in result.stderr


def test_piped_log_lines_carry_no_padding(credentials: dict[str, str], db_path: Path) -> None:
    import json as _json
    import time

    from smsctl.history.backends import open_store
    from smsctl.history.events import parse_status

    store = open_store(db_path)
    with store.transaction():
        for n in range(3):
            body = _json.dumps({"message_uuid": f"aaaaaaaa-0000-4000-8000-{n:012d}", "to": "14155550101",
                                "status": "delivered", "timestamp": "2025-02-03T12:00:00Z"}).encode()  # fmt: skip
            store.apply_status(parse_status(body), time.time())
    store.close()
    result = runner.invoke(app, ["log", "--no-pager"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and not [line for line in lines if line != line.rstrip()]
