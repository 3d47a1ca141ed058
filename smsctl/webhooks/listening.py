"""Running a listener: the verifier from settings, the store writer, the public URL, and the lifecycle.

Used by `smsctl listen` and, unchanged, by the listener `send --wait` embeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from smsctl.config import Settings
from smsctl.errors import ConfigError
from smsctl.history.events import Keywords
from smsctl.history.interface import ListenerRecord
from smsctl.history.writer import StoreWriter
from smsctl.webhooks.forwarding import DeliveryOptions, ForwardTargets
from smsctl.webhooks.server import (
    INBOUND_PATH,
    STATUS_PATH,
    Counters,
    EventSink,
    ListenerEvent,
    MalformedHttpDigest,
    WebhookApp,
    start_serving,
)
from smsctl.webhooks.signing import Verifier
from smsctl.webhooks.tunnel import check_tunnel, new_nonce

if TYPE_CHECKING:
    from smsctl.webhooks.application import AppChange, ApplicationApi
    from smsctl.webhooks.forwarding import Forwarder, ForwardReport

T = TypeVar("T")
NGROK_API = "http://127.0.0.1:4040/api/tunnels"
SHORT_SECRET = 32


def build_verifier(settings: Settings, max_token_age: float | None = None) -> Verifier:
    """A verifier over the configured signature secret(s); ConfigError when there is none."""
    secrets = settings.signature_secrets()
    return Verifier(secrets, api_key=settings.api_key, max_token_age=max_token_age)


def startup_warnings(settings: Settings) -> list[str]:
    """Warnings about the configured secrets (never their values) that the user can act on."""
    warnings = []
    for name, secret in zip(("VONAGE_SIGNATURE_SECRET", "VONAGE_SIGNATURE_SECRET_PREVIOUS"),
                            settings.signature_secrets(), strict=False):  # fmt: skip
        if len(secret) < SHORT_SECRET:
            warnings.append(
                f"{name} is {len(secret)} bytes; HS256 wants at least {SHORT_SECRET}: "
                "generate a longer one in the Vonage dashboard"
            )
    return warnings


async def discover_ngrok(port: int, api: str = NGROK_API) -> str | None:
    """The https URL of a running ngrok agent's tunnel to this port, if there is one."""
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.5)) as session,
            session.get(api) as response,
        ):
            data = json.loads(await response.read())
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    for tunnel in data.get("tunnels", []) if isinstance(data, dict) else []:
        addr = str(tunnel.get("config", {}).get("addr", ""))
        url = str(tunnel.get("public_url", ""))
        if url.startswith("https://") and addr.rstrip("/").endswith(f":{port}"):
            return url.rstrip("/")
    return None


Companion = Callable[["Listener"], Coroutine[Any, Any, None]]  # a task beside the server, given the listener
STALE_COUNT_EVERY = 30.0  # seconds between counts of the stale messages (an indexed count, ~ms)


@dataclass
class Listener:
    """A running listener; `async with Listener(...) as listener:` serves until the block ends."""

    settings: Settings
    writer: StoreWriter
    sink: EventSink
    host: str = "127.0.0.1"
    port: int = 0
    public_url: str | None = None
    max_token_age: float | None = None
    # Only a long-running `smsctl listen` registers: a listener embedded in one `send --wait` goes
    # away with it, so no other command may point its webhooks there.
    register: bool = True
    forward: ForwardTargets | None = None  # --forward-to / --forward-inbound-to
    tunnel_check: bool = False  # probe the public URL at start-up (`smsctl listen`; not a --wait's listener)
    delivery: DeliveryOptions = field(default_factory=lambda: DeliveryOptions())
    counters: Counters = field(default_factory=Counters)
    local_url: str = ""
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)  # the server
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    _nonce: str = ""
    _digest: logging.Filter = field(default_factory=logging.Filter)

    @property
    def status_url(self) -> str:
        return f"{self.public_url or self.local_url}{STATUS_PATH}"

    @property
    def inbound_url(self) -> str:
        return f"{self.public_url or self.local_url}{INBOUND_PATH}"

    async def __aenter__(self) -> Listener:
        self._digest = MalformedHttpDigest(self.counters)
        logging.getLogger("aiohttp.server").addFilter(self._digest)
        verifier = build_verifier(self.settings, self.max_token_age)
        forwarder = self._forwarder()
        nonce = new_nonce()
        app = WebhookApp(self.writer, verifier, self.sink, self.counters, self.settings.store_text,
                         self.forward, forwarder.wake if forwarder else lambda: None, nonce,
                         Keywords(*self.settings.optout_keywords))  # fmt: skip
        self.local_url, server = await start_serving(app, self.host, self.port, self._stop)
        self._tasks.append(server)
        if forwarder is not None:  # outbox rows left by an earlier run (even a killed one) go out too
            self._background.append(asyncio.create_task(forwarder.run(self._stop)))
        if self.public_url is None:
            self.public_url = self.settings.base_url or await discover_ngrok(
                int(self.local_url.rsplit(":", 1)[1])
            )
        self.public_url = self.public_url.rstrip("/") if self.public_url else None
        self._nonce = nonce
        if self.register:
            every = self.settings.heartbeat
            await self.writer.run(lambda s: s.register_listener(self.local_url, self.public_url, every))
            self._background.append(asyncio.create_task(self._heartbeat()))
            self._background.append(asyncio.create_task(self._count_stale()))
        return self

    def start(self, companion: Companion) -> None:
        """Run `companion(self)` beside the server until the listener stops (`listen --reconcile-every`)."""
        self._background.append(asyncio.create_task(companion(self)))

    async def count_stale(self) -> None:
        """Count the stale messages, and the sends the ledger and the caps stopped, for the footer,
        /healthz and /metrics (sends are other processes': the store is where they meet)."""
        cutoff, since = time.time() - self.settings.stale_after, self.counters.started_at
        with contextlib.suppress(Exception):  # a busy store must not stop the listener; the old figure stays
            (
                self.counters.stale_messages,
                (self.counters.suppressed, self.counters.capped),
            ) = await self.writer.run(lambda s: (s.stale_count(cutoff), s.refusals_since(since)))

    async def _count_stale(self) -> None:
        while True:
            await self.count_stale()
            await asyncio.sleep(STALE_COUNT_EVERY)

    def start_tunnel_check(self) -> None:
        """Probe the public URL in the background; the outcome reaches the view as a `tunnel` event."""
        if self.tunnel_check and self.public_url:
            self._background.append(asyncio.create_task(self._check_tunnel(self.public_url)))

    async def _check_tunnel(self, public_url: str) -> None:
        result = await check_tunnel(public_url, STATUS_PATH, self._nonce)
        self.sink(ListenerEvent("tunnel", time.time(), tunnel=result))

    def _forwarder(self) -> Forwarder | None:
        if self.forward is None:
            return None
        from smsctl.webhooks.forwarding import Forwarder

        self.counters.forwarding = True
        return Forwarder(self.writer, self.delivery, self._forwarded, self.forward.keys)

    def _forwarded(self, report: ForwardReport) -> None:
        from smsctl.history.interface import ForwardState

        self.counters.count_forward(report)
        kind = {ForwardState.DELIVERED: "forwarded", ForwardState.FAILED: "forward_failed"}.get(
            report.state, "forward_retry"
        )
        self.sink(ListenerEvent(kind, time.time(), forward=report))

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat)
            with contextlib.suppress(Exception):  # a busy store must not stop the listener
                await self.writer.run(lambda s: s.heartbeat())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        logging.getLogger("aiohttp.server").removeFilter(self._digest)
        for task in self._background:  # the heartbeat, and forwarding: a delivery cut short is retried later
            task.cancel()
        self._stop.set()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
        if self.register:
            with contextlib.suppress(Exception):
                await self.writer.run(lambda s: s.unregister_listener())


def _still_running(listener: ListenerRecord) -> bool:
    """Whether a registered listener (not this process) is there: on this machine, its process; on
    another, its fresh heartbeat (all that can be known from here)."""
    if listener.host not in (None, socket.gethostname()):
        return True
    return listener.pid != os.getpid() and _process_alive(listener.pid)


def _process_alive(pid: int) -> bool:
    from smsctl.running import process_alive

    return process_alive(pid)


async def _answers_health(local_url: str, timeout: float = 1.0) -> bool:
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(local_url + "/healthz") as response,
        ):
            return response.status == 200 and "accepted" in await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return False


async def _forget(writer: StoreWriter, pid: int, host: str | None) -> None:
    with contextlib.suppress(Exception):  # tidying only: a busy store can keep the row for now
        await writer.run(lambda s: s.forget_listener(pid, host))


async def usable_listener(writer: StoreWriter) -> ListenerRecord | None:
    """A registered `smsctl listen` that is really there: heartbeat fresh, and, on this machine, its
    process alive and its /healthz answering. Registrations of dead listeners are removed."""
    here = socket.gethostname()
    for listener in await writer.run(lambda s: s.fresh_listeners()):
        if listener.host not in (None, here):
            # Another machine's (a team's shared listener): its heartbeat is all we can check from
            # here, and only its public URL can reach it.
            if listener.public_url:
                return listener
            continue
        if _process_alive(listener.pid) and await _answers_health(listener.local_url):
            return listener
        if not _process_alive(listener.pid):
            await _forget(writer, listener.pid, listener.host)
    return None


async def running_listener(settings: Settings) -> ListenerRecord | None:
    """This store's running `smsctl listen` on this machine, found read-only (nothing is created or tidied)."""
    from smsctl.history.backends import open_reader

    store = open_reader(settings.store)
    if store is None:
        return None
    with contextlib.closing(store):
        registered = store.fresh_listeners()
    here = socket.gethostname()
    for listener in registered:
        if (
            listener.host in (None, here)
            and _process_alive(listener.pid)
            and await _answers_health(listener.local_url)
        ):
            return listener
    return None


def settle_heap() -> None:
    """Once serving: move everything start-up made (modules, Rich, the app) out of the collector's
    sight, and collect the youngest generation less often. Each request makes a few hundred
    short-lived containers; with the defaults the collector ran every few requests and re-walked
    start-up's objects in its older generations (~3% of the listener's CPU under load)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def stop_on_signals(stop: asyncio.Event, on_signal: Callable[[int], None] | None = None) -> None:
    """SIGINT/SIGTERM/SIGHUP (the terminal or SSH session went away) set `stop`: stop accepting, drain
    in-flight commits, restore the application's URLs (--update-app); `on_signal` hears which."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):

        def stopped(sig: int = sig) -> None:
            if on_signal is not None:
                on_signal(sig)
            stop.set()

        loop.add_signal_handler(sig, stopped)


class ListenerView(Protocol):
    """What `run_listener` reports to: the ready URLs, each event, and the final counters."""

    def ready(self, info: dict[str, Any], counters: Counters) -> None: ...

    def handle(self, event: ListenerEvent) -> None: ...

    def stopped(self, counters: Counters) -> None: ...


@dataclass(frozen=True)
class ListenOptions:
    """What `smsctl listen` was asked to do, beyond the settings."""

    host: str = "127.0.0.1"
    port: int = 0
    public_url: str | None = None
    max_token_age: float | None = None
    forward: ForwardTargets | None = None
    delivery: DeliveryOptions = field(default_factory=DeliveryOptions)
    tunnel_check: bool = True
    update_app: bool = False  # point the Vonage application's webhooks here (and back on exit)
    keep_app_urls: bool = False
    companions: tuple[
        Companion, ...
    ] = ()  # run beside the server (`--reconcile-every`: messages/reconciling)
    # `--ui`: starts the web inspector (webhooks/inspector.py, given by the CLI) and yields its URL
    ui: Callable[[StoreWriter], contextlib.AbstractAsyncContextManager[str]] | None = None


async def run_listener(settings: Settings, view: ListenerView, options: ListenOptions,
                       stop: asyncio.Event | None = None) -> Counters:  # fmt: skip
    """`smsctl listen`: serve until SIGINT/SIGTERM (or `stop`), then drain and return the counters."""
    build_verifier(settings)  # refuse to start without a secret, before opening anything
    api = _application_api(settings) if options.update_app else None  # and without its credentials
    stop = stop or asyncio.Event()
    stop_on_signals(stop)
    with StoreWriter.for_settings(settings) as writer:  # closed after the server drained: all is committed
        listener = Listener(settings, writer, view.handle, host=options.host, port=options.port,
                            public_url=options.public_url, max_token_age=options.max_token_age,
                            forward=options.forward, tunnel_check=options.tunnel_check,
                            delivery=options.delivery)  # fmt: skip
        async with listener, options.ui(writer) if options.ui else _no_ui() as ui_url:
            change = await _point_app(api, listener) if api else None
            sharing = len(await writer.run(lambda s: s.fresh_listeners()))  # this one included
            forward = options.forward
            view.ready({
                "local_url": listener.local_url, "public_url": listener.public_url,
                "status_url": listener.status_url, "inbound_url": listener.inbound_url,
                "store": settings.store.display, "listeners": sharing,
                "forward_to": forward.status_url if forward else None,
                "forward_inbound_to": forward.inbound_url if forward else None,
                "tunnel_check": "checking" if options.tunnel_check and listener.public_url else None,
                "application": (change.to_json() | {"restore_on_exit": not options.keep_app_urls}) if change else None,
                **({"ui_url": ui_url} if ui_url else {}),
            }, listener.counters)  # fmt: skip
            listener.start_tunnel_check()
            for companion in options.companions:
                listener.start(companion)
            settle_heap()
            try:
                await _serve_until(stop, writer)
            finally:
                if api is not None and change is not None and not options.keep_app_urls:
                    await _restore_app(api, change, view, writer)
    view.stopped(listener.counters)
    return listener.counters


@contextlib.asynccontextmanager
async def _no_ui() -> AsyncIterator[str | None]:
    yield None


async def _serve_until(stop: asyncio.Event, writer: StoreWriter) -> None:
    """Until `stop` (a signal), or until the writer thread dies: then the listener ends with its error
    (a non-zero exit), never lingering as a server that can store nothing."""
    stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    died: asyncio.Future[Any] = asyncio.wrap_future(writer.finished)
    await asyncio.wait([stopped, died], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if died.done() and (failure := died.exception()) is not None:
        raise failure
    # `died` is not cancelled: that would cancel the writer's own future, which its thread still sets.


def _application_api(settings: Settings) -> ApplicationApi:
    from smsctl.webhooks.application import ApplicationApi

    return ApplicationApi(settings)


async def _point_app(api: ApplicationApi, listener: Listener) -> AppChange:
    from smsctl.history.interface import AppUrls
    from smsctl.webhooks.application import point_app_at

    if listener.public_url is None:
        raise ConfigError(
            "--update-app needs a public URL: Vonage cannot reach this machine's local address",
            hint="run `ngrok http PORT` (smsctl finds it), or pass --public-url/BASE_URL",
        )
    return await point_app_at(api, listener.writer, AppUrls(listener.status_url, listener.inbound_url))


async def _restore_app(
    api: ApplicationApi, change: AppChange, view: ListenerView, writer: StoreWriter
) -> None:
    """Put the application's own webhook URLs back (or hand it to another running listener); say so
    (or why not) through the view."""
    from smsctl.errors import SmsctlError
    from smsctl.webhooks.application import restore_app

    try:
        detail = (await restore_app(api, writer, change, _still_running)).describe()
    except SmsctlError as exc:
        detail = (
            f"could not be restored ({exc.message}): run `smsctl app restore`, or set them in the dashboard"
        )
    view.handle(
        ListenerEvent(
            "app_restored", time.time(), reason=detail, detail=json.dumps(change.previous.to_json())
        )
    )
