"""`smsctl reconcile`: fill in the statuses whose webhooks were missed, from the Reports API."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from smsctl.cli.options import DebugOption, JsonOption

if TYPE_CHECKING:
    from smsctl.messages.reconciling import Progress, ReconcileReport


def reconcile(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Grace period: only messages older than this (default SMSCTL_STALE_AFTER, 15m).",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Also walk every record of the last 2h, 7d…: adds messages the store never saw, checks finals."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; write nothing.")
    ] = False,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Ask the Vonage Reports API about every message without a final status, and store the answers.

    Statuses are stored as events of source `reports` by the listener's rules: a final status is never
    overwritten; a record that disagrees with one is listed. Needs VONAGE_API_KEY and VONAGE_API_SECRET.

    Exit 0 when no message past the grace period is left without a final status, 9 when some are
    (or a record disagrees): cron- and CI-friendly.

    Example: smsctl reconcile --since 7d
    """
    from smsctl import running
    from smsctl.config import load_settings
    from smsctl.history.reading import parse_duration
    from smsctl.messages.reconciling import ReconcileOptions
    from smsctl.messages.reconciling import reconcile as run_reconcile
    from smsctl.output import emit_json, reporting

    with reporting(json_output, debug):
        settings = load_settings()
        grace = parse_duration(older_than, "--older-than") if older_than else settings.stale_after
        options = ReconcileOptions(
            older_than=grace, since=parse_duration(since) if since else None, dry_run=dry_run
        )
        with _progress(quiet=json_output) as on_progress:
            report = running.run(run_reconcile(settings, options, progress=on_progress))
        if json_output:
            emit_json(report.to_json())
        else:
            _render(report)
    raise typer.Exit(int(report.exit_code))


@contextlib.contextmanager
def _progress(quiet: bool) -> Iterator[Progress]:
    """A Rich bar on stderr while messages are checked (none with --json, or when nothing is open)."""
    if quiet:
        yield lambda done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    from smsctl.output import err

    with Progress(TextColumn("checking"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err(), transient=True) as progress:  # fmt: skip
        task: TaskID | None = None

        def update(done: int, total: int) -> None:
            nonlocal task
            if total == 0:
                return
            if task is None:
                task = progress.add_task("checking", total=total)
            progress.update(task, completed=done)

        yield update


def _render(report: ReconcileReport) -> None:
    from rich.table import Table

    from smsctl.output import note, out

    verb = "would update" if report.dry_run else "updated"
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(justify="right", style="bold")
    table.add_column()
    for value, what in (
        (report.checked, "checked: messages without a final status past the grace period"),
        (report.updated, f"{verb}: now final"),
        (report.still_pending, "still pending: Vonage has no final status for them yet"),
        (report.unknown, "unknown to Vonage: no record (not sent, or not reported yet)"),
        (report.discovered, "discovered: sent elsewhere, added `via reports`" if not report.dry_run
         else "discovered: sent elsewhere, would be added"),
        (len(report.disagreements), "disagreements: a record differs from a stored final status"),
    ):  # fmt: skip
        table.add_row(f"{value:,}", what)
    out().print(table)
    for change in report.changes[:20]:
        out().print(f"  {change.message_uuid}  {change.before or '-'} → {change.after}")
    if len(report.changes) > 20:
        out().print(f"  … and {len(report.changes) - 20:,} more (--json lists them all)")
    for d in report.disagreements:
        out().print(
            f"  [yellow]disagrees[/]  {d.message_uuid}  stored {d.stored}, Vonage says {d.reported} ({d.raw_status})"
        )
    note(f"{report.requests:,} Reports API requests ({report.retries} retried) in {report.seconds:.1f} s")
    if report.unresolved:
        note(f"{report.unresolved:,} still unresolved: run again later (Vonage documents up to 72 h for SMS)")
