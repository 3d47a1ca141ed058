"""`listen --update-app` against the emulator's Application API, and the emulator's inbound SMS."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from tests.helpers import APPLICATION_ID, BackgroundSandbox, ListenProcess, stored, until
from tests.pg import free_port

runner = CliRunner()
SECRET = "account-secret-for-tests"


@pytest.fixture
def emulator(credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("VONAGE_API_SECRET", SECRET)
    with BackgroundSandbox.from_environment(time_scale=0.01) as running:
        monkeypatch.setenv("VONAGE_API_URL", running.url)
        yield running


def call(url: str, method: str = "GET", body: Any = None, auth: str | None = None,
         content_type: str = "application/json") -> tuple[int, dict[str, Any], str]:  # fmt: skip
    headers = {"Content-Type": content_type}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers.get("Content-Type", "")


def test_the_emulators_application_api_checks_auth_and_bodies(emulator: BackgroundSandbox) -> None:
    url = f"{emulator.url}/v2/applications/{APPLICATION_ID}"
    good = f"abcd1234:{SECRET}"
    status, application, _ = call(url, auth=good)
    assert status == 200 and application["id"] == APPLICATION_ID and "voice" in application["capabilities"]
    status, problem, content_type = call(url, auth="abcd1234:wrong")
    assert (status, problem["title"]) == (401, "Unauthorized") and content_type.startswith(
        "application/problem+json"
    )
    assert call(f"{emulator.url}/v2/applications/11111111-0000-4000-8000-000000000000", auth=good)[0] == 404
    status, problem, _ = call(url, "PUT", {"capabilities": {}}, auth=good)
    assert status == 400 and problem["invalid_parameters"][0]["name"] == "name"
    bad_method = {"name": "x", "capabilities": {"messages": {"webhooks": {"status_url": {
        "address": "https://example.com/s", "http_method": "GET"}}}}}  # fmt: skip
    status, problem, _ = call(url, "PUT", bad_method, auth=good)
    assert status == 400 and problem["invalid_parameters"][0]["reason"] == "must be one of: POST"
    assert call(url, "PUT", {"name": "x"}, auth=good, content_type="text/plain")[0] == 415


def test_update_app_points_the_application_here_keeps_the_rest_and_restores_on_exit(
    emulator: BackgroundSandbox, db_path: Any
) -> None:
    before = json.loads(json.dumps(emulator.sandbox.application))
    port = free_port()
    public = f"http://127.0.0.1:{port}"  # the emulator is local: this machine's address is "public" to it
    with ListenProcess("--port", str(port), "--public-url", public, "--update-app") as listener:
        ready = listener.ready()
        assert ready["application"]["current"] == {"status_url": f"{public}/webhooks/status",
                                                   "inbound_url": f"{public}/webhooks/inbound"}  # fmt: skip
        assert ready["application"]["previous"] == {"status_url": None, "inbound_url": None}
        updated = emulator.sandbox.application
        assert (
            updated["capabilities"]["messages"]["webhooks"]["status_url"]["address"]
            == f"{public}/webhooks/status"
        )
        assert updated["capabilities"]["voice"] == before["capabilities"]["voice"], "every other setting kept"
        assert (updated["name"], updated["keys"], updated["privacy"]) == (
            before["name"],
            before["keys"],
            before["privacy"],
        )
        sent = runner.invoke(app, ["send", "+14155550101", "no webhook_url: the application's URL"])
        assert sent.exit_code == 0, sent.output
        uuid = sent.stdout.strip()
        listener.wait_for(lambda line: line.get("message_uuid") == uuid and line.get("final") is True)
        status, answer, _ = call(
            f"{emulator.url}/_sandbox/inbound", "POST", {"from": "+14155550123", "text": "STOP"}
        )
        assert status == 202
        inbound = listener.wait_for(lambda line: line["event"] == "inbound")
        assert (inbound["text"], inbound["from"], inbound["message_uuid"]) == (
            "STOP",
            "+14155550123",
            answer["message_uuid"],
        )
        listener.stop()
    restored = listener.wait_for(lambda line: line["event"] == "app_restored")
    assert restored["reason"] == "restored"
    assert emulator.sandbox.application["capabilities"]["messages"]["webhooks"] == {}
    assert stored(db_path, lambda s: s.counts())["inbound"] == 1


def test_keep_app_urls_leaves_them_and_a_changed_app_is_not_clobbered(emulator: BackgroundSandbox) -> None:
    port = free_port()
    with ListenProcess("--port", str(port), "--public-url", f"http://127.0.0.1:{port}", "--update-app",
                       "--keep-app-urls") as listener:  # fmt: skip
        listener.ready()
        listener.stop()
    hooks = emulator.sandbox.application["capabilities"]["messages"]["webhooks"]
    assert hooks["status_url"]["address"] == f"http://127.0.0.1:{port}/webhooks/status"
    assert not any(line["event"] == "app_restored" for line in listener.lines)
    port = free_port()
    with ListenProcess(
        "--port", str(port), "--public-url", f"http://127.0.0.1:{port}", "--update-app"
    ) as second:
        second.ready()
        hooks = emulator.sandbox.application["capabilities"]["messages"]["webhooks"]
        hooks["status_url"] = {"address": "https://someone-else.example/status", "http_method": "POST"}
        second.stop()
    assert "changed meanwhile" in second.wait_for(lambda line: line["event"] == "app_restored")["reason"]
    assert hooks["status_url"]["address"] == "https://someone-else.example/status"


@pytest.mark.parametrize(("change", "code", "message"), [
    ({"VONAGE_API_SECRET": "wrong"}, 4, "401 Unauthorized"),
    ({"VONAGE_API_SECRET": ""}, 3, "needs VONAGE_API_KEY and VONAGE_API_SECRET"),
    ({"PUBLIC": ""}, 3, "needs a public URL"),
])  # fmt: skip
def test_update_app_failures_exit_with_the_api_error(
    emulator: BackgroundSandbox, change: dict[str, str], code: int, message: str
) -> None:
    args = ["--public-url", "http://127.0.0.1:9"] if "PUBLIC" not in change else []
    env = {k: v for k, v in change.items() if k != "PUBLIC"}
    with ListenProcess("--update-app", *args, env=env) as listener:
        assert listener.process.wait(timeout=30) == code
        stderr = listener.process.stderr.read() if listener.process.stderr else ""
    assert message in stderr and SECRET not in stderr


def test_trigger_inbound_aimed_at_the_emulator_reaches_the_inbound_url(emulator: BackgroundSandbox) -> None:
    port = free_port()
    with ListenProcess(
        "--port", str(port), "--public-url", f"http://127.0.0.1:{port}", "--update-app"
    ) as listener:
        listener.ready()
        result = runner.invoke(app, ["trigger", "inbound", "hello", "--from", "+14155550123",
                                     "--url", f"{emulator.url}/_sandbox/inbound"])  # fmt: skip
        assert result.exit_code == 0, result.output
        until(lambda: any(line["event"] == "inbound" for line in listener.lines), "the inbound webhook")
        listener.stop()


USERS_OWN = {"status_url": {"address": "https://my-app.example/webhooks/status", "http_method": "POST"},
             "inbound_url": {"address": "https://my-app.example/webhooks/inbound", "http_method": "POST"}}  # fmt: skip


def hooks_of(emulator: BackgroundSandbox) -> dict[str, str]:
    hooks = emulator.sandbox.application["capabilities"]["messages"]["webhooks"]
    return {name: value["address"] for name, value in hooks.items()}


def own_urls() -> dict[str, str]:
    return {name: value["address"] for name, value in USERS_OWN.items()}


def update_app_listener(port: int | None = None) -> ListenProcess:
    port = port or free_port()
    return ListenProcess("--port", str(port), "--public-url", f"http://127.0.0.1:{port}", "--update-app")


def test_after_kill_9_the_next_listener_restores_the_apps_own_urls_not_the_dead_ones(
    emulator: BackgroundSandbox,
) -> None:
    import signal

    emulator.sandbox.application["capabilities"]["messages"]["webhooks"] = json.loads(json.dumps(USERS_OWN))
    with update_app_listener() as killed:
        dead = killed.ready()["application"]["current"]
        killed.stop(signal.SIGKILL)
    assert hooks_of(emulator) == dead, "kill -9: the application points at the dead listener"
    with update_app_listener() as second:
        ready = second.ready()
        assert ready["application"]["previous"] == own_urls(), "the dead listener's URL is never 'previous'"
        assert second.stop() == 0
    assert second.wait_for(lambda line: line["event"] == "app_restored")["reason"] == "restored"
    assert hooks_of(emulator) == own_urls()


def test_app_restore_puts_the_kept_urls_back_by_hand(emulator: BackgroundSandbox) -> None:
    import signal

    emulator.sandbox.application["capabilities"]["messages"]["webhooks"] = json.loads(json.dumps(USERS_OWN))
    nothing = runner.invoke(app, ["app", "restore"])
    assert nothing.exit_code == 3 and "kept no webhook URLs" in nothing.stderr, nothing.output
    with update_app_listener() as killed:
        killed.ready()
        killed.stop(signal.SIGKILL)
    assert hooks_of(emulator) != own_urls()
    result = runner.invoke(app, ["app", "restore", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"outcome": "restored", "urls": own_urls()}
    assert hooks_of(emulator) == own_urls()
    assert "name" in emulator.sandbox.application and "voice" in emulator.sandbox.application["capabilities"]


def test_sighup_restores_as_ctrl_c_does(emulator: BackgroundSandbox) -> None:
    import signal

    emulator.sandbox.application["capabilities"]["messages"]["webhooks"] = json.loads(json.dumps(USERS_OWN))
    with update_app_listener() as listener:
        listener.ready()
        assert listener.stop(signal.SIGHUP) == 0
    assert listener.wait_for(lambda line: line["event"] == "app_restored")["reason"] == "restored"
    assert hooks_of(emulator) == own_urls()


@pytest.mark.parametrize("first_to_stop", ["older", "newer"])
def test_two_update_app_listeners_never_leave_a_dead_url(
    emulator: BackgroundSandbox, first_to_stop: str
) -> None:
    emulator.sandbox.application["capabilities"]["messages"]["webhooks"] = json.loads(json.dumps(USERS_OWN))
    with update_app_listener() as older:
        older_urls = older.ready()["application"]["current"]
        with update_app_listener() as newer:
            assert newer.ready()["application"]["previous"] == own_urls()
            first, second = (older, newer) if first_to_stop == "older" else (newer, older)
            assert first.stop() == 0
            if first_to_stop == "newer":
                assert hooks_of(emulator) == older_urls, "handed on to the listener still running"
            assert second.stop() == 0
    assert hooks_of(emulator) == own_urls()


def test_the_store_never_takes_a_url_smsctl_set_for_the_applications_own(store_at: Any) -> None:
    from smsctl.history.backends import open_store
    from smsctl.history.interface import AppUrls

    own = AppUrls("https://my-app.example/s", "https://my-app.example/i")
    first = AppUrls("https://a.ngrok.app/webhooks/status", "https://a.ngrok.app/webhooks/inbound")
    second = AppUrls("https://b.ngrok.app/webhooks/status", "https://b.ngrok.app/webhooks/inbound")
    store = open_store(store_at)
    try:
        with store.transaction():
            assert store.remember_app_urls(APPLICATION_ID, own, first, 1.0) == own
        with store.transaction():  # the first listener died: the app still points at it
            assert store.remember_app_urls(APPLICATION_ID, first, second, 2.0) == own
        with store.transaction():  # someone set new URLs by hand meanwhile: those are the app's own now
            mine = AppUrls("https://new.example/s", None)
            assert store.remember_app_urls(APPLICATION_ID, mine, first, 3.0) == mine
        kept, set_by_smsctl = store.app_urls(APPLICATION_ID)
        assert kept == AppUrls("https://new.example/s", None)
        assert set_by_smsctl == {first.status_url, second.status_url}
        assert store.app_urls("11111111-0000-4000-8000-000000000000") == (None, set())
    finally:
        store.close()
