"""Export benchmark: `smsctl export` over 100,000 and 1,000,000 messages (two events each), peak RSS
and time, beside a bare sqlite3 loop that streams the same events as JSON Lines (the floor).

    python bench/export.py            # 100,000 and 1,000,000 messages (the store is built once, cached in bench/out)
    python bench/export.py --quick    # 5,000 messages; for CI, figures not judged
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import OUT, SMSCTL, machine, table  # noqa: E402

BASELINE = """
import json, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
out = sys.stdout
for row in conn.execute("SELECT message_uuid, status, timestamp, received_at, body FROM events ORDER BY id"):
    out.write(json.dumps({"message_uuid": row[0], "status": row[1], "timestamp": row[2], "received_at": row[3]}) + "\\n")
"""


def build(path: Path, messages: int) -> None:
    """A store made by smsctl's own migrations, filled with `messages` sends and their two events."""
    from smsctl.history.sqlite import Store

    Store(path).close()
    conn = sqlite3.connect(path)
    now = time.time()
    with conn:
        for start in range(0, messages, 50_000):
            chunk = range(start, min(messages, start + 50_000))
            uuids = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in chunk]
            conn.executemany(
                "INSERT INTO messages (client_ref, message_uuid, to_number, from_number, text, encoding, segments,"
                " state, created_at, updated_at) VALUES (?, ?, '14155550101', 'SMSCTL', 'Your code is 1234', 'text',"
                " 1, 'accepted', ?, ?)",
                [(f"ref-{i}", u, now, now) for i, u in zip(chunk, uuids, strict=True)],
            )
            conn.executemany(
                "INSERT INTO message_status (message_uuid, status, final, first_seen, updated_at)"
                " VALUES (?, 'delivered', 1, ?, ?)",
                [(u, now, now) for u in uuids],
            )
            for status, second in (("submitted", 1), ("delivered", 3)):
                conn.executemany(  # keyed by the message's status row, as the listener writes them
                    "INSERT INTO events (msg_id, message_uuid, status, timestamp, received_at, to_number, price,"
                    " currency, body) SELECT id, message_uuid, ?, ?, ?, '14155550101', '0.0057', 'EUR', ?"
                    " FROM message_status WHERE message_uuid = ?",
                    [(status, f"2026-11-30T12:00:0{second}Z", now + second,
                      f'{{"message_uuid":"{u}","status":"{status}"}}', u) for u in uuids],
                )  # fmt: skip
    conn.close()


# Linux counts a child's memory from before its exec (the forked copy of its parent) in ru_maxrss, so
# a large parent (this one, after building a store) would hide the figure: a tiny launcher spawns
# the command and reports its child's peak.
LAUNCHER = """
import os, sys
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status), file=sys.stderr)
"""


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one run, its output thrown away."""
    started = time.perf_counter()
    with open(os.devnull, "w") as sink:
        done = subprocess.run([sys.executable, "-c", LAUNCHER, *command], env=env, stdout=sink,
                              stderr=subprocess.PIPE, text=True, check=True)  # fmt: skip
    maxrss, code = map(int, done.stderr.strip().splitlines()[-1].split())
    assert code == 0, f"{command} failed"
    return time.perf_counter() - started, maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    sizes = [5_000] if parser.parse_args().quick else [100_000, 1_000_000]
    OUT.mkdir(exist_ok=True)
    rows = []
    for size in sizes:
        store = OUT / f"export-{size}.db"
        if not store.exists():
            print(f"building a store of {size:,} messages…", file=sys.stderr)
            build(store, size)
        else:  # kept from an earlier run, maybe by an older smsctl: export opens read-only, so upgrade it here
            from smsctl.history.sqlite import Store

            Store(store).close()
        env = {**os.environ, "SMSCTL_DB": str(store)}
        base_s, base_mb = measure([sys.executable, "-c", BASELINE, str(store)], env)
        rows.append(
            [
                f"{size:,}",
                "sqlite3 loop (events only)",
                f"{base_s:.1f}",
                f"{2 * size / base_s:,.0f}",
                f"{base_mb:.0f}",
            ]
        )
        for fmt in ("jsonl", "csv"):
            seconds, mb = measure([*SMSCTL, "export", "--format", fmt], env)
            rows.append([f"{size:,}", f"smsctl export --format {fmt}", f"{seconds:.1f}", f"{size / seconds:,.0f}",
                         f"{mb:.0f} ({mb / base_mb:.2f}×)"])  # fmt: skip
    print(f"export benchmark; {machine()}")
    print(table(["messages", "program", "wall s", "records/s", "peak RSS MB (× baseline)"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
