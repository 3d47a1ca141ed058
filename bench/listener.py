"""Listener benchmark: N signed webhooks against `smsctl listen`, a bare aiohttp app, and a verify-only app.

Each server runs pinned to CPU 0, the load generator (wrk, 32 connections) to CPU 1. Afterwards the
store is checked: exactly one row per acknowledged event, none missing.

    python bench/listener.py            # 100,000 webhooks (50,000 messages × submitted + final)
    python bench/listener.py --quick    # 3,000 webhooks, a few seconds; for CI, speed not judged
    python bench/listener.py --count 40000 --rounds 4 --only verify smsctl   # a quicker comparison

`smsctl-ui` is `listen --json --ui` with the inspector open in headless chromium (pinned to CPU 1, beside
wrk: a browser is the user's, not the listener's core) for the whole run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    OUT,
    PYTHON,
    SMSCTL,
    cpu_ticks,
    ensure_wrk,
    free_port,
    machine,
    pinned,
    process_cpu_seconds,
    stolen_share,
    stop,
    table,
    wait_http,
)
from smsctl.history.sqlite import Store  # noqa: E402
from smsctl.webhooks.signing import sign  # noqa: E402

SECRET = "bench-signature-secret-0123456789abcdef"
API_KEY = "benchkey"
FINALS = ["delivered"] * 8 + ["rejected", "undeliverable"]


def generate(path: Path, count: int) -> None:
    """`count` distinct signed webhooks, each message a `submitted` then a final status."""
    rng = random.Random(1)
    with path.open("w") as out:
        for _ in range(count // 2):
            message = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            for status, second in (("submitted", 1), (rng.choice(FINALS), 4)):
                body = json.dumps({
                    "message_uuid": message, "to": "14155550101", "from": "14155550199",
                    "timestamp": f"2026-11-30T12:00:0{second}.000Z", "status": status, "channel": "sms",
                    "destination": {"network_code": "310260"}, "sms": {"count_total": "1"},
                    "usage": {"currency": "EUR", "price": "0.0057"},
                }, separators=(",", ":")).encode()  # fmt: skip
                token = sign(body, SECRET, api_key=API_KEY, application_id="bench-app")
                out.write(f"{token}\t{body.decode()}\n")


def run_wrk(wrk: str, url: str, webhooks: Path) -> dict[str, float]:
    script = Path(__file__).with_name("webhooks.lua")
    marker = webhooks.with_suffix(".done")
    marker.unlink(missing_ok=True)
    process = subprocess.Popen([*pinned(1), wrk, "-t1", "-c32", "-d3600s", "--latency", "-s", str(script), url,
                                "--", str(webhooks), str(marker)], stdout=subprocess.PIPE, text=True)  # fmt: skip
    while not marker.exists() and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)  # every webhook is answered: end wrk's fixed-duration sleep
    stdout, _ = process.communicate(timeout=60)
    marker.unlink(missing_ok=True)
    stats = json.loads(stdout.strip().splitlines()[-1])
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    return stats


def _terminal() -> int:
    """A pseudo-terminal (120×40) whose output is read and thrown away, as a terminal would show it;
    the slave end's fd, for the live view to draw on."""
    import fcntl
    import pty
    import struct
    import termios
    import threading

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))

    def drain() -> None:
        try:
            while os.read(master, 65536):
                pass
        except OSError:
            pass

    threading.Thread(target=drain, daemon=True).start()
    return slave


def browser_on(log: Path, tmp: Path) -> Any:
    """Open the inspector (`smsctl-ui`) in headless chromium on CPU 1 (beside wrk: the user's browser is not
    the listener's core) and keep it connected while the load runs; returns a call that reads how many rows
    the page shows at the end and closes the browser. None of it when chromium or Playwright is missing."""
    import shutil

    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium is not installed: smsctl-ui runs without a browser connected", file=sys.stderr)
        return lambda: 0
    from playwright.sync_api import sync_playwright

    ready = json.loads(log.read_text().splitlines()[0])
    wrapper = tmp / "chromium-cpu1"
    wrapper.write_text(f'#!/bin/sh\nexec {" ".join(pinned(1))} {chromium} "$@"\n')
    wrapper.chmod(0o755)
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=str(wrapper), args=["--no-sandbox"])
    page = browser.new_page()
    page.goto(ready["ui_url"])
    page.wait_for_selector("#live.on")

    def done() -> int:
        rows = page.locator("#rows tr").count()
        browser.close()
        playwright.stop()
        return rows

    return done


def serve(target: str, port: int, db: Path, log: Path) -> subprocess.Popen[bytes]:
    if target.startswith("smsctl"):
        env = {
            **os.environ,
            "VONAGE_SIGNATURE_SECRET": SECRET,
            "VONAGE_API_KEY": API_KEY,
            "SMSCTL_DB": str(db),
            "TERM": "xterm-256color",
        }
        if target == "smsctl-tty":  # the live table, drawn on a terminal
            command = [*SMSCTL, "listen", "--port", str(port)]
            tty = _terminal()
            return subprocess.Popen(
                [*pinned(0), *command], env=env, stdin=tty, stdout=tty, stderr=log.open("wb")
            )
        command = [*SMSCTL, "listen", "--port", str(port), "--json"]
        if target == "smsctl-ui":  # the inspector beside it, a browser connected (see `browser_on`)
            command += ["--ui", "--ui-port", "0"]
    else:
        env = dict(os.environ)
        command = [PYTHON, str(Path(__file__).with_name("baselines.py")), target, str(port), SECRET]
    return subprocess.Popen([*pinned(0), *command], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


CLEAN = 0.05  # a round is clean when CPU 0 lost under 5% of its time to other tenants
Rounds = list[dict[str, tuple[dict[str, float], float | None]]]  # per round: server → (wrk stats, stolen)


def round_lines(measured: Rounds) -> list[str]:
    """Every round's figure with CPU 0's stolen share, then smsctl against verify-only in the rounds
    the hypervisor left alone."""
    lines = ["each round (stolen: CPU 0's time the hypervisor gave other tenants, the noise between rounds):"]
    for number, servers in enumerate(measured, 1):
        for target, (stats, stolen) in servers.items():
            shown = "-" if stolen is None else f"{stolen:.0%}"
            cpu = f", CPU {stats['cpu_us']:.0f} µs/request" if "cpu_us" in stats else ""
            lines.append(f"  round {number} {target}: {stats['rps']:,.0f} req/s, p99 "
                         f"{stats['p99_us'] / 1000:.1f} ms{cpu}, CPU 0 stolen {shown}")  # fmt: skip
    lines.append(
        f"clean rounds (under {CLEAN:.0%} stolen for both), smsctl --json against verify-only in the same round:"
    )
    clean = []
    for number, servers in enumerate(measured, 1):
        ours, theirs = servers.get("smsctl"), servers.get("verify")
        if ours and theirs and all(stolen is not None and stolen < CLEAN for _, stolen in (ours, theirs)):
            clean.append(f"  round {number}: {ours[0]['rps'] / theirs[0]['rps']:.2f}×")
    return lines + (clean or ["  none"]) + cpu_lines(measured)


def cpu_lines(measured: Rounds) -> list[str]:
    """The servers' CPU per request, median of the rounds: what each request costs, which stolen
    time hardly moves (a request's cost, not how much of the core the server was given)."""
    median = {}
    for target in ("verify", "smsctl", "smsctl-tty"):
        costs = [servers[target][0]["cpu_us"] for servers in measured
                 if target in servers and "cpu_us" in servers[target][0]]  # fmt: skip
        if costs:
            median[target] = statistics.median(costs)
    if "verify" not in median or "smsctl" not in median:
        return []
    shown = ", ".join(f"{target} {cost:.0f} µs" for target, cost in median.items())
    return [f"CPU per request (all threads, median of rounds): {shown}; verify-only's over smsctl --json's: "
            f"{median['verify'] / median['smsctl']:.2f}×"]  # fmt: skip


def check_store(db: Path, webhooks: int, acknowledged: int) -> str:
    with Store(db) as store:  # the same code that opened the listener's connection
        conn = store.conn
        events = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT message_uuid || status) FROM events"
        ).fetchone()
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[
            conn.execute("PRAGMA synchronous").fetchone()[0]
        ]
    ok = events[0] == events[1] == acknowledged == webhooks and integrity == "ok" and sync == "FULL"
    return (f"store: {events[0]} rows, {events[1]} distinct events, {acknowledged} acknowledged of {webhooks} "
            f"sent, integrity {integrity}, synchronous={sync} → {'OK' if ok else 'MISMATCH'}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="3,000 webhooks: a smoke run, speed not judged")
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["bare", "verify", "smsctl", "smsctl-tty", "smsctl-ui"],
        help="measure only these servers",
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="interleaved rounds; the best of each is kept"
    )
    args = parser.parse_args()
    count = args.count or (3_000 if args.quick else 100_000)
    wrk = ensure_wrk()
    if wrk is None:
        print("wrk is not installed and cannot be installed here (apt-get install wrk)", file=sys.stderr)
        return 2
    OUT.mkdir(exist_ok=True)
    webhooks = OUT / f"webhooks-{count}.tsv"
    if not webhooks.exists():
        print(f"generating {count:,} signed webhooks…", file=sys.stderr)
        generate(webhooks, count)
    rounds = args.rounds or (1 if args.quick else 2)
    results: dict[str, dict[str, float]] = {}
    verdicts = []
    measured: Rounds = []
    with tempfile.TemporaryDirectory(prefix="smsctl-bench-") as tmp:
        # Interleaved rounds, best of each server: the machine's noise hits all three alike.
        for round_ in range(rounds):
            measured.append({})
            for target in args.only or ["bare", "verify", "smsctl", "smsctl-tty", "smsctl-ui"]:
                port, db = free_port(), Path(tmp) / f"{target}-{round_}.db"
                server = serve(target, port, db, OUT / f"{target}.log")
                try:
                    wait_http(f"http://127.0.0.1:{port}/healthz")
                    watching = browser_on(OUT / f"{target}.log", Path(tmp)) if target == "smsctl-ui" else None
                    before, used = cpu_ticks(0), process_cpu_seconds(server.pid)
                    stats = run_wrk(wrk, f"http://127.0.0.1:{port}", webhooks)
                    if watching is not None:
                        stats["rows_seen"] = watching()
                    stolen = stolen_share(before, cpu_ticks(0))
                    if used is not None and (now := process_cpu_seconds(server.pid)) is not None:
                        stats["cpu_us"] = (now - used) / stats["requests"] * 1e6
                finally:
                    code = stop(server)
                measured[round_][target] = (stats, stolen)
                if target not in results or stats["rps"] > results[target]["rps"]:
                    results[target] = stats
                if target.startswith("smsctl"):
                    acknowledged = count - stats["status_errors"]
                    verdicts.append(check_store(db, count, int(acknowledged)) + f"; listener exit {code}")
    rows = []
    for target, r in results.items():
        ratios = [
            f"{r['rps'] / results[base]['rps']:.2f}" if base in results else "-"
            for base in ("bare", "verify", "smsctl")
        ]
        rows.append([target, f"{r['rps']:,.0f}", f"{r['p50_us'] / 1000:.2f}", f"{r['p99_us'] / 1000:.2f}",
                     str(r["status_errors"]), *ratios])  # fmt: skip
    print(f"listener benchmark: {count:,} webhooks, wrk -t1 -c32, server on CPU 0, wrk on CPU 1, "
          f"best of {rounds} interleaved round(s); {machine()}")  # fmt: skip
    print(table(["server", "req/s", "p50 ms", "p99 ms", "non-2xx", "× bare", "× verify", "× --json"], rows))
    for verdict in verdicts:
        print(verdict)
    for line in round_lines(measured):
        print(line)
    return 0 if all("OK" in v for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
