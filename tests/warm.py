"""Warm `python -m smsctl` processes for the tests: real processes, without paying Python's imports each time.

The suite starts ~100 `smsctl` processes (listeners, `send --wait`, `bulk` runs killed mid-way). Each spent
~0.3 CPU-s importing aiohttp, Typer and smsctl before doing anything, about a third of the whole suite's CPU
on this 2-core machine. So each test worker starts one *template* interpreter (`python -m tests.warm SOCKET`)
that imports those modules once and then only forks: a test asks for `python -m smsctl ARGS` with its own
environment, working directory and stdin/stdout/stderr (passed over a Unix socket), and gets a real child
process running `smsctl.__main__` exactly as `python -m smsctl` runs it — its own pid to signal or SIGKILL,
its own exit code, its stdio pipes closing when it exits.

What a fork cannot give, the client falls back to a fresh interpreter for: a command line that is not
`python -m smsctl …`, or an environment that changes how Python itself starts (PYTHONPATH and the other
PYTHON* variables). Tests about the interpreter's own start-up or stdio (Ctrl-C while importing, a closed
stdout, which modules a command imports) start `sys.executable` themselves.

Protocol: the client connects and sends one JSON request (argv, env, cwd) with three file descriptors;
the template forks a *waiter*, which forks the command, writes `pid N` and later `exit CODE` (Popen's
returncode: negative for a signal) on the connection.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any, cast

# What the template imports once: everything a listener, `send` and `bulk` load (never at import in a
# test worker: only the template process runs `_preload`).
PRELOAD = (
    "smsctl.cli", "smsctl.cli.app", "smsctl.webhooks.listening", "smsctl.webhooks.server",
    "smsctl.webhooks.jsonlines", "smsctl.webhooks.forwarding", "smsctl.history.sqlite", "smsctl.history.writer",
    "smsctl.history.postgres", "smsctl.messages.sending", "smsctl.messages.bulk", "smsctl.messages.waiting",
    "aiohttp.web", "uvloop", "rich.console", "rich.live", "rich.table",
)  # fmt: skip
# Variables Python reads while it starts: a child asking for other values than the template's gets a
# fresh interpreter. PYTHONUNBUFFERED is honoured by the child's own stdio.
_STARTUP_VARIABLES_OK = {"PYTHONUNBUFFERED", "PYTHONIOENCODING"}


# ---- the template process ----------------------------------------------------------------------------------

_REPLACED: list[IO[Any]] = []


def _preload() -> None:
    import importlib

    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _serve(path: str) -> Callable[[], None] | None:
    """Accept requests until the test worker goes away (its pipe on our stdin closes). Returns, in a forked
    command only, the function that runs it: the command then runs at the template's top level, so its
    exit is an ordinary interpreter exit (atexit, stdio flush, exit code)."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # waiters are reaped by the kernel
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        readable, _, _ = select.select([server, sys.stdin], [], [])
        if sys.stdin in readable and not sys.stdin.readline():
            server.close()
            os.unlink(path)
            os.rmdir(os.path.dirname(path))
            return None
        if server not in readable:
            continue
        connection, _ = server.accept()
        message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
        if os.fork() == 0:
            run = _waiter(server, connection, json.loads(message), fds)
            if run is not None:
                return run
            os._exit(0)
        for fd in fds:
            os.close(fd)
        connection.close()


def _waiter(server: socket.socket, connection: socket.socket, request: dict[str, Any],
            fds: list[int]) -> Callable[[], None] | None:  # fmt: skip
    """In the forked waiter: fork the command, report its pid, wait, report its exit."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    server.close()
    pid = os.fork()
    if pid == 0:
        connection.close()
        return _become_command(request, fds)
    for fd in fds:
        os.close(fd)  # else the test's pipes would not close when the command exits
    connection.sendall(f"pid {pid}\n".encode())
    _, status = os.waitpid(pid, 0)
    connection.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
    connection.close()
    return None


def _become_command(request: dict[str, Any], fds: list[int]) -> Callable[[], None]:
    """Set up what a fresh `python -m smsctl` would have: stdio, environment, directory, argv, sys.path."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    os.chdir(request["cwd"])
    sys.path[0] = os.getcwd()  # as `-m` puts the working directory first
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    _REPLACED.extend((sys.stdin, sys.stdout, sys.stderr))  # collected, they would close fds 0-2
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(open(0, "rb", closefd=False), encoding="utf-8")
    sys.stdout = sys.__stdout__ = _text_writer(1, unbuffered, "strict")
    sys.stderr = sys.__stderr__ = _text_writer(2, True, "backslashreplace")

    def run() -> None:
        import runpy

        sys.argv = ["smsctl", *request["argv"]]
        runpy.run_module("smsctl", run_name="__main__", alter_sys=True)

    return run


def _text_writer(fd: int, unbuffered: bool, errors: str) -> io.TextIOWrapper:
    raw = open(fd, "wb", buffering=0, closefd=False)
    binary: IO[bytes] = raw if unbuffered else io.BufferedWriter(raw)
    return io.TextIOWrapper(binary, encoding="utf-8", errors=errors, line_buffering=os.isatty(fd),
                            write_through=unbuffered)  # fmt: skip


# ---- the client, in the test worker --------------------------------------------------------------------------


class _Template:
    """The worker's template process, started on first use and gone with the worker."""

    _lock = threading.Lock()
    _instance: _Template | None = None

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="smsctl-warm-")
        self.path = os.path.join(self.directory, "template.sock")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VONAGE_", "SMSCTL_"))}
        self.process = subprocess.Popen([sys.executable, "-m", "tests.warm", self.path], cwd=root, env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert self.process.stdout is not None
        if self.process.stdout.readline() != "ready\n":
            raise RuntimeError(f"the warm template did not start (exit {self.process.wait()})")
        self.environment = {k: v for k, v in os.environ.items() if k.startswith("PYTHON")}

    @classmethod
    def get(cls) -> _Template:
        with cls._lock:
            if cls._instance is None or cls._instance.process.poll() is not None:
                cls._instance = cls()
            return cls._instance

    def serves(self, env: dict[str, str]) -> bool:
        asked = {k: v for k, v in env.items() if k.startswith("PYTHON") and k not in _STARTUP_VARIABLES_OK}
        had = {k: v for k, v in self.environment.items() if k not in _STARTUP_VARIABLES_OK}
        return asked == had


def _smsctl_args(args: Sequence[str]) -> list[str] | None:
    """The arguments after `python -m smsctl`, or None for any other command line."""
    if len(args) >= 3 and args[0] == sys.executable and args[1] == "-m" and args[2] == "smsctl":
        return [str(arg) for arg in args[3:]]
    return None


Stream = int | IO[Any] | None


class WarmProcess:
    """The part of `subprocess.Popen` the tests use, for a command forked from the template."""

    def __init__(self, args: Sequence[str], argv: list[str], *, stdin: Stream = None, stdout: Stream = None,
                 stderr: Stream = None, text: bool = False, env: dict[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None, template: _Template) -> None:  # fmt: skip
        self.args = list(args)
        self.returncode: int | None = None
        child_ends: list[int] = []
        self.stdin = self._stream(stdin, 0, "w", text, child_ends)
        self.stdout = self._stream(stdout, 1, "r", text, child_ends)
        if stderr == subprocess.STDOUT:
            child_ends.append(os.dup(child_ends[1]))
            self.stderr = None
        else:
            self.stderr = self._stream(stderr, 2, "r", text, child_ends)
        request = {"argv": argv, "env": dict(os.environ if env is None else env),
                   "cwd": os.fspath(cwd) if cwd is not None else os.getcwd()}  # fmt: skip
        self._connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._connection.connect(template.path)
            socket.send_fds(self._connection, [json.dumps(request).encode()], child_ends)
        finally:
            for fd in child_ends:
                os.close(fd)
        self._buffer = b""
        self.pid = int(self._line(None).removeprefix("pid "))

    @staticmethod
    def _stream(spec: Stream, target: int, mode: str, text: bool, child_ends: list[int]) -> IO[Any] | None:
        """The child's end of one standard stream (appended to `child_ends`), and ours for a PIPE."""
        if spec == subprocess.PIPE:
            read, write = os.pipe()
            child_ends.append(read if mode == "w" else write)
            ours = write if mode == "w" else read
            if text:
                return open(ours, mode, encoding="utf-8")
            return open(ours, mode + "b", buffering=0 if mode == "w" else -1)
        if spec == subprocess.DEVNULL:
            child_ends.append(os.open(os.devnull, os.O_RDWR))
        elif spec is None:
            child_ends.append(os.dup(target))
        elif isinstance(spec, int):
            child_ends.append(os.dup(spec))
        else:
            child_ends.append(os.dup(spec.fileno()))
        return None

    def _line(self, timeout: float | None) -> str:
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self._connection], [], [], left)[0]:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            chunk = self._connection.recv(4096)
            if not chunk:
                raise RuntimeError(f"the warm template lost {self.args!r}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def poll(self) -> int | None:
        if self.returncode is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.returncode = int(self._line(0).removeprefix("exit "))
                self._connection.close()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = int(self._line(timeout).removeprefix("exit "))
            self._connection.close()
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, input: str | bytes | None = None, timeout: float | None = None) -> tuple[Any, Any]:
        """Feed stdin, read stdout and stderr to their end, wait: as Popen does (threads, as on Windows)."""
        results: dict[str, Any] = {}

        def drain(name: str, stream: IO[Any]) -> None:
            results[name] = stream.read()
            stream.close()

        def feed(stream: IO[Any]) -> None:
            with contextlib.suppress(BrokenPipeError):
                if input:
                    stream.write(input)
                stream.close()

        threads = [threading.Thread(target=drain, args=(name, stream), daemon=True)
                   for name, stream in (("stdout", self.stdout), ("stderr", self.stderr)) if stream is not None]  # fmt: skip
        if self.stdin is not None:
            threads.append(threading.Thread(target=feed, args=(self.stdin,), daemon=True))
        for thread in threads:
            thread.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return results.get("stdout"), results.get("stderr")

    def __enter__(self) -> WarmProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        self.wait()


def popen(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """`subprocess.Popen(args, **kwargs)`; forked from the warm template when `args` is `python -m smsctl …`."""
    argv = _smsctl_args(args)
    env = kwargs.get("env")
    if argv is not None and set(kwargs) <= {"stdin", "stdout", "stderr", "text", "env", "cwd"}:
        template = _Template.get()
        if template.serves(dict(os.environ if env is None else env)):
            # Not a Popen subclass: it implements the part of Popen the tests use.
            return cast("subprocess.Popen[Any]", WarmProcess(args, argv, template=template, **kwargs))
    return subprocess.Popen(args, **kwargs)


def run(args: Sequence[str], *, input: str | bytes | None = None, capture_output: bool = False,
        timeout: float | None = None, check: bool = False, **kwargs: Any) -> subprocess.CompletedProcess[Any]:  # fmt: skip
    """`subprocess.run`, through `popen`."""
    if capture_output:
        kwargs.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    process = popen(args, **kwargs)
    try:
        stdout, stderr = process.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    done = subprocess.CompletedProcess(list(args), process.wait(), stdout, stderr)
    if check:
        done.check_returncode()
    return done


if __name__ == "__main__":
    _preload()
    # What was imported lives in every child: out of the collector's sight, a child's collections do not
    # write to (and so copy) every page of it.
    import gc

    gc.collect()
    gc.freeze()
    command = _serve(sys.argv[1])
    if command is not None:
        command()
