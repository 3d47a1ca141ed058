"""A real `smsctl listen` process: the JSON Lines contract, the emulator end to end, shutdown, kill -9."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from typer.testing import CliRunner

import smsctl
from smsctl.cli import app
from tests.helpers import BackgroundSandbox, ListenProcess, signed_headers, taken_port

UUID = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"


def body_for(uuid: str, status: str, ts: str = "2025-02-03T12:14:25Z") -> bytes:
    return json.dumps({"message_uuid": uuid, "to": "14155550101", "from": "14155550199", "timestamp": ts,
                       "status": status, "channel": "sms", "client_ref": "ref-9"}, separators=(",", ":")).encode()  # fmt: skip


async def post_all(url: str, bodies: list[bytes], signed: bool = True,
                   on_answer: Callable[[int], None] | None = None) -> list[int | None]:  # fmt: skip
    """POST every body concurrently; None where the connection died without an answer."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        answered = 0

        async def one(body: bytes) -> int | None:
            nonlocal answered
            try:
                async with session.post(url, data=body, headers=signed_headers(body) if signed else {}) as r:
                    answered += 1
                    if on_answer:
                        on_answer(answered)
                    return r.status
            except (TimeoutError, aiohttp.ClientError):
                return None

        return list(await asyncio.gather(*(one(b) for b in bodies)))


@pytest.mark.integration
def test_json_lines_contract(credentials: dict[str, str]) -> None:
    with ListenProcess() as listener:
        ready = listener.ready()
        assert listener.lines[0] is ready
        local = ready["local_url"]
        assert local.startswith("http://127.0.0.1:") and not local.endswith(":0")
        assert ready["status_url"] == local + "/webhooks/status"
        assert ready["inbound_url"] == local + "/webhooks/inbound"
        assert ready["public_url"] is None and ready["store"] == credentials["SMSCTL_DB"]
        statuses = asyncio.run(
            post_all(ready["status_url"], [body_for(UUID, "submitted"), body_for(UUID, "submitted")])
        )
        assert statuses == [200, 200]
        asyncio.run(post_all(ready["status_url"], [body_for(UUID, "delivered")], signed=False))
        accepted = listener.wait_for(lambda line: line["event"] == "accepted")
        assert {k: accepted[k] for k in ("message_uuid", "status", "current_status", "final", "client_ref", "to")} == {
            "message_uuid": UUID, "status": "submitted", "current_status": "submitted", "final": False,
            "client_ref": "ref-9", "to": "+14155550101",
        }  # fmt: skip
        listener.wait_for(lambda line: line["event"] == "duplicate")
        rejected = listener.wait_for(lambda line: line["event"] == "rejected")
        assert (rejected["reason"], rejected["http_status"]) == ("missing_signature", 503)
        assert listener.stop() == 0
        stopped = listener.lines[-1]
        assert stopped["event"] == "stopped" and stopped["accepted"] == 1 and stopped["duplicates"] == 1


def test_refuses_to_start_without_a_signature_secret(
    credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VONAGE_SIGNATURE_SECRET")
    result = CliRunner().invoke(app, ["listen", "--port", "0"])
    assert result.exit_code == 3, result.output
    assert "VONAGE_SIGNATURE_SECRET is not set" in result.stderr


@pytest.mark.integration
def test_warns_about_a_short_secret(credentials: dict[str, str]) -> None:
    with ListenProcess(env={"VONAGE_SIGNATURE_SECRET": "short"}) as listener:
        listener.ready()
        listener.stop()
        assert listener.process.stderr is not None
        assert "VONAGE_SIGNATURE_SECRET is 5 bytes" in listener.process.stderr.read()


@pytest.mark.integration
def test_port_in_use_exits_3_with_a_hint(credentials: dict[str, str]) -> None:
    with taken_port() as port:
        result = CliRunner().invoke(app, ["listen", "--port", str(port), "--json"])
    assert result.exit_code == 3, result.output
    assert "another program uses that port" in result.stderr and result.stdout == ""


@pytest.mark.integration
def test_emulator_to_real_listener_end_to_end(
    credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch, db_path: Path
) -> None:
    with ListenProcess() as listener:
        ready = listener.ready()
        with BackgroundSandbox.from_environment(time_scale=0.01, status_url=ready["status_url"]) as sandbox:
            monkeypatch.setenv("VONAGE_API_URL", sandbox.url)
            uuids = {}
            for to in ("+14155550101", "+14155550110", "+14155550150", "+14155550160", "+14155550180"):
                result = CliRunner().invoke(app, ["send", to, "e2e"])
                assert result.exit_code == 0, result.output
                uuids[to] = result.stdout.strip()
            sandbox.wait_idle()
        finals = {}
        for to, uuid in uuids.items():
            line = listener.wait_for(
                lambda ln, u=uuid: ln.get("message_uuid") == u and ln.get("final") is True
            )
            finals[to] = line["current_status"]
        assert finals == {"+14155550101": "delivered", "+14155550110": "rejected", "+14155550150": "delivered",
                          "+14155550160": "delivered", "+14155550180": "delivered"}  # fmt: skip
        listener.wait_for(
            lambda ln: ln["event"] == "duplicate" and ln["message_uuid"] == uuids["+14155550150"]
        )
        listener.wait_for(lambda ln: ln["event"] == "rejected" and ln["reason"] == "missing_signature")
        late = listener.wait_for(
            lambda ln: ln.get("message_uuid") == uuids["+14155550160"] and ln["status"] == "submitted"
        )
        assert (late["current_status"], late["anomaly"]) == ("delivered", "late")
        rejected = listener.wait_for(lambda ln: ln.get("current_status") == "rejected")
        assert rejected["error_code"] == "1240" and rejected["error_meaning"].startswith("Illegal Number")
        assert listener.stop() == 0
    result = CliRunner().invoke(app, ["status", uuids["+14155550110"], "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["status"] == "rejected" and [e["status"] for e in status["events"]] == [
        "submitted",
        "rejected",
    ]


def _stored_events(db_path: Path) -> set[tuple[str, str]]:
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return set(conn.execute("SELECT message_uuid, status FROM events"))
    finally:
        conn.close()


@pytest.mark.integration
def test_sigterm_under_load_drains_and_exits_0(credentials: dict[str, str], db_path: Path) -> None:
    bodies = [body_for(f"00000000-0000-4000-8000-{i:012d}", "submitted") for i in range(1500)]
    with ListenProcess() as listener:
        url = listener.ready()["status_url"]

        def stop_a_third_of_the_way(answered: int) -> None:
            if answered == len(bodies) // 3:
                listener.process.send_signal(signal.SIGTERM)

        statuses = asyncio.run(post_all(url, bodies, on_answer=stop_a_third_of_the_way))
        assert listener.process.wait(timeout=30) == 0
        assert listener.wait_for(lambda line: line["event"] == "stopped")
    acked = {
        (json.loads(b)["message_uuid"], "submitted")
        for b, s in zip(bodies, statuses, strict=True)
        if s == 200
    }
    assert len(bodies) // 3 <= len(acked) < len(bodies)
    assert set(statuses) <= {200, 503, None}
    assert acked <= _stored_events(db_path)


@pytest.mark.long
@pytest.mark.integration
def test_kill_9_loses_nothing_acknowledged(credentials: dict[str, str], db_path: Path) -> None:
    bodies = [
        body_for(f"00000000-0000-4000-8000-{i:012d}", s)
        for i in range(1500)
        for s in ("submitted", "delivered")
    ]
    with ListenProcess() as listener:
        url = listener.ready()["status_url"]

        def kill_a_third_of_the_way(answered: int) -> None:
            if answered == len(bodies) // 3:
                listener.process.kill()

        statuses = asyncio.run(post_all(url, bodies, on_answer=kill_a_third_of_the_way))
        listener.stop()
    acked = {
        (json.loads(b)["message_uuid"], json.loads(b)["status"])
        for b, s in zip(bodies, statuses, strict=True)
        if s == 200
    }
    assert len(bodies) // 3 <= len(acked) < len(bodies), f"kill should land mid-load ({len(acked)} acked)"
    assert acked <= _stored_events(db_path)
    with ListenProcess() as restarted:  # Vonage resends what got no answer; duplicates are absorbed
        url = restarted.ready()["status_url"]
        assert set(asyncio.run(post_all(url, bodies))) == {200}
        restarted.stop()
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == len(bodies)
    assert (
        conn.execute("SELECT COUNT(*) FROM message_status WHERE status = 'delivered'").fetchone()[0] == 1500
    )


@pytest.mark.integration
def test_python_dash_m_help() -> None:
    process = subprocess.run(
        [sys.executable, "-m", "smsctl", "--help"], capture_output=True, text=True, timeout=30
    )
    assert process.returncode == 0 and "Exit codes" in process.stdout


def test_refuses_to_start_on_a_corrupt_store_and_keeps_it(credentials: dict[str, str], db_path: Path) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    garbage = b"this is not a SQLite database" * 100
    db_path.write_bytes(garbage)
    result = CliRunner().invoke(app, ["listen", "--port", "0", "--json"])
    assert result.exit_code == 3, result.output
    assert "cannot open the store" in json.loads(result.stderr.splitlines()[-1])["error"]["message"]
    assert db_path.read_bytes() == garbage, "the store must never be deleted or recreated"


@pytest.mark.integration
def test_closed_stdout_stops_the_listener_with_one_line(credentials: dict[str, str], db_path: Path) -> None:
    """`smsctl listen --json | head -1`: once the reader goes away, stop cleanly; never spin or trace."""
    import urllib.request

    process = subprocess.Popen([sys.executable, "-m", "smsctl", "listen", "--port", "0", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout is not None
    ready = json.loads(process.stdout.readline())
    process.stdout.close()  # the reader exits, as `head -1` does
    body = body_for("aaaaaaaa-0000-4000-8000-000000000001", "delivered")
    request = urllib.request.Request(
        ready["status_url"], data=body, headers=signed_headers(body), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200  # the event is stored before the answer, whatever stdout does
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert stderr.count("stdout was closed") == 1 and "Traceback" not in stderr
    assert _stored_events(db_path) == {("aaaaaaaa-0000-4000-8000-000000000001", "delivered")}


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15, 0.3, 0.5])
@pytest.mark.integration
def test_ctrl_c_at_any_moment_of_start_up_is_quiet(credentials: dict[str, str], delay: float) -> None:
    import time

    process = subprocess.Popen([sys.executable, "-m", "smsctl", "listen", "--port", "0", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(delay)  # not waiting for an outcome: choosing the moment the signal lands
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        # The signal landed while site was processing a .pth file (slow on a fresh clone, before the
        # .pyc files exist): site reports "Error processing line …", ignores the rest of the file and
        # carries on, so Python swallowed that Ctrl-C. Ours is the next one, now that smsctl runs.
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    if "Remainder of file ignored" in stderr:  # that report is Python's; what follows is ours
        stderr = stderr.split("Remainder of file ignored", 1)[1]
    # -SIGINT: the signal landed before Python itself was ready, and the OS ended it, silently. One
    # that lands in the interpreter's own start-up (site, runpy: before any smsctl code exists) is
    # Python's to report. From our first line on, no traceback may show: no frame of smsctl.
    assert process.returncode in (0, 130, -signal.SIGINT, 1), stderr
    # A frame of the smsctl package itself, not any path with "smsctl" in it (the checkout may be
    # called smsctl, and Python's own start-up frames then show its .venv).
    package = str(Path(smsctl.__file__).parent) + os.sep
    assert package not in stderr, stderr
    if process.returncode == 1:  # interrupted in the interpreter's own start-up, reported by Python
        python_start_up = (
            "frozen runpy",
            "Could not import runpy module",  # Py_RunMain's own report when runpy's import is interrupted
            "init_import_site",
            "init_sys_streams",
            "Python runtime state: core",
        )
        assert any(marker in stderr for marker in python_start_up), stderr


@pytest.mark.integration
def test_malformed_http_is_one_short_line_and_counted(credentials: dict[str, str]) -> None:
    """aiohttp would log a ~700-byte traceback per oversized header: anyone can send those."""
    import urllib.request

    with ListenProcess() as listener:
        local = listener.ready()["local_url"]
        port = int(local.rsplit(":", 1)[1])
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(
                    b"POST /webhooks/status HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
                )
                assert conn.recv(64).startswith(b"HTTP/1.0 400")
        with urllib.request.urlopen(local + "/healthz", timeout=10) as response:
            health = json.loads(response.read())
        assert listener.stop() == 0
        assert listener.process.stderr is not None
        stderr = listener.process.stderr.read()
    assert health["rejected"] == {"malformed_http": 3}
    assert stderr.count("rejected a malformed HTTP request (LineTooLong") == 1
    assert "Traceback" not in stderr and len(stderr) < 800, stderr
