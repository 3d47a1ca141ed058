"""Terminal output: data to stdout, everything else to stderr, and errors turned into messages here only."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
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


def emit_json(data: Any, stream: TextIO | None = None) -> None:
    """One JSON document (or JSON Lines record) on stdout (or `stream`)."""
    stream = stream or sys.stdout
    stream.write(json.dumps(data, default=str, ensure_ascii=False) + "\n")
    stream.flush()


class LineBuffer:
    """JSON Lines written once per event-loop turn: a burst of events costs one write, not hundreds."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._scheduled = False

    def emit(self, data: Any) -> None:
        self._lines.append(json.dumps(data, default=str, ensure_ascii=False) + "\n")
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
        if self._lines:
            sys.stdout.write("".join(self._lines))
            sys.stdout.flush()
            self._lines.clear()


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
