"""`smsctl listen --update-app`: point the Vonage application's Messages webhooks at this listener,
and put the previous URLs back on exit.

Application API v2 (`../shared/vonage/application-api.md`): `GET` then `PUT /v2/applications/{id}`
with Basic auth (API key and secret). A PUT replaces the application's settings, so the whole
application as read is sent back with only the two URLs changed; `id` and `_links` (read-only) are
left out of the body. Errors are shown as the Messages API's are: 4xx exit 4, 5xx or no answer exit 5.
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from typing import Any

from smsctl.config import Settings
from smsctl.errors import ApiRefused, ApiUnavailable, ConfigError

READ_ONLY = ("id", "_links")
HINTS = {
    401: "the Application API takes the account's API key and secret (VONAGE_API_KEY, VONAGE_API_SECRET)",
    404: "check VONAGE_APPLICATION_ID: no application with that ID in this account",
}


@dataclass(frozen=True)
class Webhooks:
    """An application's Messages webhook URLs (None: not set)."""

    status_url: str | None
    inbound_url: str | None

    def to_json(self) -> dict[str, str | None]:
        return {"status_url": self.status_url, "inbound_url": self.inbound_url}


def webhooks_of(application: dict[str, Any]) -> Webhooks:
    hooks = (application.get("capabilities") or {}).get("messages", {}).get("webhooks", {}) or {}

    def address(name: str) -> str | None:
        value = hooks.get(name)
        return str(value["address"]) if isinstance(value, dict) and value.get("address") else None

    return Webhooks(address("status_url"), address("inbound_url"))


def with_webhooks(application: dict[str, Any], webhooks: Webhooks) -> dict[str, Any]:
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

    def __init__(self, settings: Settings) -> None:
        key, secret = settings.api_key, settings.api_secret
        if not key or not secret:
            raise ConfigError(
                "--update-app needs VONAGE_API_KEY and VONAGE_API_SECRET: the Application API takes Basic auth",
                hint="add both to .env (Vonage dashboard → API settings)",
            )
        self.application_id = settings.require("VONAGE_APPLICATION_ID", "for --update-app")
        self.url = f"{settings.api_url}/v2/applications/{self.application_id}"
        self._auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
        self._timeout = settings.http_timeout

    async def get(self) -> dict[str, Any]:
        return await self._call("GET", None)

    async def put(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("PUT", body)

    async def _call(self, method: str, body: dict[str, Any] | None) -> dict[str, Any]:
        import aiohttp

        from smsctl.client import _problem

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
            raise ApiRefused(_problem(status, raw), hint=HINTS.get(status))
        if status != 200:
            raise ApiUnavailable(f"the Application API failed: {_problem(status, raw).describe()}")
        try:
            answer = json.loads(raw)
        except ValueError:
            raise ApiUnavailable("the Application API answered something that is not JSON") from None
        if not isinstance(answer, dict):
            raise ApiUnavailable("the Application API answered something that is not an application")
        return answer


@dataclass(frozen=True)
class AppChange:
    """What `--update-app` did: the application, its previous URLs and the listener's."""

    application_id: str
    previous: Webhooks
    current: Webhooks

    def to_json(self) -> dict[str, Any]:
        return {"application_id": self.application_id, "previous": self.previous.to_json(),
                "current": self.current.to_json()}  # fmt: skip


async def point_app_at(api: ApplicationApi, webhooks: Webhooks) -> AppChange:
    """Set the application's Messages webhooks to `webhooks`; the change, with the URLs it replaced."""
    application = await api.get()
    previous = webhooks_of(application)
    await api.put(with_webhooks(application, webhooks))
    return AppChange(api.application_id, previous, webhooks)


async def restore_app(api: ApplicationApi, change: AppChange) -> bool:
    """Put the previous URLs back, unless someone changed them meanwhile (then theirs stay): True
    when restored."""
    application = await api.get()
    if webhooks_of(application) != change.current:
        return False
    await api.put(with_webhooks(application, change.previous))
    return True
