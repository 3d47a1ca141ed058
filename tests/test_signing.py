"""The verifier's private PyJWT (HS256 with prepared keys reused) decides exactly as PyJWT itself."""

from __future__ import annotations

from typing import Any

import jwt as pyjwt
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from smsctl.signing import DECODE_OPTIONS, Verifier
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


def test_the_prepared_key_path_is_active() -> None:
    """If a PyJWT upgrade moved its internals, the speed-up would vanish silently: say so here."""
    decoder = Verifier([SECRET])._jwt
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
    ours = Verifier([SECRET])._jwt.decode
    assert _outcome(ours, token) == _outcome(pyjwt.decode, token)


@given(st.binary(max_size=300))
def test_random_bytes_are_rejected_by_both(raw: bytes) -> None:
    token = raw.decode("latin-1")
    assert _outcome(Verifier([SECRET])._jwt.decode, token) == _outcome(pyjwt.decode, token)
