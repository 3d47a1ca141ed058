"""The opt-out ledger for `smsctl optout`: read it, change it by hand, import a list (one core function
per command)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from smsctl.config import load_settings
from smsctl.errors import UsageError
from smsctl.history.backends import open_reader, open_store
from smsctl.history.optouts import ALL_SENDERS, OptoutChange, OptoutSource, OptoutState


def _digits(number: str, what: str = "number") -> str:
    """E.164 with its + to the ledger's digits; UsageError otherwise (numbering plans are not checked:
    a list from elsewhere may hold numbers this library's metadata does not know)."""
    text = number.strip()
    if not (text.startswith("+") and text[1:].isdigit() and 7 <= len(text) - 1 <= 15):
        raise UsageError(
            f"{what} {number!r} is not an E.164 number", hint="write it with + and the country code"
        )
    return text[1:]


def _sender(sender: str | None) -> str:
    if sender is None:
        return ALL_SENDERS
    return sender[1:] if sender.startswith("+") and sender[1:].isdigit() else sender


def current(limit: int) -> list[OptoutState]:
    store = open_reader(load_settings().store)
    if store is None:
        return []
    with contextlib.closing(store):
        return store.optouts(limit)


def history(number: str) -> list[OptoutState]:
    digits = _digits(number)
    store = open_reader(load_settings().store)
    if store is None:
        return []
    with contextlib.closing(store):
        return store.optout_history(digits)


def change(number: str, sender: str | None, opted_out: bool) -> tuple[OptoutState, bool]:
    """`optout add` / `remove`: the pair's state after the change, and whether it changed."""
    now = time.time()
    item = OptoutChange(
        _digits(number), _sender(sender), opted_out, OptoutSource.MANUAL, "smsctl optout", now
    )
    with contextlib.closing(open_store(load_settings().store)) as store, store.transaction():
        changed = store.change_optout(item)
    return OptoutState(item.number, item.sender, opted_out, item.source, item.reference, now), changed


def import_file(path: Path, sender: str | None) -> int:
    """Every number of the file is checked first; then all are added in one transaction."""
    import csv

    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    rows = list(csv.reader(lines))
    names = [cell.strip().lower() for cell in rows[0]] if rows else []
    header = "number" in names
    column = names.index("number") if header else 0
    numbers = []
    for line, row in enumerate(rows[1:] if header else rows, start=2 if header else 1):
        if not "".join(row).strip():
            continue
        numbers.append(_digits(row[column] if column < len(row) else "", f"line {line}:"))
    now, who = time.time(), _sender(sender)
    with contextlib.closing(open_store(load_settings().store)) as store, store.transaction():
        for digits in numbers:
            store.change_optout(OptoutChange(digits, who, True, OptoutSource.IMPORT, path.name, now))
    return len(numbers)
