"""`smsctl status` and `smsctl log`: what happened to the messages you sent."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from smsctl.cli.options import DebugOption, JsonOption, status_choice

if TYPE_CHECKING:
    from rich.table import Table

    from smsctl.history.interface import InboundRecord, MessageSummary
    from smsctl.history.reading import MessageReport

MAX_LOG_LIMIT = 1_000_000  # a bound, so a typo cannot read a whole store into memory
NO_HISTORY = "sends, bulk runs and `smsctl listen` record messages in SMSCTL_DB; see `smsctl config`"


def _when(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch).strftime("%m-%d %H:%M:%S") if epoch else ""


def status(
    message: Annotated[
        str,
        typer.Argument(
            help="Message UUID (or its first 8+ characters), or a +number for its opt-out history."
        ),
    ],
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Show one message and its whole timeline of status events; or, for a +number, every opt-out change
    of that number (as `smsctl optout show`).

    Example: smsctl status 5b3c0d7e-…   smsctl status +14155550123
    """
    if message.startswith("+"):  # a UUID never starts with +: the number's opt-out history
        from smsctl.cli.optout import show

        show(message, json_output, debug)
        return
    from smsctl.config import load_settings
    from smsctl.errors import NotFound
    from smsctl.history.backends import open_reader
    from smsctl.history.reading import message_status
    from smsctl.output import emit_json, reporting

    with reporting(json_output, debug):
        settings = load_settings()
        store = open_reader(settings.store)
        if store is None:
            raise NotFound(f"no message {message!r}: there is no local history yet", hint=NO_HISTORY)
        with contextlib.closing(store):
            result = message_status(store, message, stale_after=settings.stale_after)
        if json_output:
            emit_json(result.to_json())
        else:
            _render_status(result)


def _render_status(result: MessageReport) -> None:
    from rich.table import Table
    from rich.text import Text

    from smsctl.history.events import error_title
    from smsctl.output import out
    from smsctl.webhooks.view import STATUS_STYLE

    style = STATUS_STYLE.get(result.status, "magenta")
    out().print(Text.assemble((result.message_uuid, "bold"), "  ", (result.status, style),
                              ("  stale", "bold yellow") if result.stale else "",
                              ("  conflicting final statuses", "bold red") if result.conflict else "",
                              (f"  {result.sends} sends got this uuid", "bold yellow") if result.sends > 1 else ""))  # fmt: skip
    out().print(f"to {result.to or '?'}  from {result.from_ or '?'}  client_ref "
                f"{result.client_ref or '-'}  segments {result.segments or '?'}  "
                f"sent {_when(result.sent_at) or 'not by smsctl'}  duplicates {result.duplicates}")  # fmt: skip
    table = Table("status", "vonage timestamp", "received", "error", "price", "note", box=None)
    for event in result.events:
        error = f"{event.error_code} {error_title(event.error_code) or ''}" if event.error_code else ""
        price = f"{event.price} {event.currency or ''}" if event.price else ""
        table.add_row(Text(event.status, STATUS_STYLE.get(event.status, "magenta")), event.timestamp,
                      _when(event.received_at), error, price, event.anomaly or "")  # fmt: skip
    out().print(table)
    if result.stale:
        from smsctl.history.reading import STALE_HINT
        from smsctl.output import note

        note(f"stale: no final status long after it was sent; {STALE_HINT}")


def log(
    limit: Annotated[int, typer.Option(min=1, max=MAX_LOG_LIMIT, help="How many messages.")] = 20,
    status: Annotated[str | None, typer.Option(help="Only messages in this status.")] = None,
    since: Annotated[str | None, typer.Option(help="Only newer than this, e.g. 15m, 2h, 7d.")] = None,
    batch: Annotated[str | None, typer.Option(help="Only messages of this bulk batch.")] = None,
    inbound: Annotated[bool, typer.Option("--inbound", help="Received messages instead.")] = False,
    no_pager: Annotated[
        bool, typer.Option("--no-pager", help="Never page (a long list on a terminal goes through $PAGER).")
    ] = False,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """List recent messages, newest first, with their current status.

    Example: smsctl log --since 1h --status rejected
    """
    from smsctl.config import load_settings
    from smsctl.history.backends import open_reader
    from smsctl.history.reading import inbound_json, parse_duration, recent, recent_inbound, summary_json
    from smsctl.output import emit_json, reporting

    with reporting(json_output, debug):
        if since is not None:
            parse_duration(since)  # a bad --since is a usage error even with no history yet
        status = status_choice(status)  # and so is a bad --status
        settings = load_settings()
        store = open_reader(settings.store)
        with contextlib.closing(store) if store else contextlib.nullcontext():
            received = recent_inbound(store, limit=limit, since=since) if store and inbound else []
            messages = recent(store, limit=limit, status=status, since=since, batch=batch,
                              stale_after=settings.stale_after) if store else []  # fmt: skip
        if inbound and json_output:
            emit_json([inbound_json(r) for r in received])
        elif inbound:
            _render_inbound(received, pager=not no_pager)
        elif json_output:
            emit_json([summary_json(m) for m in messages])
        else:
            _render_log(messages, pager=not no_pager)


def _render_log(rows: list[MessageSummary], *, pager: bool) -> None:
    from smsctl.output import note, print_data

    if not rows:
        note("no messages yet")
        return
    from smsctl.output import out

    print_data(log_table(rows, out().width), rows=len(rows), pager=pager)
    if stale := sum(m.stale for m in rows):
        from smsctl.history.reading import STALE_HINT

        note(f"{stale:,} stale (accepted, no final status after SMSCTL_STALE_AFTER): {STALE_HINT}")


def log_table(rows: list[MessageSummary], width: int) -> Table:
    """`log`'s table for a screen `width` wide. Time, number and status are never cut; below 110
    columns the UUID shows its first 8 characters (enough for `smsctl status`), client_ref goes, and
    the error keeps its code."""
    from rich.table import Table
    from rich.text import Text

    from smsctl.codec import e164
    from smsctl.history.events import error_title
    from smsctl.webhooks.view import STATUS_STYLE

    narrow = width < 110
    table = Table(box=None)
    table.add_column("last activity", no_wrap=True)
    table.add_column("message", no_wrap=True, overflow="ellipsis", max_width=9 if narrow else None)
    table.add_column("to", no_wrap=True)
    if not narrow:
        table.add_column("client_ref", no_wrap=True, overflow="ellipsis", max_width=24)
    table.add_column("status", no_wrap=True)
    table.add_column("error", no_wrap=True, overflow="ellipsis", max_width=5 if narrow else 28)
    table.add_column("source", no_wrap=True)
    for m in rows:
        error = f"{m.error_code} {error_title(m.error_code) or ''}" if m.error_code else m.error
        webhook = m.source != "smsctl"
        cells: list[str | Text] = [_when(m.last_activity), m.message_uuid or "-", e164(m.to) or "?"]
        if not narrow:
            cells.append(Text(m.client_ref or ""))
        status = Text(m.status, STATUS_STYLE.get(m.status, "magenta"))
        if m.stale:
            status.append(" stale", "bold yellow")
        table.add_row(*cells, status, Text(error or ""),
                      Text((f"via {m.source}" if not narrow else str(m.source)) if webhook else "sent",
                           "dim" if webhook else ""))  # fmt: skip
    return table


def _render_inbound(rows: list[InboundRecord], *, pager: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    from smsctl.codec import e164
    from smsctl.output import note, print_data

    if not rows:
        note("no messages yet")
        return
    table = Table("received", "from", "to", "text", box=None)
    for r in rows:
        table.add_row(_when(r.received_at), e164(r.from_) or "", e164(r.to) or "", Text(r.text or ""))
    print_data(table, rows=len(rows), pager=pager)
