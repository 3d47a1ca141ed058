"""Wait latency: time from the final status's commit to `smsctl send --wait` exiting.

A real `smsctl listen` stores the emulator's webhooks; `smsctl send --wait` watches the store. The
final event's `received_at` (taken just before its commit) is compared with the moment the harness
sees the `send --wait` process exit, so the figure includes interpreter shutdown: an upper bound.

    python bench/wait_latency.py           # 20 messages
    python bench/wait_latency.py --quick   # 3 messages
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SMSCTL, machine, start_sandbox, stop, table, write_credentials  # noqa: E402

BUDGET_MS = 250.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    count = 3 if parser.parse_args().quick else 20
    with tempfile.TemporaryDirectory(prefix="smsctl-bench-") as tmp:
        db = Path(tmp) / "bench.db"
        env = write_credentials(Path(tmp), "http://127.0.0.1:1", db)
        sandbox, url, _ = start_sandbox(env)
        env["VONAGE_API_URL"] = url
        full_env = {**os.environ, **env}
        listener = subprocess.Popen([*SMSCTL, "listen", "--port", "0", "--json"], env=full_env,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        assert listener.stdout is not None
        assert json.loads(listener.stdout.readline())["event"] == "ready"
        latencies = []
        try:
            for _ in range(count):
                process = subprocess.Popen([*SMSCTL, "send", "+14155550101", "latency", "--wait", "--json"],
                                           env=full_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
                stdout, _ = process.communicate(timeout=60)
                exited = time.time()
                result = json.loads(stdout)
                assert process.returncode == 0 and result["status"] == "delivered", result
                conn = sqlite3.connect(db)
                (committed,) = conn.execute(
                    "SELECT received_at FROM events WHERE message_uuid = ? AND status = 'delivered'",
                    (result["message_uuid"],),
                ).fetchone()
                conn.close()
                latencies.append((exited - committed) * 1000)
        finally:
            stop(listener)  # type: ignore[arg-type]
            stop(sandbox)  # type: ignore[arg-type]
    p50, worst = statistics.median(latencies), max(latencies)
    print(f"wait latency benchmark: {count} sends with --wait through a running smsctl listen; {machine()}")
    print(table(["measure", "ms", "× the 250 ms budget"], [
        ["median", f"{p50:.0f}", f"{p50 / BUDGET_MS:.2f}"],
        ["worst", f"{worst:.0f}", f"{worst / BUDGET_MS:.2f}"],
    ]))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
