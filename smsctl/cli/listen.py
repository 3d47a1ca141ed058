"""`smsctl listen`: the verified, durable webhook receiver with a live status table."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from smsctl.cli.options import DebugOption, JsonOption, NoStoreTextOption, flags, store_text_flag

if TYPE_CHECKING:
    from collections.abc import Callable

    from smsctl.config import Settings
    from smsctl.webhooks.listening import Companion, ListenerView


def listen(
    host: Annotated[str, typer.Option(help="Interface to bind; keep loopback behind ngrok.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port [env PORT, default 3000].")] = None,
    public_url: Annotated[
        str | None, typer.Option(help="Public URL of this listener [env BASE_URL, else ngrok's].")
    ] = None,
    max_token_age: Annotated[
        float | None,
        typer.Option(min=1, help="Reject authentic tokens older than this (default: accept, count)."),
    ] = None,
    forward_to: Annotated[
        str | None,
        typer.Option(help="POST each stored status webhook on to your app's URL (durable, retried)."),
    ] = None,
    forward_inbound_to: Annotated[
        str | None, typer.Option(help="POST each stored inbound SMS webhook on to your app's URL.")
    ] = None,
    forward_resign: Annotated[
        bool,
        typer.Option(help="Sign forwards afresh (new iat, same payload_hash) instead of the original token."),
    ] = False,
    forward_header: Annotated[
        list[str] | None, typer.Option(help='Extra header for forwards, "Name: value" (repeatable).')
    ] = None,
    forward_retry_for: Annotated[
        str, typer.Option(help="Keep retrying a failing forward this long (30m, 24h, 7d).")
    ] = "24h",
    forward_timeout: Annotated[
        float, typer.Option(min=0.1, max=300, help="Seconds to wait for your app to answer a forward.")
    ] = 10.0,
    update_app: Annotated[
        bool, typer.Option(help="Point the Vonage application's webhooks at this listener; restored on exit.")
    ] = False,
    keep_app_urls: Annotated[
        bool, typer.Option(help="With --update-app: leave the application pointing here on exit.")
    ] = False,
    tunnel_check: Annotated[
        bool, typer.Option(help="Probe the public URL at start-up and say whether webhooks can reach us.")
    ] = True,
    reconcile_every: Annotated[
        str | None,
        typer.Option(help="Also run `smsctl reconcile` every 10m, 1h…: one listener of a store at a time."),
    ] = None,
    ui: Annotated[
        bool,
        typer.Option(
            "--ui", help="Also serve the web inspector on 127.0.0.1 (--ui-port), never through the tunnel."
        ),
    ] = False,
    ui_port: Annotated[
        int, typer.Option(min=0, max=65535, help="The inspector's port (0: any free one).")
    ] = 4041,
    no_store_text: NoStoreTextOption = False,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Receive, verify and store status and inbound webhooks, and show them live.

    Run it alongside `ngrok http 3000`. Not on a terminal (or with --json) it writes JSON Lines.
    With --forward-to, every stored event is also POSTed to your own app, exactly as Vonage sent it.

    Example: smsctl listen --port 3000 --forward-to http://localhost:8080/webhooks/status
    """
    import asyncio

    from smsctl.config import load_settings
    from smsctl.output import reporting, warn
    from smsctl.running import run_event_loop
    from smsctl.webhooks.forwarding import forwarding_from
    from smsctl.webhooks.listening import ListenOptions, run_listener, startup_warnings

    with reporting(json_output, debug):
        settings = load_settings(
            flags(PORT=port, BASE_URL=public_url, SMSCTL_STORE_TEXT=store_text_flag(no_store_text))
        )
        forward, delivery = forwarding_from(
            settings, status_url=forward_to, inbound_url=forward_inbound_to, resign=forward_resign,
            headers=forward_header or [], retry_for=forward_retry_for, timeout=forward_timeout,
        )  # fmt: skip
        companions = (_reconciler(settings, reconcile_every),) if reconcile_every else ()
        for message in startup_warnings(settings):
            warn(message)
        json_lines = json_output or not sys.stdout.isatty()
        _logging(json_lines)
        stop = asyncio.Event()
        # Whoever reads the JSON Lines went away (`| head -2`): stop, as command-line tools do.
        view = _view(json_lines, on_closed=stop.set)
        options = ListenOptions(host, settings.port, public_url, max_token_age, forward, delivery, tunnel_check,
                                update_app, keep_app_urls, companions, _inspector(settings, ui, ui_port, forward_to))  # fmt: skip
        run_event_loop(run_listener(settings, view, options, stop=stop))


def _view(json_lines: bool, on_closed: Callable[[], None]) -> ListenerView:
    """JSON Lines for scripts (loading no Rich: a scripted listener starts faster), else the live table."""
    if json_lines:
        from smsctl.webhooks.jsonlines import JsonLinesView

        return JsonLinesView(on_closed=on_closed)
    from smsctl.webhooks.view import LiveTerminalView

    return LiveTerminalView()


def _reconciler(settings: Settings, every: str) -> Companion:
    """`--reconcile-every`: the interval checked (≥ 1 minute: the Reports API is rate-limited and paid
    per record), the credentials checked, before the listener starts."""
    from smsctl.errors import UsageError
    from smsctl.history.reading import parse_duration
    from smsctl.messages.reconciling import ReconcileOptions
    from smsctl.messages.reconciling import every as reconcile_every

    interval = parse_duration(every, "--reconcile-every")
    if interval < 60:
        raise UsageError(f"--reconcile-every {every} is too often", hint="use 1m or more, e.g. 10m")
    return reconcile_every(settings, interval, ReconcileOptions(older_than=settings.stale_after))


def _inspector(settings: Settings, ui: bool, port: int, forward_to: str | None) -> Any:
    """`--ui`: the inspector to start beside the listener, with its Reconcile action when the Reports API
    can be asked (the send side's, which the receive side may not import)."""
    if not ui:
        return None
    from smsctl.messages.reconciling import inspector_action
    from smsctl.webhooks.inspector import InspectorOptions, beside_listener

    return beside_listener(settings, InspectorOptions(port, forward_to), inspector_action(settings))


def _logging(json_lines: bool) -> None:
    """Logs go to stderr beside JSON Lines; the live view shows the same facts in its footer instead."""
    import logging

    handler: logging.Handler = logging.StreamHandler(sys.stderr) if json_lines else logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    for name in (
        "smsctl",
        "aiohttp.server",
    ):  # smsctl.forward too: a paused outbox is worth a line  # aiohttp's own: malformed requests, digested (server.py)
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging.WARNING)
        logger.propagate = False
