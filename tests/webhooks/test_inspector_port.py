"""`smsctl ui` on a port already taken: a clear error, nothing served (apart from the browser tests, whose
Playwright holds an event loop on the test's thread)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.integration  # it binds a port to be in the way
def test_a_port_in_use_is_a_clear_error(credentials: dict[str, str]) -> None:
    import socket

    from typer.testing import CliRunner

    from smsctl.cli import app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["ui", "--port", str(port), "--json"])
    assert result.exit_code == 3 and result.stdout == ""
    error = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    assert f"127.0.0.1:{port}" in error["message"] and "--port" in error["hint"]
