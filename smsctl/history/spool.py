"""Accepted sends the store could not record, kept beside it until it can.

Once the API has accepted a message it exists, whatever our store says. If the store stays
unwritable (a lock held past every retry, a full disk), the accepted uuid is appended here — a
small private JSON Lines file — and recorded the next time any command opens the store for writing,
so `status` and bulk resume know the message was sent and nobody is ever told to send it again.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smsctl.history.interface import HistoryStore


def keep(path: Path, local_id: int, message_uuid: str) -> Path | None:
    """Append one accepted send to the spool at `path` (StoreLocation.spool_path); `path`, or None when
    even this cannot be written."""
    line = json.dumps({"id": local_id, "message_uuid": message_uuid}) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        return None
    return path


def lookup(path: Path, ref: str) -> str | None:
    """The spooled uuid this reference (a uuid or its prefix) names, if any; reads only."""
    if len(ref) < 8 or not path.exists():
        return None
    with contextlib.suppress(OSError):
        for raw in path.read_text().splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                uuid = str(json.loads(raw)["message_uuid"])
                if uuid.startswith(ref):
                    return uuid
    return None


def replay(store: HistoryStore, path: Path) -> int:
    """Record every spooled send (inside the caller's transaction); how many were recorded.

    The file is moved aside first, so a send spooled meanwhile by another process lands in a new
    file; if the transaction then fails, the caller's `restore` puts the lines back.
    """
    if not path.exists():
        return 0
    taken = path.with_name(f"{path.name}.{os.getpid()}")
    try:
        path.rename(taken)
    except OSError:
        return 0
    count = 0
    for raw in taken.read_text().splitlines():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            entry = json.loads(raw)
            store.mark_accepted(int(entry["id"]), str(entry["message_uuid"]))
            count += 1
    return count


def finish(path: Path, committed: bool) -> None:
    """After the replay's transaction: drop the moved file, or put its lines back."""
    taken = path.with_name(f"{path.name}.{os.getpid()}")
    if not taken.exists():
        return
    if not committed:
        with contextlib.suppress(OSError):
            for line in taken.read_text().splitlines():
                entry = json.loads(line)
                keep(path, int(entry["id"]), str(entry["message_uuid"]))
    taken.unlink(missing_ok=True)
