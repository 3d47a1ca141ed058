"""`smsctl status` and `smsctl log`: what happened to the messages you sent."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Annotated, Any

import typer

from smsctl.commands import DebugOption, JsonOption

MAX_LOG_LIMIT = 1_000_000  # a bound, so a typo cannot read a whole store into memory
NO_HISTORY = "sends, bulk runs and `smsctl listen` record messages in SMSCTL_DB; see `smsctl config`"


def _when(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch).strftime("%m-%d %H:%M:%S") if epoch else ""


def status(
    message: Annotated[str, typer.Argument(help="Message UUID (or its first 8+ characters).")],
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Show one message and its whole timeline of status events.

    Example: smsctl status 5b3c0d7e-…
    """
    from smsctl.config import load_settings
    from smsctl.errors import NotFound
    from smsctl.history import message_status
    from smsctl.output import emit_json, reporting
    from smsctl.storage import open_reader

    with reporting(json_output, debug):
        store = open_reader(load_settings().db_path)
        if store is None:
            raise NotFound(f"no message {message!r}: there is no local history yet", hint=NO_HISTORY)
        with contextlib.closing(store):
            result = message_status(store, message)
        if json_output:
            emit_json(result)
        else:
            _render_status(result)


def _render_status(result: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from smsctl.events import error_title
    from smsctl.output import out
    from smsctl.view import STATUS_STYLE

    style = STATUS_STYLE.get(result["status"], "magenta")
    out().print(Text.assemble((result["message_uuid"], "bold"), "  ", (result["status"], style),
                              ("  conflicting final statuses", "bold red") if result["conflict"] else "",
                              (f"  {result['sends']} sends got this uuid", "bold yellow") if result["sends"] > 1 else ""))  # fmt: skip
    out().print(f"to {result['to'] or '?'}  from {result['from'] or '?'}  client_ref "
                f"{result['client_ref'] or '-'}  segments {result['segments'] or '?'}  "
                f"sent {_when(result['sent_at']) or 'not by smsctl'}  duplicates {result['duplicates']}")  # fmt: skip
    table = Table("status", "vonage timestamp", "received", "error", "price", "note", box=None)
    for event in result["events"]:
        error = (
            f"{event['error_code']} {error_title(event['error_code']) or ''}" if event["error_code"] else ""
        )
        price = f"{event['price']} {event['currency'] or ''}" if event["price"] else ""
        table.add_row(Text(event["status"], STATUS_STYLE.get(event["status"], "magenta")),
                      event["timestamp"], _when(event["received_at"]), error, price,
                      event["anomaly"] or "")  # fmt: skip
    out().print(table)


def log(
    limit: Annotated[int, typer.Option(min=1, max=MAX_LOG_LIMIT, help="How many messages.")] = 20,
    status: Annotated[str | None, typer.Option(help="Only messages in this status.")] = None,
    since: Annotated[str | None, typer.Option(help="Only newer than this, e.g. 15m, 2h, 7d.")] = None,
    batch: Annotated[str | None, typer.Option(help="Only messages of this bulk batch.")] = None,
    inbound: Annotated[bool, typer.Option("--inbound", help="Received messages instead.")] = False,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """List recent messages, newest first, with their current status.

    Example: smsctl log --since 1h --status rejected
    """
    from smsctl.config import load_settings
    from smsctl.history import parse_duration, recent, recent_inbound
    from smsctl.output import emit_json, reporting
    from smsctl.storage import open_reader

    with reporting(json_output, debug):
        if since is not None:
            parse_duration(since)  # a bad --since is a usage error even with no history yet
        store = open_reader(load_settings().db_path)
        with contextlib.closing(store) if store else contextlib.nullcontext():
            if store is None:
                rows: list[dict[str, Any]] = []
            elif inbound:
                rows = recent_inbound(store, limit=limit, since=since)
            else:
                rows = recent(store, limit=limit, status=status, since=since, batch=batch)
        if json_output:
            emit_json(rows)
        else:
            _render_log(rows, inbound)


def _render_log(rows: list[dict[str, Any]], inbound: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    from smsctl.events import error_title
    from smsctl.output import note, out
    from smsctl.view import STATUS_STYLE

    if not rows:
        note("no messages yet")
        return
    if inbound:
        table = Table("received", "from", "to", "text", box=None)
        for r in rows:
            table.add_row(_when(r["received_at"]), r["from"], r["to"], Text(r["text"] or ""))
    else:
        table = Table("last activity", "message", "to", "client_ref", "status", "error", "source", box=None)
        for r in rows:
            style = STATUS_STYLE.get(r["status"], "magenta")
            error = (
                f"{r['error_code']} {error_title(r['error_code']) or ''}" if r["error_code"] else r["error"]
            )
            source = "sent" if r["source"] == "smsctl" else "via webhook"
            table.add_row(_when(r["last_activity"]), r["message_uuid"] or "-", r["to"] or "?",
                          Text(r["client_ref"] or ""), Text(r["status"], style), Text(error or ""),
                          Text(source, "" if r["source"] == "smsctl" else "dim"))  # fmt: skip
    out().print(table)
