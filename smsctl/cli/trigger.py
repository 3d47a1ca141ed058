"""`smsctl trigger`: send one signed, Vonage-shaped webhook to your endpoint, without sending an SMS."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from smsctl.cli.options import DebugOption, JsonOption, choice

if TYPE_CHECKING:
    from smsctl.webhooks.triggering import TriggerResult


def trigger(
    kind: Annotated[
        str,
        typer.Argument(metavar="STATUS", help="submitted, delivered, rejected, undeliverable, or inbound."),
    ],
    text: Annotated[str | None, typer.Argument(help="The inbound SMS's text (with `inbound`).")] = None,
    url: Annotated[
        str | None, typer.Option(help="Where to POST it [default: this store's running smsctl listen].")
    ] = None,
    message_uuid: Annotated[str | None, typer.Option(help="The message UUID [default: a new one].")] = None,
    to: Annotated[
        str | None,
        typer.Option(
            help="The recipient: of the status webhook; with `inbound`, your Vonage number [VONAGE_NUMBER]."
        ),
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="The inbound SMS's sender (with `inbound`).")
    ] = None,
    client_ref: Annotated[str | None, typer.Option(help="The status webhook's client_ref.")] = None,
    error_code: Annotated[
        str | None, typer.Option(help="The error code of a rejected/undeliverable status [1240/1260].")
    ] = None,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Send one correctly signed status or inbound webhook to an endpoint; print its answer.

    Exits 5 when the endpoint does not answer 2xx (or does not answer at all).

    Example: smsctl trigger delivered --url http://localhost:8080/webhooks/status
    Example: smsctl trigger inbound "STOP" --from +14155550123
    """
    import asyncio

    from smsctl.config import load_settings
    from smsctl.output import emit_json, reporting
    from smsctl.webhooks.triggering import TriggerKind, check
    from smsctl.webhooks.triggering import trigger as send_trigger

    with reporting(json_output, debug):
        what = choice(TriggerKind, kind, "STATUS")
        result = asyncio.run(send_trigger(load_settings(), what, url=url, message_uuid=message_uuid, to=to,
                                          text=text, from_=from_, client_ref=client_ref, error_code=error_code))  # fmt: skip
        if json_output:
            emit_json(result.to_json())
        else:
            _render(result)
        check(result.answer)


def _render(result: TriggerResult) -> None:
    from smsctl.output import note, out

    answer = result.answer
    shown = str(answer.http_status) if answer.http_status is not None else "no answer"
    out().print(f"{shown} {answer.ms:.0f} ms {answer.url}", highlight=False)
    note(f"{result.kind} webhook for {result.message_uuid}" + (f": {answer.error}" if answer.error else ""))
