"""Data on stdout, everything else on stderr: with --json, every command's error is one JSON line on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smsctl.cli import app

runner = CliRunner()


def _no_to_column(tmp_path: Path) -> str:
    path = tmp_path / "list.csv"
    path.write_text("phone,name\n+14155550101,Ann\n")
    return str(path)


# Each command with arguments that make it fail after parsing, and the exit code it must end with.
# `config` and `demo` have no such failure: config only shows settings, demo brings its own; `ui` serves
# whatever store there is until stopped (its port in use: tests/webhooks/test_inspector.py).
FAILURES = {
    "send": (lambda tmp: ["send", "12", "hi"], 2),
    "bulk": (lambda tmp: ["bulk", _no_to_column(tmp), "hi"], 2),
    "batch": (lambda tmp: ["batch", "bnope"], 7),
    "listen": (lambda tmp: ["listen", "--port", "0"], 3),  # no signature secret
    "sandbox": (lambda tmp: ["sandbox", "--port", "0"], 3),  # no credentials
    "status": (lambda tmp: ["status", "deadbeef"], 7),
    "log": (lambda tmp: ["log", "--since", "yesterday"], 2),
    "trigger": (lambda tmp: ["trigger", "read", "--url", "http://127.0.0.1:9/x"], 2),
    "export": (lambda tmp: ["export", "--format", "xml"], 2),
    "replay": (lambda tmp: ["replay", "--url", "http://127.0.0.1:9/x"], 2),  # nothing chosen to replay
    "init": (lambda tmp: ["init", str(tmp)], 2),  # exists already
    "reconcile": (lambda tmp: ["reconcile"], 3),  # no API key and secret
    "stats": (lambda tmp: ["stats", "--since", "last week"], 2),
    "report": (lambda tmp: ["report", "-o", str(tmp / "no" / "such" / "dir.html")], 2),
}


@pytest.mark.parametrize("command", sorted(FAILURES))
def test_json_errors_go_to_stderr(command: str, tmp_path: Path) -> None:
    args, code = FAILURES[command]
    result = runner.invoke(app, [*args(tmp_path), "--json"])
    assert result.exit_code == code, result.output
    assert result.stdout == "", "stdout holds data only"
    error = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    assert error["code"] == code and error["message"]


def test_every_command_is_covered() -> None:
    commands = {c.name for c in app.registered_commands}
    assert commands - set(FAILURES) == {"config", "demo", "ui"}
