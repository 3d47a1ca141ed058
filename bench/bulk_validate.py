"""Bulk validation benchmark: `smsctl bulk FILE TEXT --dry-run` over 100,000 and 1,000,000 rows,
wall time, rows/s and peak RSS, beside a baseline measured in the same run: a bare Python loop that
only reads the same CSV with csv.DictReader (the floor for streaming a CSV in Python).

    python bench/bulk_validate.py           # 100,000 and 1,000,000 rows
    python bench/bulk_validate.py --quick   # 10,000 rows

The store holds an opt-out ledger of 100,000 numbers (the recipient of every fifth row among them), so the
validation's ledger check (issue 23: how many rows will be suppressed) is measured too, and checked.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PYTHON, SMSCTL, machine, table, write_credentials  # noqa: E402

OPTED_OUT = "+447911123456"
BASELINE = "import csv,sys\nn=0\nfor row in csv.DictReader(open(sys.argv[1], newline='')): n+=1\nprint(n)"


def write_csv(path: Path, rows: int) -> None:
    """A fifth of the rows to the opted-out +447911123456; the rest to distinct numbers (+1 212 200 0000
    onwards), as a real list has, so no row's parse is served from the parse cache of an earlier row."""
    with open(path, "w") as out:
        out.write("to,name\n")
        for n in range(rows):
            to = OPTED_OUT if n % 5 == 1 else f"+1212{200 + (n // 10_000) % 800:03d}{n % 10_000:04d}"
            out.write(f"{to},Person {n}\n")


def seed_ledger(db: Path, numbers: int) -> None:
    """An opt-out ledger of `numbers` numbers, +447911123456 (a fifth of the rows) among them."""
    import sqlite3

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from smsctl.history.backends import open_store

    open_store(db).close()
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany("INSERT INTO optouts VALUES (?, '*', 1, 'import', NULL, 0)",
                         [(f"44{n:010d}",) for n in range(numbers - 1)] + [("447911123456",)])  # fmt: skip
    conn.close()


def check_opted_out(csv: Path, env: dict[str, str], size: int) -> None:
    """The report must count the opted-out rows: a fifth of them."""
    import json

    done = subprocess.run([*SMSCTL, "bulk", str(csv), "Hi {name}", "--dry-run", "--json"],
                          env={**os.environ, **env}, capture_output=True, text=True)  # fmt: skip
    report = json.loads(done.stdout.splitlines()[0])
    assert report["opted_out"] == len(range(1, size, 5)), report["opted_out"]


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)  # fmt: skip
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[:4]} failed: {process.stderr.read().decode() if process.stderr else ''}")
    return wall, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    sizes = [10_000] if parser.parse_args().quick else [100_000, 1_000_000]
    rows_out = []
    with tempfile.TemporaryDirectory(prefix="smsctl-bench-") as tmp:
        env = write_credentials(Path(tmp), "http://127.0.0.1:1", Path(tmp) / "bench.db")
        seed_ledger(Path(tmp) / "bench.db", 100_000)
        for size in sizes:
            csv = Path(tmp) / f"rows-{size}.csv"
            write_csv(csv, size)
            base_wall, base_rss = measure([PYTHON, "-c", BASELINE, str(csv)], env)
            wall, rss = measure(
                [*SMSCTL, "bulk", str(csv), "Hi {name}, your code is 123456", "--dry-run", "--json"], env
            )
            check_opted_out(csv, env, size)
            rows_out.append([f"{size:,}", "csv.DictReader only", f"{base_wall:.1f}", f"{size / base_wall:,.0f}",
                             f"{base_rss:.0f}", "1.0"])  # fmt: skip
            rows_out.append([f"{size:,}", "smsctl bulk --dry-run", f"{wall:.1f}", f"{size / wall:,.0f}",
                             f"{rss:.0f}", f"{wall / base_wall:.1f}"])  # fmt: skip
    print(f"bulk validation benchmark; {machine()}")
    print(table(["rows", "program", "wall s", "rows/s", "peak RSS MB", "× baseline time"], rows_out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
