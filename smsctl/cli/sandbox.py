"""`smsctl sandbox`: the local Messages API emulator."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    from smsctl.sandbox.emulator import SandboxEvent

import typer

from smsctl.cli.options import DebugOption, JsonOption


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
    reports_rate: Annotated[
        float,
        typer.Option(min=0.0, help="Reports API requests per second before 429 (0: off; Vonage's is 10)."),
    ] = 10.0,
    drop_webhooks: Annotated[
        float,
        typer.Option(
            "--drop-webhooks",
            min=0.0,
            max=100.0,
            metavar="PERCENT",
            help="Never send the status webhooks of this share of messages (the Reports API still has them).",
        ),
    ] = 0.0,
    tls: Annotated[
        bool,
        typer.Option("--tls", help="Serve HTTPS with a generated self-signed certificate (for the SDKs)."),
    ] = False,
    tls_dir: Annotated[
        Path | None, typer.Option(help="With --tls: where to write the certificate [default: a temp dir].")
    ] = None,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Run a local emulator of the Messages API that sends signed status webhooks.

    Point smsctl at it with VONAGE_API_URL=http://127.0.0.1:4010. Recipients
    +14155550110 … +14155550195 choose a scenario (see the README); any other number is delivered.
    It serves the Reports API too (GET /v2/reports/records), from its own message history.

    Example: smsctl sandbox --status-url http://127.0.0.1:3000/webhooks/status
    """
    import asyncio

    from smsctl.config import load_settings
    from smsctl.output import reporting
    from smsctl.sandbox.emulator import config_from_settings, run_sandbox
    from smsctl.webhooks.listening import stop_on_signals

    with reporting(json_output, debug):
        settings = load_settings()
        config = config_from_settings(settings, status_url=status_url, time_scale=time_scale, rate=rate,
                                      drop_webhooks=drop_webhooks, reports_rate=reports_rate or None)  # fmt: skip

        interrupted: list[int] = []

        async def main(directory: Path | None) -> None:
            stop = asyncio.Event()
            stop_on_signals(stop, interrupted.append)
            await run_sandbox(config, host=host, port=port, on_ready=lambda url, cert: _ready(url, cert, json_output),
                              on_event=lambda e: _event(e, json_output), stop=stop, tls_dir=directory)  # fmt: skip

        if tls and tls_dir is None:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="smsctl-sandbox-tls-") as tmp:
                asyncio.run(main(Path(tmp)))
        else:
            asyncio.run(main(tls_dir if tls else None))
        if interrupted:  # stopped cleanly, with the documented code: 130 for Ctrl-C, 143 for SIGTERM
            raise typer.Exit(128 + interrupted[0])


def _ready(url: str, cert: str | None, json_output: bool) -> None:
    from smsctl.output import emit_json, note

    if json_output:
        emit_json({"event": "ready", "url": url, "certificate": cert})
        return
    note(f"Messages API emulator on {url}  (export VONAGE_API_URL={url})  Ctrl-C to stop")
    if cert:
        note(f"self-signed certificate: {cert}  (trust it: SSL_CERT_FILE={cert}, REQUESTS_CA_BUNDLE={cert})")


def _event(event: SandboxEvent, json_output: bool) -> None:
    from smsctl.output import emit_json, out
    from smsctl.sandbox.emulator import EventKind

    if json_output:
        emit_json(event.to_json())
        return
    if event.kind is EventKind.REQUEST:
        line = f"POST /v1/messages → {event.status}  to={event.to}  uuid={event.message_uuid or '-'}"
    elif event.kind is EventKind.WEBHOOK:
        signed = "signed" if event.signed else "UNSIGNED"
        line = (
            f"  webhook {event.status} #{event.attempt} {signed} {(event.message_uuid or '')[:8]} → "
            f"{event.response or 'no answer'}"
        )
    elif event.kind is EventKind.DROPPED:
        line = f"  webhooks lost for {event.message_uuid} (to={event.to}): `smsctl reconcile` will find it"
    else:
        line = f"  {event.kind} {event.message_uuid or ''}"
    out().print(line, soft_wrap=True)
