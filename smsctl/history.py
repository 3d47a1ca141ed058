"""Reading the history: one message's timeline, and recent messages."""

from __future__ import annotations

import re
import time
from typing import Any

from smsctl import spool
from smsctl.errors import NotFound, UsageError
from smsctl.events import error_meaning, error_title
from smsctl.store import Store

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """`90s`, `15m`, `2h`, `7d` → seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise UsageError(f"--since {text!r} is not a duration", hint="use e.g. 30s, 15m, 2h or 7d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def timeline_event(row: Any) -> dict[str, Any]:
    """One stored status event as shown by `status`, `send --wait --json` and the demo."""
    return {
        "status": row["status"],
        "timestamp": row["timestamp"],
        "received_at": row["received_at"],
        "error_code": row["error_code"],
        "error_meaning": error_meaning(row["error_code"]) or row["error_detail"],
        "price": row["price"],
        "currency": row["currency"],
        "segments": row["segments"],
        "anomaly": row["anomaly"],
    }


def message_status(store: Store, ref: str) -> dict[str, Any]:
    """A message (by UUID or unique prefix) with its whole timeline; NotFound otherwise."""
    found = store.find_message(ref)
    if found is None and (spooled := spool.lookup(store.path, ref)) is not None:
        raise NotFound(
            f"message {spooled} was sent but not recorded yet: the store could not write when it was accepted",
            hint=f"it is kept in {spool.spool_path(store.path)}; the next `smsctl send`, `bulk` or `listen` "
            "records it. Do not send it again",
        )
    if found is None:
        raise NotFound(
            f"no message {ref!r} in the local history",
            hint="give the full message UUID (or 8+ characters of it); `smsctl log` lists recent ones",
        )
    uuid = found["uuid"]
    timeline = store.timeline(uuid)

    def known(column: str) -> Any:
        """Ours if smsctl sent it; else what its status webhooks said."""
        if found[column] is not None:
            return found[column]
        return next((row[column] for row in timeline if row[column] is not None), None)

    return {
        "message_uuid": uuid,
        "status": found["status"],
        "final": bool(found["final"]),
        "conflict": bool(found["conflict"]),
        "duplicates": found["duplicates"],
        "sends": found["sends"],  # more than 1: the API gave several sends this uuid (a mock, a replay)
        "to": known("to_number"),
        "from": known("from_number"),
        "client_ref": known("client_ref"),
        "segments": found["segments"] or known("segments"),
        "encoding": found["encoding"],
        "sent_at": found["created_at"],
        "source": "smsctl" if found["created_at"] is not None else "webhook",
        "local_state": found["state"],
        "events": [timeline_event(row) for row in timeline],
    }


def recent(
    store: Store, *, limit: int, status: str | None, since: str | None, batch: str | None
) -> list[dict[str, Any]]:
    """Every message the store knows (sent by smsctl or seen through webhooks), newest activity first."""
    after = time.time() - parse_duration(since) if since else None
    rows = store.recent_messages(limit, status=status, since=after, batch=batch)
    return [
        {
            "message_uuid": row["message_uuid"],
            "to": row["to_number"],
            "from": row["from_number"],
            "client_ref": row["client_ref"],
            "status": row["status"],
            "final": bool(row["final"]),
            "segments": row["segments"],
            "source": row["source"],  # smsctl: sent by smsctl; webhook: seen only through its statuses
            "sent_at": row["created_at"],
            "last_activity": row["activity"],
            "error": row["error"],
            "error_code": row["error_code"],
            "batch_id": row["batch_id"],
            "batch_row": row["batch_row"],
        }  # fmt: skip
        for row in rows
    ]


def recent_inbound(store: Store, *, limit: int, since: str | None) -> list[dict[str, Any]]:
    """Inbound SMS, newest first."""
    after = time.time() - parse_duration(since) if since else None
    return [
        {
            "message_uuid": r["message_uuid"],
            "from": r["from_number"],
            "to": r["to_number"],
            "text": r["text"],
            "timestamp": r["timestamp"],
            "received_at": r["received_at"],
        }  # fmt: skip
        for r in store.recent_inbound(limit, since=after)
    ]


def batch_summary(store: Store, batch_id: str) -> dict[str, Any]:
    """Counts per current status and every failure with its error code, for one batch."""
    rows = store.recent_messages(1_000_000, batch=batch_id)
    if not rows:
        raise NotFound(f"no batch {batch_id!r} in the local history", hint="`smsctl log` shows batch IDs")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    failures = [
        {"row": r["batch_row"], "to": r["to_number"], "message_uuid": r["message_uuid"], "status": r["status"],
         "error_code": r["error_code"], "error": error_title(r["error_code"]) if r["error_code"] else r["error"]}
        for r in sorted(rows, key=lambda r: r["batch_row"] or 0)
        if r["status"] in ("rejected", "undeliverable", "refused", "unsent", "unknown", "pending")
    ]  # fmt: skip
    return {"batch_id": batch_id, "messages": len(rows), "counts": counts, "failures": failures}
