from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from smsctl.config import load_settings
from smsctl.errors import ConfigError

runner = CliRunner()


def test_precedence_flag_env_dotenv_default(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (isolated / ".env").write_text("PORT=4000\nBASE_URL=https://dotenv.example\nVONAGE_NUMBER=111\n")
    monkeypatch.setenv("BASE_URL", "https://env.example")
    monkeypatch.setenv("VONAGE_NUMBER", "222")
    settings = load_settings({"VONAGE_NUMBER": "333", "BASE_URL": None})
    assert settings.sender == "333" and settings.sources["VONAGE_NUMBER"] == "flag"
    assert settings.base_url == "https://env.example" and settings.sources["BASE_URL"] == "environment"
    assert settings.port == 4000 and settings.sources["PORT"] == ".env"
    assert settings.api_url == "https://api.nexmo.com"
    assert settings.sources["VONAGE_API_URL"] == "default"
    assert settings.sources["VONAGE_API_KEY"] == "unset"


def test_default_store_is_in_the_user_data_directory(tmp_path: Path) -> None:
    assert load_settings().db_path == tmp_path / "data" / "smsctl" / "smsctl.db"


@pytest.mark.parametrize(
    "url", ["https://api.nexmo.com", "http://127.0.0.1:4010", "http://localhost:4010/", "http://[::1]:1"]
)
def test_accepted_api_urls(url: str) -> None:
    assert load_settings({"VONAGE_API_URL": url}).api_url == url.rstrip("/")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://api.nexmo.com", "plain http for a non-loopback host"),
        ("ftp://x", "not an http"),
        ("nope", "not an http"),
    ],
)
def test_rejected_api_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _ = load_settings({"VONAGE_API_URL": url}).api_url


def test_config_shows_sources_and_redacts_secrets(
    credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VONAGE_API_SECRET", "very-secret-api-secret")
    monkeypatch.setenv("VONAGE_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----\nsecretpem")
    result = runner.invoke(app, ["config", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["VONAGE_API_KEY"] == {"value": "abcd1234", "source": "environment"}
    assert shown["VONAGE_SIGNATURE_SECRET"]["value"] == "•••• (set)"
    for secret in ("very-secret-api-secret", "secretpem", credentials["VONAGE_SIGNATURE_SECRET"]):
        assert secret not in result.output
    human = runner.invoke(app, ["config"])
    assert human.exit_code == 0, human.output
    assert (
        "VONAGE_SIGNATURE_SECRET" in human.stdout
        and credentials["VONAGE_SIGNATURE_SECRET"] not in human.output
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("mysql://team:hunter2@db.example:3306/sms", "is a mysql:// URL"),
        ("sqlite:///tmp/x.db", "is a sqlite:// URL"),
        (":memory:", "an in-memory store keeps nothing"),
    ],
)
def test_store_urls_and_memory_are_refused_and_create_nothing(
    value: str, message: str, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSCTL_DB", value)
    result = runner.invoke(app, ["log"])
    assert result.exit_code == 3, result.output
    assert message in result.stderr and "SMSCTL_DB" in result.stderr
    assert "hunter2" not in result.stderr, "a password in the URL is never printed"
    assert list(isolated.iterdir()) == [], "no file named after the URL is created"


def test_a_short_rsa_key_is_refused_with_our_message(credentials: dict[str, str], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path = tmp_path / "weak.key"
    path.write_bytes(weak.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))  # fmt: skip
    monkeypatch.setenv("VONAGE_PRIVATE_KEY_PATH", str(path))
    monkeypatch.setenv("VONAGE_API_URL", "http://127.0.0.1:1")  # never reached: refused before sending
    result = runner.invoke(app, ["send", "+14155550101", "hi"])
    assert result.exit_code == 3, result.output
    assert "is a 1024-bit RSA key" in result.stderr and "InsecureKeyLength" not in result.output


def test_the_sandbox_tls_key_is_private_from_the_start(tmp_path: Path) -> None:
    from smsctl.sandbox.tls import self_signed

    (tmp_path / "sandbox-key.pem").write_text("old, world-readable")
    (tmp_path / "sandbox-key.pem").chmod(0o644)
    _, key = self_signed(tmp_path)
    assert key.stat().st_mode & 0o777 == 0o600 and b"PRIVATE KEY" in key.read_bytes()
