"""`smsctl optout`: the opt-out ledger every send obeys (list, show, add, remove, import, export)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from smsctl.cli.options import DebugOption, JsonOption

if TYPE_CHECKING:
    from smsctl.history.optouts import OptoutState

optout_app = typer.Typer(
    help="The opt-out ledger: numbers that replied STOP (or were added), which every send obeys.\n\n"
    "Example: smsctl optout add +14155550123 --sender +14155550100",
    no_args_is_help=True,
)

SenderOption = Annotated[
    str | None,
    typer.Option("--sender", help="Only this sender of ours (number or ID) [default: every sender]."),
]


@optout_app.command("list")
def list_(
    limit: Annotated[int, typer.Option(min=1, max=10_000_000, help="How many.")] = 100,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Numbers opted out now, most recent first.

    Example: smsctl optout list --json
    """
    from smsctl.history.optouts_view import current
    from smsctl.output import emit_json, reporting

    with reporting(json_output, debug):
        states = current(limit)
        if json_output:
            emit_json([state_json(s) for s in states])
        else:
            _render(states, "no opted-out numbers")


@optout_app.command("show")
def show(
    number: Annotated[str, typer.Argument(help="The number, E.164 with +.")],
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Every opt-out change of one number: when, which sender, from what source.

    Example: smsctl optout show +14155550123
    """
    from smsctl.history.optouts_view import history
    from smsctl.output import emit_json, reporting

    with reporting(json_output, debug):
        changes = history(number)
        if json_output:
            emit_json([state_json(s) for s in changes])
        else:
            _render(changes, f"no opt-out history for {number}")


@optout_app.command("add")
def add(
    number: Annotated[str, typer.Argument(help="The number, E.164 with +.")],
    sender: SenderOption = None,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Opt a number out (of one sender, or of all); every send to it is refused from now on.

    Example: smsctl optout add +14155550123
    """
    _change(number, sender, True, json_output, debug)


@optout_app.command("remove")
def remove(
    number: Annotated[str, typer.Argument(help="The number, E.164 with +.")],
    sender: SenderOption = None,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Opt a number back in (it asked to receive messages again, e.g. replied START).

    Example: smsctl optout remove +14155550123
    """
    _change(number, sender, False, json_output, debug)


@optout_app.command("import")
def import_(
    file: Annotated[
        Path, typer.Argument(help="One number per line (E.164), or a CSV with a `number` column.")
    ],
    sender: SenderOption = None,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Opt out every number of a file (a list kept elsewhere); every line is checked before any is added.

    Example: smsctl optout import stop-list.csv
    """
    from smsctl.history.optouts_view import import_file
    from smsctl.output import emit_json, note, reporting

    with reporting(json_output, debug):
        added = import_file(file, sender)
        if json_output:
            emit_json({"imported": added, "file": str(file)})
        else:
            note(f"{added:,} numbers opted out from {file}")


@optout_app.command("export")
def export(json_output: JsonOption = False, debug: DebugOption = False) -> None:
    """Every opted-out number as CSV (number,sender,source,reference,changed_at) on stdout, or --json.

    Example: smsctl optout export > stop-list.csv
    """
    import csv
    import sys

    from smsctl.codec import iso_utc
    from smsctl.history.optouts_view import current
    from smsctl.output import emit_json, reporting

    with reporting(json_output, debug):
        states = current(10_000_000)
        if json_output:
            emit_json([state_json(s) for s in states])
            return
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(["number", "sender", "source", "reference", "changed_at"])
        for s in states:
            out.writerow(["+" + s.number, s.sender, s.source, s.reference or "", iso_utc(s.changed_at)])


def _change(number: str, sender: str | None, opted_out: bool, json_output: bool, debug: bool) -> None:
    from smsctl.history.optouts_view import change
    from smsctl.output import emit_json, note, reporting

    with reporting(json_output, debug):
        state, changed = change(number, sender, opted_out)
        if json_output:
            emit_json(state_json(state) | {"changed": changed})
        else:
            what = "opted out of" if opted_out else "opted back in to"
            whom = "every sender" if state.sender == "*" else state.sender
            note(f"+{state.number} {what} {whom}" + ("" if changed else " (it already was)"))


def state_json(s: OptoutState) -> dict[str, object]:
    from smsctl.codec import iso_utc

    return {"number": "+" + s.number, "sender": s.sender, "opted_out": s.opted_out, "source": s.source,
            "reference": s.reference, "changed_at": iso_utc(s.changed_at)}  # fmt: skip


def _render(states: list[OptoutState], empty: str) -> None:
    from rich.table import Table

    from smsctl.codec import iso_utc
    from smsctl.output import note, print_data

    if not states:
        note(empty)
        return
    table = Table("number", "sender", "state", "source", "reference", "changed", box=None)
    for s in states:
        table.add_row("+" + s.number, s.sender, "opted out" if s.opted_out else "opted in", s.source,
                      s.reference or "", iso_utc(s.changed_at) or "")  # fmt: skip
    print_data(table, rows=len(states), pager=False)
