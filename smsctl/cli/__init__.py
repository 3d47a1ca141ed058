"""The `smsctl` command line (cli/): the Typer app; one module per command beside it (parse, call one
core function, render) and `options` (the options several commands share)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from smsctl import __version__
from smsctl.cli import (
    app_cmd,
    bulk,
    config_cmd,
    db,
    demo,
    export,
    forwards,
    history,
    init,
    listen,
    optout,
    reconcile,
    replay,
    report,
    sandbox,
    send,
    stats,
    trigger,
    ui,
)
from smsctl.errors import EXIT_CODE_MEANINGS

# "\b" stops Click from re-wrapping the table.
EXIT_CODES_HELP = "\b\n" + "\n".join(
    f"{int(code):>3}  {meaning}" for code, meaning in EXIT_CODE_MEANINGS.items()
)


def _json_requested(argv: Sequence[str]) -> bool:
    return "--json" in argv or os.environ.get("SMSCTL_JSON", "").lower() in ("1", "true", "yes")


class SmsctlGroup(TyperGroup):
    """The command group; under --json (or SMSCTL_JSON) a usage error Click finds while parsing (a
    missing argument, a bad option value) is the same JSON error object every other error is, on stderr."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, windows_expand_args: bool = True,
             **extra: Any) -> Any:  # fmt: skip
        argv = sys.argv[1:] if args is None else list(args)
        if not _json_requested(argv):
            return super().main(args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra)
        from typer._click.exceptions import ClickException

        try:
            result = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except ClickException as exc:
            from smsctl.output import emit_json

            command = next((a for a in argv if not a.startswith("-")), None)
            hint = f"smsctl {command} --help" if command else "smsctl --help"
            emit_json({"error": {"code": exc.exit_code, "message": exc.format_message(), "hint": f"see `{hint}`"}},
                      sys.stderr)  # fmt: skip
            if not standalone_mode:
                raise
            sys.exit(exc.exit_code)
        except typer.Abort:
            sys.exit(130)
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    name="smsctl",
    cls=SmsctlGroup,
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
app.command("reconcile")(reconcile.reconcile)
app.command("stats")(stats.stats)
app.command("report")(report.report)
app.command("ui")(ui.ui)
app.add_typer(db.db_app, name="db")
app.add_typer(forwards.forwards_app, name="forwards")
app.add_typer(app_cmd.app_app, name="app")
app.add_typer(optout.optout_app, name="optout")


def main() -> None:
    """Run the command line (the console script enters through smsctl.__main__)."""
    app()
