"""The emulator's Application API: the one application it serves, and the checks its PUT makes
(what `listen --update-app` and `smsctl app restore` use)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from smsctl.sandbox.emulator import SandboxConfig


def initial_application(config: SandboxConfig) -> dict[str, Any]:
    """The one application the emulator serves, shaped as the Application API v2 returns one."""
    from cryptography.hazmat.primitives import serialization

    app_id = config.application_id or "00000000-0000-4000-8000-000000000000"
    public_key = ""
    if config.public_key is not None:
        public_key = config.public_key.public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo).decode()  # fmt: skip
    webhooks = (
        {"status_url": {"address": config.status_url, "http_method": "POST"}} if config.status_url else {}
    )
    return {
        "id": app_id, "name": "smsctl sandbox", "keys": {"public_key": public_key},
        "capabilities": {"messages": {"version": "v1", "webhooks": webhooks},
                         "voice": {"webhooks": {"answer_url": {"address": "https://example.com/answer",
                                                               "http_method": "GET"}}}},
        "privacy": {"improve_ai": False},
        "_links": {"self": {"href": f"/v2/applications/{app_id}"}},
    }  # fmt: skip


def invalid_application(body: Any) -> list[dict[str, str]]:
    """The checks of the Application API's PUT the emulator makes: a name, and POST-only Messages webhooks."""
    if not isinstance(body, dict):
        return [{"name": "body", "reason": "must be an object"}]
    invalid = []
    if not isinstance(body.get("name"), str) or not body["name"]:
        invalid.append({"name": "name", "reason": "is required"})
    hooks = ((body.get("capabilities") or {}).get("messages") or {}).get("webhooks") or {}
    for name, value in hooks.items() if isinstance(hooks, dict) else []:
        if not isinstance(value, dict) or not absolute_http_url(value.get("address")):
            invalid.append(
                {"name": f"capabilities.messages.webhooks.{name}.address", "reason": "must be a URL"}
            )
        elif value.get("http_method", "POST") != "POST":
            invalid.append(
                {
                    "name": f"capabilities.messages.webhooks.{name}.http_method",
                    "reason": "must be one of: POST",
                }
            )
    return invalid


def absolute_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)
