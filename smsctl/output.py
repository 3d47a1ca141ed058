"""Terminal output: data to stdout, everything else to stderr, and errors turned into messages here only."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any, TextIO

import typer

from smsctl.errors import ExitCode, SmsctlError

if TYPE_CHECKING:
    from rich.console import Console


@cache
def out() -> Console:
    """The stdout console (data)."""
    from rich.console import Console

    # A pipe gets whole lines (a generous width) instead of a table wrapped at 80 columns. No markup:
    # texts, references and numbers come from outside, and `[/]` in an SMS must print as itself.
    return Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 200)


@cache
def err() -> Console:
    """The stderr console (progress, warnings, errors)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, markup=False)


_stdout_closed = False


def write_stdout(text: str) -> bool:
    """Write data to stdout; False once the reader has gone away (EPIPE: `… | head -2`).

    Then stdout is pointed at /dev/null, so nothing (not even the interpreter's last flush) raises
    again, and one line on stderr says why the data stopped.
    """
    global _stdout_closed
    if _stdout_closed:
        return False
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
        return True
    except BrokenPipeError:
        _stdout_closed = True
        _point_stdout_at_devnull()
        note("stdout was closed (its reader went away): no more data is written")
        return False
    except OSError as exc:  # disk full (`> /dev/full`), I/O error: an error, not a traceback
        from smsctl.errors import OutputUnwritable

        _stdout_closed = True
        _point_stdout_at_devnull()
        raise OutputUnwritable.of("stdout", exc) from None


def _point_stdout_at_devnull() -> None:
    """So that nothing (not even the interpreter's last flush of what is still buffered) raises again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def print_data(renderable: Any, *, rows: int, pager: bool) -> None:
    """A table of data on stdout. On a terminal, through $PAGER when it is longer than the screen
    (unless `pager` is off); piped, as lines without the padding a table puts after its last column."""
    console = out()
    if sys.stdout.isatty():
        if pager and rows + 2 > console.height:
            os.environ.setdefault("LESS", "-FRX")  # colours, and no pager at all for a short screenful
            with console.pager(styles=True):
                console.print(renderable)
            return
        console.print(renderable)
        return
    with console.capture() as captured:
        console.print(renderable)
    write_stdout("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def emit_json(data: Any, stream: TextIO | None = None) -> None:
    """One JSON document (or JSON Lines record) on stdout (or `stream`)."""
    line = json.dumps(data, default=str, ensure_ascii=False) + "\n"
    if stream is None:
        write_stdout(line)
        return
    stream.write(line)
    stream.flush()


class LineBuffer:
    """JSON Lines written once per event-loop turn: a burst of events costs one write, not hundreds."""

    def __init__(self, on_closed: Callable[[], None] | None = None) -> None:
        from smsctl.codec import json_line

        self._encode = json_line
        self._lines: list[str] = []
        self._scheduled = False
        self._on_closed = on_closed  # called once if stdout's reader goes away

    def emit(self, data: Any) -> None:
        self._lines.append(self._encode(data))
        if self._scheduled:
            return
        import asyncio  # lazily: most commands never write JSON Lines

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop: write at once
            self.flush()
            return
        self._scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._lines:
            return
        text = "".join(self._lines)
        self._lines.clear()
        if not write_stdout(text) and self._on_closed is not None:
            self._on_closed()
            self._on_closed = None


class _StderrHandler(logging.Handler):
    """Log records as `warning: …` on whatever sys.stderr is now (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        warn(self.format(record))


def warnings_to_stderr() -> None:
    """The core logs what a user should know (e.g. store permissions tightened); say it on stderr.
    `smsctl listen --json` replaces this with plain log lines beside its JSON Lines."""
    logger = logging.getLogger("smsctl")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler())
    logger.setLevel(logging.WARNING)
    logger.propagate = False


def warn(message: str) -> None:
    """A warning on stderr; the message is printed as is, never read as markup."""
    from rich.text import Text

    err().print(Text.assemble(("warning:", "yellow"), " ", message), soft_wrap=True)


def note(message: str) -> None:
    """Progress or context on stderr, printed as is."""
    err().print(message, soft_wrap=True)


@contextmanager
def reporting(json_mode: bool = False, debug: bool = False) -> Iterator[None]:
    """The one place an SmsctlError or Ctrl-C becomes a message, a hint and an exit code."""
    try:
        yield
    except SmsctlError as exc:
        if debug:
            raise
        if json_mode:
            emit_json({"error": exc.to_dict()}, sys.stderr)  # stdout holds data only
        else:
            from rich.text import Text

            err().print(Text.assemble(("error:", "bold red"), " ", exc.message), soft_wrap=True)
            if exc.hint:
                err().print(Text.assemble(("hint:", "dim"), " ", exc.hint), soft_wrap=True)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        err().print("interrupted")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
