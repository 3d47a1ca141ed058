"""The `smsctl` command line: parse, call one core function, render. Commands live in commands/."""

from __future__ import annotations

import typer

from smsctl import __version__
from smsctl.commands import (
    app as app_cmd,
)
from smsctl.commands import (
    bulk,
    config_cmd,
    db,
    demo,
    export,
    forwards,
    history,
    init,
    listen,
    replay,
    sandbox,
    send,
    trigger,
)
from smsctl.errors import EXIT_CODE_MEANINGS

# "\b" stops Click from re-wrapping the table.
EXIT_CODES_HELP = "\b\n" + "\n".join(
    f"{int(code):>3}  {meaning}" for code, meaning in EXIT_CODE_MEANINGS.items()
)

app = typer.Typer(
    name="smsctl",
    help="Send SMS through the Vonage Messages API and know what happened to every message.\n\n"
    "Exit codes:\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
    rich_markup_mode=None,  # plain help keeps `smsctl --help` under 0.1 s
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"smsctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Send SMS through the Vonage Messages API and know what happened to every message."""
    from smsctl.output import warnings_to_stderr

    warnings_to_stderr()


app.command("send")(send.send)
app.command("bulk")(bulk.bulk)
app.command("batch")(bulk.batch)
app.command("listen")(listen.listen)
app.command("sandbox")(sandbox.sandbox)
app.command("status")(history.status)
app.command("log")(history.log)
app.command("config")(config_cmd.config)
app.command("init")(init.init)
app.command("demo")(demo.demo)
app.command("trigger")(trigger.trigger)
app.command("export")(export.export)
app.command("replay")(replay.replay)
app.add_typer(db.db_app, name="db")
app.add_typer(forwards.forwards_app, name="forwards")
app.add_typer(app_cmd.app_app, name="app")


def main() -> None:
    """Run the command line (the console script enters through smsctl._entry)."""
    app()
