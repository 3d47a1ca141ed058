"""SMS text encoding: whether a text fits GSM-7 or needs UCS-2, and how many segments it bills as.

Core, because both sides need it: the send side to price and validate a text before sending, the
receive side (and the emulator) to fill in an inbound webhook's `num_messages`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from smsctl.errors import UsageError

MAX_TEXT_LENGTH = 3200

# GSM 03.38 basic character set, and the extension table whose characters cost two septets.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

Encoding = Literal["GSM-7", "UCS-2"]


class EncodingChoice(StrEnum):
    """`--encoding`: what the user asks for; `auto` lets the text decide (as the API does)."""

    AUTO = "auto"
    TEXT = "text"  # GSM-7
    UNICODE = "unicode"  # UCS-2


@dataclass(frozen=True)
class TextCost:
    """How a text is encoded and how many SMS segments it bills as."""

    encoding: Encoding
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM-7 basic or extension table."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _pack(costs: list[int], single: int, multi: int) -> int:
    """Segments needed when no character may straddle two segments (escapes, surrogate pairs)."""
    total = sum(costs)
    if total <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments, used = segments + 1, 0
        used += cost
    return max(segments, math.ceil(total / multi))


def text_cost(text: str, encoding: EncodingChoice = EncodingChoice.AUTO) -> TextCost:
    """Validate a text and work out its encoding and segment count (160/153 GSM-7, 70/67 UCS-2)."""
    if not text:
        raise UsageError("the text is empty", hint="give the message text as the second argument")
    if len(text) > MAX_TEXT_LENGTH:
        raise UsageError(
            f"the text is {len(text)} characters; the Messages API allows {MAX_TEXT_LENGTH}",
        )
    gsm = is_gsm7(text)
    if encoding == EncodingChoice.TEXT and not gsm:
        bad = sorted({ch for ch in text if ch not in GSM7_BASIC and ch not in GSM7_EXTENSION})
        raise UsageError(
            f"--encoding text, but the text has characters GSM-7 cannot carry: {''.join(bad[:10])!r}",
            hint="use --encoding auto or unicode, or remove those characters",
        )
    if gsm and encoding != EncodingChoice.UNICODE:
        costs = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        return TextCost("GSM-7", sum(costs), _pack(costs, 160, 153))
    costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return TextCost("UCS-2", sum(costs), _pack(costs, 70, 67))
