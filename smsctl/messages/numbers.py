"""Phone numbers and sender IDs as Vonage accepts them (a text's encoding and segments: smsctl.encoding)."""

from __future__ import annotations

import functools
import re

from smsctl.errors import UsageError

# Vonage's sender identity rules (messages-api.md, "Sender identity"); the emulator uses the same.
NUMERIC_SENDER = re.compile(r"[1-9][0-9]{0,14}")
ALPHANUMERIC_SENDER = re.compile(r"(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{1,11}")
SENDER_HINT = (
    "use your Vonage number (up to 15 digits, e.g. +14155550100), a short code such as 12345, "
    "or an alphanumeric ID of 1–11 letters and digits with at least one letter and no spaces"
)


NON_GEOGRAPHIC = "001"  # phonenumbers' region of +800, +808, +870, +881, +882, +883, +888, +979: no country


def parse_recipient(number: str) -> str:
    """Validate an E.164 number with a leading `+` against real number plans; return its digits."""
    return parse_destination(number)[0]


# bulk checks every row before it sends any, then prepares each again as it sends: a file of up to this
# many numbers is parsed once (a parse is ~0.1 ms; a full cache holds a few MB).
@functools.lru_cache(maxsize=16_384)
def parse_destination(number: str) -> tuple[str, str | None]:
    """`parse_recipient`, and the number's ISO 3166 country from the same parse (None if unknown)."""
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
    # is_valid_number(parsed) is exactly this; the region is found once (for +1 it tries every NANP region).
    region = phonenumbers.region_code_for_number(parsed)
    if region is None or not phonenumbers.is_valid_number_for_region(parsed, region):
        raise UsageError(
            f"recipient {number!r} is not a valid number in its country's numbering plan",
            hint="check the country code and the number of digits",
        )
    digits = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]
    return digits, region if region and region != NON_GEOGRAPHIC else None


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


def country_of(digits: str) -> str | None:
    """The ISO 3166 country a number (digits, no +) belongs to, from the numbering plans; None if unknown."""
    import phonenumbers

    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse("+" + digits, None)) or None
    except phonenumbers.NumberParseException:
        return None
