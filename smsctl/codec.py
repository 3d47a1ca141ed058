"""JSON on the listener's hot path: msgspec's C decoder and encoder, with the stdlib as the reference.

Every webhook is JSON-decoded three times (the token's header and claims, then the body) and every
event is written as a JSON Lines record; with the stdlib that was ~14 µs of a ~220–280 µs request
(timeit on a bench webhook: body, claims and record 13.9 µs with the stdlib, 2.8 µs with msgspec).

`loads` must give exactly what `json.loads` gives, because the body's fields and the token's claims
are judged on it. msgspec returns the same values for every document it accepts (arbitrary-size
integers, the last of duplicate keys, floats rounded the same way) and refuses the rest: NaN and
Infinity literals, a number that overflows a float, a lone surrogate escape, a byte-order mark,
nesting deeper than its limit. Those go to `json.loads`, so they get its answer — a value, or its
error — and nothing about what is accepted changes. tests/test_codec.py holds the two to each other
with Hypothesis.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any, Protocol


@cache
def _msgspec() -> tuple[Callable[[bytes | str], Any], Callable[[Any], bytes], type[Exception]]:
    """msgspec's decoder, encoder and error, imported on first use: ~25 ms on its own (typing_extensions,
    inspect; ~5 ms after the listener's imports) that only the listener should pay."""
    import msgspec

    encoder = msgspec.json.Encoder(enc_hook=str)
    return msgspec.json.Decoder().decode, encoder.encode, msgspec.DecodeError


def loads(raw: bytes | str) -> Any:
    """`json.loads(raw)`, faster for the documents Vonage sends; raises what `json.loads` raises."""
    decode, _, error = _msgspec()
    try:
        return decode(raw)
    except (error, RecursionError, UnicodeEncodeError):  # the last: a str holding a lone surrogate
        return json.loads(raw)


def json_line(data: Any) -> str:
    """One JSON Lines record: compact, UTF-8 as itself (not \\u escapes), unknown types as `str()`.

    For the listener's records (strings, numbers, booleans, None, lists and string-keyed objects);
    NaN or Infinity, which no record holds, would become null rather than json.dumps's invalid `NaN`.
    """
    return _msgspec()[1](data).decode() + "\n"


# The JSON contract (README, "JSON output"): times as ISO 8601 in UTC with `Z`, phone numbers in E.164
# with `+`, counts as numbers, whatever the source stored (Vonage sends numbers without `+` and
# segment counts as strings).


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def iso_utc(epoch: float | None) -> str | None:
    """`2026-12-04T15:27:03.512Z` (milliseconds, truncated as datetime's isoformat does), or None.

    Every JSON Lines record of the listener carries one, so the date and time of day are formatted once
    a second and only the milliseconds per call (2.3 → ~0.5 µs a record, timeit)."""
    global _second
    if epoch is None:
        return None
    whole = int(epoch // 1)
    micro = round((epoch - whole) * 1e6)  # as datetime.fromtimestamp rounds, before truncating to ms
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    if whole != _second[0]:
        import time

        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{_second[1]}.{micro // 1000:03d}Z"


def e164(number: str | None) -> str | None:
    """A phone number with its `+` (Vonage's webhooks leave it out); an alphanumeric sender ID as is."""
    if number and number.isdigit():
        return "+" + number
    return number or None


def count(value: int | str | None) -> int | None:
    """A count as a number (Vonage's `usage.messages_count`-style strings included); None if not one."""
    if isinstance(value, int):
        return value
    return int(value) if value and value.isdigit() else None


def json_object(raw: bytes, api: str) -> dict[str, Any]:
    """An API's answer that must be a JSON object; ApiUnavailable naming the API otherwise."""
    from smsctl.errors import ApiUnavailable

    try:
        data = json.loads(raw)
    except ValueError:
        raise ApiUnavailable(f"the {api} answered with something that is not JSON") from None
    if not isinstance(data, dict):
        raise ApiUnavailable(f"the {api} answered with JSON that is not an object")
    return data


class _Stream(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


async def read_at_most(stream: _Stream, limit: int) -> bytes:
    """A body read to its end, or to `limit` + 1 bytes (so a caller can tell it was too long).
    aiohttp's `read(n)` returns what has arrived so far, not n bytes: one call can cut a body short."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
