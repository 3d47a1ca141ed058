"""`smsctl sandbox`: the local Messages API emulator."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from smsctl.commands import DebugOption, JsonOption


def sandbox(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to serve the API on.")] = 4010,
    status_url: Annotated[
        str | None,
        typer.Option(help="Where to send status webhooks when a message has no webhook_url."),
    ] = None,
    time_scale: Annotated[
        float, typer.Option(min=0.0, help="Multiply every delay (webhook timing, retries) by this.")
    ] = 1.0,
    rate: Annotated[float, typer.Option(min=0.0, help="Requests per second before 429 (0: off).")] = 30.0,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Run a local emulator of the Messages API that sends signed status webhooks.

    Point smsctl at it with VONAGE_API_URL=http://127.0.0.1:4010. Recipients
    +14155550110 … +14155550192 choose a scenario (see the README); any other number is delivered.

    Example: smsctl sandbox --status-url http://127.0.0.1:3000/webhooks/status
    """
    import asyncio

    from smsctl.config import load_settings
    from smsctl.listening import stop_on_signals
    from smsctl.output import reporting
    from smsctl.sandbox import config_from_settings, run_sandbox

    with reporting(json_output, debug):
        settings = load_settings()
        config = config_from_settings(settings, status_url=status_url, time_scale=time_scale, rate=rate)

        async def main() -> None:
            stop = asyncio.Event()
            stop_on_signals(stop)
            await run_sandbox(config, host=host, port=port, on_ready=lambda url: _ready(url, json_output),
                              on_event=lambda e: _event(e, json_output), stop=stop)  # fmt: skip

        asyncio.run(main())


def _ready(url: str, json_output: bool) -> None:
    from smsctl.output import emit_json, note

    if json_output:
        emit_json({"event": "ready", "url": url})
    else:
        note(f"Messages API emulator on {url}  (export VONAGE_API_URL={url})  Ctrl-C to stop")


def _event(event: dict[str, Any], json_output: bool) -> None:
    from smsctl.output import emit_json, out

    if json_output:
        emit_json(event)
        return
    if event["kind"] == "request":
        line = f"POST /v1/messages → {event['status']}  to={event.get('to')}  uuid={event.get('message_uuid') or '-'}"
    elif event["kind"] == "webhook":
        signed = "signed" if event["signed"] else "UNSIGNED"
        line = (
            f"  webhook {event['status']} #{event['attempt']} {signed} {event['message_uuid'][:8]} → "
            f"{event['response'] or 'no answer'}"
        )
    else:
        line = f"  {event['kind']} {event.get('message_uuid', '')}"
    out().print(line, soft_wrap=True)
