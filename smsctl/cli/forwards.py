"""`smsctl forwards` and `smsctl forwards retry`: the forwarding outbox of `listen --forward-to`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from smsctl.cli.options import DebugOption, JsonOption

if TYPE_CHECKING:
    from smsctl.webhooks.outbox import ForwardList

forwards_app = typer.Typer(
    help="Forwards to your app (`listen --forward-to`) that are pending or failed; retry them.\n\n"
    "Example: smsctl forwards --failed",
    invoke_without_command=True,
)


@forwards_app.callback()
def forwards(
    ctx: typer.Context,
    failed: Annotated[bool, typer.Option("--failed", help="Only forwards that failed for good.")] = False,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """List pending and failed forwards, oldest first.

    Example: smsctl forwards --failed --json
    """
    if ctx.invoked_subcommand is not None:
        return
    from smsctl.config import load_settings
    from smsctl.output import emit_json, reporting
    from smsctl.webhooks.outbox import list_forwards

    with reporting(json_output, debug):
        result = list_forwards(load_settings(), failed)
        if json_output:
            emit_json(result.to_json())
        else:
            _render(result)


@forwards_app.command("retry")
def retry(
    ids: Annotated[list[int] | None, typer.Argument(help="Forward IDs (from `smsctl forwards`).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every forward not yet delivered.")] = False,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Retry failed (or waiting) forwards now; a running `smsctl listen --forward-to` delivers them.

    Example: smsctl forwards retry --all
    """
    from smsctl.config import load_settings
    from smsctl.errors import UsageError
    from smsctl.output import emit_json, note, out, reporting
    from smsctl.webhooks.outbox import retry_forwards

    with reporting(json_output, debug):
        if bool(ids) == all_:
            raise UsageError(
                "give forward IDs or --all (not both)", hint="see the IDs with `smsctl forwards`"
            )
        result = retry_forwards(load_settings(), None if all_ else ids)
        if json_output:
            emit_json({"retried": result.retried, "superseded": result.superseded})
            return
        out().print(f"{result.retried} forward(s) due again")
        if result.superseded:
            note(f"{result.superseded} failed forward(s) left alone: a newer event of their message was "
                 "delivered since, and sending them now would reach your app out of order")  # fmt: skip
        if result.retried:
            note(
                "a running `smsctl listen --forward-to …` with the same target and headers delivers them now"
            )


def _render(result: ForwardList) -> None:
    from datetime import datetime

    from rich.table import Table
    from rich.text import Text

    from smsctl.output import note, out

    if not result.forwards:
        note("no pending or failed forwards")
        return
    table = Table("id", "state", "route", "message", "attempts", "last answer", "target", box=None)
    for f in result.forwards:
        answer = str(f.last_code) if f.last_code else (f.last_error or "")
        when = datetime.fromtimestamp(f.next_at).strftime("%H:%M:%S")
        state = Text(f"{f.state}" + (f" (next {when})" if f.state == "pending" and f.attempts else ""),
                     "red" if f.state == "failed" else "yellow")  # fmt: skip
        table.add_row(
            str(f.id), state, str(f.route), f.message_uuid[:8], str(f.attempts), Text(answer), Text(f.target)
        )
    out().print(table)
