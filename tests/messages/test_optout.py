"""The opt-out ledger (issue 23) on both backends: STOP from the emulator refuses the next send before any
request, START allows it again; a 1240 rejection adds the number; `bulk` suppresses opted-out rows;
`smsctl optout` keeps every change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from smsctl.config import StoreLocation
from smsctl.history.events import OptKeyword, opt_keyword
from tests.cli.test_json_contract import valid
from tests.helpers import BackgroundSandbox, ListenProcess, SandboxProcess, stored, until

runner = CliRunner()
PERSON = "+14155550123"


def invoke(*args: str) -> tuple[int, Any, str]:
    result = runner.invoke(app, [*args, "--json"])
    lines = result.stdout.strip().splitlines()
    return result.exit_code, (json.loads(lines[-1]) if lines else None), result.stderr


def text_in(sandbox: BackgroundSandbox, text: str) -> None:
    import urllib.request

    body = json.dumps({"from": PERSON, "text": text}).encode()
    request = urllib.request.Request(f"{sandbox.url}/_sandbox/inbound", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202


def opted_out(where: StoreLocation, number: str = PERSON) -> bool:
    return stored(where, lambda s: s.optout_of(number[1:], "14155550199")) is not None


def test_stop_refuses_the_next_send_before_any_request_and_start_allows_it(
    on_backend: StoreLocation, sandbox: BackgroundSandbox
) -> None:
    # The listener's own keyword list (a French-speaking audience too): a word of it opts out.
    with ListenProcess(env={"SMSCTL_OPTOUT_KEYWORDS": "STOP, Arret"}) as listener:
        # The emulator's application sends inbound SMS to this listener (what `listen --update-app` sets).
        hooks = sandbox.sandbox.application["capabilities"]["messages"]["webhooks"]
        hooks["inbound_url"] = {"address": listener.ready()["inbound_url"], "http_method": "POST"}
        text_in(sandbox, " ARRET ")
        until(lambda: opted_out(on_backend), "the STOP to reach the ledger")
        requests = len(sandbox.requests)
        code, _, stderr = invoke("send", PERSON, "hello again")
        assert code == 10 and "opted out" in json.loads(stderr)["error"]["message"]
        assert len(sandbox.requests) == requests  # refused locally: the API never heard of it
        text_in(sandbox, "STOPALL")  # now of every sender too
        until(
            lambda: stored(on_backend, lambda s: s.optout_of(PERSON[1:], "AcmeBank")) is not None, "STOPALL"
        )
        text_in(sandbox, "START")  # START undoes both: the person wants messages again
        until(lambda: not opted_out(on_backend), "the START to reach the ledger")
        assert stored(on_backend, lambda s: s.optout_of(PERSON[1:], "AcmeBank")) is None
        code, sent, stderr = invoke("send", PERSON, "welcome back")
        assert code == 0, stderr
        assert listener.stop() == 0
    history = invoke("optout", "show", PERSON)[1]
    assert [(h["opted_out"], h["sender"]) for h in history] == [
        (True, "14155550199"),
        (True, "*"),
        (False, "*"),
        (False, "14155550199"),
    ]
    assert {h["source"] for h in history} == {"inbound"}


def test_a_1240_rejection_adds_the_number_as_carrier(
    on_backend: StoreLocation, sandbox: BackgroundSandbox
) -> None:
    code, result, _ = invoke("send", "+14155550110", "first", "--wait", "--timeout", "30")
    assert code == 1 and result["status"] == "rejected"
    until(lambda: opted_out(on_backend, "+14155550110"), "the carrier opt-out")
    [entry] = invoke("optout", "list")[1]
    assert (entry["number"], entry["source"], entry["reference"]) == (
        "+14155550110",
        "carrier",
        result["message_uuid"],
    )
    code, _, _ = invoke("send", "+14155550110", "second")
    assert code == 10
    code, sent, stderr = invoke("send", "+14155550110", "your code is 1234", "--ignore-optout")
    assert code == 0, stderr  # the documented exception, recorded on the message
    flagged = stored(on_backend, lambda s: s.recent_messages(10))
    assert [m.status for m in flagged].count("suppressed") == 1


@pytest.fixture
def unthrottled(credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxProcess]:
    """The emulator without its rate limit (10,000 sends in one burst draw no 429 pauses, seconds each), in
    a process of its own (tests/helpers.SandboxProcess)."""
    with SandboxProcess("--rate", "0") as running:
        monkeypatch.setenv("VONAGE_API_URL", running.url)
        yield running


@pytest.mark.long
def test_bulk_sends_the_rest_and_reports_the_opted_out_as_suppressed(
    on_backend: StoreLocation, unthrottled: SandboxProcess, tmp_path: Path
) -> None:
    sandbox = unthrottled
    numbers = [f"+1{area}555{n:04d}" for area in (212, 646) for n in range(5000)]  # 10,000, as the issue asks
    stop_list = tmp_path / "stop.csv"
    stop_list.write_text("name,number\n" + "".join(f"x,{n}\n" for n in numbers[::20]))  # 500 of them
    assert invoke("optout", "import", str(stop_list))[1] == {"imported": 500, "file": str(stop_list)}
    csv = tmp_path / "list.csv"
    csv.write_text("to\n" + "".join(f"{n}\n" for n in numbers))
    dry = runner.invoke(app, ["bulk", str(csv), "hello", "--dry-run", "--json"])
    assert json.loads(dry.stdout.splitlines()[0])["opted_out"] == 500  # told first
    code, summary, stderr = invoke("bulk", str(csv), "hello", "--rate", "0", "--concurrency", "64")
    assert code == 0, stderr
    assert summary["counts"] == {"accepted": 9500, "suppressed": 500}
    batch = invoke("batch", summary["batch_id"])[1]
    assert batch["counts"]["suppressed"] == 500
    assert stored(on_backend, lambda s: s.refusals_since(0)) == (500, 0)  # what /metrics and the footer count
    code, again, stderr = invoke("bulk", str(csv), "hello", "--rate", "0", "--concurrency", "64")
    assert code == 0, stderr
    assert again["counts"] == {"already_sent": 9500, "suppressed": 500}  # a rerun sends nothing twice
    assert sandbox.stop() == 143  # a clean SIGTERM: its whole request log (dry run and rerun sent none)
    assert [r["status"] for r in sandbox.requests] == [202] * 9500
    assert {r["to"] for r in sandbox.requests}.isdisjoint(n[1:] for n in numbers[::20])  # none opted out


def test_optout_commands_keep_every_change_and_refuse_bad_input(
    on_backend: StoreLocation, tmp_path: Path
) -> None:
    added = invoke("optout", "add", PERSON)[1]
    valid("optout", added)
    assert added["changed"] is True
    assert invoke("optout", "add", PERSON)[1]["changed"] is False  # it already was
    assert invoke("optout", "remove", PERSON, "--sender", "+14155550199")[1]["sender"] == "14155550199"
    history = invoke("optout", "show", PERSON)[1]
    assert [e["opted_out"] for e in history] == [True, True, False]
    for entry in history + invoke("optout", "list")[1]:
        valid("optout", entry)
    bad = tmp_path / "bad.txt"
    bad.write_text("+14155550001\nnot a number\n+14155550002\n")
    code, _, stderr = invoke("optout", "import", str(bad))
    assert code == 2 and "line 2" in stderr
    assert stored(on_backend, lambda s: s.optouts(10)) != [] and not opted_out(on_backend, "+14155550001")
    exported = runner.invoke(app, ["optout", "export"]).stdout.splitlines()
    assert exported[0] == "number,sender,source,reference,changed_at" and exported[1].startswith(
        PERSON + ",*,manual"
    )
    assert invoke("optout", "add", "12345")[0] == 2


@pytest.mark.parametrize(("text", "keyword"), [
    ("STOP", OptKeyword.STOP), (" stop ", OptKeyword.STOP), ("S T O P", OptKeyword.STOP),
    ("Unsubscribe", OptKeyword.STOP), ("quit.", OptKeyword.STOP), ("STOPALL", OptKeyword.STOP_ALL),
    ("start", OptKeyword.START), ("Yes", OptKeyword.START), ("stop it", None), ("stopped", None),
    ("", None), (None, None), ("stop" * 20, None),
])  # fmt: skip
def test_keywords_are_whole_texts_case_and_space_insensitive(
    text: str | None, keyword: OptKeyword | None
) -> None:
    assert opt_keyword(text) == keyword


def test_keyword_lists_are_configurable_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from smsctl.config import load_settings
    from smsctl.errors import ConfigError
    from smsctl.history.events import Keywords

    monkeypatch.setenv("SMSCTL_OPTOUT_KEYWORDS", "stop, arret ,Baja")
    monkeypatch.setenv("SMSCTL_OPTIN_KEYWORDS", "START,Alta")
    keywords = Keywords(*load_settings().optout_keywords)
    assert [keywords.of(t) for t in ("Baja", "ARRET!", "unsubscribe", "alta", "STOPALL")] == [
        OptKeyword.STOP, OptKeyword.STOP, None, OptKeyword.START, OptKeyword.STOP_ALL]  # fmt: skip
    for name, value in (("SMSCTL_OPTOUT_KEYWORDS", "STOP,,END"), ("SMSCTL_OPTIN_KEYWORDS", "START,QUIT")):
        monkeypatch.setenv(name, value)
        with pytest.raises(ConfigError):
            _ = load_settings().optout_keywords
        monkeypatch.delenv(name)


def test_the_ledger_check_is_one_lookup_by_key(db_path: Path) -> None:
    """A send's check reads the ledger by its primary key, whatever its size (bench/sender.py measures
    what it costs)."""
    from smsctl.history.backends import open_store
    from smsctl.history.optouts import OptoutChange, OptoutSource

    store = open_store(db_path)
    try:
        with store.transaction():
            for n in range(1000):
                store.change_optout(
                    OptoutChange(f"4477009{n:05d}", "*", True, OptoutSource.IMPORT, None, 0.0)
                )
        plan = store.conn.execute(  # type: ignore[attr-defined]
            "EXPLAIN QUERY PLAN SELECT * FROM optouts WHERE number = ? AND sender IN (?, ?) AND opted_out = 1",
            ("447700900123", "14155550199", "*"),
        ).fetchall()
        assert any("sqlite_autoindex_optouts_1" in str(tuple(row)) for row in plan), plan
        assert store.optout_of("447700900123", "14155550199") is not None
        assert store.optout_of("447700999999", "14155550199") is None
    finally:
        store.close()


def test_status_of_a_number_is_its_opt_out_history(credentials: dict[str, str]) -> None:
    assert invoke("optout", "add", PERSON)[0] == 0
    assert invoke("optout", "remove", PERSON)[0] == 0
    code, history, _ = invoke("status", PERSON)
    assert code == 0 and [(h["opted_out"], h["source"]) for h in history] == [
        (True, "manual"),
        (False, "manual"),
    ]
    assert history == invoke("optout", "show", PERSON)[1]
    for entry in history:
        valid("optout", entry)
    code, _, stderr = invoke("status", "+12")
    assert code == 2 and "not an E.164 number" in stderr
