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
from tests import warm
from tests.helpers import BackgroundSandbox, stored

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, Any, str]:
    result = runner.invoke(app, [*args, "--json"], env=env)
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
    assert (
        code == 11 and again["counts"].get("already_sent") == 25 and again["counts"].get("accepted") == 5
    ), stderr
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
        runs.append(warm.popen(
            [sys.executable, "-m", "smsctl", "bulk", str(csv), f"from {who}", "--rate", "0", "--concurrency", "8",
             "--json"], cwd=home, env={**env, "HOME": str(home)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        ))  # fmt: skip
    outcomes = [run.communicate(timeout=120) for run in runs]
    codes = [run.returncode for run in runs]
    accepted = sum(json.loads(out.splitlines()[-1])["counts"].get("accepted", 0) for out, _ in outcomes)
    assert accepted == 150 and len([r for r in sandbox.requests if r.status == 202]) == 150
    assert sorted(codes) in ([0, 11], [11, 11]), [err[-300:] for _, err in outcomes]


# --- spend: estimated from the prices the store has seen -------------------------------------------


def learn_prices() -> None:
    """Two sends whose receipts carry the emulator's prices: US 0.0057 and GB 0.0396 EUR a segment."""
    for number in ("+14155550101", "+447400123456"):
        code, result, stderr = invoke("send", number, "price me", "--wait", "--timeout", "30")
        assert code == 0 and result["status"] == "delivered", stderr


def test_dry_run_estimates_the_cost_per_country_and_warns_of_new_countries(
    on_backend: StoreLocation, sandbox: BackgroundSandbox, tmp_path: Path
) -> None:
    learn_prices()
    csv = tmp_path / "world.csv"
    rows = [f"+1415555{3000 + n:04d}" for n in range(10)] + [f"+447400{123000 + n:06d}" for n in range(5)]
    csv.write_text("to\n" + "\n".join([*rows, "+33612345678", "+33612345679"]) + "\n")
    requests = len(sandbox.requests)
    code, report, stderr = invoke("bulk", str(csv), "x" * 200, "--dry-run")  # two segments each
    assert code == 0, stderr
    assert len(sandbox.requests) == requests  # a dry run sends nothing
    costs = {c["country"]: c for c in report["countries"]}
    assert costs["US"] == {
        "country": "US",
        "rows": 10,
        "segments": 20,
        "estimated_cost": 0.114,
        "priced": True,
    }
    assert costs["GB"]["estimated_cost"] == 0.396 and costs["GB"]["priced"]
    assert costs["FR"] == {
        "country": "FR",
        "rows": 2,
        "segments": 4,
        "estimated_cost": 0.1584,
        "priced": False,
    }
    assert report["estimated_cost"] == round(0.114 + 0.396 + 0.1584, 4) and report["currency"] == "EUR"
    assert report["new_countries"] == ["FR"] and "never sent to (FR)" in stderr
    code, _, stderr = invoke(
        "bulk", str(csv), "x" * 200, "--dry-run", env={"SMSCTL_ALLOW_COUNTRIES": "US,GB,FR"}
    )
    assert code == 0 and "never sent to" not in stderr  # the user said where sends go
    text = runner.invoke(app, ["bulk", str(csv), "hello", "--dry-run"])
    assert text.exit_code == 0 and "FR" in text.stderr and "0.0792 EUR *" in text.stderr


def test_the_daily_spend_cap_holds_to_the_estimate(
    on_backend: StoreLocation, sandbox: BackgroundSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    learn_prices()
    monkeypatch.setenv("SMSCTL_DAILY_SPEND", "0.1")  # US at 0.0057: 17 messages fit, the 18th would pass it
    code, summary, stderr = invoke("bulk", str(numbers_csv(tmp_path / "us.csv", 30)), "hi", "--rate", "0",
                                   "--concurrency", "1")  # fmt: skip
    assert code == 11 and "SMSCTL_DAILY_SPEND (0.1000 EUR) would be passed today" in stderr
    assert summary["counts"]["accepted"] == 17
    assert len([r for r in sandbox.requests if r.status == 202]) == 2 + 17
    unsent = stored(on_backend, lambda s: [m for m in s.recent_messages(100) if m.status == "unsent"])
    assert unsent and all((m.error or "").startswith("SMSCTL_DAILY_SPEND") for m in unsent)
    assert stored(on_backend, lambda s: s.refusals_since(0))[1] == len(unsent)


def test_a_spend_cap_with_no_price_known_refuses_until_a_fallback_is_set(
    credentials: dict[str, str], sandbox: BackgroundSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSCTL_BATCH_SPEND", "5")
    monkeypatch.setenv("SMSCTL_DAILY_SPEND", "5")
    code, _, stderr = invoke("send", "+14155550101", "hello")
    error = json.loads(stderr)["error"]
    assert code == 11 and "no price is known for messages to US" in error["message"]
    assert "SMSCTL_FALLBACK_PRICE" in error["hint"] and sandbox.requests == []
    monkeypatch.setenv("SMSCTL_FALLBACK_PRICE", "0.05")
    assert invoke("send", "+14155550101", "hello")[0] == 0
