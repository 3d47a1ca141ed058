"""`smsctl db copy` and `smsctl db migrate`: move a history between backends, and upgrade a schema.

A copy reads the source read-only, page by page, and writes each page in one transaction of the
target. Rows are recognised in the target by natural keys (storage.COPY_TABLES), so a rerun, or a
copy interrupted and started again, copies nothing twice. Memory stays flat: one page at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from smsctl.config import StoreLocation
from smsctl.errors import NotFound, StoreError
from smsctl.history.backends import Location, open_reader, open_store
from smsctl.history.interface import COPY_TABLES, HistoryStore

PAGE = 2_000
# Messages before the statuses and events that refer to them, so a reader of a half-done copy
# never sees an event whose send is missing.
ORDER = ("messages", "message_status", "events", "inbound", "dead_letters", "optout_events")


@dataclass(frozen=True)
class TableCopy:
    table: str
    read: int
    copied: int  # new in the target; read - copied were there already


@dataclass(frozen=True)
class CopyResult:
    source: str
    target: str
    tables: list[TableCopy] = field(default_factory=list)

    @property
    def copied(self) -> int:
        return sum(t.copied for t in self.tables)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "copied": self.copied,
                "tables": {t.table: {"read": t.read, "copied": t.copied} for t in self.tables}}  # fmt: skip


@dataclass(frozen=True)
class MigrateResult:
    store: str
    applied: list[str]  # migrations applied now; empty when the schema was already current

    def to_json(self) -> dict[str, Any]:
        return {"store": self.store, "applied": self.applied}


Progress = Callable[[str, int, int], None]  # (table, rows done, rows in the table)


def copy_store(source: Location, target: Location, on_progress: Progress, page: int = PAGE) -> CopyResult:
    """Copy every row the target lacks from `source` into `target` (created and migrated as needed)."""
    with _named("SOURCE"):
        reader = open_reader(source)
    if reader is None:
        shown = source.display if isinstance(source, StoreLocation) else str(source)
        raise NotFound(f"there is no smsctl store at {shown}", hint="check the SOURCE path or URL")
    with contextlib.closing(reader):
        with _named("TARGET"):
            writer = open_store(target)
        with contextlib.closing(writer):
            totals = reader.counts()
            result = CopyResult(reader.path, writer.path)
            for table in ORDER:
                result.tables.append(_copy_table(reader, writer, table, totals[table], on_progress, page))
    return result


@contextlib.contextmanager
def _named(argument: str) -> Iterator[None]:
    """A store refused here was given as an argument, not as SMSCTL_DB: its error says so."""
    try:
        yield
    except StoreError as exc:
        exc.message = exc.message.replace("SMSCTL_DB=", f"{argument} ").replace("SMSCTL_DB", argument)
        exc.hint = exc.hint and exc.hint.replace("SMSCTL_DB", argument)
        raise


def _copy_table(
    reader: HistoryStore, writer: HistoryStore, table: str, total: int, on_progress: Progress, page: int
) -> TableCopy:
    assert table in COPY_TABLES
    after, read, copied = 0, 0, 0
    on_progress(table, 0, total)
    while rows := reader.export_rows(table, after, page):
        with writer.transaction():
            copied += writer.import_rows(table, [row for _, row in rows])
        after, read = rows[-1][0], read + len(rows)
        on_progress(table, read, max(total, read))
    return TableCopy(table, read, copied)


def migrate_store(where: Location) -> MigrateResult:
    """Open the store for writing, which applies any missing migration; which ones were applied."""
    store = open_store(where)
    with contextlib.closing(store):
        return MigrateResult(store.path, list(store.migrated))
