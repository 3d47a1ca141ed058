"""`smsctl demo`: the whole tool, offline, with throwaway credentials and nothing of the user's touched."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from smsctl.config import Settings, load_settings
from smsctl.history.backends import open_store
from smsctl.history.interface import AppUrls, InboundRecord
from smsctl.history.reading import MessageReport, message_status
from smsctl.history.writer import StoreWriter
from smsctl.messages.runtime import Runtime
from smsctl.messages.sending import SendRequest, SendResult, prepare, send_prepared
from smsctl.sandbox.emulator import DEFAULT_SCENARIO, SCENARIOS, Sandbox, config_from_settings
from smsctl.webhooks.application import ApplicationApi, point_app_at
from smsctl.webhooks.forwarding import DeliveryOptions, ForwardTargets
from smsctl.webhooks.listening import Listener, ListenerView

SENDER = "+14155550199"


@dataclass(frozen=True)
class DemoMessage:
    to: str
    text: str


DEMO_MESSAGES = (
    DemoMessage("+14155550101", "Your code is 493817"),
    DemoMessage("+14155550110", "Reminder: dentist tomorrow at 9:00"),
    DemoMessage("+14155550120", "Your parcel is out for delivery"),
    DemoMessage("+14155550150", "Table for two confirmed 🍝"),
    DemoMessage("+14155550160", "Flight LH400 boards at gate B22"),
    DemoMessage("+14155550170", "Long message. " * 22),
    DemoMessage("+14155550180", "Payment of €42.00 received"),
    DemoMessage("+14155550195", "Your verification code is 112358"),  # webhook lost: reconciled at the end
)
LOST = "+14155550195"


def throwaway_settings(directory: Path, api_url: str = "http://127.0.0.1:1") -> Settings:
    """Fresh credentials in a temporary directory; the user's environment and .env are ignored."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_path = directory / "private.key"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    key_path.chmod(0o600)
    return load_settings(
        {
            "VONAGE_APPLICATION_ID": str(uuid.uuid4()),
            "VONAGE_PRIVATE_KEY_PATH": str(key_path),
            "VONAGE_SIGNATURE_SECRET": secrets.token_urlsafe(32),
            "VONAGE_API_KEY": "demo" + secrets.token_hex(3),
            "VONAGE_API_SECRET": secrets.token_urlsafe(16),  # the Application API's Basic auth
            "VONAGE_NUMBER": SENDER,
            "VONAGE_API_URL": api_url,
            "SMSCTL_DB": str(directory / "demo.db"),
        },
        environ={},
        cwd=directory,
    )


def _with_api(settings: Settings, api_url: str) -> Settings:
    return settings.with_overrides(VONAGE_API_URL=api_url)


async def _all_final(writer: StoreWriter, uuids: list[str]) -> bool:
    statuses = await writer.run(lambda s: [s.current_status(u) for u in uuids])
    return all(current is not None and current.final for current in statuses)


INBOUND_FROM, INBOUND_TEXT = "+14155550123", "STOP"


@dataclass
class DemoApp:
    """ "Your app": a small server the demo starts, verifying each forwarded webhook as the Vonage
    tutorial's handler does (HS256 with the signature secret, payload_hash over the raw body)."""

    secret: str
    received: list[tuple[str, bool]] = field(default_factory=list)  # (path, signature verified)
    url: str = ""

    @property
    def verified(self) -> int:
        return sum(ok for _, ok in self.received)

    async def handle(self, request: web.Request) -> web.Response:
        import hashlib

        import jwt

        body = await request.read()
        try:
            claims = jwt.decode(request.headers.get("Authorization", "").partition(" ")[2], self.secret,
                                algorithms=["HS256"])  # fmt: skip
            ok = claims.get("payload_hash") == hashlib.sha256(body).hexdigest()
        except jwt.PyJWTError:
            ok = False
        self.received.append((request.path, ok))
        return web.Response(status=200 if ok else 401)


@dataclass(frozen=True)
class DemoResult:
    """What the demo did: each message's timeline, the listener's counters, and what reached "your app"."""

    messages: list[MessageReport]
    listener: dict[str, Any]
    app_received: int
    app_verified: int
    inbound: InboundRecord | None
    refused_after_stop: str | None = None  # why the send after the STOP was refused locally

    def to_json(self) -> dict[str, Any]:
        inbound = None
        if self.inbound is not None:
            inbound = {
                "message_uuid": self.inbound.message_uuid,
                "from": self.inbound.from_,
                "text": self.inbound.text,
            }
        return {"event": "summary", "messages": [m.to_json() for m in self.messages], "listener": self.listener,
                "app": {"received": self.app_received, "verified": self.app_verified}, "inbound": inbound,
                "refused_after_stop": self.refused_after_stop}  # fmt: skip


async def run_demo(
    view: ListenerView,
    *,
    time_scale: float = 0.5,
    bound: float = 30.0,
    on_sent: Callable[[SendResult, str], None] = lambda result, scenario: None,
) -> DemoResult:
    """Emulator, "your app" and a listener forwarding to it, on free ports: a handful of messages and
    one inbound SMS, until all are final and forwarded (or `bound`)."""
    with tempfile.TemporaryDirectory(prefix="smsctl-demo-") as tmp:
        settings = throwaway_settings(Path(tmp))
        config = config_from_settings(settings, status_url=None, time_scale=time_scale, rate=30)
        your_app = DemoApp(settings.require("VONAGE_SIGNATURE_SECRET", "for the demo"))
        async with Sandbox(config) as sandbox, _serving(your_app):
            settings = _with_api(settings, sandbox.url)
            forward = ForwardTargets(f"{your_app.url}/webhooks/status", f"{your_app.url}/webhooks/inbound")
            async with (
                Runtime(settings) as rt,
                Listener(settings, rt.writer, view.handle, port=0, forward=forward,
                         delivery=DeliveryOptions(min_backoff=time_scale, max_backoff=5 * time_scale)) as listener,
            ):  # fmt: skip
                # The emulator's application sends inbound SMS to this listener, as --update-app does.
                await point_app_at(
                    ApplicationApi(settings), rt.writer, AppUrls(listener.status_url, listener.inbound_url)
                )
                view.ready({"local_url": listener.local_url, "public_url": None, "status_url": listener.status_url,
                            "inbound_url": listener.inbound_url, "store": "temporary (deleted after the demo)",
                            "api_url": sandbox.url, "public_hint": "not needed: the emulator is local",
                            "forward_to": forward.status_url, "forward_inbound_to": forward.inbound_url},
                           listener.counters)  # fmt: skip
                uuids = await _send_all(rt, listener.status_url, on_sent, pause=0.6 * time_scale)
                lost = uuids[[m.to for m in DEMO_MESSAGES].index(LOST)]
                await _text_in(sandbox.url)
                deadline = time.monotonic() + bound
                heard = [u for u in uuids if u != lost]
                while time.monotonic() < deadline and not await _done(rt.writer, heard, listener):
                    await asyncio.sleep(0.2)
                await asyncio.sleep(0.5 * time_scale)  # let a late duplicate or straggler show
                await _reconcile(settings, rt.writer, lost, view)
                refused = await _send_after_stop(rt, listener.status_url, view)
        with contextlib.closing(open_store(settings.store)) as store:
            reports = [message_status(store, u) for u in uuids]
            inbound = next(iter(store.recent_inbound(1)), None)
    return DemoResult(reports, listener.counters.health(), len(your_app.received), your_app.verified, inbound,
                      refused)  # fmt: skip


async def _reconcile(settings: Settings, writer: StoreWriter, lost: str, view: ListenerView) -> None:
    """The message whose status webhook never came: the Reports API is asked (as `smsctl reconcile`
    would), and its status reaches the live table like any other."""
    from smsctl.messages.reconciling import ReconcileOptions, Reconciler, reports_client
    from smsctl.webhooks.server import ListenerEvent

    def shown(event: Any, applied: Any, received: float) -> None:
        view.handle(ListenerEvent("reported", received, status_event=event, applied=applied))

    async with reports_client(settings) as client:
        report = await Reconciler(writer, client, ReconcileOptions(older_than=0.0), on_applied=shown).check(
            [lost]
        )
    view.handle(ListenerEvent("reconciled", time.time(), detail=f"{lost[:8]}: its webhook never came; "
                              + report.summary()))  # fmt: skip


async def _send_after_stop(rt: Runtime, status_url: str, view: ListenerView) -> str | None:
    """The person who texted STOP is sent one more message: the opt-out ledger refuses it before any
    request (what every send does), and the demo says so."""
    from smsctl.errors import OptedOut
    from smsctl.webhooks.server import ListenerEvent

    request = SendRequest(INBOUND_FROM, "One more offer!", webhook_url=status_url)
    try:
        await send_prepared(await rt.client(), rt.writer, prepare(request, rt.settings))
    except OptedOut as exc:
        view.handle(ListenerEvent("optout_refused", time.time(), detail=exc.message))
        return exc.message
    return None


async def _done(writer: StoreWriter, uuids: list[str], listener: Listener) -> bool:
    """Every message final, the inbound SMS in, and every stored event forwarded."""
    counters = listener.counters
    stored_events = counters.accepted + counters.inbound
    return bool(counters.inbound) and counters.forwarded >= stored_events and await _all_final(writer, uuids)


@contextlib.asynccontextmanager
async def _serving(your_app: DemoApp) -> AsyncIterator[None]:
    from smsctl.webhooks.server import start_serving

    application = web.Application()
    application.router.add_post("/webhooks/status", your_app.handle)
    application.router.add_post("/webhooks/inbound", your_app.handle)
    stop = asyncio.Event()
    your_app.url, server = await start_serving(application, "127.0.0.1", 0, stop)
    try:
        yield
    finally:
        stop.set()
        await server


async def _text_in(api_url: str) -> None:
    """Someone texts STOP to the demo number: the emulator delivers it as a signed inbound webhook."""
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{api_url}/_sandbox/inbound", json={"from": INBOUND_FROM, "text": INBOUND_TEXT}
        ) as response,
    ):
        await response.read()


async def _send_all(rt: Runtime, status_url: str, on_sent: Callable[[SendResult, str], None],
                    pause: float) -> list[str]:  # fmt: skip
    uuids = []
    client = await rt.client()
    for message in DEMO_MESSAGES:
        request = SendRequest(message.to, message.text, webhook_url=status_url)
        result = await send_prepared(client, rt.writer, prepare(request, rt.settings))
        on_sent(result, SCENARIOS.get(message.to[1:], DEFAULT_SCENARIO).name)
        uuids.append(result.message_uuid)
        await asyncio.sleep(pause)  # so a person can watch each row appear
    return uuids
