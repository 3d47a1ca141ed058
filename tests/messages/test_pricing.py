"""Spend estimates from the prices Vonage reported: newest price per country, erring high when unsure."""

from __future__ import annotations

from pathlib import Path

from smsctl.history.pricing import PriceSeen, _segments
from smsctl.messages.pricing import PriceBook, micros


def test_each_country_is_priced_by_its_latest_price_per_segment() -> None:
    book = PriceBook.learn([PriceSeen("US", "0.0114", "EUR", 2), PriceSeen("US", "0.0300", "EUR", 1),
                            PriceSeen("GB", "0.0396", "EUR", 1)])  # fmt: skip
    assert book.per_segment == {"US": 0.0057, "GB": 0.0396} and book.currency == "EUR"
    us = book.estimate("US", 3)
    assert us is not None and us.known and round(us.cost, 6) == 0.0171
    fr = book.estimate("FR", 2)  # never priced: the highest price seen, flagged as a guess
    assert fr is not None and not fr.known and round(fr.cost, 6) == 0.0792


def test_hostile_or_garbled_prices_teach_nothing() -> None:
    seen = [PriceSeen("US", value, "EUR", 1) for value in ("NaN", "-1", "inf", "abc", "")]
    book = PriceBook.learn(seen)
    assert book.per_segment == {} and book.estimate("US", 1) is None
    fallback = PriceBook.learn(seen, fallback=0.05).estimate("US", 2)
    assert fallback is not None and not fallback.known and fallback.cost == 0.1


def test_segments_come_from_the_network_when_it_said_and_are_sane() -> None:
    assert _segments("3", 1) == 3 and _segments(None, 2) == 2 and _segments("-4", 2) == 2
    assert _segments("99999999", "x") == 1 and _segments("٣", 2) == 2  # a non-ASCII digit is not a count


def test_spend_is_counted_in_millionths_rounded_up() -> None:
    assert micros(0.0057) == 5700 and micros(0.1) == 100_000 and micros(0.0000001) == 1
    assert micros(0.0057 * 3) == 17100  # float noise does not add a millionth


def test_a_refused_send_counts_under_no_key(tmp_path: Path) -> None:
    """A key at its cap refuses the send, and the keys counted before it in the same send are undone."""
    from smsctl.history.sqlite import Store

    with Store(tmp_path / "s.db") as store:
        keys = [("day:d", 1, None), ("spend-day:d", 5700, 10_000), ("batch:b", 1, 5)]
        with store.transaction():
            assert store.count_send(keys) is None
            assert store.count_send(keys) == "spend-day:d"  # 11,400 millionths would pass 10,000
        counts = dict(store.conn.execute("SELECT key, messages FROM send_counts").fetchall())
    assert counts == {"day:d": 1, "spend-day:d": 5700, "batch:b": 1}
