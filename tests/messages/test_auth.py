"""Our application JWT is the token the official SDK's `vonage_jwt.JwtClient` mints, reused until renewal."""

from __future__ import annotations

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from vonage_jwt import JwtClient

from smsctl.messages.auth import JWT_LIFETIME, JWT_RENEW_BEFORE, ApplicationJwt
from tests.helpers import APPLICATION_ID


def test_token_has_the_sdk_header_and_claims(private_key_pem: bytes) -> None:
    key = load_pem_private_key(private_key_pem, password=None)
    public = key.public_key()  # type: ignore[union-attr]
    ours = ApplicationJwt(APPLICATION_ID, key).mint()  # type: ignore[arg-type]
    sdk = JwtClient(APPLICATION_ID, private_key_pem.decode()).generate_application_jwt().decode()
    assert jwt.get_unverified_header(ours) == jwt.get_unverified_header(sdk) == {"alg": "RS256", "typ": "JWT"}
    mine = jwt.decode(ours, public, algorithms=["RS256"])
    theirs = jwt.decode(sdk, public, algorithms=["RS256"])
    assert set(mine) == set(theirs) == {"application_id", "iat", "jti", "exp"}
    assert mine["application_id"] == theirs["application_id"] == APPLICATION_ID
    assert mine["exp"] - mine["iat"] == theirs["exp"] - theirs["iat"] == JWT_LIFETIME
    assert abs(mine["iat"] - theirs["iat"]) <= 2 and mine["jti"] != theirs["jti"]


def test_token_is_reused_until_a_minute_before_expiry(private_key_pem: bytes) -> None:
    now = [1_800_000_000.0]
    key = load_pem_private_key(private_key_pem, password=None)
    credentials = ApplicationJwt(APPLICATION_ID, key, clock=lambda: now[0])  # type: ignore[arg-type]
    first = credentials.authorization()
    now[0] += JWT_LIFETIME - JWT_RENEW_BEFORE - 1
    assert credentials.authorization() == first and credentials.minted == 1
    now[0] += 1
    renewed = credentials.authorization()
    assert renewed != first and credentials.minted == 2
    claims = jwt.decode(renewed.removeprefix("Bearer "), key.public_key(), algorithms=["RS256"],  # type: ignore[union-attr]
                        options={"verify_exp": False, "verify_iat": False})  # fmt: skip
    assert claims["iat"] == int(now[0])
