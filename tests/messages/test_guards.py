"""Send guards (issue 23): allowed destination countries and the daily and per-batch caps, refused before
any request is made; a cap holds across two concurrent `bulk` runs from two HOMEs on one store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from smsctl.config import StoreLocation
from tests.helpers import BackgroundSandbox, stored

runner = CliRunner()


def invoke(*args: str) -> tuple[int, Any, str]:
    result = runner.invoke(app, [*args, "--json"])
    lines = result.stdout.strip().splitlines()
    return result.exit_code, (json.loads(lines[-1]) if lines else None), result.stderr


def numbers_csv(path: Path, count: int, start: int = 3000) -> Path:
    path.write_text("to\n" + "".join(f"+1415555{start + n:04d}\n" for n in range(count)))
    return path


def test_a_country_not_allowed_is_refused_before_any_request(
    credentials: dict[str, str], sandbox: BackgroundSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SMSCTL_ALLOW_COUNTRIES", "us, CA")
    code, _, stderr = invoke("send", "+447400123456", "hello")
    assert (
        code == 11
        and "GB, not one of SMSCTL_ALLOW_COUNTRIES (CA, US)" in json.loads(stderr)["error"]["message"]
    )
    assert sandbox.requests == []
    csv = tmp_path / "mixed.csv"
    csv.write_text("to\n+14155550101\n+447700900123\n")
    code, _, stderr = invoke("bulk", str(csv), "hello")
    assert code == 2 and "(lines 3)" in stderr and sandbox.requests == []  # validated first: nothing sent
    assert invoke("send", "+14155550101", "hello")[0] == 0


def test_a_bad_country_list_is_a_config_error(
    credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSCTL_ALLOW_COUNTRIES", "USA")
    code, _, stderr = invoke("send", "+14155550101", "hello")
    assert code == 3 and "two-letter" in stderr


def test_the_daily_cap_stops_a_batch_and_a_rerun_sends_nothing_twice(
    on_backend: StoreLocation, sandbox: BackgroundSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SMSCTL_DAILY_CAP", "25")
    csv = numbers_csv(tmp_path / "list.csv", 40)
    code, summary, stderr = invoke("bulk", str(csv), "hello", "--rate", "0", "--concurrency", "4")
    assert code == 11 and "SMSCTL_DAILY_CAP is reached" in stderr
    assert summary["counts"]["accepted"] == 25 and len([r for r in sandbox.requests if r.status == 202]) == 25
    unsent = stored(on_backend, lambda s: [m for m in s.recent_messages(100) if m.status == "unsent"])
    assert unsent and all("SMSCTL_DAILY_CAP" in (m.error or "") for m in unsent)  # never sent, and says why
    assert stored(on_backend, lambda s: s.refusals_since(0)) == (0, len(unsent))  # what /metrics counts
    code, _, stderr = invoke("send", "+14155550101", "one more")
    assert code == 11 and "today" in stderr  # every sender of the store counts
    monkeypatch.setenv("SMSCTL_DAILY_CAP", "30")  # a rerun's rows that the cap stopped count as new sends
    code, again, stderr = invoke("bulk", str(csv), "hello", "--rate", "0", "--concurrency", "1")
    assert code == 11 and again["counts"].get("already_sent") == 25 and again["counts"].get("accepted") == 5
    monkeypatch.setenv("SMSCTL_DAILY_CAP", "41")
    code, again, stderr = invoke("bulk", str(csv), "hello", "--rate", "0", "--concurrency", "4")
    assert code == 0, stderr
    assert again["counts"].get("already_sent") == 30 and again["counts"].get("accepted") == 10
    assert len({r.body["client_ref"] for r in sandbox.requests if r.status == 202}) == 40  # none twice
    code, _, stderr = invoke("send", "+14155550101", "one more")
    assert code == 0, stderr  # 41 of 41 today: every send counted once
    code, _, stderr = invoke("send", "+14155550102", "and another")
    assert code == 11, stderr


def test_the_batch_cap(credentials: dict[str, str], sandbox: BackgroundSandbox, monkeypatch: pytest.MonkeyPatch,
                       tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("SMSCTL_BATCH_CAP", "10")
    code, summary, stderr = invoke("bulk", str(numbers_csv(tmp_path / "a.csv", 30)), "hi", "--rate", "0")
    assert code == 11 and "batch" in stderr and summary["counts"]["accepted"] == 10
    code, summary, _ = invoke("bulk", str(numbers_csv(tmp_path / "b.csv", 5, 5000)), "hi", "--rate", "0")
    assert code == 0 and summary["counts"] == {"accepted": 5}  # another batch, its own count


def test_a_daily_cap_holds_across_two_concurrent_bulk_runs_on_one_postgresql(
    pg_url: str, sandbox: BackgroundSandbox, credentials: dict[str, str], tmp_path: Path
) -> None:
    """Two people, two HOMEs and working directories, one team store: together they send the cap, not more."""
    env = {**os.environ, "SMSCTL_DB": pg_url, "SMSCTL_DAILY_CAP": "150", "VONAGE_API_URL": sandbox.url}
    runs = []
    for who in ("ann", "bob"):
        home = tmp_path / who
        home.mkdir()
        csv = numbers_csv(home / "list.csv", 120, 3000 if who == "ann" else 6000)
        runs.append(subprocess.Popen(
            [sys.executable, "-m", "smsctl", "bulk", str(csv), f"from {who}", "--rate", "0", "--concurrency", "8",
             "--json"], cwd=home, env={**env, "HOME": str(home)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        ))  # fmt: skip
    outcomes = [run.communicate(timeout=120) for run in runs]
    codes = [run.returncode for run in runs]
    accepted = sum(json.loads(out.splitlines()[-1])["counts"].get("accepted", 0) for out, _ in outcomes)
    assert accepted == 150 and len([r for r in sandbox.requests if r.status == 202]) == 150
    assert sorted(codes) in ([0, 11], [11, 11]), [err[-300:] for _, err in outcomes]
