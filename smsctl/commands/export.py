"""`smsctl export`: the history as JSON Lines or CSV, for spreadsheets, BI tools and audits."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from smsctl.commands import DebugOption, JsonOption

if TYPE_CHECKING:
    from smsctl.exporting import ExportFormat


def export(
    format_: Annotated[
        str, typer.Option("--format", help="jsonl (one message with its timeline per line) or csv.")
    ] = "jsonl",
    since: Annotated[str | None, typer.Option(help="Only messages active in the last 15m, 2h, 7d…")] = None,
    status: Annotated[str | None, typer.Option(help="Only messages in this status.")] = None,
    batch: Annotated[str | None, typer.Option(help="Only this bulk batch.")] = None,
    inbound: Annotated[bool, typer.Option("--inbound", help="Export inbound SMS instead.")] = False,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Write to this file (created private, 0600) instead of stdout."),
    ] = None,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Export every message with its timeline (or inbound SMS), streamed: flat memory at any size.

    CSV has one row per message: uuid, to, from, client_ref, final status, sent/submitted/final
    times, error code and meaning, price, segments, source, batch.

    Example: smsctl export --format csv --since 7d -o last-week.csv
    """
    import os
    import time

    from smsctl.config import load_settings
    from smsctl.exporting import export as run_export
    from smsctl.history import parse_duration
    from smsctl.output import note, reporting, write_stdout

    with reporting(json_output, debug):
        fmt = _format(format_)
        after = time.time() - parse_duration(since) if since else None
        settings = load_settings()
        if output is None:
            count = run_export(settings, fmt, status=status, since=after, batch=batch, inbound_only=inbound,
                               write=write_stdout)  # fmt: skip
            note(f"exported {count:,} {'inbound SMS' if inbound else 'messages'}")
            return
        fd = _private_file(output)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as sink:

            def write(text: str) -> bool:
                sink.write(text)
                return True

            count = run_export(
                settings, fmt, status=status, since=after, batch=batch, inbound_only=inbound, write=write
            )
        note(f"exported {count:,} {'inbound SMS' if inbound else 'messages'} to {output}")


def _format(value: str) -> ExportFormat:
    from smsctl.errors import UsageError
    from smsctl.exporting import ExportFormat

    try:
        return ExportFormat(value.lower())
    except ValueError:
        raise UsageError(
            f"--format {value!r} is not jsonl or csv", hint="--format jsonl or --format csv"
        ) from None


def _private_file(path: Path) -> int:
    """Open `path` for writing, private (0600: it holds phone numbers), truncating an existing file."""
    import os

    from smsctl.errors import UsageError

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}", hint="choose a file you can write") from None
    import stat

    if stat.S_ISREG(os.fstat(fd).st_mode):  # never chmod a device (-o /dev/null) or a pipe
        os.fchmod(fd, 0o600)
    return fd
