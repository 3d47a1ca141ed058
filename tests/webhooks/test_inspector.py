"""The web inspector (issue 24) in a real browser: Debian's chromium driven by Playwright. The page loads,
a webhook stored while it is open appears live, the filters work, Replay reaches the app, and neither a
tunnelled request nor another web page in the same browser gets anywhere.

Without chromium these tests skip locally and say so; under CI=true they fail (`.ci/run` installs it)."""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smsctl.config import StoreLocation
from tests import warm
from tests.helpers import BackgroundSandbox, CaptureApp, ListenProcess, stored, until

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed: CI must run the browser tests (.ci/run installs it)")
        pytest.skip(
            "chromium is not installed (apt-get install chromium): the inspector's browser tests skip"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def send(number: str) -> str:
    """`smsctl send` as a process: Playwright's sync API holds an event loop on the test's thread."""
    import sys

    done = warm.run([sys.executable, "-m", "smsctl", "send", number, "hello", "--json"], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["message_uuid"])


def status_code(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_inspector_lives_filters_acts_and_refuses_strangers(
    browser: Any, on_backend: StoreLocation, sandbox: BackgroundSandbox, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with CaptureApp() as user_app, CaptureApp() as forwarded_to:
        with ListenProcess("--ui", "--ui-port", "0", "--forward-to", forwarded_to.url()) as listener:
            ui_url = listener.ready()["ui_url"]
            delivered, rejected = send("+14155550101"), send("+14155550110")
            until(
                lambda: stored(on_backend, lambda s: s.current_status(rejected)) is not None,
                "the statuses stored",
            )

            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(ui_url)
            page.wait_for_selector(f"#rows tr[data-uuid='{rejected}']")
            # The stats load on their own request after the list: wait for them (at least five figures).
            expect(page.locator("#kpis .kpi").nth(4)).to_be_attached()

            # Live: a message sent while the page is open appears without a reload.
            late = send("+14155550120")
            page.wait_for_selector(f"#rows tr[data-uuid='{late}']", timeout=15_000)

            # Filters: only the rejected one.
            page.select_option("#status", "rejected")
            expect(page.locator("#rows tr")).to_have_count(1)  # (not wait_for_function: the CSP forbids eval)
            assert page.locator("#rows tr").get_attribute("data-uuid") == rejected

            # A message's timeline with its raw bodies and its forwards; Replay sends them to the app.
            until(lambda: [r["json"]["message_uuid"] for r in forwarded_to.delivered()].count(rejected) == 2,
                  "its two events forwarded")  # fmt: skip
            page.click(f"#rows tr[data-uuid='{rejected}']")
            page.wait_for_selector("#detail .ev pre")
            assert rejected in page.inner_text("#detail") and "1240" in page.inner_text("#detail")
            assert (
                page.inner_text("#detail").count("delivered, 1 attempt(s)") == 2
            )  # this message's forwards only
            page.fill("#replayUrl", user_app.url())
            page.click("text=Replay to app")
            expect(page.locator("#note")).to_contain_text("answers", timeout=15_000)
            # The app got the message's events, signed afresh as Vonage would sign them.
            assert user_app.received and all(r["verified"] and rejected in r["json"]["message_uuid"]
                                             for r in user_app.received)  # fmt: skip
            page.screenshot(path=str(tmp_path / "inspector-1280x800.png"))
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone.goto(ui_url)
            phone.wait_for_selector(f"#rows tr[data-uuid='{delivered}']")
            phone.screenshot(path=str(tmp_path / "inspector-390x844.png"))
            assert (tmp_path / "inspector-390x844.png").stat().st_size > 10_000

            # Another web page in the same browser, even one that knew the token, drives nothing.
            replays = len(user_app.received)
            token = ui_url.split("token=")[1]
            base = ui_url.split("/ui")[0]
            other = browser.new_page()
            other.goto(user_app.url("/"))  # a page of another origin (the app's)
            outcome = other.evaluate(
                """async ([base, token, uuid, target]) => {
                    const body = JSON.stringify({message_uuid: uuid, url: target});
                    let read = 'refused';
                    try {
                        const r = await fetch(base + '/ui/api/replay', {method: 'POST', body,
                            headers: {'X-Smsctl-Token': token, 'Content-Type': 'application/json'}});
                        read = 'read ' + r.status;
                    } catch (e) { read = 'refused'; }
                    await fetch(base + '/ui/api/replay?token=' + token, {method: 'POST', mode: 'no-cors', body});
                    let listed = 'refused';
                    try { listed = 'read ' + (await fetch(base + '/ui/api/messages?token=' + token)).status; } catch (e) {}
                    return [read, listed];
                }""",
                [base, token, rejected, user_app.url()],
            )
            assert outcome == ["refused", "refused"]  # no CORS: the preflight fails and nothing can be read
            assert len(user_app.received) == replays  # and the no-cors POST did nothing

            # A request that came through a tunnel or proxy, or without the token, gets nowhere.
            assert status_code(ui_url, {"X-Forwarded-For": "203.0.113.9"}) == 404
            assert status_code(ui_url.replace("127.0.0.1", "localhost"), {"Host": "attacker.example"}) == 404
            assert status_code(ui_url.split("?")[0]) == 403
            webhook_port = listener.ready()["local_url"]
            assert status_code(webhook_port + "/ui?token=" + token) == 404  # never on the tunnelled port
            assert listener.stop() == 0
