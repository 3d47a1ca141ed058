"""The verifier's private PyJWT (HS256 with prepared keys reused) decides exactly as PyJWT itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from typing import Any

import jwt as pyjwt
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from smsctl.webhooks.signing import DECODE_OPTIONS, FastHS256, Rejected, _decoder
from tests.helpers import SIGNATURE_SECRET

SECRET = SIGNATURE_SECRET.encode()
OTHER = b"another-signature-secret-0123456789"
VALUES = st.one_of(
    st.integers(-(10**12), 10**12), st.text(max_size=20), st.floats(allow_nan=False), st.none()
)
CLAIMS = st.dictionaries(
    st.sampled_from(["iat", "payload_hash", "exp", "nbf", "iss", "api_key", "x"]), VALUES
)


def _outcome(decode: Any, token: str) -> Any:
    try:
        return ("ok", decode(token, SECRET, **DECODE_OPTIONS))
    except pyjwt.PyJWTError as exc:
        return ("rejected", type(exc).__name__)


@pytest.mark.integration
def test_a_listener_loads_pyjwt_only_for_a_token_the_fast_path_cannot_decide() -> None:
    """PyJWT (and `cryptography` under it) is a fifth of a listener's start-up: a fresh process that
    verifies a well-formed token never imports it; an HS512 one does, and is still refused."""
    import subprocess
    import sys

    script = f"""
import base64, hashlib, hmac, json, sys, time
from smsctl.webhooks import listening
from smsctl.webhooks.signing import Rejected, Verifier, payload_hash

def token(body, alg, digest):
    part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    head = part({{"alg": alg, "typ": "JWT"}}) + "." + part({{"iat": int(time.time()), "payload_hash": payload_hash(body)}})
    mac = hmac.new({SECRET!r}, head.encode(), digest).digest()
    return "Bearer " + head + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

body = b'{{"status": "delivered"}}'
verifier = Verifier([{SECRET!r}])
verifier.verify([token(body, "HS256", hashlib.sha256)], body)
assert "jwt" not in sys.modules, "a well-formed token loaded PyJWT"
try:
    verifier.verify([token(body, "HS512", hashlib.sha512)], body)
    raise AssertionError("an HS512 token was accepted")
except Rejected as exc:
    assert exc.reason == "bad_algorithm", exc.reason
assert "jwt" in sys.modules
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_prepared_key_path_is_active() -> None:
    """If a PyJWT upgrade moved its internals, the speed-up would vanish silently: say so here."""
    decoder = _decoder()
    assert type(decoder._jws.get_algorithm_by_name("HS256")).__name__ == "_PreparedHS256"
    assert type(pyjwt.api_jws._jws_global_obj.get_algorithm_by_name("HS256")).__name__ == "HMACAlgorithm"


@settings(max_examples=400, deadline=None)
@given(CLAIMS, st.sampled_from([SECRET, OTHER]), st.sampled_from(["HS256", "HS384", "HS512"]),
       st.integers(0, 400), st.characters(min_codepoint=32, max_codepoint=126))  # fmt: skip
def test_decides_exactly_as_pyjwt(claims: dict[str, Any], secret: bytes, algorithm: str, position: int,
                                  replacement: str) -> None:  # fmt: skip
    try:
        token = pyjwt.encode(claims, secret, algorithm=algorithm)
    except TypeError:  # PyJWT refuses to encode some claim types (an `iss` that is not a string)
        assume(False)
    if position:  # a one-character mutation anywhere: header, payload or signature
        index = position % len(token)
        token = token[:index] + replacement + token[index + 1 :]
    ours = _decoder().decode
    assert _outcome(ours, token) == _outcome(pyjwt.decode, token)


@given(st.binary(max_size=300))
def test_random_bytes_are_rejected_by_both(raw: bytes) -> None:
    token = raw.decode("latin-1")
    assert _outcome(_decoder().decode, token) == _outcome(pyjwt.decode, token)


# --- the fast HS256 path, held to PyJWT ---------------------------------------------------------------

PREVIOUS = b"previous-signature-secret-0123456789"
FAST = FastHS256([SECRET, PREVIOUS])


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _reference(token: str) -> Any:
    """What PyJWT decides, as the verifier calls it: ("ok", claims, secret index) or ("rejected",)."""
    for index, secret in enumerate((SECRET, PREVIOUS)):
        try:
            return ("ok", pyjwt.decode(token, secret, **DECODE_OPTIONS), index)
        except pyjwt.InvalidSignatureError:
            continue
        except pyjwt.PyJWTError:
            return ("rejected",)
    return ("rejected",)


def _fast(token: str) -> Any:
    try:
        decided = FAST.decode(token)
    except Rejected:
        return ("rejected",)
    return None if decided is None else ("ok", *decided)


def assert_agrees(token: str) -> None:
    """The fast path decides only what PyJWT decides the same way; it may leave anything to PyJWT."""
    fast = _fast(token)
    if fast is not None:
        assert fast == _reference(token), token


HEADERS = st.fixed_dictionaries(
    {"alg": st.sampled_from(["HS256", "HS256", "HS512", "none", "None", "RS256", "hs256"])},
    optional={"typ": st.sampled_from(["JWT", "jwt", "JOSE", 1]), "kid": st.text(max_size=5),
              "crit": st.lists(st.text(max_size=5), max_size=2), "jku": st.just("https://x")},
)  # fmt: skip
FAST_CLAIMS = st.dictionaries(
    st.sampled_from(["iat", "payload_hash", "jti", "iss", "api_key", "application_id", "exp", "nbf", "aud", "sub"]),
    st.one_of(st.integers(-(10**12), 10**12), st.text(max_size=12), st.floats(allow_nan=False), st.none(),
              st.booleans(), st.lists(st.integers(), max_size=2)),
)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(HEADERS, FAST_CLAIMS, st.sampled_from([SECRET, PREVIOUS, OTHER]), st.integers(0, 600),
       st.characters(min_codepoint=32, max_codepoint=126))  # fmt: skip
def test_the_fast_path_agrees_with_pyjwt_on_signed_and_mutated_tokens(
    header: dict[str, Any], claims: dict[str, Any], secret: bytes, position: int, replacement: str
) -> None:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = _b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
    token = f"{signing_input}.{signature}"
    if position:
        index = position % len(token)
        token = token[:index] + replacement + token[index + 1 :]
    assume(token.count(".") == 2)  # the verifier refuses other shapes before any decoding
    assert_agrees(token)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.binary(max_size=200), st.sampled_from([SECRET, PREVIOUS, OTHER]),
       st.sampled_from(["", "=", "==", " "]))  # fmt: skip
def test_the_fast_path_agrees_with_pyjwt_on_arbitrary_segments(
    header: bytes, payload: bytes, secret: bytes, padding: str
) -> None:
    signing_input = f"{_b64(header)}.{_b64(payload)}"
    signature = _b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()) + padding
    assert_agrees(f"{signing_input}.{signature}")


VALID = {"iat": 1_700_000_000, "jti": "j", "iss": "Vonage", "payload_hash": "ab", "api_key": "k"}


def _token(header: bytes, payload: bytes, secret: bytes = SECRET, pad: str = "") -> str:
    signing_input = f"{_b64(header)}{pad}.{_b64(payload)}"
    return f"{signing_input}.{_b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


@pytest.mark.parametrize(
    ("token", "fast"),
    [
        (_token(b'{"alg":"HS256","typ":"JWT"}', json.dumps(VALID).encode()), "ok"),
        (_token(b'{"alg":"HS256"}', json.dumps(VALID).encode(), PREVIOUS), "ok"),
        (_token(b'{"alg":"HS256","typ":"JWT"}', json.dumps(VALID).encode(), OTHER), "rejected"),
        (_token(b'{"alg":"none"}', json.dumps(VALID).encode()), None),
        (_token(b'{"alg":"None"}', json.dumps(VALID).encode()), None),
        (_token(b'{"alg":"HS512"}', json.dumps(VALID).encode()), None),
        (_token(b'{"alg":"RS256"}', json.dumps(VALID).encode()), None),
        (_token(b'{"typ":"JWT"}', json.dumps(VALID).encode()), None),  # no alg
        (_token(b'{"alg":"HS256","kid":"k1"}', json.dumps(VALID).encode()), None),  # a kid: PyJWT decides
        (_token(b'{"alg":"HS256","jku":"https://x"}', json.dumps(VALID).encode()), None),
        (_token(b'{"alg":"HS256","crit":["exp"]}', json.dumps(VALID).encode()), None),
        (_token(b'{"alg":"HS256"}', json.dumps(VALID).encode(), pad="="), None),  # padding
        (_token(b' {"alg" : "HS256"} ', json.dumps(VALID, indent=2).encode()), "ok"),  # whitespace in JSON
        (
            _token(b'{"alg":"HS512","alg":"HS256"}', json.dumps(VALID).encode()),
            "ok",
        ),  # duplicate keys: last wins
        (_token(b'{"alg":"HS256"}', b'["iat", 1]'), None),  # not an object
        (_token(b'{"alg":"HS256"}', b"17"), None),
        (_token(b'{"alg":"HS256"}', json.dumps({**VALID, "exp": 1}).encode()), None),  # exp: PyJWT decides
        (_token(b'{"alg":"HS256"}', json.dumps({**VALID, "jti": 5}).encode()), None),
        (_token(b'{"alg":"HS256"}', json.dumps({"iat": 1}).encode()), None),  # no payload_hash
        (_token(b'{"alg":"HS256"}', json.dumps({**VALID, "iat": None}).encode()), None),  # null is missing
        (_token(b'{"alg":"HS256"}', json.dumps({**VALID, "payload_hash": None}).encode()), None),
        (_token(b'{"alg":"HS256"}', json.dumps({**VALID, "iat": math.nan}).encode()), "ok"),  # NaN literal
        (_token(b'{"alg":"HS256"}', json.dumps(VALID).replace("1700000000", "1e400").encode()), "ok"),
        (_token(b'{"alg":"HS256"}', json.dumps({**VALID, "iat": 10**30}).encode()), "ok"),  # exact int
        (
            _token(b'{"alg":"HS256"}', json.dumps({**VALID, "jti": "\ud800"}, ensure_ascii=True).encode()),
            "ok",
        ),
        (_token(b'{"alg":"HS256"}', json.dumps({**VALID, "api_key": "x" * 3000}).encode()), "ok"),  # huge
        (
            _token(b'{"alg":"HS256"}', json.dumps({**VALID, "iss": "Vönage"}, ensure_ascii=False).encode()),
            "ok",
        ),
    ],
)
def test_named_cases(token: str, fast: str | None) -> None:
    decided = _fast(token)
    assert (decided[0] if decided else None) == fast
    assert_agrees(token)


def test_a_non_canonical_signature_is_left_to_pyjwt() -> None:
    token = _token(b'{"alg":"HS256"}', json.dumps(VALID).encode())
    head, _, signature = token.rpartition(".")
    last = signature[-1]
    tweaked = signature[:-1] + _B64_SIBLING[last]  # same bytes, other trailing bits
    assert _fast(f"{head}.{tweaked}") is None
    assert_agrees(f"{head}.{tweaked}")


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# A 43-character HS256 signature's last character carries 4 bits of data and 2 unused ones.
_B64_SIBLING = {c: _ALPHABET[(_ALPHABET.index(c) & ~3) | ((_ALPHABET.index(c) + 1) & 3)] for c in _ALPHABET}
