"""One module per command; each parses its options, calls one core function and renders."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOption = Annotated[
    bool, typer.Option("--json", envvar="SMSCTL_JSON", help="Machine-readable JSON on stdout.")
]
NoStoreTextOption = Annotated[
    bool,
    typer.Option("--no-store-text", help="Keep SMS texts out of the store [env SMSCTL_STORE_TEXT=false]."),
]
DebugOption = Annotated[bool, typer.Option("--debug", hidden=True, help="Show tracebacks.")]


def store_text_flag(no_store_text: bool) -> str | None:
    """--no-store-text as the SMSCTL_STORE_TEXT override (None: not given, the setting decides)."""
    return "false" if no_store_text else None


def flags(**values: object) -> dict[str, str | None]:
    """Command-line values as settings overrides (None when the flag was not given)."""
    return {name: None if value is None else str(value) for name, value in values.items()}
