"""Test helpers: a real emulator in a background thread, and signed requests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp.test_utils import BaseTestServer
from aiohttp.web import BaseRunner

from smsctl.config import StoreLocation, load_settings
from smsctl.history.backends import open_store
from smsctl.history.interface import HistoryStore
from smsctl.running import new_event_loop
from smsctl.sandbox.emulator import Sandbox, SandboxConfig, SandboxEvent, config_from_settings
from smsctl.webhooks.server import WebhookApp
from smsctl.webhooks.signing import sign

T = TypeVar("T")
APPLICATION_ID = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"
SIGNATURE_SECRET = "test-signature-secret-0123456789abcdef"


def stored(where: Path | StoreLocation, read: Callable[[HistoryStore], T]) -> T:
    """Read the store (either backend) through a connection that is closed again."""
    store = open_store(where)
    try:
        return read(store)
    finally:
        store.close()


def signed_headers(body: bytes, secret: str = SIGNATURE_SECRET, **claims: Any) -> dict[str, str]:
    return {"Authorization": "Bearer " + sign(body, secret, **claims), "Content-Type": "application/json"}


class BackgroundSandbox:
    """Runs `Sandbox` on its own event loop in a thread, so sync tests and subprocesses can use it."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.loop = new_event_loop()  # the loop `smsctl sandbox` runs on
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.sandbox = Sandbox(config)
        self.url = ""

    @classmethod
    def from_environment(cls, *, time_scale: float = 0.01, rate: float | None = 1000.0,
                         status_url: str | None = None) -> BackgroundSandbox:  # fmt: skip
        settings = load_settings()
        return cls(config_from_settings(settings, status_url=status_url, time_scale=time_scale, rate=rate))

    def call(self, fn: Callable[[], Any]) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(fn(), self.loop)
        return future.result(timeout=60)

    def __enter__(self) -> BackgroundSandbox:
        self.thread.start()
        self.call(self.sandbox.__aenter__)
        self.url = self.sandbox.url
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.call(lambda: self.sandbox.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    @property
    def requests(self) -> list[Any]:
        return self.sandbox.stats.requests

    @property
    def webhooks(self) -> list[SandboxEvent]:
        return self.sandbox.stats.webhooks

    def wait_idle(self, timeout: float = 30.0) -> None:
        self.call(lambda: self.sandbox.wait_idle(timeout))


class SmsctlProcess:
    """A real `smsctl … --json` process (forked warm: tests/warm.py) whose JSON Lines are collected as
    they arrive."""

    def __init__(self, *argv: str, env: dict[str, str] | None = None) -> None:
        import os
        import subprocess
        import sys

        from tests import warm

        self.process = warm.popen(
            [sys.executable, "-m", "smsctl", *argv],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )  # fmt: skip
        self.lines: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        import json

        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(json.loads(line))

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if predicate(line):
                    return line
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        stderr = self.process.stderr.read() if self.process.poll() is not None and self.process.stderr else ""
        raise AssertionError(f"no matching line; got {self.lines!r}; stderr {stderr!r}")

    def ready(self) -> dict[str, Any]:
        return self.wait_for(lambda line: line["event"] == "ready")

    def stop(self, sig: int | None = None, timeout: float = 30.0) -> int:
        import signal

        if self.process.poll() is None:
            self.process.send_signal(sig or signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream:
                stream.close()


class ListenProcess(SmsctlProcess):
    """`smsctl listen --port 0 --json ARGS`."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        super().__init__("listen", "--port", "0", "--json", *args, env=env)


class SandboxProcess(SmsctlProcess):
    """`smsctl sandbox` in a process of its own, its request log read from its JSON Lines: for a test that
    sends thousands of messages from its own process, where an emulator thread beside the sender would
    fight it for the GIL (the 10,000-row bulk: 7.5 CPU-s and 7.2 s with the emulator in a thread, 4.7 CPU-s
    and 2.7 s with it in a process)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        super().__init__("sandbox", "--port", "0", "--json", "--time-scale", "0.01", *args, env=env)
        try:
            self.url = str(self.ready()["url"])
        except BaseException:  # it never said ready: it must not outlive the test
            self.__exit__()
            raise

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The API requests it answered, as logged so far (all of them once it has stopped)."""
        return [line for line in self.lines if line.get("kind") == "request"]


class StaticApi:
    """A stand-in Messages API on an ephemeral port that answers every POST with 202, as a static
    mock such as Prism does; `uuid_for(n)` chooses the n-th uuid and `before_answer(n)` runs first."""

    def __init__(
        self, uuid_for: Callable[[int], str], before_answer: Callable[[int], None] | None = None
    ) -> None:
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        api = self
        self.bodies: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                length = int(self.headers.get("Content-Length", "0"))
                api.bodies.append(json.loads(self.rfile.read(length)))
                n = len(api.bodies)
                if before_answer is not None:
                    before_answer(n)
                answer = json.dumps({"message_uuid": uuid_for(n)}).encode()
                self.send_response(202)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StaticApi:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class CaptureApp:
    """The user's own app, as the tutorial's Express server: it verifies each webhook's signature
    (HS256 with the signature secret, `payload_hash` over the raw body) and records it. `answers`
    sets the replies of the next requests in turn (an int, or "hang": never answer); after that it
    answers `default`. `stop()` closes the port (the app is down); `start()` opens it again."""

    def __init__(self, secret: str = SIGNATURE_SECRET, default: int = 200) -> None:
        self.secret, self.default = secret, default
        self.answers: list[int | str] = []
        self.received: list[dict[str, Any]] = []
        self.port = 0
        self._released = threading.Event()
        self.server: Any = None
        self.on_request: Callable[[dict[str, Any]], None] = lambda request: None

    def url(self, path: str = "/webhooks/status") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> CaptureApp:
        import hashlib
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import jwt as pyjwt

        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                token = self.headers.get("Authorization", "").partition(" ")[2]
                try:
                    claims = pyjwt.decode(token, app.secret, algorithms=["HS256"])
                    verified = claims.get("payload_hash") == hashlib.sha256(body).hexdigest()
                except pyjwt.PyJWTError:
                    claims, verified = {}, False
                request = {"path": self.path, "body": body, "token": token, "claims": claims,
                           "verified": verified, "headers": dict(self.headers), "json": json.loads(body or b"null")}  # fmt: skip
                app.on_request(request)
                answer = app.answers.pop(0) if app.answers else app.default
                if answer == "hang":
                    app._released.wait(60)
                    return
                request["answer"] = int(answer)
                app.received.append(request)
                self.send_response(int(answer))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.daemon_threads = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self._released.set()
            self.server.shutdown()
            self.server.server_close()
            self.server = None
            self._released = threading.Event()

    def delivered(self) -> list[dict[str, Any]]:
        """What the app accepted (answered 2xx), in arrival order."""
        return [r for r in self.received if r["verified"] and 200 <= r["answer"] < 300]

    def __enter__(self) -> CaptureApp:
        return self.start() if self.server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class WebhookTestServer(BaseTestServer):
    """aiohttp's test server around the listener's WebhookApp, served by the app's own runner."""

    def __init__(self, app: WebhookApp) -> None:
        super().__init__()
        self.app = app

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return self.app.runner(shutdown_timeout=1.0)


@contextmanager
def taken_port() -> Iterator[int]:
    """A loopback port another program is listening on, for as long as the block runs."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])
