"""Start-up benchmark: wall time of `smsctl --help`, of a refused `smsctl send` (bad number) and of
one `smsctl send` to the emulator, against `python -c pass` as the floor and `--help` as the
baseline, measured in the same run (median of N runs each).

    python bench/startup.py           # 15 runs each
    python bench/startup.py --quick   # 3 runs each
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PYTHON, SMSCTL, machine, start_sandbox, stop, table, write_credentials  # noqa: E402


def median_wall(command: list[str], env: dict[str, str], runs: int, expect: int = 0) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
        times.append(time.perf_counter() - started)
        if done.returncode != expect:
            raise SystemExit(f"{command} exited {done.returncode}, expected {expect}")
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    runs = 3 if parser.parse_args().quick else 15
    with tempfile.TemporaryDirectory(prefix="smsctl-bench-") as tmp:
        env = write_credentials(Path(tmp), "http://127.0.0.1:1", Path(tmp) / "bench.db")
        sandbox, url, _ = start_sandbox(env)
        env["VONAGE_API_URL"] = url
        try:
            floor = median_wall([PYTHON, "-c", "pass"], env, runs)
            help_ = median_wall([*SMSCTL, "--help"], env, runs)
            refused = median_wall([*SMSCTL, "send", "12", "hi"], env, runs, expect=2)
            send = median_wall([*SMSCTL, "send", "+14155550101", "start-up"], env, runs)
        finally:
            stop(sandbox)  # type: ignore[arg-type]
    print(f"start-up benchmark: median of {runs} runs; {machine()}")
    rows = [("python -c pass", floor), ("smsctl --help", help_), ("smsctl send 12 hi (refused)", refused),
            ("smsctl send (emulator)", send)]  # fmt: skip
    print(table(["command", "wall ms", "× python -c pass", "× smsctl --help"], [
        [name, f"{wall * 1000:.0f}", f"{wall / floor:.1f}", f"{wall / help_:.1f}"] for name, wall in rows
    ]))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
