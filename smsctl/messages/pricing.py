"""Estimated cost: what a message to a country costs, learnt from the prices Vonage reported.

Vonage reports a message's price after the fact (`usage.price` in a status webhook, `total_price` in
the Reports API) and offers no price list to the Messages API's users, so smsctl estimates from what
the store has seen: the latest price per segment to each country. A country never priced is estimated
at the highest price seen anywhere (an estimate that guards spend should err high), or at
SMSCTL_FALLBACK_PRICE when nothing has been priced yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from smsctl.history.pricing import PriceSeen

MICRO = 1_000_000  # spend is counted in millionths of the currency: integers, exact across processes


@dataclass(frozen=True)
class Estimate:
    cost: float
    known: bool  # priced from this country's own sends; False: the highest price seen, or the fallback


@dataclass(frozen=True)
class PriceBook:
    """The latest price per segment to each country, and the currency the prices came in."""

    per_segment: dict[str, float] = field(default_factory=dict)
    currency: str | None = None
    fallback: float | None = None  # SMSCTL_FALLBACK_PRICE

    @classmethod
    def learn(cls, seen: list[PriceSeen], fallback: float | None = None) -> PriceBook:
        """From priced messages, newest first: each country's most recent price per segment."""
        per_segment: dict[str, float] = {}
        currency = None
        for item in seen:
            try:
                price = float(item.price)
            except ValueError:
                continue  # a price that is not a number (hostile or garbled) teaches nothing
            if not math.isfinite(price) or price < 0:
                continue
            per_segment.setdefault(item.country, price / item.segments)
            currency = currency or item.currency
        return cls(per_segment, currency, fallback)

    def estimate(self, country: str | None, segments: int) -> Estimate | None:
        """A message's estimated cost; None when nothing is known to estimate it from."""
        if country in self.per_segment:
            return Estimate(self.per_segment[country] * segments, True)
        highest = max(self.per_segment.values(), default=None)
        if highest is None:
            highest = self.fallback
        return None if highest is None else Estimate(highest * segments, False)


def micros(amount: float) -> int:
    """An amount in millionths, rounded up: an estimate that guards spend errs high."""
    return math.ceil(round(amount * MICRO, 3))


def money(amount: float, currency: str | None) -> str:
    return f"{amount:.4f} {currency or ''}".rstrip()
