"""Signed webhooks: sign them as Vonage does (for the emulator) and verify them (for the listener).

Vonage signs each webhook with an HS256 JWT in `Authorization: Bearer`, whose `payload_hash`
claim is the SHA-256 hex of the body. The SDK verifiers check only the signature; we also bind
the body, restrict the algorithm, and say exactly why a request was rejected.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import math
import re
import time
import uuid
import warnings
from dataclasses import dataclass
from typing import Any

from smsctl.codec import loads

MAX_TOKEN_BYTES = 4096
FUTURE_SKEW = 60.0  # an `iat` further ahead than this is counted as clock skew
STALE_AFTER = 300.0  # older tokens are accepted by default, but counted as stale

# reason -> HTTP status. 503 makes Vonage retry (its rare unsigned callbacks); 401 does not.
# The first four are the listener's checks of the body itself, before any token is looked at.
REJECTION_STATUS: dict[str, int] = {
    "too_large": 413,
    "compressed": 415,
    "slow_body": 408,
    "incomplete_body": 400,
    "missing_signature": 503,
    "malformed_authorization": 401,
    "token_too_large": 401,
    "malformed_token": 401,
    "bad_algorithm": 401,
    "bad_signature": 401,
    "invalid_claims": 401,
    "hash_mismatch": 401,
    "wrong_issuer": 401,
    "wrong_api_key": 401,
    "stale_token": 401,
    "expired_token": 401,
}


class Rejected(Exception):
    """A request that failed verification; `reason` is a key of REJECTION_STATUS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.status = REJECTION_STATUS[reason]


@dataclass(frozen=True)
class Verified:
    """A request whose token and body are authentic."""

    claims: dict[str, Any]
    secret_index: int  # 0 = current secret, 1 = previous (rotation)
    age: float  # seconds since `iat`; negative when `iat` is in the future
    stale: bool  # older than STALE_AFTER: authentic, accepted, and counted
    skewed: bool  # `iat` more than FUTURE_SKEW ahead of our clock


def payload_hash(body: bytes) -> str:
    """SHA-256 hex of the exact body bytes."""
    return hashlib.sha256(body).hexdigest()


def sign(
    body: bytes,
    secret: bytes | str,
    *,
    api_key: str | None = None,
    application_id: str | None = None,
    iat: int | None = None,
) -> str:
    """An HS256 token with the claims Vonage sends: iat, jti, iss, payload_hash, api_key, application_id.
    (PyJWT is imported here, not with the module: the listener, which only verifies, never loads it.)"""
    import jwt

    claims: dict[str, Any] = {
        "iat": int(time.time()) if iat is None else iat,
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "payload_hash": payload_hash(body),
    }
    if api_key:
        claims["api_key"] = api_key
    if application_id:
        claims["application_id"] = application_id
    return jwt.encode(claims, secret, algorithm="HS256")


# How every webhook token is decoded. The algorithm is never taken from the token: no `none`, no
# RS256 confusion. `iat` is checked by us (age, skew), not by PyJWT.
DECODE_OPTIONS: dict[str, Any] = {
    "algorithms": ["HS256"],
    "options": {"require": ["iat", "payload_hash"], "verify_iat": False},
    "leeway": FUTURE_SKEW,
}


def _decoder() -> Any:
    """A private PyJWT whose HS256 reuses prepared keys; PyJWT's global registry is left alone.
    PyJWT (with `cryptography`) is a fifth of a listener's imports, and well-formed HS256 tokens (all
    Vonage sends) never need it: it is imported here, when the first odd token arrives."""
    import jwt
    from jwt.algorithms import HMACAlgorithm
    from jwt.warnings import InsecureKeyLengthWarning

    class _PreparedHS256(HMACAlgorithm):
        """PyJWT's HS256, with its key check (not empty, not an asymmetric key or certificate: ~15 µs
        of PEM/DER parsing) done once per configured secret instead of once per request. Signing and
        verification are PyJWT's own; only the result of checking our own, fixed secrets is reused."""

        def __init__(self) -> None:
            super().__init__(HMACAlgorithm.SHA256)
            self._prepared: dict[bytes, bytes] = {}

        def prepare_key(self, key: str | bytes) -> bytes:
            raw = key.encode() if isinstance(key, str) else key
            prepared = self._prepared.get(raw)
            if prepared is None:
                prepared = self._prepared[raw] = super().prepare_key(raw)
            return prepared

    # `listen` warns about a short secret once at start-up; PyJWT would warn on every request.
    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning, module="jwt")
    decoder = jwt.PyJWT()
    jws = getattr(decoder, "_jws", None)  # PyJWT ≥ 2.10 gives each PyJWT its own PyJWS
    if isinstance(jws, jwt.PyJWS):
        jws.unregister_algorithm("HS256")
        jws.register_algorithm("HS256", _PreparedHS256())
    return decoder


_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
# What a token must look like for the fast path to decide it; anything else goes to PyJWT. These are
# the header Vonage sends and the claims it sets (and that PyJWT, as we call it, never rejects).
_FAST_HEADERS = frozenset({"alg", "typ"})
_FAST_CLAIMS = frozenset({"iat", "jti", "iss", "payload_hash", "api_key", "application_id"})


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# The characters that may end a canonical segment of length ≡ 2 or 3 (mod 4): their unused low bits
# are zero. Any other last character encodes the same bytes non-canonically.
_CANONICAL_LAST = {2: frozenset(_ALPHABET[::16]), 3: frozenset(_ALPHABET[::4]), 0: frozenset(_ALPHABET)}
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def _canonical_b64url(segment: str) -> bytes | None:
    """The bytes of a canonical unpadded base64url segment; None for anything else (padding, other
    characters, non-zero trailing bits), which the fast path leaves to PyJWT."""
    last = _CANONICAL_LAST.get(len(segment) % 4)
    if last is None or (segment and segment[-1] not in last) or not _BASE64URL.fullmatch(segment):
        return None
    padded = (segment + "=" * (-len(segment) % 4)).encode().translate(_TO_STANDARD)
    return binascii.a2b_base64(padded, strict_mode=True)


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = loads(raw)  # json.loads's answer, as PyJWT's own decoding gives
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class FastHS256:
    """A strict HS256 check for the tokens Vonage sends, with PyJWT as the reference for all others.

    It decides only a token whose three segments are canonical base64url, whose header is exactly
    `alg: HS256` (and `typ: JWT`), and whose claims are the ones Vonage sets, with a string `jti`.
    For those PyJWT (`algorithms=["HS256"]`, our options) does nothing but compare the same HMAC-SHA256
    over the same signing input, so deciding them here gives the same answer without PyJWT's
    per-character base64 checks and per-call key preparation (~40 µs a token). Every other token —
    `kid`, `crit`, `exp`, padding, anything odd — returns None and goes to PyJWT. A Hypothesis
    differential test holds this to PyJWT: what it accepts PyJWT accepts, with the same claims; what
    it rejects PyJWT rejects.
    """

    def __init__(self, secrets: list[bytes]) -> None:
        self._macs = [hmac.new(secret, digestmod=hashlib.sha256) for secret in secrets]
        self._headers: dict[str, bool] = {}  # header segment → whether the fast path may decide it

    def _fast_header(self, segment: str) -> bool:
        """Whether this header is one the fast path decides. Vonage sends one header for every
        token, so the answer is remembered (for a few distinct segments: anyone can send others)."""
        known = self._headers.get(segment)
        if known is None:
            raw = _canonical_b64url(segment)
            header = _json_object(raw) if raw is not None else None
            known = (header is not None and header.keys() <= _FAST_HEADERS and header.get("alg") == "HS256"
                     and header.get("typ", "JWT") == "JWT")  # fmt: skip
            if len(self._headers) < 16:
                self._headers[segment] = known
        return known

    def decode(self, token: str) -> tuple[dict[str, Any], int] | None:
        """(claims, index of the secret that signed it); None when PyJWT must decide; Rejected
        (`bad_signature`) when no secret signed it."""
        header_b64, payload_b64, signature_b64 = token.split(".")
        if not self._fast_header(header_b64):
            return None
        payload_raw = _canonical_b64url(payload_b64)
        signature = _canonical_b64url(signature_b64)
        if payload_raw is None or signature is None:
            return None
        claims = _json_object(payload_raw)
        if claims is None or not claims.keys() <= _FAST_CLAIMS or not isinstance(claims.get("jti", ""), str):
            return None
        if claims.get("iat") is None or claims.get("payload_hash") is None:  # PyJWT names what is missing
            return None  # (to PyJWT a claim that is null is missing too)
        signing_input = f"{header_b64}.{payload_b64}".encode()
        for index, prepared in enumerate(self._macs):
            mac = prepared.copy()
            mac.update(signing_input)
            if hmac.compare_digest(mac.digest(), signature):
                return claims, index
        raise Rejected("bad_signature", "signature does not match the signature secret(s)")


def _finite(number: float) -> bool:
    """False for NaN, ±Infinity (JSON parsers accept them) and integers no float can hold (10**400)."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


class Verifier:
    """Checks `Authorization` and body, in order, and raises Rejected with the first failure."""

    def __init__(
        self,
        secrets: list[bytes],
        *,
        api_key: str | None = None,
        max_token_age: float | None = None,
    ) -> None:
        if not secrets or not all(secrets):
            raise ValueError("at least one non-empty signature secret is required")
        self.secrets = secrets
        self._fast = FastHS256(secrets)
        self._jwt: Any = None  # PyJWT, loaded for the first token the fast path cannot decide
        self.api_key = api_key
        self.max_token_age = max_token_age

    def verify(self, authorization: list[str], body: bytes, now: float | None = None) -> Verified:
        """Verify a request given all its `Authorization` header values and its raw body."""
        token = self._bearer_token(authorization)
        claims, index = self._decode(token)
        self._check_claims(claims, body)
        age = (time.time() if now is None else now) - float(claims["iat"])
        if self.max_token_age is not None and age > self.max_token_age:
            raise Rejected("stale_token", f"token issued {age:.0f} s ago (--max-token-age)")
        return Verified(claims, index, age, stale=age > STALE_AFTER, skewed=age < -FUTURE_SKEW)

    @staticmethod
    def _bearer_token(authorization: list[str]) -> str:
        if not authorization:
            raise Rejected("missing_signature", "no Authorization header (unsigned callback)")
        if len(authorization) > 1:
            raise Rejected("malformed_authorization", "more than one Authorization header")
        scheme, _, token = authorization[0].strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Rejected("malformed_authorization", "Authorization is not `Bearer <token>`")
        if len(token) > MAX_TOKEN_BYTES:
            raise Rejected("token_too_large", f"token is over {MAX_TOKEN_BYTES} bytes")
        if token.count(".") != 2 or not token.isascii():
            raise Rejected("malformed_token", "token is not three base64url segments")
        return token

    def _decode(self, token: str) -> tuple[dict[str, Any], int]:
        decided = self._fast.decode(token)
        if decided is not None:
            return decided
        import jwt

        if self._jwt is None:
            self._jwt = _decoder()
        for index, secret in enumerate(self.secrets):
            try:
                claims = self._jwt.decode(token, secret, **DECODE_OPTIONS)
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                raise Rejected("expired_token", "the token's `exp` has passed") from None
            except jwt.InvalidAlgorithmError:
                raise Rejected("bad_algorithm", "token is not signed with HS256") from None
            except jwt.MissingRequiredClaimError as exc:
                raise Rejected("invalid_claims", str(exc)) from None
            except jwt.PyJWTError as exc:
                raise Rejected("malformed_token", str(exc)) from None
            return claims, index
        raise Rejected("bad_signature", "signature does not match the signature secret(s)")

    def _check_claims(self, claims: dict[str, Any], body: bytes) -> None:
        iat = claims["iat"]
        if isinstance(iat, bool) or not isinstance(iat, int | float) or not _finite(iat):
            raise Rejected("invalid_claims", "`iat` is not a usable number")
        claimed = claims["payload_hash"]
        if not isinstance(claimed, str) or not claimed.isascii():
            raise Rejected("invalid_claims", "`payload_hash` is not a hex string")
        if not hmac.compare_digest(claimed.lower(), payload_hash(body)):
            raise Rejected("hash_mismatch", "body does not match the token's payload_hash")
        if "iss" in claims and claims["iss"] != "Vonage":
            raise Rejected("wrong_issuer", f"`iss` is {str(claims['iss'])[:40]!r}, not 'Vonage'")
        if self.api_key and "api_key" in claims and claims["api_key"] != self.api_key:
            raise Rejected("wrong_api_key", "token's api_key is not VONAGE_API_KEY")
