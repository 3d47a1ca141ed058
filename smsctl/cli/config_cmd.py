"""`smsctl config`: every setting, where it came from, secrets redacted."""

from __future__ import annotations

from typing import Annotated

import typer

from smsctl.cli.options import JsonOption


def config(
    json_output: JsonOption = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Notes about this machine too.")] = False,
) -> None:
    """Show every setting and where it came from (flag, environment, .env, default); secrets redacted.

    Example: smsctl config --json
    """
    from smsctl.config import VARIABLES_BY_NAME, load_settings, redacted
    from smsctl.history.backends import environment_notes
    from smsctl.output import emit_json, note, out, reporting

    with reporting(json_output):
        settings = load_settings()
        rows = redacted(settings)
        notes = environment_notes(settings.store) if verbose else []  # rarely actionable: asked for
        if json_output:
            emit_json({name: {"value": value, "source": source} for name, value, source in rows})
            for text in notes:
                note(f"note: {text}")
            return
        from rich.table import Table

        table = Table("variable", "value", "source", "meaning", box=None, pad_edge=False)
        for name, value, source in rows:
            style = "dim" if source in ("default", "unset") else ""
            table.add_row(name, value, source, VARIABLES_BY_NAME[name].meaning, style=style)
        out().print(table)
        for text in notes:
            note(f"note: {text}")
