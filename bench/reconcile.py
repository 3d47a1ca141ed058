"""Messages reconciled per second against the emulator's Reports API, beside the ceiling the API's rate
limit allows (10 requests a second × 100 UUIDs a request = 1,000 messages a second), in the same run.

Each measurement sends its messages with `smsctl bulk` to `smsctl sandbox --drop-webhooks 100` (every
status happens, no webhook is ever sent: the listener "was down"), waits until the emulator's records
are final, then:
  - `smsctl reconcile` as a user runs it, paced at 9 requests a second (a tenth under the API's 10),
    the emulator enforcing the 10: its rate against the 1,000/s ceiling;
  - the same reconciliation unpaced, in-process, against an emulator without a limit: what smsctl's own
    side costs per message (the headroom beneath the rate limit).

    python bench/reconcile.py           # 5,000 messages a measurement
    python bench/reconcile.py --quick   # 300; for CI, speed not judged
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import SMSCTL, free_port, machine, stop, table, write_credentials  # noqa: E402

CEILING = 10 * 100  # requests a second × UUIDs a request


def start_emulator(env: dict[str, str], reports_rate: float) -> tuple[subprocess.Popen[str], str]:
    command = [*SMSCTL, "sandbox", "--port", str(free_port()), "--rate", "0", "--time-scale", "0.001",
               "--drop-webhooks", "100", "--reports-rate", str(reports_rate), "--json"]  # fmt: skip
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert process.stdout is not None
    url = json.loads(process.stdout.readline())["url"]
    import threading

    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()  # type: ignore[union-attr]
    return process, url


def send(env: dict[str, str], directory: Path, count: int) -> None:
    csv = directory / "list.csv"
    csv.write_text("to\n" + "".join(f"+1415555{(1000 + n % 9000):04d}\n" for n in range(count)))
    done = subprocess.run([*SMSCTL, "bulk", str(csv), "hello", "--rate", "0", "--concurrency", "50", "--json"],
                          env={**os.environ, **env}, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


def wait_final(env: dict[str, str], count: int) -> None:
    """Until the emulator's records of every sent message are final (its statuses take ~1 ms here)."""
    from smsctl.history.backends import open_store

    store = open_store(Path(env["SMSCTL_DB"]))
    try:
        uuids = [m.message_uuid for m in store.recent_messages(count) if m.message_uuid]
    finally:
        store.close()
    assert len(uuids) == count

    async def final() -> bool:
        from smsctl.messages.reports import ReportsClient

        async with ReportsClient(
            env["VONAGE_API_URL"], env["VONAGE_API_KEY"], env["VONAGE_API_SECRET"]
        ) as client:
            records = await client.by_ids(uuids[-100:])
        return len(records) == min(100, count) and all(r.status == "delivered" for r in records)

    deadline = time.monotonic() + 60
    while not asyncio.run(final()):
        if time.monotonic() > deadline:
            raise RuntimeError("the emulator's records did not become final")
        time.sleep(0.1)


def paced(env: dict[str, str], count: int) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    done = subprocess.run([*SMSCTL, "reconcile", "--older-than", "0s", "--json"], env={**os.environ, **env},
                          capture_output=True, text=True)  # fmt: skip
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["updated"] == count, report
    return seconds, report


def unpaced(env: dict[str, str], count: int) -> tuple[float, dict[str, object]]:
    from smsctl.config import load_settings
    from smsctl.history.writer import StoreWriter
    from smsctl.messages.reconciling import ReconcileOptions, Reconciler
    from smsctl.messages.reports import ReportsClient

    settings = load_settings(environ=env)

    async def run() -> dict[str, object]:
        with StoreWriter.for_settings(settings) as writer:
            client = ReportsClient(
                settings.api_url, env["VONAGE_API_KEY"], env["VONAGE_API_SECRET"], rate=None
            )
            async with client:
                return (await Reconciler(writer, client, ReconcileOptions(older_than=0.0)).run()).to_json()

    started = time.perf_counter()
    report = asyncio.run(run())
    seconds = time.perf_counter() - started
    assert report["updated"] == count, report
    return seconds, report


def measure(count: int, reports_rate: float, run: object) -> tuple[float, dict[str, object]]:
    with tempfile.TemporaryDirectory(prefix="smsctl-bench-reconcile-") as tmp:
        directory = Path(tmp)
        env = write_credentials(directory, "http://127.0.0.1:1", directory / "store.db")
        env["VONAGE_API_SECRET"] = "bench-secret"
        emulator, url = start_emulator(env, reports_rate)
        env["VONAGE_API_URL"] = url
        try:
            send(env, directory, count)
            wait_final(env, count)
            return run(env, count)  # type: ignore[operator, no-any-return]
        finally:
            stop(emulator)  # type: ignore[arg-type]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    count = 300 if parser.parse_args().quick else 5000
    print(f"reconcile benchmark: {count:,} messages whose webhooks were lost, a store each; {machine()}")
    rows = []
    seconds, report = measure(count, 10.0, paced)
    rows.append(["smsctl reconcile (paced at 9 req/s)", f"{seconds:.2f}", f"{count / seconds:,.0f}",
                 str(report["requests"]), f"{count / seconds / CEILING:.2f}"])  # fmt: skip
    seconds, report = measure(count, 0.0, unpaced)
    rows.append(["the same, unpaced (our side only)", f"{seconds:.2f}", f"{count / seconds:,.0f}",
                 str(report["requests"]), f"{count / seconds / CEILING:.2f}"])  # fmt: skip
    print(
        table(["run", "wall s", "messages/s", "requests", f"× the {CEILING:,}/s the rate limit allows"], rows)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
