"""Start-up benchmark: wall time of `smsctl --help` and of one `smsctl send` to the emulator,
against `python -c pass` as the floor, measured in the same run (median of N runs each).

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


def median_wall(command: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)  # fmt: skip
        times.append(time.perf_counter() - started)
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
            send = median_wall([*SMSCTL, "send", "+14155550101", "start-up"], env, runs)
        finally:
            stop(sandbox)  # type: ignore[arg-type]
    print(f"start-up benchmark: median of {runs} runs; {machine()}")
    print(table(["command", "wall ms", "× python -c pass", "above the floor ms"], [
        ["python -c pass", f"{floor * 1000:.0f}", "1.0", "0"],
        ["smsctl --help", f"{help_ * 1000:.0f}", f"{help_ / floor:.1f}", f"{(help_ - floor) * 1000:.0f}"],
        ["smsctl send (emulator)", f"{send * 1000:.0f}", f"{send / floor:.1f}", f"{(send - floor) * 1000:.0f}"],
    ]))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
