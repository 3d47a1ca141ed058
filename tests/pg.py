"""A throwaway PostgreSQL cluster for the tests and benchmarks: initdb + pg_ctl in a temporary
directory, on a free port, from the machine's own binaries, torn down afterwards.

PostgreSQL refuses to run as root; CI runs as root, so there the cluster runs as the `postgres`
system user (its data directory owned by it).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PASSWORD = "smsctl-test-password"  # the cluster asks for it (scram-sha-256): tests see auth failures too
INSTALL_HINT = "apt-get install postgresql  (Debian/Ubuntu), then rerun"


def find_bindir() -> Path | None:
    """Where initdb and pg_ctl are: `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin."""
    candidates = []
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
        candidates.append(Path(out.stdout.strip()))
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True
    )
    candidates.extend(Path(p) for p in versions)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists() and (bindir / "postgres").exists():
            return bindir
    return None


def free_port() -> int:
    """A loopback port free now, for a server that must know its port before it starts (a PostgreSQL
    cluster, a listener whose public URL names it). Chosen below the kernel's ephemeral range: a port
    from bind(0) can be handed to another process's bind(0) or outgoing connection before our server
    binds it (a listener failed "address already in use" that way); one below the range only to another
    test choosing the same port at random."""
    import random

    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12_000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


class Cluster:
    """One PostgreSQL server; `url(db)` for a database on it, `create_database()` for a fresh one."""

    def __init__(self, bindir: Path, *, flush_to_disk: bool = True) -> None:
        self.bindir = bindir
        # The tests' cluster does not fsync: a test never crashes the machine, only PostgreSQL or
        # smsctl, and the OS keeps what was written. Its shutdown checkpoint then takes milliseconds,
        # not the 20 s it took after a test session's worth of databases. Benchmarks keep the default.
        self.flush_to_disk = flush_to_disk
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="smsctl-pg-"))
        self.data = self.root / "data"
        self._user: str | None = "postgres" if os.geteuid() == 0 else None
        self._databases = 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, cwd=self.root)

    def start(self) -> Cluster:
        if self._user is not None:  # the data directory must be the server user's, and only its
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._user is not None:
            os.chown(pwfile, pwd.getpwnam(self._user).pw_uid, -1)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256",
                  f"--pwfile={pwfile}", "-E", "UTF8", "--no-instructions")  # fmt: skip
        pwfile.unlink()
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n"
                "max_connections = 200\nshared_buffers = 64MB\n"
            )
            if not self.flush_to_disk:
                conf.write("fsync = off\nfull_page_writes = off\n")
        self.resume()
        return self

    def resume(self) -> None:
        """Start the server (again, after `pause`) and wait until it accepts connections."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "60", "start")

    def pause(self) -> None:
        """Stop the server (fast shutdown: clients are disconnected, committed data kept)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", password: str | None = PASSWORD) -> str:
        auth = f"postgres:{password}" if password is not None else "postgres"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def create_database(self, template: str | None = None) -> str:
        """A fresh database, empty or a copy of `template` (a database on this cluster nobody is
        connected to); its URL. A copy is made file by file (FILE_COPY: ~10 ms less server CPU than
        WAL-logging every page, and this cluster does not fsync)."""
        import psycopg

        self._databases += 1
        name = f"t{os.getpid()}_{self._databases}"
        copy = f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}{copy}")
        return self.url(name)
