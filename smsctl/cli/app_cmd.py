"""`smsctl app restore`: put the Vonage application's own webhook URLs back by hand."""

from __future__ import annotations

import typer

from smsctl.cli.options import DebugOption, JsonOption

app_app = typer.Typer(
    help="The Vonage application's webhook URLs, as `listen --update-app` kept them.\n\n"
    "Example: smsctl app restore",
    no_args_is_help=True,
)


@app_app.command("restore")
def restore(json_output: JsonOption = False, debug: DebugOption = False) -> None:
    """Put the application's own webhook URLs back, as the store kept them before
    `smsctl listen --update-app` first replaced them (after a listener was killed, say).

    Needs VONAGE_APPLICATION_ID, VONAGE_API_KEY and VONAGE_API_SECRET.

    Example: smsctl app restore --json
    """
    from smsctl.config import load_settings
    from smsctl.output import emit_json, out, reporting
    from smsctl.running import run
    from smsctl.webhooks.application import restore_saved

    with reporting(json_output, debug):
        result = run(restore_saved(load_settings()))
        if json_output:
            emit_json(result.to_json())
            return
        urls = result.urls
        out().print(
            f"status_url   {urls.status_url or '(none)'}\ninbound_url  {urls.inbound_url or '(none)'}"
        )
