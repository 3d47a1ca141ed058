"""`smsctl send` against the real emulator over HTTP: success, every error path and exit code."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from tests import warm
from tests.helpers import BackgroundSandbox, stored

runner = CliRunner()


def send(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["send", *args])
    return result.exit_code, result.stdout, result.stderr


def test_send_prints_the_uuid_and_the_api_gets_a_spec_body(sandbox: BackgroundSandbox, db_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("BASE_URL", "https://example.ngrok.app")
    code, stdout, stderr = send("+14155550101", "hello", "--client-ref", "order-1", "--ttl", "900")
    assert code == 0, stderr
    uuid = stdout.strip()
    request = sandbox.requests[-1]
    assert (request.status, request.auth, request.message_uuid) == (202, "jwt", uuid)
    assert request.body == {
        "to": "14155550101", "from": "14155550199", "text": "hello", "channel": "sms",
        "message_type": "text", "client_ref": "order-1", "ttl": 900,
        "webhook_url": "https://example.ngrok.app/webhooks/status", "webhook_version": "v1",
    }  # fmt: skip
    assert "1 segment(s) GSM-7" in stderr
    message = stored(db_path, lambda s: s.recent_messages(1))[0]
    assert (message.message_uuid, message.status, message.client_ref) == (uuid, "accepted", "order-1")


def test_send_json(sandbox: BackgroundSandbox) -> None:
    code, stdout, stderr = send("+14155550101", "€" * 81, "--json", "--from", "Acme")
    assert code == 0, stderr
    result = json.loads(stdout)
    assert set(result) == {
        "message_uuid",
        "to",
        "from",
        "client_ref",
        "segments",
        "encoding",
        "status",
        "repeated_uuid",
    }
    assert result["to"] == "+14155550101" and result["from"] == "Acme"
    assert (result["segments"], result["encoding"], result["status"]) == (2, "GSM-7", "accepted")
    assert result["client_ref"].startswith("smsctl-")
    assert "2 SMS segments" in stderr
    assert sandbox.requests[-1].body["from"] == "Acme"


def test_unicode_encoding_is_passed_on(sandbox: BackgroundSandbox) -> None:
    code, _, stderr = send("+14155550101", "hi", "--encoding", "unicode")
    assert code == 0, stderr
    assert sandbox.requests[-1].body["sms"] == {"encoding_type": "unicode"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["14155550101", "hi"], "not in E.164 form"),
        (["+1415555", "hi"], "not a valid number"),
        (["+14155550101", ""], "the text is empty"),
        (["+14155550101", "x" * 3201], "3201 characters"),
        (["+14155550101", "hi", "--from", "Bad Sender"], "alphanumeric sender ID"),
        (["+14155550101", "hi", "--client-ref", "r" * 101], "at most 100"),
        (["+14155550101", "hi", "--encoding", "latin1"], "'latin1' is not one of"),
    ],
)
def test_bad_input_exits_2_and_sends_nothing(
    sandbox: BackgroundSandbox, args: list[str], message: str
) -> None:
    code, _, stderr = send(*args)
    assert code == 2, stderr
    assert message in stderr
    assert sandbox.requests == []


def test_ttl_out_of_range_is_a_usage_error(sandbox: BackgroundSandbox) -> None:
    code, _, stderr = send("+14155550101", "hi", "--ttl", "5")
    assert code == 2, stderr
    assert sandbox.requests == []


def test_no_credentials_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VONAGE_NUMBER", "+14155550199")
    code, _, stderr = send("+14155550101", "hi")
    assert code == 3, stderr
    assert "no credentials" in stderr and "hint:" in stderr


def test_application_without_key_names_the_variable(
    credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VONAGE_PRIVATE_KEY_PATH")
    code, _, stderr = send("+14155550101", "hi")
    assert code == 3 and "VONAGE_PRIVATE_KEY_PATH" in stderr


def test_malformed_private_key_exits_3(
    credentials: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    monkeypatch.setenv("VONAGE_PRIVATE_KEY_PATH", str(bad))
    code, _, stderr = send("+14155550101", "hi")
    assert code == 3 and "VONAGE_PRIVATE_KEY_PATH does not hold a usable PEM private key" in stderr


def test_unreadable_private_key_exits_3(credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VONAGE_PRIVATE_KEY_PATH", "/nonexistent/private.key")
    code, _, stderr = send("+14155550101", "hi")
    assert code == 3 and "cannot be read" in stderr


def test_private_key_from_the_environment_text(sandbox: BackgroundSandbox, private_key_pem: bytes,
                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.delenv("VONAGE_PRIVATE_KEY_PATH")
    monkeypatch.setenv("VONAGE_PRIVATE_KEY", private_key_pem.decode().replace("\n", "\\n"))
    code, _, stderr = send("+14155550101", "hi")
    assert code == 0, stderr
    assert sandbox.requests[-1].auth == "jwt"


def test_plain_http_to_a_remote_host_exits_3(
    credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VONAGE_API_URL", "http://api.nexmo.com")
    code, _, stderr = send("+14155550101", "hi")
    assert code == 3 and "VONAGE_API_URL" in stderr


@pytest.mark.integration
def test_basic_auth_when_there_is_no_application(private_key_pem: bytes, credentials: dict[str, str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("VONAGE_API_SECRET", "local-secret")
    with BackgroundSandbox.from_environment() as running:
        monkeypatch.setenv("VONAGE_API_URL", running.url)
        monkeypatch.delenv("VONAGE_APPLICATION_ID")
        monkeypatch.delenv("VONAGE_PRIVATE_KEY_PATH")
        code, _, stderr = send("+14155550101", "hi")
        assert code == 0, stderr
        assert running.requests[-1].auth == "basic"


def test_wrong_credentials_exit_4_with_the_problem(
    sandbox: BackgroundSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VONAGE_APPLICATION_ID", "11111111-2222-4333-8444-555555555555")
    code, _, stderr = send("+14155550101", "hi", "--client-ref", "creds")
    assert code == 4, stderr
    assert "401 You did not provide correct credentials." in stderr
    assert "hint: check VONAGE_APPLICATION_ID" in stderr


def test_refusal_json_carries_the_problem(sandbox: BackgroundSandbox, db_path: Path) -> None:
    code, stdout, stderr = send("+14155550191", "hi", "--json", "--client-ref", "broke")
    assert code == 4 and stdout == ""
    error = json.loads(stderr.splitlines()[-1])["error"]
    assert (error["code"], error["status"], error["problem"]["title"]) == (4, 402, "Low balance")
    assert stored(db_path, lambda s: s.recent_messages(1))[0].status == "refused"


def test_server_error_exits_5_naming_the_client_ref(sandbox: BackgroundSandbox, db_path: Path) -> None:
    code, _, stderr = send("+14155550190", "hi", "--client-ref", "look-for-me")
    assert code == 5, stderr
    assert "may or may not have been sent" in stderr and "'look-for-me'" in stderr
    assert len(sandbox.requests) == 1, "a 5xx must not be resent blindly"
    assert stored(db_path, lambda s: s.recent_messages(1))[0].status == "unknown"


def test_timeout_after_sending_exits_5(sandbox: BackgroundSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSCTL_HTTP_TIMEOUT", "0.3")
    code, _, stderr = send("+14155550192", "hi", "--client-ref", "slowpoke")
    assert code == 5, stderr
    assert "'slowpoke'" in stderr and len(sandbox.requests) == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.long
@pytest.mark.integration
def test_connection_refused_retries_then_exits_5(credentials: dict[str, str], db_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("VONAGE_API_URL", f"http://127.0.0.1:{_closed_port()}")
    started = time.monotonic()
    code, _, stderr = send("+14155550101", "hi")
    assert code == 5, stderr
    assert "cannot connect" in stderr and "nothing was sent" in stderr
    assert time.monotonic() - started >= 0.25 + 0.5 + 1.0  # backed off three times
    assert stored(db_path, lambda s: s.recent_messages(1))[0].status == "unsent"


@pytest.mark.integration
def test_throttled_request_is_retried_after_retry_after(
    credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with BackgroundSandbox.from_environment(rate=1) as running:
        monkeypatch.setenv("VONAGE_API_URL", running.url)
        assert send("+14155550101", "one")[0] == 0
        code, stdout, stderr = send("+14155550101", "two")
        assert code == 0, stderr
        assert [r.status for r in running.requests] == [202, 429, 202]
        assert running.requests[2].at - running.requests[1].at >= 0.9  # waited as Retry-After said


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def test_send_as_a_subprocess(sandbox: BackgroundSandbox) -> None:
    process = warm.run([sys.executable, "-m", "smsctl", "send", "+14155550101", "from a process"],
                             capture_output=True, text=True, env=_env(), timeout=60)  # fmt: skip
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == sandbox.requests[-1].message_uuid


def test_ctrl_c_exits_130_and_keeps_the_attempt(sandbox: BackgroundSandbox, db_path: Path) -> None:
    process = warm.popen([sys.executable, "-m", "smsctl", "send", "+14155550192", "hang"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())  # fmt: skip
    deadline = time.monotonic() + 30
    while not sandbox.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert stored(db_path, lambda s: s.recent_messages(1))[0].status == "unknown"


def test_no_sender_exits_3_naming_the_variable(
    sandbox: BackgroundSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VONAGE_NUMBER")
    code, _, stderr = send("+14155550101", "hi")
    assert code == 3 and "give --from or set VONAGE_NUMBER" in stderr
    assert sandbox.requests == []


def test_the_text_can_come_from_stdin_so_it_never_shows_in_ps(sandbox: BackgroundSandbox) -> None:
    result = runner.invoke(app, ["send", "+14155550101", "-"], input="Your code is 493817\n")
    assert result.exit_code == 0, result.output
    assert sandbox.requests[-1].body["text"] == "Your code is 493817"
