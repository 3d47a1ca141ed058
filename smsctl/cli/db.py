"""`smsctl db copy` and `smsctl db migrate`: the store itself (team mode: SQLite ⇄ PostgreSQL)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from smsctl.cli.options import DebugOption, JsonOption

if TYPE_CHECKING:
    from smsctl.history.copy import CopyResult, MigrateResult
    from smsctl.history.copy import Progress as CopyProgress

db_app = typer.Typer(
    help="Copy a history between stores, or upgrade a store's schema.\n\n"
    "Example: smsctl db copy ~/.local/share/smsctl/smsctl.db postgresql://team@db.internal/smsctl",
    no_args_is_help=True,
)


@db_app.command("copy")
def copy(
    source: Annotated[str, typer.Argument(help="The store to read: a SQLite path or a postgresql:// URL.")],
    target: Annotated[str, typer.Argument(help="The store to fill (created if new): a path or URL.")],
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Copy every message, status event, inbound SMS and dead letter from SOURCE into TARGET.

    Idempotent: rows TARGET already has are skipped, so a rerun (or an interrupted copy started
    again) copies nothing twice. SOURCE is only read.

    Example: smsctl db copy ~/.local/share/smsctl/smsctl.db postgresql://team@db.internal/smsctl
    """
    from smsctl.config import store_location
    from smsctl.history.copy import copy_store
    from smsctl.output import emit_json, reporting

    with reporting(json_output, debug):
        origin, destination = store_location(source), store_location(target)
        with _progress_bar(quiet=json_output) as on_progress:
            result = copy_store(origin, destination, on_progress)
        if json_output:
            emit_json(result.to_json())
        else:
            _render_copy(result)


@db_app.command("migrate")
def migrate(json_output: JsonOption = False, debug: DebugOption = False) -> None:
    """Apply the store's pending schema migrations now (SMSCTL_DB), instead of on first write.

    Example: SMSCTL_DB=postgresql://team@db.internal/smsctl smsctl db migrate
    """
    from smsctl.config import load_settings
    from smsctl.history.copy import migrate_store
    from smsctl.output import emit_json, reporting

    with reporting(json_output, debug):
        result = migrate_store(load_settings().store)
        if json_output:
            emit_json(result.to_json())
        else:
            _render_migrate(result)


@contextlib.contextmanager
def _progress_bar(quiet: bool) -> Iterator[CopyProgress]:
    """The progress callback: a Rich bar per table on stderr (none with --json)."""
    if quiet:
        yield lambda table, done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    from smsctl.output import err

    with Progress(TextColumn("{task.description:<15}"), BarColumn(), MofNCompleteColumn(),
                  console=err()) as progress:  # fmt: skip
        tasks: dict[str, TaskID] = {}

        def update(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = progress.add_task(table, total=total)
            progress.update(tasks[table], completed=done, total=total)

        yield update


def _render_copy(result: CopyResult) -> None:
    from smsctl.output import note, out

    for table in result.tables:
        out().print(
            f"{table.table:<15} {table.copied:>9,} copied  {table.read - table.copied:>9,} already there"
        )
    note(f"copied {result.copied:,} rows from {result.source} to {result.target}")


def _render_migrate(result: MigrateResult) -> None:
    from smsctl.output import out

    if result.applied:
        out().print(f"{result.store}: applied {', '.join(result.applied)}")
    else:
        out().print(f"{result.store}: schema already current")
