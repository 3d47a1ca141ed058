"""`smsctl report -o report.html`: the delivery stats as one self-contained page to attach to a ticket."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from smsctl.cli.options import DebugOption, JsonOption


def report(
    output: Annotated[
        Path, typer.Option("-o", "--output", help="The HTML file to write (created private, 0600).")
    ],
    since: Annotated[
        str | None, typer.Option(help="Only messages sent (or first seen) in the last 2h, 7d…")
    ] = None,
    batch: Annotated[str | None, typer.Option(help="Only this bulk batch.")] = None,
    include_text: Annotated[
        bool,
        typer.Option("--include-text", help="Show the texts of the failed messages (left out by default)."),
    ] = False,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Write the delivery stats as one HTML page: charts and tables, readable on a phone, no network
    access when opened. Phone numbers are masked; texts appear only with --include-text.

    Example: smsctl report --since 7d -o last-week.html
    """
    import time

    from smsctl.config import load_settings
    from smsctl.history.reading import parse_duration
    from smsctl.history.report import build_report, render_html, report_query, write_report
    from smsctl.output import emit_json, note, reporting

    with reporting(json_output, debug):
        now = time.time()
        settings = load_settings()
        query = report_query(now - parse_duration(since) if since else None, batch, now, settings.stale_after)
        built = build_report(settings, query, include_text)
        write_report(settings, output, render_html(built))
        if json_output:
            emit_json({"written": str(output), "messages": built.stats.messages})
        note(
            f"wrote {output}: {built.stats.messages:,} messages"
            + (" (texts included)" if include_text else "")
        )
