"""`smsctl export`: the history as JSON Lines or CSV, for spreadsheets, BI tools and audits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from smsctl.cli.options import DebugOption, JsonOption, choice, status_choice


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
    import time

    from smsctl.config import load_settings
    from smsctl.history.export import ExportFormat, export_to_file
    from smsctl.history.export import export as run_export
    from smsctl.history.reading import parse_duration
    from smsctl.output import emit_json, note, reporting, write_stdout

    with reporting(json_output, debug):
        fmt = choice(ExportFormat, format_, "--format")
        status = status_choice(status)
        after = time.time() - parse_duration(since) if since else None
        settings = load_settings()
        if output is None:
            count = run_export(settings, fmt, status=status, since=after, batch=batch, inbound_only=inbound,
                               write=write_stdout)  # fmt: skip
        else:
            count = export_to_file(settings, fmt, output, status=status, since=after, batch=batch,
                                   inbound_only=inbound)  # fmt: skip
        what = "inbound SMS" if inbound else "messages"
        if json_output and output is not None:  # stdout is free: the summary is the data
            emit_json({"exported": count, "kind": "inbound" if inbound else "messages", "output": str(output),
                       "format": fmt.value})  # fmt: skip
        note(f"exported {count:,} {what}" + (f" to {output}" if output is not None else ""))
