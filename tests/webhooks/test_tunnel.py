"""The tunnel check, against a local reverse proxy standing in for ngrok."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.helpers import CaptureApp, ListenProcess, stored
from tests.pg import free_port


class Proxy:
    """Relays every request to `target` (as a tunnel does), or answers ngrok's HTML error page."""

    def __init__(self, target: str | None) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        proxy = self
        self.target = target

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if proxy.target is None:
                    page = b"<!DOCTYPE html><html><body>ERR_NGROK_8012: failed to reach the upstream</body></html>"
                    self._answer(502, "text/html", page)
                    return
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                request = urllib.request.Request(
                    proxy.target + self.path, data=body, headers=headers, method="POST"
                )
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        self._answer(
                            response.status, response.headers.get("Content-Type", ""), response.read()
                        )
                except urllib.error.HTTPError as exc:
                    self._answer(exc.code, exc.headers.get("Content-Type", ""), exc.read())
                except OSError:
                    self._answer(502, "text/plain", b"bad gateway")

            def _answer(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type or "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def tunnel_record(listener: ListenProcess) -> dict[str, Any]:
    return listener.wait_for(lambda line: line["event"] == "tunnel")


@pytest.mark.integration
def test_a_tunnel_to_this_listener_is_reachable_and_the_probe_is_not_stored(
    credentials: dict[str, str], db_path: Any
) -> None:
    port = free_port()
    proxy = Proxy(f"http://127.0.0.1:{port}")
    try:
        with ListenProcess("--port", str(port), "--public-url", proxy.url) as listener:
            assert listener.ready()["tunnel_check"] == "checking"
            record = tunnel_record(listener)
            assert record["reachable"] is True and record["diagnosis"] == "reachable" and record["ms"] > 0
            listener.stop()
    finally:
        proxy.close()
    assert stored(db_path, lambda s: s.counts()) == {"messages": 0, "events": 0, "message_status": 0,
                                                     "dead_letters": 0, "inbound": 0, "optout_events": 0}  # fmt: skip


@pytest.mark.parametrize("wrong", ["another program", "another listener", "html", "nothing"])
@pytest.mark.integration
def test_a_tunnel_elsewhere_is_diagnosed(credentials: dict[str, str], wrong: str) -> None:
    others: list[Any] = []
    if wrong == "another program":
        other = CaptureApp(default=404).start()
        others.append(other)
        target: str | None = f"http://127.0.0.1:{other.port}"
    elif wrong == "another listener":
        other_listener = ListenProcess()
        others.append(other_listener)
        target = other_listener.ready()["local_url"]
    else:
        target = None
    proxy = Proxy(target)
    public = proxy.url if wrong != "nothing" else f"http://127.0.0.1:{free_port()}"
    expected = {"another program": "another program (404)", "another listener": "another smsctl listen",
                "html": "an HTML page, HTTP 502", "nothing": "cannot connect"}[wrong]  # fmt: skip
    try:
        with ListenProcess("--port", str(free_port()), "--public-url", public) as listener:
            listener.ready()
            record = tunnel_record(listener)
            assert record["reachable"] is False and expected in record["diagnosis"], record
            listener.stop()
    finally:
        proxy.close()
        for other in others:
            if isinstance(other, ListenProcess):
                other.stop()
                other.__exit__()
            else:
                other.stop()


@pytest.mark.integration
def test_no_tunnel_check_means_no_probe(credentials: dict[str, str]) -> None:
    hits: list[dict[str, Any]] = []
    with CaptureApp() as other:
        other.on_request = hits.append
        with ListenProcess("--port", str(free_port()), "--public-url", f"http://127.0.0.1:{other.port}",
                           "--no-tunnel-check") as listener:  # fmt: skip
            assert listener.ready()["tunnel_check"] is None
            listener.stop()
    assert hits == [] and not any(line["event"] == "tunnel" for line in listener.lines)
