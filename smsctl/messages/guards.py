"""Send guards: the caps on messages and estimated spend per UTC day and per batch (issue 23).

Every send adds itself to counters in the store (`send_counts`), in the transaction that records it,
so a cap holds across every process and machine that shares the store. Counters are taken in one
order (day, batch, spend-day, spend-batch), so two senders on PostgreSQL never deadlock on them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from smsctl.errors import GuardRefused
from smsctl.history.interface import LocalState, SentMessage
from smsctl.messages.pricing import PriceBook, micros, money

if TYPE_CHECKING:
    from smsctl.config import Settings
    from smsctl.history.interface import Attempt, HistoryStore

Counter = tuple[str, int, int | None]  # (key, amount this send adds, cap)

# A row whose error starts with one of these never went out, and never counted toward a cap.
CAP_VARIABLES = ("SMSCTL_DAILY_CAP", "SMSCTL_BATCH_CAP", "SMSCTL_DAILY_SPEND", "SMSCTL_BATCH_SPEND")
_VARIABLE = {"day": "SMSCTL_DAILY_CAP", "batch": "SMSCTL_BATCH_CAP", "spend-day": "SMSCTL_DAILY_SPEND",
             "spend-batch": "SMSCTL_BATCH_SPEND"}  # fmt: skip


@dataclass
class Caps:
    """SMSCTL_DAILY_CAP, SMSCTL_BATCH_CAP (messages) and SMSCTL_DAILY_SPEND, SMSCTL_BATCH_SPEND (estimated
    cost in the currency Vonage prices in). Spend is counted while a spend cap is set."""

    daily: int | None = None
    batch: int | None = None
    daily_spend: float | None = None
    batch_spend: float | None = None
    fallback_price: float | None = None
    _book: PriceBook | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Caps:
        return cls(settings.daily_cap, settings.batch_cap, settings.daily_spend, settings.batch_spend,
                   settings.fallback_price)  # fmt: skip

    @property
    def spends(self) -> bool:
        return self.daily_spend is not None or self.batch_spend is not None

    def prices(self, store: HistoryStore) -> PriceBook:
        """The price book, read once per process (in its first send's transaction)."""
        if self._book is None:
            self._book = PriceBook.learn(store.prices_seen(), self.fallback_price)
        return self._book

    def counters(self, store: HistoryStore, attempt: Attempt, now: float) -> tuple[list[Counter], str | None]:
        """The counters a send adds to, each with its cap (days in UTC, so every machine agrees); and the
        refusal key `unpriced:<country>` when a spend cap is set but nothing prices this message."""
        day = time.strftime("%Y-%m-%d", time.gmtime(now))
        batch = attempt.batch_id
        keys: list[Counter] = [(f"day:{day}", 1, self.daily)]
        if batch is not None:
            keys.append((f"batch:{batch}", 1, self.batch))
        if not self.spends:
            return keys, None
        estimate = self.prices(store).estimate(attempt.country, attempt.segments)
        if estimate is None:
            return keys, f"unpriced:{attempt.country or 'unknown'}"
        cost = micros(estimate.cost)
        keys.append(
            (f"spend-day:{day}", cost, None if self.daily_spend is None else micros(self.daily_spend))
        )
        if batch is not None:
            keys.append(
                (f"spend-batch:{batch}", cost, None if self.batch_spend is None else micros(self.batch_spend))
            )
        return keys, None

    def variable(self, key: str) -> str:
        what = key.partition(":")[0]
        if what == "unpriced":
            return "SMSCTL_DAILY_SPEND" if self.daily_spend is not None else "SMSCTL_BATCH_SPEND"
        return _VARIABLE[what]

    def row_error(self, key: str) -> str:
        """What the refused send's row says (starting with its variable, as CAP_VARIABLES expects)."""
        variable = self.variable(key)
        if key.startswith("unpriced:"):
            return f"{variable}: no price known for {key.partition(':')[2]}: not sent"
        return f"{variable} reached ({key}): not sent"

    def refusal(self, key: str) -> GuardRefused:
        what, _, value = key.partition(":")
        variable = self.variable(key)
        if what == "unpriced":
            return GuardRefused(
                f"no price is known for messages to {value}, so {variable} cannot be kept: not sent",
                hint="smsctl learns prices from delivery receipts (usage.price); until it has one, set "
                "SMSCTL_FALLBACK_PRICE to the price of one segment (e.g. 0.05)",
            )
        scope = f"today ({value}, UTC)" if what.endswith("day") else f"batch {value}"
        if what.startswith("spend"):
            limit = self.daily_spend if what == "spend-day" else self.batch_spend
            assert limit is not None
            currency = self._book.currency if self._book else None
            return GuardRefused(f"{variable} ({money(limit, currency)}) would be passed {scope}: nothing more is sent",
                                hint=f"raise {variable} if this spend is intended; estimates come from the prices "
                                "Vonage reported, and every sender of the store counts")  # fmt: skip
        return GuardRefused(f"{variable} is reached for {scope}: nothing more is sent",
                            hint=f"raise {variable} if this volume is intended; every sender of the store counts")  # fmt: skip


NO_CAPS = Caps()


def never_counted(message: SentMessage) -> bool:
    """An earlier attempt the ledger or a cap stopped in its first write: it never counted toward the caps,
    so sending it now counts as a new send does."""
    return message.state == LocalState.SUPPRESSED or (
        message.state == LocalState.UNSENT and (message.error or "").startswith(CAP_VARIABLES)
    )
