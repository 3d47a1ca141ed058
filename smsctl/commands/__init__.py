"""One module per command; each parses its options, calls one core function and renders."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOption = Annotated[
    bool, typer.Option("--json", envvar="SMSCTL_JSON", help="Machine-readable JSON on stdout.")
]
DebugOption = Annotated[bool, typer.Option("--debug", hidden=True, help="Show tracebacks.")]


def flags(**values: object) -> dict[str, str | None]:
    """Command-line values as settings overrides (None when the flag was not given)."""
    return {name: None if value is None else str(value) for name, value in values.items()}
