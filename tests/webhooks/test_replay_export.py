"""`smsctl replay` and `smsctl export` over a history stored by a real listener."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from tests.helpers import BackgroundSandbox, CaptureApp, ListenProcess, signed_headers

runner = CliRunner()
DELIVERED = "aaaaaaaa-0000-4000-8000-000000000001"
REJECTED = "bbbbbbbb-0000-4000-8000-000000000002"


def status(uuid: str, value: str, second: int, **extra: object) -> bytes:
    return json.dumps({"message_uuid": uuid, "to": "14155550101", "from": "14155550199", "status": value,
                       "timestamp": f"2025-02-03T12:00:{second:02d}Z", "channel": "sms", **extra}).encode()  # fmt: skip


@pytest.fixture
def history(credentials: dict[str, str]) -> dict[bytes, str]:
    """Two messages' webhooks stored by a real `smsctl listen`; each body with the token it came with."""
    import urllib.request

    bodies = [status(DELIVERED, "submitted", 1), status(REJECTED, "submitted", 1),
              status(DELIVERED, "delivered", 3, usage={"price": "0.0057", "currency": "EUR"}),
              status(REJECTED, "rejected", 4, error={"title": "1240", "detail": "Illegal Number"})]  # fmt: skip
    tokens = {}
    with ListenProcess() as listener:
        url = listener.ready()["status_url"]
        for body in bodies:
            headers = signed_headers(body, iat=int(time.time()) - 600)
            tokens[body] = headers["Authorization"].split()[1]
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            assert urllib.request.urlopen(request, timeout=10).status == 200
        listener.stop()
    return tokens


def test_replay_sends_exact_bodies_in_original_order_signed_afresh(history: dict[bytes, str]) -> None:
    with CaptureApp() as user_app:
        result = runner.invoke(app, ["replay", DELIVERED, REJECTED[:13], "--url", user_app.url(), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "url": user_app.url(),
        "events": 4,
        "answers": {"200": 4},
        "failed": [],
    }
    assert [r["body"] for r in user_app.received] == list(history), "exact bodies, in the order they arrived"
    assert all(r["verified"] for r in user_app.received)
    assert all(r["token"] != history[r["body"]] for r in user_app.received), "fresh tokens by default"


def test_replay_with_original_tokens_and_a_status_filter(history: dict[bytes, str]) -> None:
    with CaptureApp() as user_app:
        result = runner.invoke(
            app, ["replay", "--status", "rejected", "--url", user_app.url(), "--original-token"]
        )
    assert result.exit_code == 0, result.output
    assert [r["json"]["status"] for r in user_app.received] == ["submitted", "rejected"]
    assert all(r["json"]["message_uuid"] == REJECTED for r in user_app.received)
    assert all(r["token"] == history[r["body"]] for r in user_app.received), "the original tokens"


def test_replay_to_a_failing_app_exits_5_with_a_summary(history: dict[bytes, str]) -> None:
    with CaptureApp(default=500) as user_app:
        result = runner.invoke(app, ["replay", DELIVERED, "--url", user_app.url()])
    assert result.exit_code == 5 and "2 of 2 event(s) were not answered 2xx" in result.stderr
    assert "500 ×2" in result.stderr


def test_replay_of_an_unknown_message_is_a_clear_error(history: dict[bytes, str]) -> None:
    result = runner.invoke(app, ["replay", "ffffffff-0000", "--url", "http://127.0.0.1:9/x"])
    assert result.exit_code == 7 and "no message 'ffffffff-0000'" in result.stderr


def test_export_jsonl_and_csv_have_every_message_and_timeline(
    sandbox: BackgroundSandbox, history: dict[bytes, str], tmp_path: Path
) -> None:
    sent = runner.invoke(app, ["send", "+14155550120", "to export", "--client-ref", "ref-1", "--wait"])
    assert sent.exit_code == 1, sent.output  # the emulator's undeliverable number
    jsonl = runner.invoke(app, ["export"])
    assert jsonl.exit_code == 0, jsonl.output
    records = {r["message_uuid"]: r for r in map(json.loads, jsonl.stdout.splitlines())}
    assert len(records) == 3 and "exported 3 messages" in jsonl.stderr
    assert [e["status"] for e in records[REJECTED]["events"]] == ["submitted", "rejected"]
    assert records[REJECTED]["source"] == "webhook" and records[REJECTED]["error_code"] == "1240"
    mine = next(r for r in records.values() if r["source"] == "smsctl")
    assert (mine["client_ref"], mine["status"], mine["final"]) == ("ref-1", "undeliverable", True)
    target = tmp_path / "out.csv"
    written = runner.invoke(app, ["export", "--format", "csv", "-o", str(target), "--status", "delivered"])
    assert written.exit_code == 0, written.output
    assert target.stat().st_mode & 0o777 == 0o600, "phone numbers: a private file"
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 1 and rows[0]["message_uuid"] == DELIVERED
    row = rows[0]
    assert (row["status"], row["price"], row["currency"], row["source"]) == (
        "delivered",
        "0.0057",
        "EUR",
        "webhook",
    )
    assert row["submitted_at"] and row["final_at"] >= row["submitted_at"]


def test_export_inbound_and_an_empty_store(credentials: dict[str, str]) -> None:
    empty = runner.invoke(app, ["export", "--format", "csv"])
    assert empty.exit_code == 0 and empty.stdout.splitlines()[0].startswith("message_uuid,to,from")
    inbound = runner.invoke(app, ["export", "--inbound"])
    assert inbound.exit_code == 0 and inbound.stdout == ""


@pytest.mark.integration
def test_export_inbound_streams_every_inbound_sms(credentials: dict[str, str]) -> None:
    import urllib.request

    with ListenProcess() as listener:
        url = listener.ready()["inbound_url"]
        for i in range(3):
            body = json.dumps({"channel": "sms", "message_uuid": f"cccccccc-0000-4000-8000-00000000000{i}",
                               "to": "14155550199", "from": f"1415555012{i}", "text": f"reply {i}",
                               "timestamp": "2025-02-03T12:00:00Z", "message_type": "text"}).encode()  # fmt: skip
            request = urllib.request.Request(url, data=body, headers=signed_headers(body), method="POST")
            assert urllib.request.urlopen(request, timeout=10).status == 200
        listener.stop()
    jsonl = runner.invoke(app, ["export", "--inbound"])
    assert jsonl.exit_code == 0 and "exported 3 inbound SMS" in jsonl.stderr
    assert [json.loads(line)["text"] for line in jsonl.stdout.splitlines()] == [
        "reply 0",
        "reply 1",
        "reply 2",
    ]
    rows = list(
        csv.DictReader(io.StringIO(runner.invoke(app, ["export", "--inbound", "--format", "csv"]).stdout))
    )
    assert [r["from"] for r in rows] == ["+14155550120", "+14155550121", "+14155550122"]
    assert runner.invoke(app, ["export", "--inbound", "--since", "1h"]).stdout.count("\n") == 3
