"""Text from outside (SMS texts, references, CSV cells, webhook fields) is printed as itself, never as markup.

Anyone who can text your number controls these strings: `[/]` must not crash a command or the screen.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from tests.helpers import BackgroundSandbox, ListenProcess, signed_headers

runner = CliRunner()
NASTY = "ref[/]x[bold]"


def _post(url: str, body: dict[str, object]) -> None:
    import urllib.request

    raw = json.dumps(body).encode()
    request = urllib.request.Request(url, data=raw, headers=signed_headers(raw), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_send_status_and_log_print_markup_as_text(sandbox: BackgroundSandbox) -> None:
    sent = runner.invoke(app, ["send", "+14155550110", "[red]hi[/]", "--client-ref", NASTY, "--wait"])
    assert sent.exit_code == 1, sent.output  # rejected, by the emulator's magic number
    uuid = sent.stdout.split()[0]
    status = runner.invoke(app, ["status", uuid])
    assert status.exit_code == 0, status.output
    assert NASTY in status.stdout
    log = runner.invoke(app, ["log"])
    assert log.exit_code == 0 and NASTY in log.stdout
    plain = runner.invoke(app, ["send", "+14155550101", "hi", "--client-ref", NASTY])
    assert plain.exit_code == 0, plain.output
    assert f"client_ref {NASTY}" in plain.stderr


@pytest.mark.integration
@pytest.mark.integration
def test_inbound_texts_and_webhook_fields_print_as_text(credentials: dict[str, str]) -> None:
    with ListenProcess() as listener:
        ready = listener.ready()
        _post(ready["inbound_url"], {"message_uuid": "i-1", "from": "[b]447700900001", "to": "x",
                                     "text": "STOP [/] [link=evil]now", "timestamp": "2026-11-30T10:00:00Z"})  # fmt: skip
        _post(ready["status_url"], {"message_uuid": "aaaaaaaa-0000-4000-8000-000000000001", "status": "[/]",
                                    "timestamp": "2026-11-30T10:00:00Z", "client_ref": NASTY, "to": "[i]1"})  # fmt: skip
        listener.stop()
    inbound = runner.invoke(app, ["log", "--inbound"])
    assert inbound.exit_code == 0, inbound.output
    assert "STOP [/] [link=evil]now" in inbound.stdout and "[b]447700900001" in inbound.stdout
    log = runner.invoke(app, ["log"])
    assert log.exit_code == 0, log.output
    assert NASTY in log.stdout and "[/]" in log.stdout
    status = runner.invoke(app, ["status", "aaaaaaaa"])
    assert status.exit_code == 0 and NASTY in status.stdout


def test_bulk_cells_print_as_text(sandbox: BackgroundSandbox, tmp_path: Path) -> None:
    csv = tmp_path / "list.csv"
    csv.write_text("to,name\n+14155550101,[/]Ann\n[bold]oops,Bob\n")
    result = runner.invoke(app, ["bulk", str(csv), "Hi {name}", "--skip-invalid", "--rate", "0"])
    assert result.exit_code == 0, result.output
    assert "line 3: [bold]oops" in result.stderr
    assert sandbox.requests[-1].body["text"] == "Hi [/]Ann"
