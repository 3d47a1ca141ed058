"""Every command's --json output against the documented schema, docs/json-schema.json (issue 20, item
16): one shape per object, times in ISO 8601 UTC, numbers in E.164 with +, counts as numbers, and every
error (usage errors included) as the same JSON object on stderr."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from smsctl.cli import app
from smsctl.history.backends import open_store
from smsctl.history.events import parse_inbound
from smsctl.history.interface import NewForward, Route
from tests.helpers import BackgroundSandbox

runner = CliRunner()
SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "json-schema.json").read_text())


def valid(definition: str, value: Any) -> None:
    schema = {**SCHEMA, "$ref": f"#/$defs/{definition}"}
    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=str)
    assert not errors, f"{definition}: {errors[0].message} at {list(errors[0].absolute_path)} in {value!r}"


def run(*args: str, code: int = 0) -> Any:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, (args, result.output)
    return result


def test_the_schema_itself_is_valid() -> None:
    Draft202012Validator.check_schema(SCHEMA)


def test_every_command_s_json_matches_the_documented_schema(
    sandbox: BackgroundSandbox, db_path: Path, tmp_path: Path
) -> None:
    sent = json.loads(run("send", "+14155550101", "hello").stdout)
    valid("sent", sent)
    waited = json.loads(run("send", "+14155550110", "rejected, waited for", "--wait", code=1).stdout)
    valid("waited", waited)
    assert waited["events"] and waited["to"] == "+14155550110"

    csv = tmp_path / "list.csv"
    csv.write_text("to,name\n+14155550101,Ann\n+14155550120,Bob\n")
    lines = [json.loads(line) for line in run("bulk", str(csv), "Hi {name}").stdout.splitlines()]
    for line in lines:
        valid("bulk_line", line)
    valid("batch", json.loads(run("batch", lines[0]["batch_id"]).stdout))

    store = open_store(db_path)
    with store.transaction():
        raw = json.dumps({"channel": "sms", "message_uuid": "cccccccc-0000-4000-8000-000000000001",
                          "to": "14155550199", "from": "14155550123", "text": "STOP",
                          "timestamp": "2025-02-03T12:00:00Z", "message_type": "text"}).encode()  # fmt: skip
        store.add_inbound(parse_inbound(raw), time.time())
        store.add_forward(NewForward(Route.STATUS, sent["message_uuid"], "http://127.0.0.1:9/x", b"{}",
                                     "application/json", None, "status http://127.0.0.1:9/x"), time.time(), 60.0)  # fmt: skip
    store.close()

    messages = json.loads(run("log").stdout)
    assert len(messages) == 4
    for message in messages:
        valid("message", message)
    for message in json.loads(run("log", "--inbound").stdout):
        valid("inbound", message)
    valid("message_report", json.loads(run("status", sent["message_uuid"]).stdout))
    for line in run("export").stdout.splitlines():
        valid("message", json.loads(line))
    for line in run("export", "--inbound").stdout.splitlines():
        valid("inbound", json.loads(line))
    valid("exported", json.loads(run("export", "-o", str(tmp_path / "out.csv"), "--format", "csv").stdout))
    forwards = json.loads(run("forwards").stdout)
    assert len(forwards) == 1
    valid("forward", forwards[0])
    valid("retried", json.loads(run("forwards", "retry", "--all").stdout))
    valid(
        "triggered", json.loads(run("trigger", "delivered", "--url", "http://127.0.0.1:9/x", code=5).stdout)
    )
    valid(
        "replayed",
        json.loads(run("replay", waited["message_uuid"], "--url", "http://127.0.0.1:9/x", code=5).stdout),
    )
    valid("migrated", json.loads(run("db", "migrate").stdout))
    valid("config", json.loads(run("config").stdout))
    valid("initialised", json.loads(run("init", str(tmp_path / "new.env")).stdout))


@pytest.mark.parametrize(
    ("args", "code"),
    [(["send"], 2), (["log", "--limit", "x"], 2), (["log", "--status", "delivred"], 2), (["status", "ffffffff"], 7),
     (["export", "--nope"], 2), (["send", "+14155550101", "hi", "--ttl", "1"], 2), (["bulk"], 2)],
)  # fmt: skip
def test_every_error_is_the_documented_json_object_on_stderr(
    credentials: dict[str, str], args: list[str], code: int
) -> None:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, result.output
    assert result.stdout == "", "stdout holds data only"
    error = json.loads(result.stderr.strip().splitlines()[-1])
    valid("error", error)
    assert error["error"]["code"] == code
