"""`smsctl replay`: resend stored status events to any URL, in their original order, so an app can
be tested against real traffic it missed (or handled wrongly) without sending an SMS again."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from smsctl.config import Settings
from smsctl.errors import NotFound, UsageError
from smsctl.history.backends import open_reader
from smsctl.history.interface import StoredEvent
from smsctl.webhooks.triggering import Answer, deliver, signer

SELECT_LIMIT = 100_000


@dataclass(frozen=True)
class Replayed:
    event: StoredEvent
    answer: Answer
    original_token: bool  # False: signed afresh (asked for, or the event predates stored tokens)


@dataclass
class ReplaySummary:
    url: str
    replayed: list[Replayed] = field(default_factory=list)

    @property
    def answers(self) -> Counter[str]:
        return Counter(
            str(r.answer.http_status) if r.answer.http_status else "no answer" for r in self.replayed
        )

    @property
    def failed(self) -> list[Replayed]:
        return [r for r in self.replayed if not r.answer.ok]

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "events": len(self.replayed), "answers": dict(self.answers),
                "failed": [{"message_uuid": r.event.message_uuid, "status": r.event.status,
                            "http_status": r.answer.http_status, "error": r.answer.error} for r in self.failed]}  # fmt: skip


def chosen_events(settings: Settings, refs: list[str], *, since: float | None, status: str | None,
                  batch: str | None) -> list[StoredEvent]:  # fmt: skip
    """The stored events of the messages named (UUIDs or 8+ character prefixes) or matching the
    filters, in the order they were received."""
    if not refs and since is None and status is None and batch is None:
        raise UsageError(
            "nothing chosen to replay", hint="give message UUIDs, or --since, --status or --batch"
        )
    store = open_reader(settings.store)
    if store is None:
        raise NotFound(
            "there is no local history yet", hint="`smsctl listen` stores the events you can replay"
        )
    with contextlib.closing(store):
        uuids: list[str] = []
        for ref in refs:
            found = store.find_message(ref)
            if found is None:
                raise NotFound(f"no message {ref!r} in the local history", hint="`smsctl log` lists them")
            uuids.append(found.message_uuid)
        if since is not None or status is not None or batch is not None:
            matching = store.recent_messages(SELECT_LIMIT, status=status, since=since, batch=batch)
            uuids.extend(m.message_uuid for m in matching if m.message_uuid)
        return store.events_of(list(dict.fromkeys(uuids)))


async def replay(settings: Settings, events: list[StoredEvent], url: str, *, original_token: bool,
                 on_answer: Callable[[Replayed], None]) -> ReplaySummary:  # fmt: skip
    """POST each event's exact body, one after the other, signed afresh (or with its original token)."""
    import aiohttp

    sign = signer(settings)
    summary = ReplaySummary(url)
    timeout = aiohttp.ClientTimeout(total=settings.http_timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for event in events:
            body = event.body.encode()
            keep = original_token and event.token is not None
            answer = await deliver(session, url, body, event.token if keep and event.token else sign(body))
            replayed = Replayed(event, answer, keep)
            summary.replayed.append(replayed)
            on_answer(replayed)
    return summary
