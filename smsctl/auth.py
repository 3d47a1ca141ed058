"""Credentials for the Messages API: an application JWT minted once and reused, or Basic auth."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from smsctl.config import Settings, load_private_key
from smsctl.errors import ConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

JWT_LIFETIME = 15 * 60  # vonage_jwt's default `exp`
JWT_RENEW_BEFORE = 60  # renew this long before expiry so a token never expires in flight


class Credentials(Protocol):
    """Something that yields an `Authorization` header value."""

    def authorization(self) -> str: ...


@dataclass
class BasicCredentials:
    """API key and secret, for accounts that do not use an application."""

    api_key: str
    api_secret: str

    def authorization(self) -> str:
        raw = f"{self.api_key}:{self.api_secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()


class ApplicationJwt:
    """An RS256 application JWT, minted with `vonage_jwt` and reused until shortly before expiry.

    The SDK's default path mints (and re-parses the RSA key) for every request, about 50 ms of
    CPU each; here the key is parsed once by `load_private_key` and a token serves ~14 minutes.
    """

    def __init__(self, application_id: str, private_key: RSAPrivateKey) -> None:
        from vonage_jwt import JwtClient  # lazily: only the send path needs it

        self._client = JwtClient(application_id, private_key)
        self._token = ""
        self._renew_at = 0.0
        self.minted = 0

    def authorization(self) -> str:
        now = time.time()
        if now >= self._renew_at:
            self._token = self._client.generate_application_jwt().decode()
            self._renew_at = now + JWT_LIFETIME - JWT_RENEW_BEFORE
            self.minted += 1
        return "Bearer " + self._token


def credentials_from(settings: Settings) -> Credentials:
    """Pick JWT auth when an application is configured, else Basic; say what is missing otherwise."""
    application_id = settings.get("VONAGE_APPLICATION_ID")
    key = load_private_key(settings)
    if application_id and key is not None:
        return ApplicationJwt(application_id, key)
    if application_id:
        raise ConfigError(
            "VONAGE_APPLICATION_ID is set but there is no private key",
            hint="set VONAGE_PRIVATE_KEY_PATH to the application's private.key (or VONAGE_PRIVATE_KEY)",
        )
    if key is not None:
        raise ConfigError(
            "a private key is configured but VONAGE_APPLICATION_ID is not",
            hint="set VONAGE_APPLICATION_ID to the ID of the application that key belongs to",
        )
    api_key, api_secret = settings.get("VONAGE_API_KEY"), settings.get("VONAGE_API_SECRET")
    if api_key and api_secret:
        return BasicCredentials(api_key, api_secret)
    raise ConfigError(
        "no credentials: set an application (VONAGE_APPLICATION_ID + VONAGE_PRIVATE_KEY_PATH) "
        "or VONAGE_API_KEY + VONAGE_API_SECRET",
        hint="copy .env.example to .env and fill it in; `smsctl config` shows what is set",
    )
