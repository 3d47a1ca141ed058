"""Phone numbers, sender IDs and SMS encoding: what a text costs before it is sent."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from smsctl.errors import UsageError

MAX_TEXT_LENGTH = 3200
# Vonage's sender identity rules (messages-api.md, "Sender identity"); the emulator uses the same.
NUMERIC_SENDER = re.compile(r"[1-9][0-9]{0,14}")
ALPHANUMERIC_SENDER = re.compile(r"(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{1,11}")
SENDER_HINT = (
    "use your Vonage number (up to 15 digits, e.g. +14155550100), a short code such as 12345, "
    "or an alphanumeric ID of 1–11 letters and digits with at least one letter and no spaces"
)

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


def parse_recipient(number: str) -> str:
    """Validate an E.164 number with a leading `+` against real number plans; return its digits."""
    import phonenumbers  # lazily: its metadata is only needed on the send path

    if not number.startswith("+"):
        raise UsageError(
            f"recipient {number!r} is not in E.164 form",
            hint="write it with a leading + and the country code, e.g. +14155550101",
        )
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException as exc:
        raise UsageError(f"recipient {number!r} is not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise UsageError(
            f"recipient {number!r} is not a valid number in its country's numbering plan",
            hint="check the country code and the number of digits",
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]


def parse_sender(sender: str) -> str:
    """Validate a sender as Vonage defines it; return it as the API wants it (numbers without `+`).

    All digits: a number of up to 15 digits in international form, short codes such as 12345
    included. Anything else: an alphanumeric sender ID of 1–11 characters `A-Za-z0-9`.
    """
    digits = sender[1:] if sender.startswith("+") else sender
    if digits.isascii() and digits.isdigit():
        if NUMERIC_SENDER.fullmatch(digits):
            return digits
        raise UsageError(
            f"sender {sender!r} is not a usable number: numeric senders have 1–15 digits in "
            "international form, without a leading 0 or 00",
            hint=SENDER_HINT,
        )
    if ALPHANUMERIC_SENDER.fullmatch(sender):
        return sender
    raise UsageError(
        f"sender {sender!r} is neither a number nor an alphanumeric sender ID of 1–11 letters and digits",
        hint=SENDER_HINT,
    )


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
