"""`send --wait`: send, then watch the store until the message reaches a final status.

Statuses reach the store through a running `smsctl listen`, or through a listener embedded for
the duration of the wait (the same `Listener`, same verification and persistence). Either way
we watch the store: `PRAGMA data_version` tells us cheaply when another connection committed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from smsctl.config import Settings, is_loopback_host
from smsctl.errors import ConfigError, MessageFailed, SmsctlError, WaitTimeout
from smsctl.history.backends import Location, watch_changes
from smsctl.history.events import FAILED_STATUSES
from smsctl.history.interface import HistoryStore
from smsctl.history.reading import TimelineEvent, timeline_event
from smsctl.history.writer import StoreWriter
from smsctl.messages.guards import Caps
from smsctl.messages.reconciling import fill_in
from smsctl.messages.sending import SendRequest, SendResult, prepare, send_prepared
from smsctl.webhooks.listening import Listener, discover_ngrok, usable_listener
from smsctl.webhooks.server import STATUS_PATH


@dataclass(frozen=True)
class WaitOptions:
    """How long to wait, and where an embedded listener should listen."""

    timeout: float = 300.0
    port: int | None = None
    public_url: str | None = None


@dataclass(frozen=True)
class Progress:
    """What the wait has seen so far."""

    sent: SendResult
    status: str
    events: list[TimelineEvent]
    elapsed: float
    source: str  # "smsctl listen at …" or "embedded listener at …"
    listener_alive: bool = True  # False while a separate `smsctl listen` has stopped heartbeating


@dataclass(frozen=True)
class Route:
    """Where statuses are sent, described for the user; `shared`: a separate `smsctl listen` stores them."""

    webhook_url: str | None
    description: str
    shared: bool = False


@dataclass(frozen=True)
class WaitResult:
    """The send result with its final (or last known) status and whole timeline."""

    sent: SendResult
    status: str
    final: bool
    events: list[TimelineEvent]
    elapsed: float
    answered_by: str | None = (
        None  # where the final status came from: `webhook`, or `reports` after --timeout
    )
    fallback: str | None = None  # after --timeout: what asking the Reports API gave, when it was asked

    def to_dict(self) -> dict[str, Any]:
        data = self.sent.to_dict()
        data.update(status=self.status, final=self.final, events=[e.to_json() for e in self.events],
                    elapsed=round(self.elapsed, 3), answered_by=self.answered_by)  # fmt: skip
        return data


def read_state(store: HistoryStore, message_uuid: str) -> tuple[str | None, bool, list[TimelineEvent]]:
    """(current status, final?, timeline) of a message, read in one go."""
    current = store.current_status(message_uuid)
    events = [timeline_event(e) for e in store.timeline(message_uuid)]
    return (current.status, current.final, events) if current else (None, False, events)


async def watch(
    where: Location,
    message_uuid: str,
    timeout: float,
    on_change: Callable[[str | None, list[TimelineEvent], bool], None],
    watch_listener: bool = False,
) -> tuple[str | None, bool, list[TimelineEvent]]:
    """Wait until the message is final or `timeout` passes; report each new event.

    With `watch_listener`, also report when the `smsctl listen` feeding the store stops (or comes
    back): its heartbeat commits every few seconds, so this costs no extra polling.
    """
    state: tuple[str | None, bool, list[TimelineEvent]] = (None, False, [])
    alive: bool | None = None

    def read(store: HistoryStore) -> bool:
        nonlocal state, alive
        previous, previous_alive = state, alive
        state = read_state(store, message_uuid)
        alive = bool(store.fresh_listeners()) if watch_listener else True
        if len(state[2]) != len(previous[2]) or previous[0] is None or alive != previous_alive:
            on_change(state[0], state[2], alive)
        return state[1]

    await watch_changes(where, timeout, read)
    return state


def _status_url(base: str) -> str:
    return base.rstrip("/") + STATUS_PATH


def _api_is_local(settings: Settings) -> bool:
    return is_loopback_host(urlsplit(settings.api_url).hostname or "")


def _no_way_for_statuses(port: int) -> ConfigError:
    return ConfigError(
        "statuses cannot reach this machine: there is no public URL for the webhook",
        hint=f"run `ngrok http {port}` (smsctl finds it), or pass --public-url/BASE_URL, "
        "or keep `smsctl listen --public-url …` running",
    )


async def embedded_listener_address(
    settings: Settings, options: WaitOptions, local_api: bool
) -> tuple[str | None, int]:
    """(public URL, port) for a listener embedded in a wait.

    A public URL (flag, BASE_URL, or an ngrok tunnel to PORT) forwards to PORT, so the listener must
    listen there; only with no public URL and a local API (the emulator) is any free port right.
    """
    public_url = options.public_url or settings.base_url or await discover_ngrok(settings.port)
    if options.port is not None:
        return public_url, options.port
    if public_url is None and local_api:
        return None, 0
    return public_url, settings.port


@contextlib.asynccontextmanager
async def status_route(
    settings: Settings, writer: StoreWriter, options: WaitOptions, webhook_url: str | None
) -> AsyncIterator[Route]:
    """Where statuses should be sent so they reach the store.

    An explicit webhook URL is used as is; else a running `smsctl listen` on this store; else a
    listener embedded for as long as the block runs. ConfigError when statuses cannot arrive.
    """
    if webhook_url is not None:
        yield Route(webhook_url, "the store (your --webhook-url)")
        return
    local_api = _api_is_local(settings)
    live = await usable_listener(writer)
    if live is not None:
        base = options.public_url or live.public_url or (live.local_url if local_api else None)
        if base is None:
            raise _no_way_for_statuses(settings.port)
        yield Route(_status_url(base), f"smsctl listen at {live.local_url}", shared=True)
        return
    public_url, port = await embedded_listener_address(settings, options, local_api)
    embedded = Listener(
        settings, writer, lambda event: None, port=port, public_url=public_url, register=False
    )
    async with embedded as listener:
        if listener.public_url is None and not local_api:
            raise _no_way_for_statuses(port)
        yield Route(listener.status_url, f"embedded listener at {listener.local_url}")


async def send_and_wait(
    settings: Settings,
    request: SendRequest,
    options: WaitOptions,
    on_progress: Callable[[Progress], None],
) -> WaitResult:
    """Send one message and wait for its final status (see the module docstring)."""
    from smsctl.messages.auth import credentials_from
    from smsctl.messages.runtime import Runtime

    prepare(request, settings)  # bad input fails before anything starts
    credentials_from(settings)  # and missing credentials, before a listener starts
    async with Runtime(settings) as rt:
        async with status_route(settings, rt.writer, options, request.webhook_url) as route:
            prepared = prepare(dataclasses.replace(request, webhook_url=route.webhook_url), settings)
            sent = await send_prepared(await rt.client(), rt.writer, prepared, recording=rt.recording,
                                       caps=Caps.from_settings(settings))  # fmt: skip
            started = time.monotonic()
            on_progress(Progress(sent, sent.status, [], 0.0, route.description))

            def changed(status: str | None, events: list[TimelineEvent], alive: bool) -> None:
                elapsed = time.monotonic() - started
                on_progress(Progress(sent, status or sent.status, events, elapsed, route.description, alive))

            status, final, events = await watch(
                settings.store, sent.message_uuid, options.timeout, changed, watch_listener=route.shared
            )
            if final:
                return WaitResult(sent, status or sent.status, final, events, time.monotonic() - started,
                                  answered_by=_source_of(status, events))  # fmt: skip
            try:
                asked = await fill_in(settings, rt.writer, [sent.message_uuid])
                fallback = None if asked is None else "the Reports API has no final status either"
            except SmsctlError as exc:  # the timeout stands; say why the fallback could not help
                fallback = f"the Reports API could not be asked: {exc.message}"
            status, final, events = await rt.writer.run(lambda s: read_state(s, sent.message_uuid))
            return WaitResult(sent, status or sent.status, final, events, time.monotonic() - started,
                              answered_by=_source_of(status, events) if final else None,
                              fallback=fallback)  # fmt: skip


def _source_of(status: str | None, events: list[TimelineEvent]) -> str | None:
    """Which source's event gave the final status (the first event of it)."""
    return next((e.source for e in events if e.status == status), None)


async def watch_many(
    where: Location, uuids: list[str], timeout: float, on_change: Callable[[dict[str, str]], None]
) -> dict[str, tuple[str, bool]]:
    """Wait until every message is final or `timeout` passes; report the statuses as they change."""
    states: dict[str, tuple[str, bool]] = dict.fromkeys(uuids, ("accepted", False))

    def read(store: HistoryStore) -> bool:
        states.update(store.statuses([u for u, (_, final) in states.items() if not final]))
        on_change({u: status for u, (status, _) in states.items()})
        return all(final for _, final in states.values())

    await watch_changes(where, timeout, read)
    return states


def outcome_error(result: WaitResult) -> MessageFailed | WaitTimeout | None:
    """The error a wait ends in: None when delivered."""
    if not result.final:
        return WaitTimeout(
            f"no final status within {result.elapsed:.0f} s; last known status: {result.status}"
            + (f"; {result.fallback}" if result.fallback else ""),
            hint=f"SMS can take up to 72 h: check later with `smsctl status {result.sent.message_uuid}` "
            "or `smsctl reconcile` (it asks the Reports API; needs VONAGE_API_KEY and VONAGE_API_SECRET)",
        )
    if result.status in FAILED_STATUSES:
        last = next((e for e in reversed(result.events) if e.status == result.status), None)
        code = last.error_code if last else None
        meaning = (last.error_meaning if last else None) or "no error detail"
        return MessageFailed(
            f"message {result.status}" + (f": error {code}: {meaning}" if code else f": {meaning}")
        )
    return None
