"""`smsctl forwards`: what the forwarding outbox holds, and retrying what failed."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from smsctl.codec import iso_utc
from smsctl.config import Settings
from smsctl.history.backends import open_reader, open_store
from smsctl.history.interface import Forward, ForwardState, Retried
from smsctl.webhooks.forwarding import RETRY_WINDOW

LIST_LIMIT = 10_000


@dataclass(frozen=True)
class ForwardList:
    forwards: list[Forward]

    def to_json(self) -> list[dict[str, Any]]:
        return [forward_json(f) for f in self.forwards]


def forward_json(f: Forward) -> dict[str, Any]:
    """One outbox row for `--json` (the body is left out: it may hold an inbound text)."""
    return {"id": f.id, "state": str(f.state), "route": str(f.route), "message_uuid": f.message_uuid,
            "target": f.target, "route_key": f.route_key, "attempts": f.attempts, "last_http_status": f.last_code, "last_error": f.last_error,
            "last_ms": round(f.last_ms, 1) if f.last_ms is not None else None, "created_at": iso_utc(f.created_at),
            "next_attempt_at": iso_utc(f.next_at) if f.state is ForwardState.PENDING else None,
            "expires_at": iso_utc(f.expires_at)}  # fmt: skip


def list_forwards(settings: Settings, failed_only: bool) -> ForwardList:
    """Pending and failed forwards (or only failed ones), oldest first; none when there is no store."""
    store = open_reader(settings.store)
    if store is None:
        return ForwardList([])
    states = [ForwardState.FAILED] if failed_only else [ForwardState.PENDING, ForwardState.FAILED]
    with contextlib.closing(store):
        return ForwardList(store.forwards(states, LIST_LIMIT))


def retry_forwards(settings: Settings, ids: list[int] | None, clock: Any = time.time) -> Retried:
    """Make these forwards (None: every one not delivered) due now, with a fresh 24 h window, each
    message's in their order; a failed one whose message had a newer forward delivered since is left
    alone. A running `smsctl listen --forward-to` serving their route delivers them within a second."""
    store = open_store(settings.store, busy_timeout=settings.busy_timeout)
    with contextlib.closing(store), store.transaction():
        return store.retry_forwards(ids, clock(), RETRY_WINDOW)
