"""codec.loads is json.loads, faster: the same value or the same error, for any input (Hypothesis)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsctl.codec import json_line, loads

# Strings with lone surrogates, huge integers, every float (NaN and ±Infinity included).
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec=None))
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN, -0.0 apart from 0.0, and 1 apart from 1.0 and True."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def outcome(fn: Any, raw: bytes | str) -> tuple[str, Any]:
    try:
        return "value", fn(raw)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError: both ValueErrors
        return "error", str(exc)
    except RecursionError:
        return "error", "recursion"


def assert_same_outcome(raw: bytes | str) -> None:
    ours, reference = outcome(loads, raw), outcome(json.loads, raw)
    assert ours[0] == reference[0], (raw, ours, reference)
    if ours[0] == "value":
        assert same(ours[1], reference[1]), (raw, ours, reference)
    else:
        assert ours[1] == reference[1]  # the same message: it is json.loads's own error


@settings(max_examples=500, deadline=None)
@given(VALUES, st.booleans(), st.sampled_from([None, 2]))
def test_any_document_decodes_to_what_json_loads_gives(
    value: Any, as_bytes: bool, indent: int | None
) -> None:
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    raw = text.encode("utf-8", "surrogatepass") if as_bytes else text
    assert_same_outcome(raw)
    assert_same_outcome(json.dumps(value))  # \\u escapes, lone surrogates among them


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_get_the_same_value_or_error(raw: bytes) -> None:
    assert_same_outcome(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1, "a": 2}',  # duplicate keys: the last wins in both
        b'{"iat": NaN}',
        b'{"iat": Infinity, "b": -Infinity}',
        b'{"iat": 1e400}',  # overflows a float: json.loads gives inf
        b'{"iat": 123456789012345678901234567890}',
        b'{"n": -0.0, "m": 1E2, "k": 0.1e-400}',
        b'"\\ud800"',  # a lone surrogate escape
        b'\xef\xbb\xbf{"a": 1}',  # a byte-order mark: json.loads accepts it in bytes
        "\ufeff{}",  # …and refuses it in a str
        b'{"a": "\x00"}',  # a raw control character in a string
        b"[" * 5000 + b"]" * 5000,  # deeper than either parser goes
        b" \t\r\n{} \n",
        b"{} x",
        b"",
        b'{"a":1}'.decode().encode("utf-16"),
    ],
)
def test_named_edge_cases(raw: bytes | str) -> None:
    assert_same_outcome(raw)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), st.none() | st.booleans() | st.integers() | st.text()
                       | st.floats(allow_nan=False, allow_infinity=False) | st.lists(st.text())))  # fmt: skip
def test_a_json_line_is_one_line_that_reads_back_as_the_record(record: dict[str, Any]) -> None:
    line = json_line(record)
    assert line.endswith("\n") and "\n" not in line[:-1]
    assert same(json.loads(line), record)


def test_a_json_line_writes_text_as_itself_and_unknown_types_as_str() -> None:
    from smsctl.history.interface import Route

    assert json_line({"text": "héllo ☃", "route": Route.STATUS, "at": 1.5, "what": object}) == (
        '{"text":"héllo ☃","route":"status","at":1.5,"what":"<class \'object\'>"}\n'
    )


@given(
    st.floats(min_value=0, max_value=4e9, allow_nan=False)
    | st.integers(0, 4_000_000_000).map(lambda n: n + 0.9995)
)
def test_iso_utc_is_datetimes_isoformat_in_utc_with_z(epoch: float) -> None:
    from datetime import UTC, datetime

    from smsctl.codec import iso_utc

    expected = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert iso_utc(epoch) == expected


class _Trickle:
    """A stream that hands out a few bytes per read, as a socket under load does."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step = data, step

    async def read(self, n: int = -1) -> bytes:
        chunk, self.data = self.data[: min(n, self.step)], self.data[min(n, self.step) :]
        return chunk


def test_read_at_most_reads_a_body_that_arrives_in_pieces_to_its_end() -> None:
    import asyncio

    from smsctl.codec import read_at_most

    body = b'{"records": [' + b"1," * 5000 + b"1]}"
    assert asyncio.run(read_at_most(_Trickle(body, 7), 1 << 20)) == body
    # Past the limit: limit + 1 bytes, so the caller can say it was too long.
    assert asyncio.run(read_at_most(_Trickle(body, 7), 100)) == body[:101]
