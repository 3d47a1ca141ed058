"""`smsctl demo`: the whole tool, offline, with throwaway credentials and nothing of the user's touched."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smsctl.config import Settings, load_settings
from smsctl.history import MessageReport, message_status
from smsctl.listening import Listener, ListenerView
from smsctl.runtime import Runtime
from smsctl.sandbox import DEFAULT_SCENARIO, SCENARIOS, Sandbox, config_from_settings
from smsctl.sending import SendRequest, SendResult, prepare, send_prepared
from smsctl.storage import open_store
from smsctl.writer import StoreWriter

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
)


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


async def run_demo(
    view: ListenerView,
    *,
    time_scale: float = 0.5,
    bound: float = 30.0,
    on_sent: Callable[[SendResult, str], None] = lambda result, scenario: None,
) -> tuple[list[MessageReport], dict[str, Any]]:
    """Emulator + listener on free ports, a handful of messages, until all are final (or `bound`).

    Returns each message's status and timeline, and the listener's counters.
    """
    with tempfile.TemporaryDirectory(prefix="smsctl-demo-") as tmp:
        settings = throwaway_settings(Path(tmp))
        config = config_from_settings(settings, status_url=None, time_scale=time_scale, rate=30)
        async with Sandbox(config) as sandbox:
            settings = _with_api(settings, sandbox.url)
            async with (
                Runtime(settings) as rt,
                Listener(settings, rt.writer, view.handle, port=0) as listener,
            ):
                view.ready({"local_url": listener.local_url, "public_url": None, "status_url": listener.status_url,
                            "inbound_url": listener.inbound_url, "store": "temporary (deleted after the demo)",
                            "api_url": sandbox.url, "public_hint": "not needed: the emulator is local"},
                           listener.counters)  # fmt: skip
                uuids = await _send_all(rt, listener.status_url, on_sent, pause=0.6 * time_scale)
                deadline = time.monotonic() + bound
                while time.monotonic() < deadline and not await _all_final(rt.writer, uuids):
                    await asyncio.sleep(0.2)
                await asyncio.sleep(0.5 * time_scale)  # let a late duplicate or straggler show
        with contextlib.closing(open_store(settings.store)) as store:
            return [message_status(store, u) for u in uuids], listener.counters.health()


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
