"""`smsctl status` and `smsctl log`, in both forms, and the offline demo run to completion."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from tests.helpers import BackgroundSandbox

runner = CliRunner()


_BUILT: dict[str, Any] = {}  # per test process: the uuids and a copy of the store they are in


@pytest.fixture
def history(credentials: dict[str, str], db_path: Path, monkeypatch: pytest.MonkeyPatch,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # fmt: skip
    """Three messages sent and tracked to their final status through the emulator, by a running
    `smsctl listen` (so the duplicate that arrives after `--wait` has returned is stored too).

    Built once per test process (a listener, an emulator and three waits: ~1.5 s of CPU) and copied
    into each test's own store directory, so a test that writes changes only its copy."""
    import shutil

    if "uuids" not in _BUILT:
        _BUILT["uuids"] = _send_three(db_path, monkeypatch)
        template = tmp_path_factory.mktemp("history-template") / "store"  # pytest removes it, as its others
        shutil.copytree(db_path.parent, template)
        _BUILT["template"] = template
    else:
        shutil.copytree(_BUILT["template"], db_path.parent)
    return dict(_BUILT["uuids"])


def _send_three(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    from tests.helpers import ListenProcess, stored

    uuids = {}
    with BackgroundSandbox.from_environment(time_scale=0.01) as emulator:
        monkeypatch.setenv("VONAGE_API_URL", emulator.url)
        with ListenProcess() as listener:
            listener.ready()
            for to, ref in (("+14155550101", "ok-1"), ("+14155550110", "no-1"), ("+14155550150", "dup-1")):
                result = runner.invoke(
                    app, ["send", to, "history", "--client-ref", ref, "--wait", "--timeout", "30"]
                )
                assert result.exit_code in (0, 1), result.output
                uuids[ref] = result.stdout.split()[0]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # polling the store, with a deadline, for the re-delivery
                current = stored(db_path, lambda s: s.current_status(uuids["dup-1"]))
                if current is not None and current.duplicates:
                    break
                time.sleep(0.02)
            assert listener.stop() == 0
    return uuids


def test_status_json_has_the_timeline(history: dict[str, str]) -> None:
    result = runner.invoke(app, ["status", history["no-1"], "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["status"], data["final"], data["to"], data["client_ref"]) == (
        "rejected",
        True,
        "+14155550110",
        "no-1",
    )
    rejected = data["events"][-1]
    assert (rejected["error_code"], rejected["price"], rejected["currency"]) == ("1240", "0.0057", "EUR")
    assert rejected["error_meaning"].startswith("Illegal Number")
    assert all(e["received_at"] and e["timestamp"] for e in data["events"])


def test_status_counts_duplicates(history: dict[str, str]) -> None:
    data = json.loads(runner.invoke(app, ["status", history["dup-1"], "--json"]).stdout)
    assert data["duplicates"] == 1 and len(data["events"]) == 2


def test_status_human_form_and_prefix(history: dict[str, str]) -> None:
    result = runner.invoke(app, ["status", history["no-1"][:8]])
    assert result.exit_code == 0, result.output
    assert history["no-1"] in result.stdout and "1240 Illegal Number" in result.stdout
    assert "submitted" in result.stdout and "rejected" in result.stdout


@pytest.mark.parametrize("ref", ["00000000-0000-4000-8000-000000000000", "deadbeef", "abc", "%%%%%%%%"])
def test_unknown_message_exits_7(history: dict[str, str], ref: str) -> None:
    result = runner.invoke(app, ["status", ref])
    assert result.exit_code == 7, result.output
    assert "no message" in result.stderr and "smsctl log" in result.stderr
    as_json = runner.invoke(app, ["status", ref, "--json"])
    assert as_json.exit_code == 7 and json.loads(as_json.stderr)["error"]["code"] == 7
    assert as_json.stdout == ""


def test_log_lists_newest_first_with_filters(history: dict[str, str]) -> None:
    result = runner.invoke(app, ["log", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["client_ref"] for r in rows] == ["dup-1", "no-1", "ok-1"]
    assert [r["status"] for r in rows] == ["delivered", "rejected", "delivered"]
    rejected = json.loads(runner.invoke(app, ["log", "--json", "--status", "rejected"]).stdout)
    assert [r["client_ref"] for r in rejected] == ["no-1"]
    assert (
        json.loads(runner.invoke(app, ["log", "--json", "--limit", "1"]).stdout)[0]["client_ref"] == "dup-1"
    )
    assert len(json.loads(runner.invoke(app, ["log", "--json", "--since", "1h"]).stdout)) == 3
    human = runner.invoke(app, ["log"])
    assert human.exit_code == 0 and "ok-1" in human.stdout and "rejected" in human.stdout


def test_log_rejects_a_bad_duration(history: dict[str, str]) -> None:
    result = runner.invoke(app, ["log", "--since", "yesterday"])
    assert result.exit_code == 2 and "not a duration" in result.stderr


def test_log_inbound(credentials: dict[str, str]) -> None:
    result = runner.invoke(app, ["log", "--inbound", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout) == []


@pytest.mark.integration
@pytest.mark.integration
def test_demo_runs_to_completion_offline(credentials: dict[str, str], db_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--json", "--time-scale", "0.05", "--bound", "60"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["event"] == "ready"
    summary = lines[-1]
    assert summary["event"] == "summary"
    finals = {m["to"]: m["status"] for m in summary["messages"]}
    assert finals == {"+14155550101": "delivered", "+14155550110": "rejected", "+14155550120": "undeliverable",
                      "+14155550150": "delivered", "+14155550160": "delivered", "+14155550170": "delivered",
                      "+14155550180": "delivered", "+14155550195": "delivered"}  # fmt: skip
    assert all(m["final"] for m in summary["messages"])
    lost = next(m for m in summary["messages"] if m["to"] == "+14155550195")
    assert [e["source"] for e in lost["events"]] == ["reports"]  # its webhook never came: reconciled
    assert any(line["event"] == "reconciled" and "1 now final" in line["detail"] for line in lines)
    assert summary["listener"]["duplicates"] >= 1 and summary["listener"]["rejected"] == {
        "missing_signature": 1
    }
    assert any(line.get("anomaly") == "late" for line in lines)
    assert summary["inbound"]["text"] == "STOP" and summary["inbound"]["from"] == "14155550123"
    assert (
        "+14155550123 opted out of" in summary["refused_after_stop"]
    )  # STOP → the next send refused locally
    stored_events = summary["listener"]["accepted"] + summary["listener"]["inbound"]
    assert summary["app"] == {"received": stored_events, "verified": stored_events}, (
        "every event forwarded, verified"
    )
    assert summary["listener"]["forwards"]["delivered"] == stored_events
    assert not db_path.exists(), "the demo must not touch the user's store"


@pytest.mark.integration
@pytest.mark.integration
def test_demo_human_summary(credentials: dict[str, str]) -> None:
    result = runner.invoke(app, ["demo", "--time-scale", "0.05"])
    assert result.exit_code == 0, result.output
    assert "demo summary" in result.stdout and "1 duplicate absorbed" in result.stdout
    assert "webhook lost; from the Reports API" in result.stdout
    assert "missing_signature 1" in result.stdout


def _post_signed(url: str, body: dict[str, object]) -> int:
    import urllib.request

    from tests.helpers import signed_headers

    raw = json.dumps(body).encode()
    request = urllib.request.Request(url, data=raw, headers=signed_headers(raw), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def test_log_lists_messages_seen_only_through_webhooks(history: dict[str, str]) -> None:
    """Another program sent these; `smsctl listen` received their statuses: `log` must show them too."""
    from tests.helpers import ListenProcess

    other = "bbbbbbbb-0000-4000-8000-00000000000"
    with ListenProcess() as listener:
        status_url = listener.ready()["status_url"]
        for n in range(3):
            for status in ("submitted", "delivered" if n else "rejected"):
                body = {
                    "message_uuid": f"{other}{n}",
                    "to": f"1415555020{n}",
                    "from": "Acme",
                    "status": status,
                    "timestamp": f"2026-11-30T10:00:0{n}Z",
                    "client_ref": f"app-{n}",
                }
                if status == "rejected":
                    body["error"] = {"title": "1240", "detail": "Illegal Number"}
                assert _post_signed(status_url, body) == 200
        listener.stop()
    rows = json.loads(runner.invoke(app, ["log", "--json"]).stdout)
    assert [r["client_ref"] for r in rows] == ["app-2", "app-1", "app-0", "dup-1", "no-1", "ok-1"]
    assert [r["source"] for r in rows] == ["webhook"] * 3 + ["smsctl"] * 3
    assert rows[2] | {"last_activity": None} == rows[2] | {
        "message_uuid": f"{other}0", "to": "+14155550200", "from": "Acme", "status": "rejected", "final": True,
        "error_code": "1240", "sent_at": None, "batch_id": None, "last_activity": None,
    }  # fmt: skip
    rejected = json.loads(runner.invoke(app, ["log", "--json", "--status", "rejected"]).stdout)
    assert [r["client_ref"] for r in rejected] == ["app-0", "no-1"]
    assert len(json.loads(runner.invoke(app, ["log", "--json", "--limit", "2"]).stdout)) == 2
    batch_only = json.loads(runner.invoke(app, ["log", "--json", "--batch", "bnone"]).stdout)
    assert batch_only == []
    human = runner.invoke(app, ["log"])
    assert human.exit_code == 0 and "via webhook" in human.stdout and "app-1" in human.stdout
