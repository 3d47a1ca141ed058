"""The `smsctl` command line (cli/): the Typer app; one module per command beside it (parse, call one
core function, render) and `options` (the options several commands share)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
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


def _new_app() -> typer.Typer:
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
    app.callback()(root)
    return app


def _version(value: bool) -> None:
    if value:
        print(f"smsctl {__version__}")
        raise typer.Exit()


def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Send SMS through the Vonage Messages API and know what happened to every message."""
    from smsctl.output import warnings_to_stderr

    warnings_to_stderr()


# In the order `smsctl --help` lists them.
COMMANDS: dict[str, Callable[..., Any]] = {
    "send": send.send, "bulk": bulk.bulk, "batch": bulk.batch, "listen": listen.listen,
    "sandbox": sandbox.sandbox, "status": history.status, "log": history.log, "config": config_cmd.config,
    "init": init.init, "demo": demo.demo, "trigger": trigger.trigger, "export": export.export,
    "replay": replay.replay, "reconcile": reconcile.reconcile, "stats": stats.stats, "report": report.report,
    "ui": ui.ui,
}  # fmt: skip
GROUPS: dict[str, typer.Typer] = {"db": db.db_app, "forwards": forwards.forwards_app, "app": app_cmd.app_app,
                                  "optout": optout.optout_app}  # fmt: skip


def _with(app: typer.Typer, names: Iterable[str]) -> typer.Typer:
    for name in names:
        if name in COMMANDS:
            app.command(name)(COMMANDS[name])
        else:
            app.add_typer(GROUPS[name], name=name)
    return app


app = _with(_new_app(), [*COMMANDS, *GROUPS])


def app_for(argv: Sequence[str]) -> typer.Typer:
    """The app a process runs for these arguments: when the first names a command, an app holding just
    that command (the root options and help are the same). Click needs every command's signature and
    annotations inspected, ~25 ms of each start-up for all of them; one is enough to run one. Anything
    else (--help, --version, a typo to suggest a command for, shell completion) gets the whole app."""
    name = argv[0] if argv else ""
    # __main__.COMPLETE, spelled out: importing __main__ from here would be an import circle.
    if name not in COMMANDS and name not in GROUPS or "_SMSCTL_COMPLETE" in os.environ:
        return app
    return _with(_new_app(), [name])


def main() -> None:
    """Run the command line (the console script enters through smsctl.__main__)."""
    app_for(sys.argv[1:])()
