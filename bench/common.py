"""Shared helpers for the benchmarks: ports, CPU pinning, process lifecycle and the results table."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

OUT = Path(__file__).parent / "out"
PYTHON = sys.executable
SMSCTL = [PYTHON, "-m", "smsctl"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cpu: int) -> list[str]:
    """`taskset -c CPU` when the machine has a core to spare for it, else nothing."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > cpu:
        return ["taskset", "-c", str(cpu)]
    return []


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up within {timeout} s")


def ensure_wrk() -> str | None:
    """Debian's wrk; installed with apt-get when missing and we are root. None if unavailable."""
    if shutil.which("wrk"):
        return shutil.which("wrk")
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (apt-get install wrk)…", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=False, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, stdout=subprocess.DEVNULL)
    return shutil.which("wrk")


def stop(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    if process.poll() is None:
        process.terminate()
    return process.wait(timeout=timeout)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    body = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {sys.version.split()[0]}"


def write_credentials(directory: Path, api_url: str, db: Path) -> dict[str, str]:
    """Throwaway application credentials as environment variables (the key is written to `directory`)."""
    import secrets
    import uuid

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_path = directory / "private.key"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return {
        "VONAGE_APPLICATION_ID": str(uuid.uuid4()),
        "VONAGE_PRIVATE_KEY_PATH": str(key_path),
        "VONAGE_SIGNATURE_SECRET": secrets.token_urlsafe(32),
        "VONAGE_API_KEY": "benchkey",
        "VONAGE_NUMBER": "+14155550199",
        "VONAGE_API_URL": api_url,
        "SMSCTL_DB": str(db),
        "PORT": "0",
    }


def start_sandbox(
    env: dict[str, str], tls_dir: Path | None = None, cpu: int = 0
) -> tuple[subprocess.Popen[str], str, str | None]:
    """`smsctl sandbox` on a free port, rate limit off, no webhooks; returns (process, url, certificate)."""
    import json

    command = [*pinned(cpu), *SMSCTL, "sandbox", "--port", str(free_port()), "--rate", "0", "--json"]
    if tls_dir is not None:
        command += ["--tls", "--tls-dir", str(tls_dir)]
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert process.stdout is not None
    ready = json.loads(process.stdout.readline())
    # Keep draining its event lines so the pipe never fills and stalls it.
    import threading

    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()  # type: ignore[union-attr]
    return process, ready["url"], ready.get("certificate")


def child_cpu() -> float:
    """CPU seconds (user + system) used so far by waited-for child processes."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_ticks(cpu: int) -> tuple[int, int] | None:
    """(stolen, total) clock ticks of one CPU so far, from Linux's /proc/stat; None elsewhere.

    Stolen time is what the hypervisor gave other tenants while this CPU had work: on a shared
    machine it is the noise that moves one round's figure by a third.
    """
    try:
        with open("/proc/stat") as stat:
            for line in stat:
                if line.startswith(f"cpu{cpu} "):
                    ticks = [int(field) for field in line.split()[1:]]
                    return (ticks[7] if len(ticks) > 7 else 0), sum(ticks)
    except OSError:
        pass
    return None


def stolen_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of a CPU's time stolen between two cpu_ticks readings."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU a process (all its threads) has used so far, from /proc; None elsewhere.

    Unlike requests per second it hardly moves when the hypervisor steals the CPU: time stolen
    from a process is not charged to it.
    """
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()  # after the command name, which may hold spaces
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
