"""SMSCTL_STORE_TEXT=false / --no-store-text: no SMS text reaches the store's files, in any form."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from tests.helpers import BackgroundSandbox, ListenProcess, signed_headers, stored

runner = CliRunner()
CODE = "Your code is 493817"


def _store_bytes(db_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_sent_texts_stay_out_of_the_store(sandbox: BackgroundSandbox, db_path: Path, how: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    args = ["send", "+14155550101", CODE, "--wait", "--timeout", "30"]
    if how == "flag":
        args.append("--no-store-text")
    else:
        monkeypatch.setenv("SMSCTL_STORE_TEXT", "false")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sandbox.requests[-1].body["text"] == CODE, "the text is still sent, of course"
    message = stored(db_path, lambda s: s.recent_messages(1))[0]
    assert (message.status, message.segments) == ("delivered", 1)
    assert CODE.encode() not in _store_bytes(db_path)
    shown = runner.invoke(app, ["config", "--json"])
    if how == "environment":
        assert json.loads(shown.stdout)["SMSCTL_STORE_TEXT"] == {"value": "false", "source": "environment"}


@pytest.mark.integration
def test_inbound_texts_stay_out_of_the_store(credentials: dict[str, str], db_path: Path) -> None:
    with ListenProcess("--no-store-text") as listener:
        url = listener.ready()["inbound_url"]
        for n, text in enumerate((CODE, "not json at all " + CODE)):
            raw = (json.dumps({"message_uuid": f"i-{n}", "from": "447911123456", "to": "Acme", "text": text,
                               "timestamp": "2026-11-30T10:00:00Z"}) if n == 0 else text).encode()  # fmt: skip
            request = urllib.request.Request(url, data=raw, headers=signed_headers(raw), method="POST")
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
        listener.wait_for(lambda line: line["event"] == "dead_letter")
        listener.stop()
    assert stored(db_path, lambda s: s.counts())["inbound"] == 1
    assert CODE.encode() not in _store_bytes(db_path)
    inbound = json.loads(runner.invoke(app, ["log", "--inbound", "--json"]).stdout)
    assert inbound[0]["text"] is None and inbound[0]["from"] == "+447911123456"


def test_a_bad_setting_is_a_configuration_error(
    sandbox: BackgroundSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSCTL_STORE_TEXT", "maybe")
    result = runner.invoke(app, ["send", "+14155550101", "hi"])
    assert result.exit_code == 3 and "SMSCTL_STORE_TEXT" in result.stderr
