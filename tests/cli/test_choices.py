"""Every choice is checked (issue 20, item 15): an unknown value is a usage error (exit 2) that names the
choices and the nearest one, before anything is read or sent."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from smsctl.history.backends import open_store
from smsctl.history.events import parse_status

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "near"),
    [(["log", "--status", "delivred"], "delivered"), (["log", "--status", "undeliverble"], "undeliverable"),
     (["export", "--status", "rejectd"], "rejected"), (["export", "--format", "jsnl"], "jsonl"),
     (["replay", "--status", "submited", "--url", "http://127.0.0.1:9/x"], "submitted"),
     (["trigger", "delivred", "--url", "http://127.0.0.1:9/x"], "delivered")],
)  # fmt: skip
def test_a_misspelt_choice_is_exit_2_with_did_you_mean(
    credentials: dict[str, str], db_path: Path, args: list[str], near: str
) -> None:
    store = open_store(db_path)
    with store.transaction():
        body = json.dumps({"message_uuid": "aaaaaaaa-0000-4000-8000-000000000001", "to": "14155550101",
                           "from": "14155550199", "status": "delivered", "timestamp": "2025-02-03T12:00:00Z",
                           "channel": "sms"}).encode()  # fmt: skip
        store.apply_status(parse_status(body), time.time())
    store.close()
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"did you mean {near!r}?" in result.stderr and "one of:" in result.stderr
    assert result.stdout == "", "nothing printed as if the filter had matched nothing"
    as_json = runner.invoke(app, [*args, "--json"])
    assert as_json.exit_code == 2 and json.loads(as_json.stderr)["error"]["code"] == 2


def test_a_choice_in_any_case_is_accepted(credentials: dict[str, str]) -> None:
    assert runner.invoke(app, ["log", "--status", "Delivered"]).exit_code == 0
    assert runner.invoke(app, ["export", "--format", "CSV"]).exit_code == 0


def test_a_value_far_from_every_choice_lists_them_without_a_guess(credentials: dict[str, str]) -> None:
    result = runner.invoke(app, ["log", "--status", "zzzz"])
    assert result.exit_code == 2 and "did you mean" not in result.stderr
    assert "one of: submitted, delivered, rejected, undeliverable, pending" in result.stderr
