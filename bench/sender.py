"""Sender benchmark: `smsctl bulk` (rate limit off) against the official SDK in a loop, both to the emulator.

The emulator serves HTTPS with a generated certificate (the SDK only speaks HTTPS) on CPU 0; each
sender runs on CPU 1. Client CPU is the sender process's user + system time, start-up included.

    python bench/sender.py            # 10,000 messages with smsctl, 300 with the SDK loop
    python bench/sender.py --quick    # 500 and 20: a smoke run for CI, speed not judged

Then the opt-out ledger's cost (issue 23): the same bulk run into a store whose ledger holds 1,000,000
numbers (10,000 with --quick), none of them the recipient, against an empty ledger, interleaved twice:
every send checks the ledger before its request.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    PYTHON,
    SMSCTL,
    child_cpu,
    machine,
    pinned,
    start_sandbox,
    stop,
    table,
    write_credentials,
)  # noqa: E402


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run to completion on CPU 1: (wall seconds, CPU seconds, stdout)."""
    cpu_before, started = child_cpu(), time.perf_counter()
    result = subprocess.run([*pinned(1), *command], env={**os.environ, **env}, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - started, child_cpu() - cpu_before
    if result.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed ({result.returncode}): {result.stderr[-2000:]}")
    return wall, cpu, result.stdout


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    messages, sdk_messages = (500, 20) if args.quick else (10_000, 300)
    with tempfile.TemporaryDirectory(prefix="smsctl-bench-") as tmp:
        directory = Path(tmp)
        env = write_credentials(directory, "https://127.0.0.1:1", directory / "bench.db")
        sandbox, url, cert = start_sandbox(env, tls_dir=directory / "tls")
        try:
            env.update(VONAGE_API_URL=url, SSL_CERT_FILE=str(cert), REQUESTS_CA_BUNDLE=str(cert))
            recipients = directory / "recipients.txt"
            rows = ["to,n"] + [f"+14155550101,{i}" for i in range(messages)]
            recipients.write_text("\n".join(rows) + "\n")
            wall, cpu, stdout = timed([*SMSCTL, "bulk", str(recipients), "Hello {n}", "--rate", "0",
                                       "--concurrency", "32", "--json"], env)  # fmt: skip
            summary = json.loads(stdout.splitlines()[-1])
            assert summary["counts"] == {"accepted": messages}, summary
            sdk_wall, sdk_cpu, _ = timed([PYTHON, str(Path(__file__).with_name("sdk_loop.py")), str(sdk_messages),
                                          url.removeprefix("https://")], env)  # fmt: skip
            ledger = ledger_cost(env, directory, recipients, messages, 10_000 if args.quick else 1_000_000)
        finally:
            stop(sandbox)  # type: ignore[arg-type]
    ours, sdk = messages / wall, sdk_messages / sdk_wall
    rows_out = [
        ["smsctl bulk", f"{messages:,}", f"{wall:.2f}", f"{ours:,.0f}", f"{cpu / messages * 1000:.3f}", f"{ours / sdk:.1f}"],
        ["SDK loop", f"{sdk_messages:,}", f"{sdk_wall:.2f}", f"{sdk:,.1f}", f"{sdk_cpu / sdk_messages * 1000:.3f}", "1.0"],
    ]  # fmt: skip
    print(f"sender benchmark: HTTPS emulator on CPU 0, sender on CPU 1, rate limit off; {machine()}")
    print(table(["sender", "messages", "wall s", "msg/s", "client CPU ms/msg", "× SDK"], rows_out))
    print(f"smsctl sending phase alone: {summary['counts']['accepted'] / summary['elapsed']:,.0f} msg/s "
          f"({summary['elapsed']:.2f} s; the rest is start-up and validation)")  # fmt: skip
    print(ledger)
    return 0


def seeded(path: Path, numbers: int) -> Path:
    """A store whose opt-out ledger holds `numbers` numbers (none of them the benchmark's recipient)."""
    import sqlite3

    from smsctl.history.backends import open_store

    open_store(path).close()  # created and migrated by smsctl itself
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany("INSERT INTO optouts VALUES (?, '*', 1, 'import', NULL, 0)",
                         ((f"44{n:010d}",) for n in range(numbers)))  # fmt: skip
    conn.close()
    return path


def ledger_cost(env: dict[str, str], directory: Path, recipients: Path, messages: int, numbers: int) -> str:
    """Client CPU per message with an empty ledger and with `numbers` in it, interleaved, two rounds."""
    import statistics

    template = seeded(directory / "ledger-template.db", numbers)
    cpu: dict[str, list[float]] = {"empty": [], "full": []}
    for round_ in range(2):
        for kind in ("empty", "full"):
            store = directory / f"{kind}-{round_}.db"
            if kind == "full":
                store.write_bytes(template.read_bytes())
            _, used, stdout = timed([*SMSCTL, "bulk", str(recipients), "Hello {n}", "--rate", "0",
                                     "--concurrency", "32", "--json"], {**env, "SMSCTL_DB": str(store)})  # fmt: skip
            assert json.loads(stdout.splitlines()[-1])["counts"] == {"accepted": messages}
            cpu[kind].append(used / messages * 1000)
    empty, full = statistics.median(cpu["empty"]), statistics.median(cpu["full"])
    rounds = "  ".join(f"{e:.3f}/{f:.3f}" for e, f in zip(cpu["empty"], cpu["full"], strict=True))
    return (
        f"opt-out ledger: client CPU {full:.3f} ms/msg with {numbers:,} numbers against {empty:.3f} with none "
        f"(rounds, empty/full: {rounds}): {full / empty:.3f}x"
    )


if __name__ == "__main__":
    sys.exit(main())
