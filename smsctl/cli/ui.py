"""`smsctl ui`: the local web inspector over the store alone (`smsctl listen --ui` runs it beside a listener)."""

from __future__ import annotations

from typing import Annotated

import typer

from smsctl.cli.options import DebugOption, JsonOption


def ui(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0: any free one).")] = 4041,
    replay_url: Annotated[
        str | None, typer.Option(help="Your app's status webhook URL, the default target of Replay.")
    ] = None,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Open the web inspector: every message with its transitions live, a message's timeline with the raw
    webhook bodies, forwards to your app, the stats as charts; replay, retry, reconcile, copy as curl.

    Bound to 127.0.0.1 only; the URL printed holds this run's token. Ctrl-C stops it.

    Example: smsctl ui --port 4041
    """
    import asyncio

    from smsctl.config import load_settings
    from smsctl.messages.reconciling import inspector_action
    from smsctl.output import emit_json, note, reporting
    from smsctl.running import run_event_loop
    from smsctl.webhooks.inspector import InspectorOptions, serve_inspector
    from smsctl.webhooks.listening import stop_on_signals

    with reporting(json_output, debug):
        settings = load_settings()

        def ready(url: str) -> None:
            if json_output:
                emit_json({"event": "ready", "ui_url": url, "store": settings.store.display})
            else:
                note(
                    f"inspector on {url}\n(open it in your browser; the token in it is this run's: keep it to yourself)"
                )

        async def main() -> None:
            stop = asyncio.Event()
            stop_on_signals(stop)
            await serve_inspector(
                settings, InspectorOptions(port, replay_url), inspector_action(settings), ready, stop
            )

        run_event_loop(main())
