"""What a new user meets first (issue 20, item 14): the copied .env.example works with API-key auth,
every missing setting is reported at once, and `smsctl init` gives a wheel user the template."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from tests.helpers import BackgroundSandbox

runner = CliRunner()
TEMPLATE = Path(__file__).parents[2] / ".env.example"


@pytest.mark.integration
def test_a_copied_env_example_with_an_api_key_and_secret_sends(
    credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    for name in ("VONAGE_APPLICATION_ID", "VONAGE_PRIVATE_KEY_PATH"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("VONAGE_API_SECRET", "api-secret-for-tests")
    shutil.copy(TEMPLATE, isolated / ".env")  # VONAGE_PRIVATE_KEY_PATH=./private.key, which does not exist
    with BackgroundSandbox.from_environment() as sandbox:
        monkeypatch.setenv("VONAGE_API_URL", sandbox.url)
        result = runner.invoke(app, ["send", "+14155550101", "hi"])
        assert result.exit_code == 0, result.output
        assert sandbox.requests[-1].auth == "basic", "Basic auth: a key path alone means nothing"


def test_every_missing_setting_is_reported_at_once(isolated: Path) -> None:
    shutil.copy(TEMPLATE, isolated / ".env")
    result = runner.invoke(app, ["send", "+14155550101", "hi", "--wait"])
    assert result.exit_code == 3, result.output
    assert "3 settings are missing or unusable" in result.stderr
    for name in ("VONAGE_API_KEY and VONAGE_API_SECRET", "VONAGE_NUMBER", "VONAGE_SIGNATURE_SECRET"):
        assert name in result.stderr
    assert "smsctl init" in result.stderr


def test_an_application_id_needs_a_readable_key(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VONAGE_APPLICATION_ID", "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab")
    monkeypatch.setenv("VONAGE_PRIVATE_KEY_PATH", str(isolated / "missing.key"))
    monkeypatch.setenv("VONAGE_NUMBER", "+14155550199")
    result = runner.invoke(app, ["send", "+14155550101", "hi"])
    assert result.exit_code == 3 and "cannot be read" in result.stderr, result.output


def test_init_writes_a_private_template_and_never_overwrites(isolated: Path) -> None:
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    written = isolated / ".env"
    assert written.read_text() == TEMPLATE.read_text()
    assert written.stat().st_mode & 0o777 == 0o600
    written.write_text("VONAGE_API_KEY=mine\n")
    again = runner.invoke(app, ["init"])
    assert again.exit_code == 2 and "exists already" in again.stderr
    assert written.read_text() == "VONAGE_API_KEY=mine\n", "left as it was"
    other = runner.invoke(app, ["init", str(isolated / "team.env"), "--json"])
    assert other.exit_code == 0 and '"written"' in other.stdout
    assert os.path.exists(isolated / "team.env")
