"""Ingest with a forwarding backlog: `smsctl listen --forward-to` whose app is down, with an empty outbox
and with 50,000 forwards pending, in the same run (issue 20, item 7; goal: >= 0.9x the empty rate).

Each round starts a fresh listener on a fresh store (the backlog copied from one seeded template), posts
the same signed webhooks from 32 concurrent connections, and reads the listener's CPU while it then sits
idle for a few seconds with its backlog: a listener whose claims scan the backlog burns a core there.

    python bench/outbox.py            # 50,000 pending, 4,000 webhooks a round, 3 rounds each, interleaved
    python bench/outbox.py --quick    # 5,000 pending, 500 webhooks, 1 round each; for CI, speed not judged
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import SMSCTL, free_port, machine, table, write_credentials  # noqa: E402

CONNECTIONS = 32


def seed(db: Path, target: str, pending: int) -> None:
    """A store whose outbox holds `pending` forwards of the listener's route, all due (the app is down)."""
    from smsctl.history.backends import open_store
    from smsctl.history.interface import NewForward, Route
    from smsctl.webhooks.forwarding import DeliveryOptions, route_key

    key = route_key(Route.STATUS, target, DeliveryOptions())
    store = open_store(db)
    try:
        with store.transaction():
            now = time.time()
            for n in range(pending):
                uuid = f"{n:08d}-0000-4000-8000-backlog00000"
                body = json.dumps({"message_uuid": uuid, "status": "submitted"}).encode()
                store.add_forward(NewForward(Route.STATUS, uuid, target, body, "application/json", None, key),
                                  now, 7 * 24 * 3600.0)  # fmt: skip
    finally:
        store.close()


def bodies(count: int, secret: str) -> list[tuple[bytes, str]]:
    from smsctl.webhooks.signing import sign

    out = []
    for n in range(count):
        body = json.dumps({"message_uuid": f"{n:08d}-1111-4000-8000-000000000000", "to": "14155550101",
                           "from": "14155550199", "status": "delivered", "timestamp": "2025-02-03T12:00:00Z",
                           "channel": "sms"}).encode()  # fmt: skip
        out.append((body, "Bearer " + sign(body, secret)))
    return out


async def post_all(url: str, signed: list[tuple[bytes, str]]) -> float:
    """Seconds to post every webhook over CONNECTIONS connections; each must be answered 200."""
    import aiohttp

    queue = list(reversed(signed))
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while queue:
                body, token = queue.pop()
                headers = {"Authorization": token, "Content-Type": "application/json"}
                async with session.post(url, data=body, headers=headers) as response:
                    assert response.status == 200, response.status
                    await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_round(env: dict[str, str], db: Path, template: Path | None, target: str,
              signed: list[tuple[bytes, str]], idle: float) -> tuple[float, float]:  # fmt: skip
    """(webhooks a second, the idle listener's share of a core afterwards)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    if template is not None:
        shutil.copyfile(template, db)
    port = free_port()
    command = [*SMSCTL, "listen", "--port", str(port), "--json", "--forward-to", target]
    listener = subprocess.Popen(command, env={**os.environ, **env, "SMSCTL_DB": str(db)}, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        assert listener.stdout is not None
        ready = json.loads(listener.stdout.readline())
        while ready.get("event") != "ready":  # the upgrade notes of a copied store come first
            ready = json.loads(listener.stdout.readline())
        import threading

        threading.Thread(target=lambda: [None for _ in listener.stdout], daemon=True).start()  # type: ignore[union-attr]
        seconds = asyncio.run(post_all(ready["status_url"], signed))
        before, started = cpu_seconds(listener.pid), time.monotonic()
        time.sleep(idle)  # the measurement itself: how busy an idle listener with a backlog is
        busy = (cpu_seconds(listener.pid) - before) / (time.monotonic() - started)
    finally:
        listener.terminate()
        listener.wait(timeout=60)
    return len(signed) / seconds, busy


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a smoke run: speed not judged")
    parser.add_argument("--pending", type=int, help="forwards pending in the backlog store")
    parser.add_argument("--count", type=int, help="webhooks posted a round")
    parser.add_argument("--rounds", type=int, help="rounds of each (interleaved)")
    args = parser.parse_args()
    pending = args.pending or (5_000 if args.quick else 50_000)
    count = args.count or (500 if args.quick else 4_000)
    rounds = args.rounds or (1 if args.quick else 3)
    idle = 1.0 if args.quick else 3.0
    with tempfile.TemporaryDirectory(prefix="smsctl-bench-outbox-") as tmp:
        work = Path(tmp)
        env = write_credentials(work, "http://127.0.0.1:9", work / "unused.db")
        os.environ.update(env)
        target = f"http://127.0.0.1:{free_port()}/webhooks/status"  # nothing listens there: the app is down
        template = work / "backlog.db"
        started = time.perf_counter()
        seed(template, target, pending)
        print(
            f"seeded {pending:,} pending forwards in {time.perf_counter() - started:.1f} s", file=sys.stderr
        )
        signed = bodies(count, env["VONAGE_SIGNATURE_SECRET"])
        results: dict[str, list[tuple[float, float]]] = {"empty": [], "backlog": []}
        for _ in range(rounds):
            results["empty"].append(one_round(env, work / "store.db", None, target, signed, idle))
            results["backlog"].append(one_round(env, work / "store.db", template, target, signed, idle))
    empty_rate = statistics.median(r for r, _ in results["empty"])
    rows = []
    for name, label in (("empty", "empty outbox"), ("backlog", f"{pending:,} pending")):
        rates = [r for r, _ in results[name]]
        rate = statistics.median(rates)
        idle_cpu = statistics.median(b for _, b in results[name])
        rows.append([label, f"{rate:,.0f}", " ".join(f"{r:,.0f}" for r in rates), f"{rate / empty_rate:.2f}x",
                     f"{idle_cpu:.1%}"])  # fmt: skip
    print(f"Ingest with the app down, {count:,} webhooks a round over {CONNECTIONS} connections, {rounds} "
          f"round(s) each, interleaved; {machine()}")  # fmt: skip
    print(table(["outbox", "webhooks/s (median)", "each round", "vs empty", "idle CPU after"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
