"""One module per command; each parses its options, calls one core function and renders."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from smsctl.config import Settings

E = TypeVar("E", bound=StrEnum)

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


def sender_settings(
    sender: str | None, port: int | None, public_url: str | None, no_store_text: bool
) -> Settings:
    """Settings for a command that sends (`send`, `bulk`): its flags over the environment and `.env`."""
    from smsctl.config import load_settings

    return load_settings(
        flags(
            VONAGE_NUMBER=sender,
            PORT=port,
            BASE_URL=public_url,
            SMSCTL_STORE_TEXT=store_text_flag(no_store_text),
        )
    )


def flags(**values: object) -> dict[str, str | None]:
    """Command-line values as settings overrides (None when the flag was not given)."""
    return {name: None if value is None else str(value) for name, value in values.items()}


def choice(kind: type[E], value: str, what: str) -> E:
    """`value` as one of the str enum `kind`'s members (any case); a UsageError (exit 2) naming the
    choices, and the nearest one when the value looks like a typo, otherwise."""
    import difflib

    from smsctl.errors import UsageError

    try:
        return kind(value.strip().lower())
    except ValueError:
        names = [member.value for member in kind]
        near = difflib.get_close_matches(value.strip().lower(), names, n=1)
        hint = (f"did you mean {near[0]!r}? " if near else "") + "one of: " + ", ".join(names)
        raise UsageError(f"{what} {value!r} is not one of smsctl's choices", hint=hint) from None


def status_choice(value: str | None) -> str | None:
    """`--status` checked against the statuses and local states a message can have."""
    from smsctl.history.interface import StatusFilter

    return None if value is None else str(choice(StatusFilter, value, "--status"))
