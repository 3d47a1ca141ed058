"""`smsctl export`: every message with its timeline, as JSON Lines or CSV, streamed page by page.

Memory stays flat whatever the size of the store: one page of messages (and their events) at a time,
written out before the next is read.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO, TypeVar, cast

from smsctl.codec import e164, iso_utc
from smsctl.config import Settings
from smsctl.errors import OutputUnwritable, UsageError
from smsctl.history.backends import open_reader
from smsctl.history.events import FINAL_STATUSES, error_meaning
from smsctl.history.interface import ExportedMessage, InboundRecord
from smsctl.history.reading import stale_test, summary_json, timeline_event

PAGE = 1_000
T = TypeVar("T")

CSV_COLUMNS = ("message_uuid", "to", "from", "client_ref", "status", "final", "sent_at", "submitted_at",
               "final_at", "error_code", "error_meaning", "price", "currency", "segments", "source",
               "batch_id", "batch_row", "stale")  # fmt: skip
INBOUND_COLUMNS = ("message_uuid", "from", "to", "text", "timestamp", "received_at")


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


def messages(
    settings: Settings, *, status: str | None, since: float | None, batch: str | None
) -> Iterator[ExportedMessage]:
    """Every message matching the filters with its timeline: those smsctl sent, then those seen only
    through webhooks. Nothing when there is no store yet (it is never created)."""
    store = open_reader(settings.store)
    if store is None:
        return
    with contextlib.closing(store):
        cursor: tuple[int, str] | None = (0, "")
        while cursor is not None:
            page, cursor = store.export_page(cursor, PAGE, status, since, batch)
            yield from page


def inbound(settings: Settings, since: float | None) -> Iterator[InboundRecord]:
    """Every inbound SMS (received since `since`), oldest first, a page at a time (the rows `db copy`
    reads, so memory stays flat here too)."""
    store = open_reader(settings.store)
    if store is None:
        return
    with contextlib.closing(store):
        after = 0
        while rows := store.export_rows("inbound", after, PAGE):
            for _, row in rows:
                uuid, from_, to, text, timestamp, received_at = cast(tuple[Any, ...], row[:6])
                if since is None or received_at >= since:
                    yield InboundRecord(uuid, from_, to, text, timestamp, received_at)
            after = rows[-1][0]


def _iso(epoch: float | None) -> str:
    return (iso_utc(epoch) or "") if epoch else ""


def message_json(m: ExportedMessage, stale: bool = False) -> dict[str, Any]:
    """One message of `export --format jsonl`: the `log --json` fields and the whole timeline."""
    return summary_json(m.summary, stale) | {"events": [timeline_event(e).to_json() for e in m.events]}


def message_row(m: ExportedMessage, stale: bool = False) -> list[object]:
    """One message of `export --format csv`, in CSV_COLUMNS' order."""
    s, events = m.summary, m.events
    submitted = next((e.received_at for e in events if e.status == "submitted"), None)
    final = next((e.received_at for e in events if e.status in FINAL_STATUSES), None)
    priced = next((e for e in reversed(events) if e.price), None)
    return [s.message_uuid or "", e164(s.to) or "", e164(s.from_) or "", s.client_ref or "", s.status, s.final, _iso(s.sent_at),
            _iso(submitted), _iso(final), s.error_code or "", error_meaning(s.error_code) or "",
            priced.price if priced else "", priced.currency if priced else "", s.segments or "", s.source,
            s.batch_id or "", "" if s.batch_row is None else s.batch_row, stale]  # fmt: skip


def inbound_row(r: InboundRecord) -> list[object]:
    return [
        r.message_uuid,
        e164(r.from_) or "",
        e164(r.to) or "",
        r.text or "",
        r.timestamp or "",
        _iso(r.received_at),
    ]


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP's CSV injection). Texts
# and client_refs come from anyone, so such a cell is written with a leading apostrophe, which the
# spreadsheet shows as text; a plain number (+14155550101, -0.05) is no formula and stays as it is.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def safe_cell(value: object) -> object:
    """A CSV cell a spreadsheet cannot run as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def lines(records: Iterator[Any], fmt: ExportFormat, columns: tuple[str, ...],
          as_json: Any, as_row: Any) -> Iterator[str]:  # fmt: skip
    """The export's text, one line (or CSV record) at a time; the CSV header comes with the first
    record (or alone when there is none)."""
    if fmt is ExportFormat.JSONL:
        for record in records:
            yield json.dumps(as_json(record), ensure_ascii=False) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([safe_cell(cell) for cell in as_row(record)])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()


def export(settings: Settings, fmt: ExportFormat, *, status: str | None, since: float | None, batch: str | None,
           inbound_only: bool, write: Any, chunk: int = 64 * 1024, now: float | None = None) -> int:  # fmt: skip
    """Stream the export through `write(text) -> bool` (False: the reader went away) in chunks of
    about `chunk` characters; how many records were written."""
    from smsctl.history.reading import inbound_json

    count = 0

    def counted(records: Iterator[Any]) -> Iterator[Any]:
        nonlocal count
        for record in records:
            count += 1
            yield record

    if inbound_only:
        text = lines(counted(inbound(settings, since)), fmt, INBOUND_COLUMNS, inbound_json, inbound_row)
    else:
        found = counted(messages(settings, status=status, since=since, batch=batch))
        stale = stale_test(time.time() if now is None else now, settings.stale_after)
        text = lines(found, fmt, CSV_COLUMNS, lambda m: message_json(m, stale(m.summary)),
                     lambda m: message_row(m, stale(m.summary)))  # fmt: skip
    pending: list[str] = []
    size = 0
    for line in text:
        pending.append(line)
        size += len(line)
        if size >= chunk:
            if not write("".join(pending)):
                return count
            pending, size = [], 0
    if pending:
        write("".join(pending))
    return count


def export_to_file(settings: Settings, fmt: ExportFormat, output: Path, **filters: Any) -> int:
    """`export -o FILE`: the export written to a private temporary file beside FILE and renamed over it
    once complete, so an existing FILE is never truncated by an export that fails; how many records.

    FILE may not be one of the store's own files (compared by inode, so no other name for them gets
    through either): opening it for writing would destroy the history being exported. A device or a
    pipe (`-o /dev/null`) is written in place."""
    target = Path(os.path.realpath(output))  # a symlink's target is replaced, not the link
    refuse_store_files(settings, output, target)
    try:
        existing = target.stat()
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise UsageError(
            f"cannot write {output}: {exc.strerror}", hint="choose a file you can write"
        ) from None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        return _export_in_place(settings, fmt, output, target, **filters)
    return write_privately(
        output, target, lambda sink: export(settings, fmt, write=_writer(sink, output), **filters)
    )


def write_privately(output: Path, target: Path, write: Callable[[TextIO], T]) -> T:
    """`write(sink)` into a private (0600) temporary file beside `target`, synced and renamed over it once
    complete: an existing file is never left half-written. The caller has refused the store's files."""
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    except OSError as exc:
        raise UsageError(
            f"cannot write {output}: {exc.strerror}", hint="choose a file you can write"
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as sink:  # mkstemp made it 0600
            result = write(sink)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(temporary, target)
    except OSError as exc:
        raise OutputUnwritable.of(str(output), exc) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return result


def _export_in_place(
    settings: Settings, fmt: ExportFormat, output: Path, target: Path, **filters: Any
) -> int:
    try:
        sink = open(target, "w", encoding="utf-8", newline="")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise UsageError(
            f"cannot write {output}: {exc.strerror}", hint="choose a file you can write"
        ) from None
    try:
        with sink:
            return export(settings, fmt, write=_writer(sink, output), **filters)
    except OSError as exc:
        raise OutputUnwritable.of(str(output), exc) from None


def _writer(sink: Any, output: Path) -> Any:
    def write(text: str) -> bool:
        sink.write(text)
        return True

    return write


def refuse_store_files(settings: Settings, output: Path, target: Path) -> None:
    try:
        wanted = target.stat()
    except OSError:
        return  # a new file cannot be one of the store's
    for own in settings.store.own_files:
        try:
            theirs = own.stat()
        except OSError:
            continue
        if (theirs.st_dev, theirs.st_ino) == (wanted.st_dev, wanted.st_ino):
            raise UsageError(
                f"{output} is the store's own file ({own}): writing there would destroy the history",
                hint="choose another file for -o (e.g. export.jsonl, report.html)",
            )
