"""`listen --forward-to`: durable forwarding to the user's own app, with real processes and HTTP.

The app is a small capture server that verifies every signature as the tutorial's Express app does.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from smsctl.history.interface import ForwardState
from tests.helpers import SIGNATURE_SECRET, CaptureApp, ListenProcess, signed_headers, stored, until

runner = CliRunner()
FAST = {"SMSCTL_FORWARD_BACKOFF": "0.05,0.2"}  # retries within a test's patience


def status(uuid: str, value: str, second: int) -> bytes:
    return json.dumps({"message_uuid": uuid, "to": "14155550101", "from": "14155550199", "status": value,
                       "timestamp": f"2025-02-03T12:00:{second:02d}Z", "channel": "sms"}).encode()  # fmt: skip


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def lifecycle(messages: int) -> list[bytes]:
    """Each message's submitted, delivered: sent message by message, interleaved."""
    uuids = [f"{i:08d}-aaaa-4bbb-8ccc-000000000000" for i in range(messages)]
    return [status(u, s, n) for n, s in ((1, "submitted"), (2, "delivered")) for u in uuids]


def in_order_per_message(arrivals: list[dict[str, Any]]) -> bool:
    seen: dict[str, list[str]] = {}
    for r in arrivals:
        seen.setdefault(r["json"]["message_uuid"], []).append(r["json"]["status"])
    return all(statuses == ["submitted", "delivered"] for statuses in seen.values())


@pytest.mark.long
@pytest.mark.integration
def test_app_down_then_up_gets_every_event_once_in_order_and_never_before_its_commit(
    credentials: dict[str, str], db_path: Path
) -> None:
    user_app = CaptureApp().start()
    target = user_app.url()
    user_app.stop()  # the app is down: nothing listens on its port
    bodies = lifecycle(20)
    with ListenProcess("--forward-to", target, env=FAST) as listener:
        url = listener.ready()["status_url"]
        for body in bodies:
            assert (
                post(url, body, signed_headers(body)) == 200
            )  # the webhook's answer never waits for the app
        listener.wait_for(lambda line: line["event"] == "forward_retry")

        def committed_before_arrival(request: dict[str, Any]) -> None:
            event = request["json"]
            timeline = stored(db_path, lambda s: s.timeline(event["message_uuid"]))
            request["was_stored"] = any(e.status == event["status"] for e in timeline)

        user_app.on_request = committed_before_arrival
        user_app.start()
        until(lambda: len(user_app.delivered()) >= len(bodies), "every event to reach the app")
        listener.wait_for(lambda line: line["event"] == "forwarded" and line["attempts"] > 1)
        listener.stop()
    arrived = user_app.delivered()
    assert sorted(r["body"] for r in arrived) == sorted(bodies), "each event exactly once, the exact raw body"
    assert all(r["verified"] for r in arrived), (
        "the original token verifies: the app checks it as in production"
    )
    assert all(r["headers"]["Content-Type"] == "application/json" for r in arrived)
    assert all(r["was_stored"] for r in arrived), "nothing arrives before its commit"
    assert in_order_per_message(arrived)
    assert stored(db_path, lambda s: s.forwards([ForwardState.PENDING, ForwardState.FAILED], 10)) == []
    user_app.stop()


@pytest.mark.long
def test_kill_9_with_forwards_pending_then_restart_delivers_them_all(on_backend: object) -> None:
    user_app = CaptureApp().start()
    target = user_app.url()
    user_app.stop()
    bodies = lifecycle(15)
    with ListenProcess("--forward-to", target, "--forward-timeout", "1", env=FAST) as listener:
        url = listener.ready()["status_url"]
        for body in bodies:
            assert post(url, body, signed_headers(body)) == 200
        listener.stop(signal.SIGKILL)
    user_app.start()
    with ListenProcess("--forward-to", target, "--forward-timeout", "1", env=FAST) as restarted:
        restarted.ready()
        until(
            lambda: len(user_app.delivered()) >= len(bodies), "the restarted listener to deliver the outbox"
        )
        restarted.stop()
    assert sorted(r["body"] for r in user_app.delivered()) == sorted(bodies)
    assert in_order_per_message(user_app.delivered())
    user_app.stop()


@pytest.mark.long
def test_a_400_is_final_shown_and_retried_only_on_request(on_backend: object) -> None:
    with (
        CaptureApp(default=400) as user_app,
        ListenProcess("--forward-to", user_app.url(), env=FAST) as listener,
    ):
        url = listener.ready()["status_url"]
        body = status("11111111-aaaa-4bbb-8ccc-000000000000", "submitted", 1)
        assert post(url, body, signed_headers(body)) == 200
        failed = listener.wait_for(lambda line: line["event"] == "forward_failed")
        assert (failed["http_status"], failed["attempts"]) == (400, 1)
        listed = runner.invoke(app, ["forwards", "--failed", "--json"])
        assert listed.exit_code == 0, listed.output
        [row] = json.loads(listed.stdout)
        assert (row["state"], row["last_http_status"], row["id"]) == ("failed", 400, failed["forward_id"])
        assert len(user_app.received) == 1, "a 4xx is final: never retried by itself"
        user_app.default = 200
        retried = runner.invoke(app, ["forwards", "retry", str(row["id"]), "--json"])
        assert retried.exit_code == 0 and json.loads(retried.stdout) == {"retried": 1, "superseded": 0}
        listener.wait_for(lambda line: line["event"] == "forwarded")
        assert json.loads(runner.invoke(app, ["forwards", "--json"]).stdout) == []
        health = json.loads(urllib.request.urlopen(url.replace("/webhooks/status", "/healthz")).read())
        assert health["forwards"] == {"delivered": 1, "retries": 0, "failed": 1}
        listener.stop()


@pytest.mark.parametrize("first", ["hang", 503, 429, 408])
@pytest.mark.integration
def test_a_hanging_or_overloaded_app_is_retried(credentials: dict[str, str], first: int | str) -> None:
    with CaptureApp() as user_app, ListenProcess("--forward-to", user_app.url(), "--forward-timeout", "0.5",
                                                  env=FAST) as listener:  # fmt: skip
        user_app.answers = [first]
        url = listener.ready()["status_url"]
        body = status("22222222-aaaa-4bbb-8ccc-000000000000", "submitted", 1)
        assert post(url, body, signed_headers(body)) == 200
        retry = listener.wait_for(lambda line: line["event"] == "forward_retry")
        assert retry["http_status"] == (None if first == "hang" else first)
        assert (retry["error"] is not None) == (first == "hang")
        done = listener.wait_for(lambda line: line["event"] == "forwarded")
        assert done["attempts"] == 2 and len(user_app.delivered()) == 1
        listener.stop()


@pytest.mark.integration
def test_a_forged_request_is_never_forwarded(credentials: dict[str, str]) -> None:
    with CaptureApp() as user_app, ListenProcess("--forward-to", user_app.url(), env=FAST) as listener:
        url = listener.ready()["status_url"]
        body = status("33333333-aaaa-4bbb-8ccc-000000000000", "delivered", 2)
        assert post(url, body, signed_headers(body, secret="not-the-secret-" + "x" * 24)) == 401
        tampered = body.replace(b"delivered", b"rejected!")
        assert post(url, tampered, signed_headers(body)) == 401
        good = status("44444444-aaaa-4bbb-8ccc-000000000000", "submitted", 1)
        assert post(url, good, signed_headers(good)) == 200
        listener.wait_for(lambda line: line["event"] == "forwarded")  # the good one: the forged ones never
        assert [r["body"] for r in user_app.received] == [good]
        listener.stop()


@pytest.mark.integration
def test_resign_gives_a_fresh_token_and_extra_headers_are_sent(credentials: dict[str, str]) -> None:
    with CaptureApp() as user_app, ListenProcess("--forward-to", user_app.url(), "--forward-resign",
                                                  "--forward-header", "X-Env: dev", env=FAST) as listener:  # fmt: skip
        url = listener.ready()["status_url"]
        body = status("55555555-aaaa-4bbb-8ccc-000000000000", "submitted", 1)
        original = signed_headers(body, iat=int(time.time()) - 3600)
        assert post(url, body, original) == 200
        listener.wait_for(lambda line: line["event"] == "forwarded")
        [received] = user_app.delivered()
        assert received["token"] != original["Authorization"].split()[1]
        assert received["claims"]["iat"] >= int(time.time()) - 60, "fresh iat"
        assert received["headers"]["X-Env"] == "dev"
        listener.stop()


@pytest.mark.integration
def test_duplicates_are_not_forwarded_twice(credentials: dict[str, str]) -> None:
    with CaptureApp() as user_app, ListenProcess("--forward-to", user_app.url(), env=FAST) as listener:
        url = listener.ready()["status_url"]
        body = status("66666666-aaaa-4bbb-8ccc-000000000000", "submitted", 1)
        for _ in range(3):  # Vonage re-delivers
            assert post(url, body, signed_headers(body)) == 200
        listener.wait_for(lambda line: line["event"] == "forwarded")
        later = status("66666666-aaaa-4bbb-8ccc-000000000000", "delivered", 2)
        assert post(url, later, signed_headers(later)) == 200
        until(lambda: len(user_app.delivered()) == 2, "the second event")
        assert [r["json"]["status"] for r in user_app.delivered()] == ["submitted", "delivered"]
        listener.stop()


def test_forwarding_options_are_checked_before_anything_starts(credentials: dict[str, str]) -> None:
    for args, message in (
        (["--forward-to", "ftp://x/y"], "is not an http:// or https:// URL"),
        (["--forward-to", "http://127.0.0.1:9/x", "--forward-header", "NoColon"], "is not `Name: value`"),
        (["--forward-to", "http://127.0.0.1:9/x", "--forward-retry-for", "forever"], "is not a duration"),
        (["--forward-resign"], "needs --forward-to"),
    ):
        result = runner.invoke(app, ["listen", "--port", "0", *args])
        assert result.exit_code == 2 and message in result.stderr, result.output
    assert SIGNATURE_SECRET not in result.output


@pytest.mark.long
def test_two_forwarding_listeners_on_one_postgresql_deliver_each_event_once(
    pg_url: str, credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Team mode: every event goes to both listeners (as behind a load balancer that retries); the
    first to store it writes the forward, and claims skip rows the other listener holds."""
    monkeypatch.setenv("SMSCTL_DB", pg_url)
    bodies = lifecycle(25)
    with CaptureApp() as user_app, ListenProcess("--forward-to", user_app.url(), env=FAST) as first:
        first_url = first.ready()["status_url"]
        with ListenProcess("--forward-to", user_app.url(), env=FAST) as second:
            urls = [first_url, second.ready()["status_url"]]
            for body in bodies:
                for url in urls:
                    assert post(url, body, signed_headers(body)) == 200
            until(lambda: len(user_app.delivered()) >= len(bodies), "every event to reach the app")
            second.stop()
        first.stop()
    assert sorted(r["body"] for r in user_app.delivered()) == sorted(bodies), "each event exactly once"
    assert in_order_per_message(user_app.delivered())
