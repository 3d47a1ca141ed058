"""`smsctl trigger`: one signed webhook to any endpoint, against a real capture app and a real listener."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from tests.helpers import CaptureApp, ListenProcess

runner = CliRunner()


@pytest.mark.integration
def test_a_status_webhook_verifies_as_vonages_and_has_its_shape(credentials: dict[str, str]) -> None:
    with CaptureApp() as user_app:
        result = runner.invoke(app, ["trigger", "rejected", "--url", user_app.url(), "--to", "+14155550123",
                                     "--client-ref", "order-7", "--message-uuid", "77777777-aaaa-4bbb-8ccc-000000000000"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("200 ") and user_app.url() in result.stdout
    [received] = user_app.received
    assert received["verified"], "signed with the signature secret, payload_hash over the exact body"
    assert received["claims"]["api_key"] == credentials["VONAGE_API_KEY"]
    body = received["json"]
    assert (body["status"], body["to"], body["client_ref"], body["message_uuid"]) == (
        "rejected", "14155550123", "order-7", "77777777-aaaa-4bbb-8ccc-000000000000")  # fmt: skip
    assert body["error"]["title"] == "1240" and body["channel"] == "sms"


@pytest.mark.integration
def test_an_inbound_sms_webhook(credentials: dict[str, str]) -> None:
    with CaptureApp() as user_app:
        result = runner.invoke(app, ["trigger", "inbound", "STOP now", "--from", "+14155550123",
                                     "--url", user_app.url("/webhooks/inbound"), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["http_status"] == 200
    [received] = user_app.received
    assert received["verified"] and received["path"] == "/webhooks/inbound"
    body = received["json"]
    assert (body["text"], body["from"], body["to"], body["sms"]["keyword"]) == (
        "STOP now",
        "14155550123",
        "14155550199",
        "STOP",
    )


@pytest.mark.parametrize("answer", [500, 404, "closed"])
@pytest.mark.integration
def test_an_endpoint_that_does_not_answer_2xx_exits_5(credentials: dict[str, str], answer: int | str) -> None:
    user_app = CaptureApp(default=answer if isinstance(answer, int) else 200).start()
    url = user_app.url()
    if answer == "closed":
        user_app.stop()
    result = runner.invoke(app, ["trigger", "delivered", "--url", url])
    user_app.stop()
    assert result.exit_code == 5, result.output
    shown = "no answer" if answer == "closed" else str(answer)
    assert result.stdout.startswith(shown) and "error:" in result.stderr


@pytest.mark.integration
def test_without_url_it_goes_to_the_running_listener_and_is_stored(credentials: dict[str, str]) -> None:
    refused = runner.invoke(app, ["trigger", "delivered"])
    assert refused.exit_code == 3 and "no `smsctl listen` is running" in refused.stderr
    with ListenProcess() as listener:
        listener.ready()
        result = runner.invoke(
            app, ["trigger", "delivered", "--message-uuid", "88888888-aaaa-4bbb-8ccc-000000000000"]
        )
        assert result.exit_code == 0, result.output
        listener.wait_for(lambda line: line.get("message_uuid", "").startswith("88888888") and line["final"])
        listener.stop()
    status = runner.invoke(app, ["status", "88888888-aaaa-4bbb-8ccc-000000000000", "--json"])
    assert json.loads(status.stdout)["status"] == "delivered"


@pytest.mark.integration
def test_bad_input_is_refused_before_anything_is_sent(credentials: dict[str, str]) -> None:
    with CaptureApp() as user_app:
        for args, message in ((["inbound", "hi"], "needs the text and --from"),
                              (["read"], "is not one of smsctl's choices")):  # fmt: skip
            result = runner.invoke(app, ["trigger", *args, "--url", user_app.url()])
            assert result.exit_code == 2 and message in result.stderr, result.output
    assert user_app.received == []


@pytest.mark.integration
def test_inbound_goes_to_to_and_refuses_an_alphanumeric_recipient(
    credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VONAGE_NUMBER", "Acme")
    with CaptureApp() as user_app:
        refused = runner.invoke(
            app, ["trigger", "inbound", "hi", "--from", "+14155550123", "--url", user_app.url()]
        )
        assert refused.exit_code == 2 and "is not one" in refused.stderr and "--to" in refused.stderr
        sent = runner.invoke(app, ["trigger", "inbound", "hi", "--from", "+14155550123", "--to", "+14155550100",
                                   "--url", user_app.url()])  # fmt: skip
        assert sent.exit_code == 0, sent.output
    [received] = user_app.received
    assert (received["json"]["to"], received["json"]["from"]) == ("14155550100", "14155550123")


@pytest.mark.integration
def test_a_refused_tls_certificate_is_named_as_such(credentials: dict[str, str], tmp_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from smsctl.sandbox.tls import self_signed, server_context

    cert, key = self_signed(tmp_path)
    server = HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.socket = server_context(cert, key).wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/webhooks/status"
        result = runner.invoke(app, ["trigger", "delivered", "--url", url])
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 5, result.output
    assert "TLS failure" in result.stderr and "certificate was refused" in result.stderr
    assert "retried by Vonage" not in result.stderr
