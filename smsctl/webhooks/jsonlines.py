"""What a script sees of the listener: one JSON object per line on stdout (the documented contract).

Apart from the live view so that `listen --json`, and the tests' and scripts' listeners, start without
loading Rich."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smsctl.codec import count, e164, iso_utc
from smsctl.history.events import error_meaning
from smsctl.output import LineBuffer, emit_json
from smsctl.webhooks.server import Counters, ListenerEvent


def event_record(event: ListenerEvent) -> dict[str, Any]:
    """The JSON Lines record of one listener event (the documented contract)."""
    record: dict[str, Any] = {"event": event.kind, "received_at": iso_utc(event.received_at)}
    if event.status_event is not None and event.applied is not None:
        status = event.status_event
        record.update(
            message_uuid=status.message_uuid, status=status.status, timestamp=status.timestamp,
            current_status=event.applied.status, final=event.applied.final, to=e164(status.to),
            **{"from": e164(status.from_)}, client_ref=status.client_ref, error_code=status.error_code,
            error_meaning=error_meaning(status.error_code), price=status.price,
            currency=status.currency, segments=count(status.segments), anomaly=event.applied.anomaly,
        )  # fmt: skip
    elif event.tunnel is not None:
        record.update(event.tunnel.to_json())
    elif event.forward is not None:
        f = event.forward
        record.update(forward_id=f.forward_id, route=str(f.route), message_uuid=f.message_uuid, target=f.target,
                      http_status=f.code, ms=round(f.ms, 1), attempts=f.attempts, error=f.error,
                      retry_in=round(f.retry_in, 1) if f.retry_in is not None else None)  # fmt: skip
    elif event.inbound is not None:
        message = event.inbound
        record.update(message_uuid=message.message_uuid, **{"from": e164(message.from_)}, to=e164(message.to),
                      text=message.text, timestamp=message.timestamp)  # fmt: skip
    else:
        record.update(reason=event.reason, detail=event.detail, http_status=event.http_status)
    return record


class JsonLinesView:
    """One JSON object per line on stdout; the first is `ready`."""

    def __init__(self, on_closed: Callable[[], None] | None = None) -> None:
        self.lines = LineBuffer(on_closed)

    def ready(self, info: dict[str, Any], counters: Counters) -> None:
        emit_json({"event": "ready", **info})

    def handle(self, event: ListenerEvent) -> None:
        self.lines.emit(event_record(event))

    def stopped(self, counters: Counters | None = None) -> None:
        self.lines.flush()
        if counters is not None:
            emit_json({"event": "stopped", **counters.health()})
