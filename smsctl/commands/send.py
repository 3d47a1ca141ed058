"""`smsctl send`: send one SMS and print its message UUID."""

from __future__ import annotations

from typing import Annotated

import typer

from smsctl.commands import DebugOption, JsonOption, flags


def send(
    to: Annotated[str, typer.Argument(help="Recipient in E.164 form, e.g. +14155550101.")],
    text: Annotated[str, typer.Argument(help="The message text (at most 3,200 characters).")],
    sender: Annotated[
        str | None,
        typer.Option("--from", help="Sender number or alphanumeric ID [env VONAGE_NUMBER]."),
    ] = None,
    client_ref: Annotated[
        str | None, typer.Option(help="Your reference, echoed in every status (≤ 100 chars).")
    ] = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(help="Status webhook URL for this message [default: BASE_URL/webhooks/status]."),
    ] = None,
    ttl: Annotated[
        int | None, typer.Option(min=20, max=604800, help="Seconds to keep trying delivery.")
    ] = None,
    encoding: Annotated[
        str, typer.Option(help="auto, text (GSM-7) or unicode (UCS-2).", case_sensitive=False)
    ] = "auto",
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Send an SMS through the Messages API and print its message UUID.

    Example: smsctl send +14155550101 "Your code is 123456"
    """
    from smsctl.config import load_settings
    from smsctl.output import reporting

    with reporting(json_output, debug):
        if encoding not in ("auto", "text", "unicode"):
            from smsctl.errors import UsageError

            raise UsageError(f"--encoding {encoding!r}: choose auto, text or unicode")
        import asyncio

        from smsctl.sending import SendRequest, send_one

        settings = load_settings(flags(VONAGE_NUMBER=sender))
        request = SendRequest(to, text, sender, client_ref, webhook_url, ttl, encoding)  # type: ignore[arg-type]
        result, cost = asyncio.run(send_one(settings, request))
        _render(result.to_dict(), cost.segments, json_output)


def _render(result: dict[str, object], segments: int, json_output: bool) -> None:
    from smsctl.output import emit_json, note, out, warn

    if segments > 1:
        warn(f"the text bills as {segments} SMS segments")
    if json_output:
        emit_json(result)
        return
    out().print(result["message_uuid"])
    note(f"accepted: to {result['to']}, {segments} segment(s) {result['encoding']}, "
         f"client_ref {result['client_ref']}")  # fmt: skip
