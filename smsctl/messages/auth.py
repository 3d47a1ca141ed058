"""Credentials for the Messages API: an application JWT minted once and reused, or Basic auth."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
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
    """An RS256 application JWT, minted as `vonage_jwt.JwtClient` mints it, and reused until shortly
    before it expires.

    Minted with PyJWT directly: `vonage_jwt` does the same `jwt.encode` call, but importing it loads
    pydantic through `vonage_utils` (~110 ms on every send). tests/test_auth.py holds the two tokens
    to each other. The SDK's default path also re-parses the RSA key for every request (~50 ms of
    CPU); here `load_private_key` parses it once and a token serves ~14 minutes.
    """

    def __init__(
        self, application_id: str, private_key: RSAPrivateKey, clock: Callable[[], float] = time.time
    ) -> None:
        self.application_id = application_id
        self._key = private_key
        self._clock = clock
        self._token = ""
        self._renew_at = 0.0
        self.minted = 0

    def mint(self) -> str:
        """A fresh token with the SDK's claims and header."""
        import jwt

        iat = int(self._clock())
        claims = {"application_id": self.application_id, "iat": iat, "jti": str(uuid.uuid4()),
                  "exp": iat + JWT_LIFETIME}  # fmt: skip
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"alg": "RS256", "typ": "JWT"})

    def authorization(self) -> str:
        now = self._clock()
        if now >= self._renew_at:
            self._token = self.mint()
            self._renew_at = now + JWT_LIFETIME - JWT_RENEW_BEFORE
            self.minted += 1
        return "Bearer " + self._token


def credentials_from(settings: Settings) -> Credentials:
    """JWT auth when an application is configured, else Basic; a ConfigError naming every missing or
    unusable setting at once otherwise."""
    if settings.application_id:
        key = load_private_key(settings)  # ConfigError when the key cannot be read or used
        if key is None:
            raise settings_error(["VONAGE_APPLICATION_ID is set but there is no private key: set "
                                  "VONAGE_PRIVATE_KEY_PATH to the application's private.key (or VONAGE_PRIVATE_KEY)"])  # fmt: skip
        return ApplicationJwt(settings.application_id, key)
    api_key, api_secret = settings.api_key, settings.api_secret
    if api_key and api_secret:  # a key path left from .env.example means nothing without an application ID
        return BasicCredentials(api_key, api_secret)
    raise settings_error(credential_problems(settings))


def credential_problems(settings: Settings) -> list[str]:
    """What stops smsctl from authenticating to the Messages API, every item at once (empty: nothing).
    A private key is needed only with an application ID."""
    if settings.application_id:
        try:
            if load_private_key(settings) is None:
                return ["VONAGE_APPLICATION_ID is set but there is no private key: set VONAGE_PRIVATE_KEY_PATH "
                        "to the application's private.key (or VONAGE_PRIVATE_KEY)"]  # fmt: skip
        except ConfigError as exc:
            return [exc.message]
        return []
    if settings.api_key and settings.api_secret:
        return []
    missing = [name for name, value in (("VONAGE_API_KEY", settings.api_key),
                                        ("VONAGE_API_SECRET", settings.api_secret)) if not value]  # fmt: skip
    return [f"no credentials: set {' and '.join(missing)} (Basic auth), or VONAGE_APPLICATION_ID with "
            "VONAGE_PRIVATE_KEY_PATH (an application)"]  # fmt: skip


def settings_error(problems: list[str]) -> ConfigError:
    """One ConfigError that lists every problem found."""
    if len(problems) == 1:
        message = problems[0]
    else:
        message = f"{len(problems)} settings are missing or unusable:\n" + "\n".join(
            f"  - {p}" for p in problems
        )
    return ConfigError(
        message,
        hint="set them in the environment or .env (`smsctl init` writes one); `smsctl config` shows what is set",
    )
