"""The tests' warm `python -m smsctl` processes (tests/warm.py) behave as fresh ones do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import warm

pytestmark = pytest.mark.integration
SMSCTL = [sys.executable, "-m", "smsctl"]


@pytest.mark.parametrize("args", [["--help"], ["send"], ["config", "--json"], ["nonsense"]])
def test_a_warm_command_prints_and_exits_as_a_fresh_one(args: list[str], credentials: dict[str, str]) -> None:
    fresh = subprocess.run([*SMSCTL, *args], capture_output=True, text=True, timeout=60)
    forked = warm.run([*SMSCTL, *args], capture_output=True, text=True, timeout=60)
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)


def test_a_warm_command_has_its_own_pid_environment_directory_and_stdin(
    tmp_path: Path, credentials: dict[str, str]
) -> None:
    (tmp_path / "message.txt").write_text("unused")
    env = {**os.environ, "VONAGE_API_KEY": "", "SMSCTL_DB": str(tmp_path / "own.db")}
    done = warm.run([*SMSCTL, "config", "--json"], capture_output=True, text=True, env=env, cwd=tmp_path,
                    input="", timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert str(tmp_path / "own.db") in done.stdout  # the environment asked for, not the template's
    with warm.popen([*SMSCTL, "sandbox", "--port", "0", "--json"], stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True) as process:  # fmt: skip
        assert process.stdout is not None and '"url"' in process.stdout.readline()
        assert process.pid not in (os.getpid(), warm._Template.get().process.pid)
        assert process.poll() is None
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL  # as Popen reports a signal
        assert process.stdout.read() == ""  # its pipe closed with it


def test_what_a_fork_cannot_give_runs_fresh() -> None:
    """PYTHONPATH is read as Python starts: a fork would silently ignore it."""
    process = warm.popen(
        [*SMSCTL, "--help"], stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": "/x"}
    )
    assert isinstance(process, subprocess.Popen)
    process.wait(timeout=60)
