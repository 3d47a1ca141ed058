"""`smsctl reconcile` against the emulator's Reports API over real HTTP, on both backends: statuses
whose webhooks never arrived become final, each once; disagreements are flagged, never overwritten;
paging and date windows; 429 and 5xx retried; credentials refused clearly."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from smsctl.config import StoreLocation
from smsctl.errors import ApiUnavailable
from smsctl.history.events import parse_status
from smsctl.history.interface import HistoryStore
from tests.cli.test_json_contract import valid
from tests.helpers import BackgroundSandbox, stored, until

runner = CliRunner()
API_SECRET = "reports-secret-0123"
MIX = ["+14155550101", "+14155550110", "+14155550120", "+14155550150", "+14155550160"]
FINAL_OF = {"+14155550101": "delivered", "+14155550110": "rejected", "+14155550120": "undeliverable",
            "+14155550150": "delivered", "+14155550160": "delivered"}  # fmt: skip


def closed_port() -> int:
    """A port nothing listens on: the listener that was stopped."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def lost_sandbox(credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[BackgroundSandbox]:
    """The emulator with Basic credentials (the Reports API's), losing every status webhook (as
    `--drop-webhooks 100`: the statuses happen, no webhook is sent). A listener that is down, its
    webhooks retried into a closed port, is the test after the next."""
    from smsctl.config import load_settings
    from smsctl.sandbox.emulator import config_from_settings

    monkeypatch.setenv("VONAGE_API_SECRET", API_SECRET)
    monkeypatch.setenv("SMSCTL_REPORTS_RATE", "1000")  # the pacing itself is tested with an injected clock
    config = config_from_settings(load_settings(), status_url=f"http://127.0.0.1:{closed_port()}/webhooks/status",
                                  time_scale=0.01, rate=None, drop_webhooks=100, reports_rate=None)  # fmt: skip
    with BackgroundSandbox(config) as running:
        monkeypatch.setenv("VONAGE_API_URL", running.url)
        yield running


def invoke(*args: str) -> tuple[int, Any, str]:
    result = runner.invoke(app, [*args, "--json"])
    lines = result.stdout.strip().splitlines()
    return result.exit_code, (json.loads(lines[-1]) if lines else None), result.stderr


def bulk_send(tmp_path: Path, count: int, numbers: list[str] = MIX) -> None:
    csv = tmp_path / "list.csv"
    csv.write_text("to\n" + "".join(f"{numbers[i % len(numbers)]}\n" for i in range(count)))
    code, _, stderr = invoke("bulk", str(csv), "hello", "--rate", "0", "--concurrency", "20")
    assert code == 0, stderr


def all_final(sandbox: BackgroundSandbox, count: int) -> bool:
    records = sandbox.sandbox.ledger.window(0, time.time() + 60)
    return len(records) == count and all(r["date_finalized"] for r in records)


def written(store: HistoryStore, write: Callable[[], Any]) -> Any:
    with store.transaction():
        return write()


def finals(store: HistoryStore) -> list[Any]:
    return [m for m in store.recent_messages(10_000) if m.final]


@pytest.mark.long
def test_a_thousand_messages_whose_webhooks_were_missed_become_final_once(
    on_backend: StoreLocation, lost_sandbox: BackgroundSandbox, tmp_path: Path
) -> None:
    bulk_send(tmp_path, 1000)
    until(lambda: all_final(lost_sandbox, 1000), "the emulator to finish 1,000 messages")
    assert not lost_sandbox.webhooks  # no status webhook was sent
    assert stored(on_backend, finals) == []

    code, report, stderr = invoke("reconcile", "--older-than", "0s")
    assert code == 0, stderr
    valid("reconciled", report)
    assert report["checked"] == 1000 and report["updated"] == 1000
    assert report["unresolved"] == 0 and report["unknown"] == 0 and report["disagreements"] == []
    assert report["requests"] == 10  # 100 UUIDs a request

    messages = stored(on_backend, lambda s: s.recent_messages(10_000))
    assert len(messages) == 1000 and all(m.final for m in messages)
    assert {FINAL_OF["+" + m.to]: 0 for m in messages} and all(
        m.status == FINAL_OF["+" + m.to] for m in messages
    )
    events = stored(on_backend, lambda s: s.events_of([m.message_uuid for m in messages if m.message_uuid]))
    assert len(events) == 1000 and {e.source for e in events} == {"reports"}  # each once, from the records
    assert all(e.country == "US" and e.latency_ms is not None for e in events)

    again = invoke("reconcile", "--older-than", "0s")
    assert again[0] == 0 and again[1]["checked"] == 0  # nothing left to ask about
    assert (
        len(stored(on_backend, lambda s: s.events_of([m.message_uuid for m in messages if m.message_uuid])))
        == 1000
    )


def test_a_listener_stopped_while_messages_finish_then_reconcile(
    on_backend: StoreLocation, credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The whole story: statuses reach a running listener; it stops; the emulator retries the next
    messages' webhooks into a closed port, as Vonage would; reconcile fills in what they carried."""
    from tests.helpers import ListenProcess

    monkeypatch.setenv("VONAGE_API_SECRET", API_SECRET)
    monkeypatch.setenv("SMSCTL_REPORTS_RATE", "1000")
    with ListenProcess() as listener:
        url = listener.ready()["status_url"]
        with BackgroundSandbox.from_environment(time_scale=0.01, rate=None, status_url=url) as emulator:
            monkeypatch.setenv("VONAGE_API_URL", emulator.url)
            delivered = ["+14155550101", "+14155550120", "+14155550150"]  # no 1240: nobody is opted out
            bulk_send(tmp_path, 20, delivered)
            until(lambda: len(stored(on_backend, finals)) == 20, "the first 20 finals through the listener")
            assert listener.stop() == 0
            bulk_send(tmp_path, 50, delivered)
            until(lambda: all_final(emulator, 70), "the emulator to finish all 70")
            assert any(w.response is None for w in emulator.webhooks)  # retried into the closed port
            code, report, stderr = invoke("reconcile", "--older-than", "0s")
    assert code == 0, stderr
    assert report["checked"] == 50 and report["updated"] == 50 and report["unresolved"] == 0
    assert len(stored(on_backend, finals)) == 70


def test_a_record_that_disagrees_with_a_stored_final_is_flagged_not_applied(
    on_backend: StoreLocation, lost_sandbox: BackgroundSandbox, tmp_path: Path
) -> None:
    csv = tmp_path / "one.csv"
    csv.write_text("to\n+14155550110\n")  # the emulator rejects it (1240)
    assert invoke("bulk", str(csv), "hello", "--rate", "0")[0] == 0
    until(lambda: all_final(lost_sandbox, 1), "the rejection")
    uuid = lost_sandbox.sandbox.ledger.window(0, time.time() + 60)[0]["message_id"]
    body = json.dumps({"message_uuid": uuid, "status": "delivered", "timestamp": "2026-01-01T00:00:00Z",
                       "to": "14155550110", "from": "14155550199", "channel": "sms"}).encode()  # fmt: skip
    stored(on_backend, lambda s: written(s, lambda: s.apply_status(parse_status(body), time.time())))

    code, report, _ = invoke("reconcile", "--older-than", "0s", "--since", "1h")
    assert code == 9, json.dumps(report)
    assert report["disagreements"] == [
        {"message_uuid": uuid, "stored": "delivered", "reported": "rejected", "raw_status": "rejected"}
    ]
    status = stored(on_backend, lambda s: s.current_status(uuid))
    assert status.status == "delivered" and status.conflict  # the first final stands, flagged

    code, text, _ = 0, runner.invoke(app, ["reconcile", "--since", "1h"]).stdout, None
    assert "disagrees" in text and "stored delivered, Vonage says rejected" in text


def test_since_walks_day_windows_and_pages_and_adds_messages_sent_elsewhere(
    on_backend: StoreLocation, lost_sandbox: BackgroundSandbox
) -> None:
    lost_sandbox.sandbox.config.reports.page_size = 7
    ledger = lost_sandbox.sandbox.ledger
    now = time.time()
    for i in range(30):  # sent by another machine over the last three days
        at = now - 3 * 86400 + i * 8000
        body = {"to": "447700900123", "from": "14155550199", "text": "hi", "client_ref": f"other-{i}"}
        ledger.accepted(f"00000000-0000-4000-8000-{i:012d}", body, 1, at, [(at + 2, "delivered", None)])

    dry = invoke("reconcile", "--since", "4d", "--dry-run")
    assert dry[0] == 0 and dry[1]["discovered"] == 30 and dry[1]["dry_run"]
    assert stored(on_backend, lambda s: s.recent_messages(100)) == []  # --dry-run wrote nothing

    code, report, stderr = invoke("reconcile", "--since", "4d")
    assert code == 0, stderr
    assert report["discovered"] == 30 and report["records"] == 30
    assert report["requests"] >= 4 + 30 // 7  # four day windows, several pages
    messages = stored(on_backend, lambda s: s.recent_messages(100))
    assert len(messages) == 30 and {m.source for m in messages} == {"reports"}
    assert {m.status for m in messages} == {"delivered"} and {m.to for m in messages} == {"447700900123"}

    assert invoke("reconcile", "--since", "4d")[1]["discovered"] == 0  # known now: nothing added twice
    assert (
        len(stored(on_backend, lambda s: s.events_of([m.message_uuid for m in messages if m.message_uuid])))
        == 30
    )


def test_429_and_5xx_are_retried(
    credentials: dict[str, str], lost_sandbox: BackgroundSandbox, tmp_path: Path
) -> None:
    bulk_send(tmp_path, 5)
    until(lambda: all_final(lost_sandbox, 5), "five finals")
    lost_sandbox.sandbox.config.reports.faults.extend([503])  # the waits themselves: the next test
    code, report, stderr = invoke("reconcile", "--older-than", "0s")
    assert code == 0, stderr
    assert report["updated"] == 5 and report["retries"] == 1 and report["requests"] == 2


@pytest.mark.integration
async def test_retries_back_off_and_honour_retry_after(
    credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The waits between retries, with the clock injected: 0.5 s, then 1 s after 5xx; Retry-After's 1 s
    after a 429; a request never starts sooner than the pace allows."""
    from smsctl.config import load_settings
    from smsctl.messages.reports import ReportsClient
    from smsctl.sandbox.emulator import Sandbox, config_from_settings

    settings = load_settings({"VONAGE_API_SECRET": API_SECRET})
    waits: list[float] = []
    now = [0.0]

    async def sleep(seconds: float) -> None:
        waits.append(round(seconds, 3))
        now[0] += seconds

    async with Sandbox(
        config_from_settings(settings, status_url=None, time_scale=0.01, rate=None)
    ) as emulator:
        emulator.config.reports.faults.extend([503, 500, 429])
        async with ReportsClient(emulator.url, "abcd1234", API_SECRET, rate=4.0, sleep=sleep,
                                 clock=lambda: now[0]) as client:  # fmt: skip
            assert await client.by_ids(["nothing-known"]) == []
            # 503: 0.5 s; 500: 1 s; 429: Retry-After's 1 s for every request (the pacer is paused)
            assert waits == [0.5, 1.0, 1.0] and client.retries == 3
            waits.clear()
            for _ in range(3):
                await client.by_ids(["x"])
            assert waits == [0.25, 0.25, 0.25]  # 4 a second, evenly
            emulator.config.reports.faults.extend([502] * 6)
            with pytest.raises(ApiUnavailable, match="kept failing after 5 retries"):
                await client.by_ids(["x"])


def test_a_wrong_secret_says_which_credential(
    credentials: dict[str, str], lost_sandbox: BackgroundSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VONAGE_API_SECRET", "not-the-secret-7f3a")
    code, _, stderr = invoke("reconcile", "--since", "1h")
    assert code == 3
    error = json.loads(stderr)["error"]
    assert "401" in error["message"] and "VONAGE_API_SECRET" in error["message"]
    assert "not-the-secret-7f3a" not in stderr  # the secret itself is never printed


def test_no_credentials_exit_3_naming_the_secret(credentials: dict[str, str], tmp_path: Path) -> None:
    code, _, stderr = invoke("reconcile")
    assert code == 3 and "VONAGE_API_SECRET" in stderr
    assert not Path(credentials["SMSCTL_DB"]).exists()  # refused before the store was opened


def test_messages_not_yet_final_stay_pending_and_exit_9(
    on_backend: StoreLocation, lost_sandbox: BackgroundSandbox, tmp_path: Path
) -> None:
    csv = tmp_path / "silent.csv"
    csv.write_text("to\n+14155550140\n+14155550101\n")  # `silent`: submitted, never final
    assert invoke("bulk", str(csv), "hello", "--rate", "0")[0] == 0
    until(lambda: sum(1 for r in lost_sandbox.sandbox.ledger.window(0, time.time() + 9) if r["date_finalized"]) == 1,
          "the delivered one")  # fmt: skip
    code, report, _ = invoke("reconcile", "--older-than", "0s")
    assert code == 9 and report["still_pending"] == 1 and report["updated"] == 1 and report["unresolved"] == 1
    pending = stored(on_backend, lambda s: s.unresolved(time.time(), 10))
    assert len(pending) == 1
    assert stored(on_backend, lambda s: s.current_status(pending[0].message_uuid)).status == "submitted"


def lost_sends(count: int) -> list[str]:
    """Messages to the emulator's webhook-lost number: accepted, delivered, never reported by webhook."""
    uuids = []
    for _ in range(count):
        code, sent, stderr = invoke("send", "+14155550195", "hello")
        assert code == 0, stderr
        uuids.append(sent["message_uuid"])
    return uuids


def test_stale_messages_show_in_log_status_batch_and_export(
    credentials: dict[str, str],
    lost_sandbox: BackgroundSandbox,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("SMSCTL_STALE_AFTER", "1")  # seconds
    csv = tmp_path / "lost.csv"
    csv.write_text("to\n+14155550195\n+14155550101\n")
    assert invoke("bulk", str(csv), "hello", "--rate", "0")[0] == 0
    until(lambda: any(m["stale"] for m in invoke("log")[1]), "a message to turn stale", timeout=15)
    rows = invoke("log")[1]
    assert sorted((m["to"], m["stale"]) for m in rows) == [("+14155550101", True), ("+14155550195", True)]
    shown = runner.invoke(app, ["log"])
    assert "stale" in shown.stdout and "smsctl reconcile" in shown.stderr
    report = invoke("status", rows[0]["message_uuid"])[1]
    assert report["stale"] is True
    batch = invoke("batch", rows[0]["batch_id"])[1]
    assert batch["stale"] == 2 and {f["status"] for f in batch["failures"]} == {"stale"}
    exported = [json.loads(line) for line in runner.invoke(app, ["export"]).stdout.splitlines()]
    assert [m["stale"] for m in exported] == [True, True]
    assert runner.invoke(app, ["export", "--format", "csv"]).stdout.splitlines()[0].endswith(",stale")

    assert invoke("reconcile", "--older-than", "0s")[0] == 0
    assert [m["stale"] for m in invoke("log")[1]] == [False, False]  # final now


def test_wait_asks_the_reports_api_after_the_timeout(
    credentials: dict[str, str], lost_sandbox: BackgroundSandbox
) -> None:
    code, result, stderr = invoke("send", "+14155550195", "hello", "--wait", "--timeout", "1")
    assert code == 0, stderr
    assert result["status"] == "delivered" and result["answered_by"] == "reports"
    assert [e["source"] for e in result["events"]] == ["reports"]


def test_wait_without_the_secret_still_times_out_with_exit_6(
    credentials: dict[str, str], lost_sandbox: BackgroundSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VONAGE_API_SECRET")
    code, _, stderr = invoke("send", "+14155550195", "hello", "--wait", "--timeout", "1")
    assert code == 6 and "smsctl reconcile" in stderr


def test_the_listener_reconciles_in_the_background_one_listener_at_a_time(
    on_backend: StoreLocation, lost_sandbox: BackgroundSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import ListenProcess

    monkeypatch.setenv("SMSCTL_STALE_AFTER", "1")
    uuids = lost_sends(3)
    until(lambda: stored(on_backend, lambda s: s.stale_count(time.time() - 1)) == 3, "three stale messages")
    with ListenProcess("--reconcile-every", "1m") as a, ListenProcess("--reconcile-every", "1m") as b:
        a.ready(), b.ready()
        until(lambda: any(line["event"] == "reconciled" for line in a.lines + b.lines), "a reconcile round")
        one, other = (a, b) if any(line["event"] == "reconciled" for line in a.lines) else (b, a)
        done = next(line for line in one.lines if line["event"] == "reconciled")
        assert "3 now final" in done["detail"]
        reported = [line for line in one.lines if line["event"] == "reported"]
        assert sorted(line["message_uuid"] for line in reported) == sorted(uuids)
        assert {line["current_status"] for line in reported} == {"delivered"}
        other.wait_for(lambda line: line["event"] == "reconcile_held")  # it tried, and was held off
        assert one.stop() == 0 and other.stop() == 0
        assert not [line for line in other.lines if line["event"] in ("reconciled", "reported")]  # held off
        assert one.lines[-1]["event"] == "stopped" and one.lines[-1]["reconciled"] == 3
    assert stored(on_backend, lambda s: s.stale_count(time.time())) == 0


def test_reconcile_every_refuses_bad_intervals_and_missing_credentials(
    credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = runner.invoke(app, ["listen", "--port", "0", "--reconcile-every", "5s", "--json"])
    assert result.exit_code == 2 and "too often" in result.stderr
    result = runner.invoke(app, ["listen", "--port", "0", "--reconcile-every", "10m", "--json"])
    assert result.exit_code == 3 and "VONAGE_API_SECRET" in result.stderr
