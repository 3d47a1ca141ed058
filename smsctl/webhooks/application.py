"""`smsctl listen --update-app`: point the Vonage application's Messages webhooks at this listener,
and put the application's own URLs back on exit (or hand it to another running listener).

The application's own URLs are kept in the store, per application, before they are first replaced, so a
listener killed with -9 (or a lost SSH session) loses nothing: `smsctl app restore` puts them back.

Application API v2 (`../shared/vonage/application-api.md`): `GET` then `PUT /v2/applications/{id}`
with Basic auth (API key and secret). A PUT replaces the application's settings, so the whole
application as read is sent back with only the two URLs changed; `id` and `_links` (read-only) are
left out of the body. Errors are shown as the Messages API's are: 4xx exit 4, 5xx or no answer exit 5.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from smsctl.codec import json_object
from smsctl.config import Settings
from smsctl.errors import ApiRefused, ApiUnavailable, ConfigError, Problem
from smsctl.history.interface import AppUrls

if TYPE_CHECKING:
    from collections.abc import Callable

    from smsctl.history.interface import HistoryStore, ListenerRecord
    from smsctl.history.writer import StoreWriter

READ_ONLY = ("id", "_links")
HINTS = {
    401: "the Application API takes the account's API key and secret (VONAGE_API_KEY, VONAGE_API_SECRET)",
    404: "check VONAGE_APPLICATION_ID: no application with that ID in this account",
}


Webhooks = AppUrls  # an application's Messages webhook URLs (None: not set)


def webhooks_of(application: dict[str, Any]) -> AppUrls:
    hooks = (application.get("capabilities") or {}).get("messages", {}).get("webhooks", {}) or {}

    def address(name: str) -> str | None:
        value = hooks.get(name)
        return str(value["address"]) if isinstance(value, dict) and value.get("address") else None

    return AppUrls(address("status_url"), address("inbound_url"))


def with_webhooks(application: dict[str, Any], webhooks: AppUrls) -> dict[str, Any]:
    """The PUT body: everything as read, but these Messages webhook URLs (POST, the only method)."""
    body = {k: copy.deepcopy(v) for k, v in application.items() if k not in READ_ONLY}
    messages = body.setdefault("capabilities", {}).setdefault("messages", {})
    hooks = messages.setdefault("webhooks", {})
    for name, url in (("status_url", webhooks.status_url), ("inbound_url", webhooks.inbound_url)):
        if url:
            hooks[name] = {"address": url, "http_method": "POST"}
        else:
            hooks.pop(name, None)
    return body


class ApplicationApi:
    """GET and PUT one application, with Basic auth; ConfigError without the credentials."""

    def __init__(self, settings: Settings, purpose: str = "for --update-app") -> None:
        key, secret = settings.api_key, settings.api_secret
        if not key or not secret:
            raise ConfigError(
                f"{purpose.removeprefix('for ')} needs VONAGE_API_KEY and VONAGE_API_SECRET: the Application "
                "API takes Basic auth",
                hint="add both to .env (Vonage dashboard → API settings)",
            )
        self.application_id = settings.require("VONAGE_APPLICATION_ID", purpose)
        self.url = f"{settings.api_url}/v2/applications/{self.application_id}"
        self._auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
        self._timeout = settings.http_timeout

    async def get(self) -> dict[str, Any]:
        return await self._call("GET", None)

    async def put(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("PUT", body)

    async def _call(self, method: str, body: dict[str, Any] | None) -> dict[str, Any]:
        import aiohttp

        headers = {"Authorization": self._auth, "Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout)) as session,
                session.request(method, self.url, data=data, headers=headers) as response,
            ):
                status, raw = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiUnavailable(
                f"the Application API could not be reached: {exc or type(exc).__name__}"
            ) from None
        if 400 <= status < 500:
            raise ApiRefused(Problem.from_response(status, raw), hint=HINTS.get(status))
        if status != 200:
            raise ApiUnavailable(
                f"the Application API failed: {Problem.from_response(status, raw).describe()}"
            )
        return json_object(raw, "Application API")


@dataclass(frozen=True)
class AppChange:
    """What `--update-app` did: the application, its own URLs (kept in the store) and the listener's."""

    application_id: str
    previous: AppUrls
    current: AppUrls

    def to_json(self) -> dict[str, Any]:
        return {"application_id": self.application_id, "previous": self.previous.to_json(),
                "current": self.current.to_json()}  # fmt: skip


class Restored(StrEnum):
    """How `--update-app`'s exit (or `smsctl app restore`) left the application."""

    RESTORED = "restored"  # its own URLs are back
    HANDED_ON = "handed_on"  # another running --update-app listener on this store has it now
    CHANGED = "changed"  # someone set other URLs meanwhile: left as they are


@dataclass(frozen=True)
class Restore:
    outcome: Restored
    urls: AppUrls  # what the application points at now

    def describe(self) -> str:
        if self.outcome is Restored.CHANGED:
            return "changed meanwhile by someone else: left as they are"
        if self.outcome is Restored.HANDED_ON:
            return f"handed on to the listener still running at {self.urls.status_url}"
        return "restored"

    def to_json(self) -> dict[str, Any]:
        return {"outcome": str(self.outcome), "urls": self.urls.to_json()}


async def point_app_at(api: ApplicationApi, writer: StoreWriter, webhooks: AppUrls) -> AppChange:
    """Set the application's Messages webhooks to `webhooks`, after keeping the URLs it had in the
    store (unless an smsctl listener had set them: a dead listener's URL is never kept as its own)."""
    application = await api.get()
    found = webhooks_of(application)
    now = time.time()
    own = await writer.run(lambda s: s.remember_app_urls(api.application_id, found, webhooks, now))
    await api.put(with_webhooks(application, webhooks))
    return AppChange(api.application_id, own or AppUrls(None, None), webhooks)


async def restore_app(api: ApplicationApi, writer: StoreWriter, change: AppChange,
                      alive: Callable[[ListenerRecord], bool]) -> Restore:  # fmt: skip
    """On a listener's exit: unless someone changed the URLs meanwhile, hand the application to
    another running `--update-app` listener of this store (one that `alive` says is there), or else
    put its own URLs back."""
    application = await api.get()
    if webhooks_of(application) != change.current:
        return Restore(Restored.CHANGED, webhooks_of(application))
    own, candidates = await writer.run(lambda s: _own_and_candidates(s, api.application_id, change.current))
    successor = next((urls for listener, urls in candidates if alive(listener)), None)
    if successor is not None:
        await api.put(with_webhooks(application, successor))
        return Restore(Restored.HANDED_ON, successor)
    urls = own or change.previous
    await api.put(with_webhooks(application, urls))
    return Restore(Restored.RESTORED, urls)


def _own_and_candidates(
    store: HistoryStore, application_id: str, mine: AppUrls
) -> tuple[AppUrls | None, list[tuple[ListenerRecord, AppUrls]]]:
    """The application's own URLs as kept, and the registered listeners (not this one, newest first)
    that pointed it at themselves before: those it may be handed to."""
    from smsctl.webhooks.server import INBOUND_PATH, STATUS_PATH

    own, set_by_smsctl = store.app_urls(application_id)
    candidates = []
    for listener in sorted(store.fresh_listeners(), key=lambda r: -r.started_at):
        status_url = f"{listener.public_url}{STATUS_PATH}"
        if listener.public_url and status_url in set_by_smsctl and status_url != mine.status_url:
            candidates.append((listener, AppUrls(status_url, f"{listener.public_url}{INBOUND_PATH}")))
    return own, candidates


async def restore_saved(settings: Settings) -> Restore:
    """`smsctl app restore`: put the application's own URLs, as kept in the store, back by hand (after
    a listener was killed, say). ConfigError when the store kept none for this application."""
    from smsctl.history.backends import open_reader

    api = ApplicationApi(settings, purpose="for `smsctl app restore`")
    store = open_reader(settings.store)
    own = None
    if store is not None:
        try:
            own = store.app_urls(api.application_id)[0]
        finally:
            store.close()
    if own is None:
        raise ConfigError(
            f"this store kept no webhook URLs of application {api.application_id}",
            hint="they are kept when `smsctl listen --update-app` first replaces them; set them in the "
            "Vonage dashboard (Applications → your application → Messages)",
        )
    application = await api.get()
    await api.put(with_webhooks(application, own))
    return Restore(Restored.RESTORED, own)
