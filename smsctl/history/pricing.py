"""What sends cost, the store side for both backends: the prices Vonage reported (`usage.price` of a
status webhook or a Reports API record) by destination country, and the countries sent to so far."""

from __future__ import annotations

from dataclasses import dataclass

from smsctl.history.dialect import DialectSql

RECENT_EVENTS = 50_000  # how far back (in events) prices are looked for: recent prices, bounded work


@dataclass(frozen=True)
class PriceSeen:
    """One priced message: its destination country, what it cost and in which currency, its segments."""

    country: str
    price: str
    currency: str | None
    segments: int


class Pricing(DialectSql):
    """The mixin (history/sqlite.py `Store`, history/postgres.py `PgStore`)."""

    def prices_seen(self, limit: int = 5_000) -> list[PriceSeen]:
        """The latest priced messages with a known destination country, newest first, from the last
        RECENT_EVENTS events only (an index range, however large the history)."""
        rows = self._run(
            "SELECT m.country, e.price, e.currency, e.segments, m.segments FROM events e"
            " JOIN messages m ON m.message_uuid = e.message_uuid"
            " WHERE e.id > (SELECT COALESCE(MAX(id), 0) FROM events) - {m}"
            " AND e.price IS NOT NULL AND m.country IS NOT NULL ORDER BY e.id DESC LIMIT {m}",
            (RECENT_EVENTS, limit),
        ).fetchall()
        return [PriceSeen(str(r[0]), str(r[1]), r[2], _segments(r[3], r[4])) for r in rows]

    def countries_sent(self) -> set[str]:
        """Every destination country sent to so far: a skip scan of the country index (one index probe per
        country, not a pass over every message)."""
        rows = self._run(
            "WITH RECURSIVE c(country) AS (SELECT MIN(country) FROM messages UNION ALL"
            " SELECT (SELECT MIN(country) FROM messages WHERE country > c.country) FROM c"
            " WHERE c.country IS NOT NULL) SELECT country FROM c WHERE country IS NOT NULL",
            (),
        ).fetchall()
        return {str(r[0]) for r in rows}


def _segments(reported: object, sent: object) -> int:
    """The segments Vonage counted (`sms.count_total`, text from the network) or else those we sent."""
    for value in (reported, sent):
        if isinstance(value, int) or (isinstance(value, str) and value.isascii() and value.isdigit()):
            if 0 < int(value) < 1000:
                return int(value)
    return 1
