"""Team-mode benchmark: the listener on PostgreSQL against the same listener on SQLite, two listeners
on one PostgreSQL against one, and `--wait`'s wake-up through LISTEN/NOTIFY.

Pinning on 2 cores: listeners on CPU 0; PostgreSQL (every backend process) and wrk share CPU 1.
The PostgreSQL server is a throwaway cluster started here (as the `postgres` user when root), with
its defaults: fsync on, synchronous_commit on. Afterwards each store is checked: one row per
acknowledged event, none missing, none doubled.

    python bench/team.py            # 40,000 webhooks per run, 2 interleaved rounds, 50 wake-ups
    python bench/team.py --quick    # 2,000 webhooks, 1 round, 5 wake-ups; for CI, speed not judged
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import OUT, SMSCTL, ensure_wrk, free_port, machine, pinned, stop, table, wait_http  # noqa: E402
from bench.listener import API_KEY, SECRET, generate, run_wrk  # noqa: E402
from tests.pg import Cluster, find_bindir  # noqa: E402

WAIT_BUDGET_MS = 30.0


def pin_cluster(cluster: Cluster, cpu: int) -> None:
    """Put the postmaster (and so every backend it forks from now on) on one CPU."""
    pid = (cluster.data / "postmaster.pid").read_text().split()[0]
    if pinned(cpu):
        subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), pid], check=False, stdout=subprocess.DEVNULL)


def listen(port: int, store: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VONAGE_SIGNATURE_SECRET": SECRET, "VONAGE_API_KEY": API_KEY, "SMSCTL_DB": store}
    command = [*pinned(0), *SMSCTL, "listen", "--port", str(port), "--json"]
    return subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def wrk_many(wrk: str, ports: list[int], files: list[Path]) -> dict[str, float]:
    """One wrk per listener, at once; requests and non-2xx summed, over the longest duration."""
    results: list[dict[str, float]] = [{} for _ in ports]

    def one(index: int) -> None:
        results[index] = run_wrk(wrk, f"http://127.0.0.1:{ports[index]}", files[index])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(ports))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    duration = max(r["duration_us"] for r in results) / 1e6
    requests = sum(r["requests"] for r in results)
    return {"rps": requests / duration, "p50_us": statistics.mean(r["p50_us"] for r in results),
            "p99_us": max(r["p99_us"] for r in results), "status_errors": sum(r["status_errors"] for r in results)}  # fmt: skip


def check(store: str, webhooks: int, acknowledged: int) -> str:
    from smsctl.history.backends import open_store

    opened = open_store(store)
    try:
        counts = opened.counts()
    finally:
        opened.close()
    ok = counts["events"] == acknowledged == webhooks
    return f"{counts['events']:,} rows for {acknowledged:,} acknowledged of {webhooks:,} sent → {'OK' if ok else 'MISMATCH'}"


def split(webhooks: Path, parts: int) -> list[Path]:
    """The replay split by message (both events of a message to one listener), as a load balancer would."""
    lines = webhooks.read_text().splitlines(keepends=True)
    files = []
    for part in range(parts):
        path = webhooks.with_name(f"{webhooks.stem}-part{part}of{parts}.tsv")
        pairs = [lines[i : i + 2] for i in range(0, len(lines), 2)][part::parts]
        path.write_text("".join(line for pair in pairs for line in pair))
        files.append(path)
    return files


def throughput(cluster: Cluster, wrk: str, webhooks: Path, count: int, rounds: int, tmp: Path) -> list[str]:
    results: dict[str, dict[str, float]] = {}
    verdicts: list[str] = []
    halves = split(webhooks, 2)
    for round_ in range(rounds):
        for setup in ("sqlite", "postgresql", "postgresql ×2"):
            store = str(tmp / f"r{round_}.db") if setup == "sqlite" else cluster.create_database()
            ports = [free_port() for _ in range(2 if "×2" in setup else 1)]
            servers = [listen(port, store, OUT / f"team-{setup[:2]}-{i}.log") for i, port in enumerate(ports)]
            try:
                for port in ports:
                    wait_http(f"http://127.0.0.1:{port}/healthz")
                stats = wrk_many(wrk, ports, halves if len(ports) == 2 else [webhooks])
            finally:
                codes = [stop(server) for server in servers]
            if setup not in results or stats["rps"] > results[setup]["rps"]:
                results[setup] = stats
            verdicts.append(f"{setup:<14} round {round_ + 1}: " + check(store, count, int(count - stats["status_errors"]))
                            + f"; listener exit {codes}")  # fmt: skip
    rows = []
    for setup, r in results.items():
        rows.append([setup, f"{r['rps']:,.0f}", f"{r['p50_us'] / 1000:.2f}", f"{r['p99_us'] / 1000:.2f}",
                     str(int(r["status_errors"])), f"{r['rps'] / results['sqlite']['rps']:.2f}"])  # fmt: skip
    print(f"listener throughput: {count:,} webhooks, wrk -t1 -c32 (two listeners: one wrk -c32 each, half the "
          f"messages each), best of {rounds} interleaved round(s)")  # fmt: skip
    print(table(["store", "req/s", "p50 ms", "p99 ms", "non-2xx", "× SQLite"], rows))
    return verdicts


async def _wake_ups(url: str, count: int) -> tuple[list[float], list[float]]:
    """Median wake-up of a waiter (NOTIFY on PostgreSQL; `PRAGMA data_version` polling on SQLite, the
    same-run baseline) from the commit of a final status by another process."""
    from smsctl.config import StoreKind, StoreLocation
    from smsctl.history.backends import watch_changes

    results: list[list[float]] = []
    with tempfile.TemporaryDirectory(prefix="smsctl-bench-") as tmp:
        for where in (StoreLocation(StoreKind.POSTGRESQL, url=url),
                      StoreLocation(StoreKind.SQLITE, path=Path(tmp) / "wake.db")):  # fmt: skip
            store = where.url or str(where.path)
            writer = subprocess.Popen([sys.executable, __file__, "--commit-final", store], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, env={**os.environ})  # fmt: skip
            assert writer.stdin is not None and writer.stdout is not None
            assert writer.stdout.readline().strip() == "ready"
            latencies = []
            for i in range(count):
                uuid = f"{i:08d}-dddd-4eee-8fff-{int(time.time() * 1000) % 10**12:012d}"
                noticed: list[float] = []

                def read(s: Any, u: str = uuid, seen: list[float] = noticed) -> bool:
                    current = s.current_status(u)
                    if current is not None and current.final:
                        seen.append(time.time())
                        return True
                    return False

                watcher = asyncio.create_task(watch_changes(where, 30, read))
                # The waiter is listening before the status arrives, as in a real wait; a random extra
                # pause, so the commit does not fall at the same point of SQLite's poll cycle each time.
                await asyncio.sleep(0.3 + random.uniform(0, 0.05))
                writer.stdin.write(uuid + "\n")
                writer.stdin.flush()
                committed = float(await asyncio.to_thread(writer.stdout.readline))
                await watcher
                latencies.append((noticed[0] - committed) * 1000)
            writer.stdin.close()
            writer.wait(timeout=30)
            results.append(latencies)
    return results[0], results[1]


def commit_finals(store: str) -> None:
    """The helper process: for each uuid on stdin, commit its final status and print the commit time."""
    from smsctl.history.events import parse_status
    from smsctl.history.writer import StoreWriter

    writer = StoreWriter(store)
    print("ready", flush=True)
    for line in sys.stdin:
        body = json.dumps({"message_uuid": line.strip(), "to": "14155550101", "timestamp": "2026-11-30T12:00:04Z",
                           "status": "delivered", "channel": "sms"}).encode()  # fmt: skip
        event = parse_status(body)
        writer.run_sync(lambda s, e=event: s.apply_status(e, time.time()))  # type: ignore[misc]
        print(time.time(), flush=True)  # the commit has returned: the status is durable and notified
    writer.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a smoke run: speed not judged")
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--only", choices=["throughput", "wake"], help="run one part")
    parser.add_argument("--commit-final", metavar="STORE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.commit_final:
        commit_finals(args.commit_final)
        return 0
    count = args.count or (2_000 if args.quick else 40_000)
    rounds = args.rounds or (1 if args.quick else 2)
    bindir, wrk = find_bindir(), ensure_wrk()
    if bindir is None or wrk is None:
        print("needs PostgreSQL (apt-get install postgresql) and wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    OUT.mkdir(exist_ok=True)
    webhooks = OUT / f"webhooks-{count}.tsv"
    if not webhooks.exists():
        generate(webhooks, count)
    cluster = Cluster(bindir).start()
    try:
        pin_cluster(cluster, 1)
        print(
            f"team-mode benchmark; listeners on CPU 0, PostgreSQL {bindir.parent.name} and wrk on CPU 1; {machine()}"
        )
        verdicts: list[str] = []
        if args.only != "wake":
            with tempfile.TemporaryDirectory(prefix="smsctl-bench-") as tmp:
                verdicts = throughput(cluster, wrk, webhooks, count, rounds, Path(tmp))
        if args.only == "throughput":
            return 0 if all("OK" in v for v in verdicts) else 1
        notify, polling = asyncio.run(_wake_ups(cluster.create_database(), 5 if args.quick else 50))
    finally:
        cluster.stop()
    print(f"\n--wait wake-up, commit of the final status → the waiter sees it (no interpreter exit), "
          f"{len(notify)} messages each:")  # fmt: skip
    print(table(["store", "median ms", "p90 ms", "max ms", f"median × {WAIT_BUDGET_MS:.0f} ms goal"], [
        [name, f"{statistics.median(v):.1f}", f"{sorted(v)[int(len(v) * 0.9) - 1 if len(v) > 1 else 0]:.1f}",
         f"{max(v):.1f}", f"{statistics.median(v) / WAIT_BUDGET_MS:.2f}"]
        for name, v in (("PostgreSQL (LISTEN/NOTIFY)", notify), ("SQLite (data_version poll)", polling))
    ]))  # fmt: skip
    print()
    for verdict in verdicts:
        print(verdict)
    return 0 if all("OK" in v for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
