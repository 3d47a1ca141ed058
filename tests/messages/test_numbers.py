from __future__ import annotations

import pytest

from smsctl.encoding import text_cost
from smsctl.errors import UsageError
from smsctl.messages.numbers import parse_recipient, parse_sender


@pytest.mark.parametrize(
    ("number", "digits"),
    [("+14155550101", "14155550101"), ("+33612345678", "33612345678"), ("+4915112345678", "4915112345678")],
)
def test_valid_recipients_lose_their_plus(number: str, digits: str) -> None:
    assert parse_recipient(number) == digits


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("14155550101", "not in E.164 form"),
        ("+1415555", "not a valid number"),
        ("+447700900000", "not a valid number"),  # Ofcom drama range: possible, never assigned
        ("+99912345678", "not a phone number"),
        ("+", "not a phone number"),
    ],
)
def test_invalid_recipients_are_usage_errors(number: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_recipient(number)


@pytest.mark.parametrize(
    ("sender", "expected"),
    [
        ("+14155550100", "14155550100"),
        ("14155550100", "14155550100"),
        ("Acme", "Acme"),
        ("ACME2FA", "ACME2FA"),
        ("12345", "12345"),  # a short code: all digits is a number, not an alphanumeric ID
        ("+12345", "12345"),
        ("1", "1"),
        ("123456789012345", "123456789012345"),
        ("2FA", "2FA"),
    ],
)
def test_senders(sender: str, expected: str) -> None:
    assert parse_sender(sender) == expected


@pytest.mark.parametrize(
    ("sender", "message"),
    [
        ("Acme Corp", "neither a number nor an alphanumeric sender ID"),
        ("TwelveChars1", "neither a number nor an alphanumeric sender ID"),
        ("", "neither a number nor an alphanumeric sender ID"),
        ("héllo", "neither a number nor an alphanumeric sender ID"),
        ("+0123", "not a usable number: numeric senders have 1–15 digits"),
        ("0044123456", "not a usable number"),
        ("1234567890123456", "not a usable number"),
    ],
)
def test_bad_senders(sender: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as raised:
        parse_sender(sender)
    assert raised.value.hint is not None and "short code such as 12345" in raised.value.hint


@pytest.mark.parametrize(
    "sender", ["12345", "1", "123456789012345", "2FA", "Acme", "0123", "Acme Corp", "x" * 12]
)
def test_the_emulator_agrees_with_the_sender_check(sender: str) -> None:
    from smsctl.sandbox.emulator import _valid_sender

    try:
        accepted: str | None = parse_sender(sender)
    except UsageError:
        accepted = None
    assert _valid_sender(sender) == (accepted is not None)


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),  # extension characters count twice: 160 septets
        ("€" * 81, "GSM-7", 2),
        ("a" * 159 + "€", "GSM-7", 2),  # 161 septets
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 3),  # the escape pair cannot straddle segments
        ("é" * 160, "GSM-7", 1),  # é is in the GSM-7 basic table
        ("ć" * 70, "UCS-2", 1),
        ("ć" * 71, "UCS-2", 2),
        ("ć" * 134, "UCS-2", 2),
        ("ć" * 135, "UCS-2", 3),
        ("😀" * 35, "UCS-2", 1),  # surrogate pairs: two UTF-16 units each
        ("😀" * 36, "UCS-2", 2),
    ],
)
def test_segments(text: str, encoding: str, segments: int) -> None:
    cost = text_cost(text)
    assert (cost.encoding, cost.segments) == (encoding, segments)


def test_forced_unicode_counts_as_ucs2() -> None:
    assert text_cost("hello", "unicode").encoding == "UCS-2"


def test_forced_text_with_emoji_is_refused() -> None:
    with pytest.raises(UsageError, match="GSM-7 cannot carry"):
        text_cost("hi 😀", "text")


@pytest.mark.parametrize(("text", "message"), [("", "empty"), ("a" * 3201, "3201 characters")])
def test_text_limits(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        text_cost(text)
