"""`smsctl bulk` and `smsctl batch`: send a list, paced and resumable; then see how the batch went."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from smsctl.cli.options import DebugOption, JsonOption, NoStoreTextOption, sender_settings
from smsctl.encoding import EncodingChoice


def bulk(
    file: Annotated[
        str,
        typer.Argument(
            help="CSV with a `to` column (and optional text, client_ref, placeholders; comma, semicolon "
            "or tab separated), or one number per line; - reads standard input."
        ),
    ],  # fmt: skip
    text: Annotated[
        str | None, typer.Argument(help="Text with {column} placeholders (or a `text` column).")
    ] = None,
    sender: Annotated[str | None, typer.Option("--from", help="Sender [env VONAGE_NUMBER].")] = None,
    rate: Annotated[float, typer.Option(min=0, help="Requests per second (0: no limit).")] = 30.0,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Requests in flight at once.")] = 10,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and report; send nothing.")] = False,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", help="Send the valid rows anyway.")] = False,
    batch_id: Annotated[
        str | None, typer.Option(help="Batch ID [default: from the file, text and sender].")
    ] = None,
    resend_unknown: Annotated[
        bool, typer.Option("--resend-unknown", help="Resend rows whose earlier outcome is unknown.")
    ] = False,
    ttl: Annotated[
        int | None, typer.Option(min=20, max=604800, help="Seconds to keep trying delivery.")
    ] = None,
    encoding: Annotated[
        EncodingChoice, typer.Option(help="auto, text (GSM-7) or unicode (UCS-2).")
    ] = EncodingChoice.AUTO,
    webhook_url: Annotated[str | None, typer.Option(help="Status webhook URL for every message.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until every message has a final status.")
    ] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="With --wait: seconds to wait.")] = 300.0,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="With --wait: embedded listener port.")
    ] = None,
    public_url: Annotated[str | None, typer.Option(help="With --wait: public URL of the listener.")] = None,
    no_store_text: NoStoreTextOption = False,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Send one SMS to every recipient of a file: validated first, rate-limited, never twice.

    Rerunning the same command resumes: rows already accepted are skipped, rows that never reached
    the API are retried, rows whose outcome is unknown are reported (see --resend-unknown).

    Example: smsctl bulk customers.csv "Hi {name}, your appointment is at {time}" --rate 10 --wait
    """
    from smsctl import running
    from smsctl.messages.bulk import BulkOptions, check, outcome_error, require_all_valid, run_bulk
    from smsctl.messages.recipients import Recipients
    from smsctl.messages.sending import preflight
    from smsctl.messages.waiting import WaitOptions
    from smsctl.output import emit_json, reporting

    with reporting(json_output, debug):
        settings = sender_settings(sender, port, public_url, no_store_text)
        options = BulkOptions(text, sender, batch_id, rate, concurrency, skip_invalid, resend_unknown, ttl,
                              encoding, webhook_url)  # fmt: skip
        with Recipients(file) as recipients:
            report = check(recipients, settings, options)
            _render_report(report.to_dict(), json_output, dry_run)
            require_all_valid(report, options)
            if dry_run:
                return
            preflight(settings, sender, wait=wait)  # every missing setting at once, before anything is sent
            with BulkProgress(report.valid, json_output) as progress, progress.resumable(report.batch_id):
                result, states = running.run(run_bulk(
                    settings, recipients, report, options,
                    wait=WaitOptions(timeout, port, public_url) if wait else None,
                    on_row=progress.row, on_wait=progress.waiting,
                ))  # fmt: skip
        summary = {"event": "summary", "batch_id": result.batch_id, "counts": result.counts(),
                   "elapsed": round(result.elapsed, 3), "throttle_pauses": result.throttle_pauses}  # fmt: skip
        if states is not None:
            summary["final"] = _status_counts(states)
        if json_output:
            emit_json(summary)
        else:
            _render_summary(summary)
        error = outcome_error(result, states)
        if error is not None:
            raise error


def _status_counts(states: dict[str, tuple[str, bool]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status, _ in states.values():
        counts[status] = counts.get(status, 0) + 1
    return counts


def _render_report(report: dict[str, Any], json_output: bool, dry_run: bool) -> None:
    from smsctl.output import emit_json, note, warn

    if report["new_countries"]:
        shown = ", ".join(report["new_countries"][:20]) + (" …" if len(report["new_countries"]) > 20 else "")
        count = len(report["new_countries"])
        warn(f"this batch sends to {count} {'country' if count == 1 else 'countries'} this store has never sent to ({shown}): "
             "check the list, and set SMSCTL_ALLOW_COUNTRIES to the countries you expect")  # fmt: skip
    if json_output:
        emit_json({"event": "validation", **report})
        return
    encodings = ", ".join(f"{n:,} {e}" for e, n in report["encodings"].items()) or "none"
    note(f"batch {report['batch_id']}: {report['valid']:,} of {report['rows']:,} rows valid, "
         f"{report['segments']:,} SMS segments ({encodings})")  # fmt: skip
    for bad in report["invalid"]:
        note(f"  line {bad['line']}: {bad['to'] or '(empty)'}: {bad['error']}")
    if report["invalid_count"] > len(report["invalid"]):
        note(f"  … and {report['invalid_count'] - len(report['invalid']):,} more invalid rows")
    if report["opted_out"]:
        rows = (
            "1 row is to a number"
            if report["opted_out"] == 1
            else f"{report['opted_out']:,} rows are to numbers"
        )
        note(f"  {rows} that opted out: suppressed, not sent "
             "(`smsctl optout list`)")  # fmt: skip
    _render_cost(report, per_country=dry_run)


def _render_cost(report: dict[str, Any], per_country: bool) -> None:
    """The estimated cost (per country with --dry-run), from the prices the store has seen."""
    from rich.table import Table

    from smsctl.messages.pricing import money
    from smsctl.output import err, note

    currency, total = report["currency"], report["estimated_cost"]
    if per_country and report["countries"]:
        table = Table("country", box=None)
        for column in ("rows", "segments", "estimated cost"):
            table.add_column(column, justify="right")
        for c in report["countries"]:
            cost = "unknown" if c["estimated_cost"] is None else money(c["estimated_cost"], currency)
            table.add_row(
                c["country"], f"{c['rows']:,}", f"{c['segments']:,}", cost + ("" if c["priced"] else " *")
            )
        err().print(table)
    if total is None:
        note("  estimated cost: unknown (no price seen yet: smsctl learns them from delivery receipts; "
             "SMSCTL_FALLBACK_PRICE sets one per segment)")  # fmt: skip
        return
    guessed = [c["country"] for c in report["countries"] if not c["priced"]]
    note(f"  estimated cost: {money(total, currency)}" + (
        f" (* {', '.join(guessed[:10])}{' …' if len(guessed) > 10 else ''}: no price seen for it yet, estimated at "
        "the highest price seen, or SMSCTL_FALLBACK_PRICE)" if guessed else " (from the latest prices Vonage reported per country)"))  # fmt: skip


def _render_summary(summary: dict[str, Any]) -> None:
    from rich.table import Table

    from smsctl.output import out

    out().print(f"batch {summary['batch_id']}")
    table = Table("outcome", "rows", box=None)
    for state, count in sorted(summary["counts"].items()):
        table.add_row(state, str(count))
    for status, count in sorted(summary.get("final", {}).items()):
        table.add_row(f"final: {status}", str(count))
    out().print(table)
    sent = summary["counts"].get("accepted", 0)
    rate = sent / summary["elapsed"] if summary["elapsed"] else 0.0
    out().print(
        f"{sent} sent in {summary['elapsed']:.1f} s ({rate:.1f}/s); throttled {summary['throttle_pauses']} time(s)"
    )


class BulkProgress:
    """A progress bar on stderr (sent, failed, rate, ETA), then live final-status counts; JSON rows on stdout."""

    def __init__(self, total: int, json_output: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from smsctl.output import err

        self.json_output = json_output
        self.failed = 0
        self.sent = 0
        self.progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("failed {task.fields[failed]}"), TextColumn("{task.fields[rate]}/s"),
                                 TimeRemainingColumn(), console=err(), transient=False)  # fmt: skip
        self.task = self.progress.add_task("sending", total=total, failed=0, rate="0.0")
        self.wait_task: Any = None

    def __enter__(self) -> BulkProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    @contextmanager
    def resumable(self, batch_id: str) -> Iterator[None]:
        """On Ctrl-C or SIGTERM: how far the batch got, and that the same command resumes it."""
        from smsctl.errors import Terminated
        from smsctl.output import note

        try:
            yield
        except (KeyboardInterrupt, Terminated):
            self.progress.stop()
            note(f"stopped: {self.sent:,} of {self.progress.tasks[0].total or 0:,} rows of batch {batch_id} sent "
                 f"({self.failed:,} failed). Run the same command again to resume: rows already sent are "
                 "never sent twice")  # fmt: skip
            raise

    def row(self, outcome: Any) -> None:
        from smsctl.output import emit_json

        if outcome.state in ("accepted", "already_sent"):
            self.sent += 1
        elif outcome.state != "another_run":  # not a failure: the other run of the batch sends it
            self.failed += 1
        task = self.progress.tasks[0]
        rate = f"{(task.completed + 1) / task.elapsed:.1f}" if task.elapsed else "0.0"
        self.progress.update(self.task, advance=1, failed=self.failed, rate=rate)
        if self.json_output:
            emit_json({"event": "row", **outcome.to_dict()})

    def waiting(self, statuses: dict[str, str]) -> None:
        from smsctl.history.events import FINAL_STATUSES

        final = sum(1 for s in statuses.values() if s in FINAL_STATUSES)
        counts = " ".join(f"{s} {n}" for s, n in sorted(_count(statuses).items()))
        if self.wait_task is None:
            self.wait_task = self.progress.add_task("final", total=len(statuses), failed="-", rate="-")
        self.progress.update(self.wait_task, completed=final, description=f"final ({counts})")


def _count(statuses: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    return counts


def batch(
    batch_id: Annotated[str, typer.Argument(help="The batch ID printed by `smsctl bulk`.")],
    no_store_text: NoStoreTextOption = False,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Summarise a bulk batch: messages per status, and every failure with its error code.

    Example: smsctl batch b3f2a91c0d4e1
    """
    from smsctl.config import load_settings
    from smsctl.errors import NotFound
    from smsctl.history.backends import open_reader
    from smsctl.history.reading import batch_summary
    from smsctl.output import emit_json, out, reporting

    with reporting(json_output, debug):
        settings = load_settings()
        store = open_reader(settings.store)
        if store is None:
            raise NotFound(
                f"no batch {batch_id!r}: there is no local history yet",
                hint="`smsctl bulk` prints a batch ID when it starts",
            )
        with contextlib.closing(store):
            summary = batch_summary(store, batch_id, stale_after=settings.stale_after)
        if json_output:
            emit_json(summary.to_json())
            return
        from rich.table import Table

        out().print(f"batch {batch_id}: {summary.messages} messages  "
                    + "  ".join(f"{s} {n}" for s, n in sorted(summary.counts.items())))  # fmt: skip
        if summary.failures:
            table = Table("row", "to", "message", "status", "error", box=None)
            for f in summary.failures:
                table.add_row(str(f.row or ""), f.to or "", f.message_uuid or "-", f.status,
                              f"{f.error_code or ''} {f.error or ''}".strip())  # fmt: skip
            out().print(table)
        if summary.stale:
            from smsctl.history.reading import STALE_HINT
            from smsctl.output import note

            note(f"{summary.stale:,} stale: accepted over {settings.stale_after / 60:g} min ago, no final status; "
                 + STALE_HINT)  # fmt: skip
