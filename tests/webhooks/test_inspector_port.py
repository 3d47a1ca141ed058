"""`smsctl ui` on a port already taken: a clear error, nothing served (apart from the browser tests, whose
Playwright holds an event loop on the test's thread)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.integration  # it binds a port to be in the way
def test_a_port_in_use_is_a_clear_error(credentials: dict[str, str]) -> None:
    from typer.testing import CliRunner

    from smsctl.cli import app
    from tests.helpers import taken_port

    with taken_port() as port:
        result = CliRunner().invoke(app, ["ui", "--port", str(port), "--json"])
    assert result.exit_code == 3 and result.stdout == ""
    error = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    assert f"127.0.0.1:{port}" in error["message"] and "--port" in error["hint"]
