"""The core function of `smsctl stats`, `smsctl report` and the inspector's charts: open the store, ask it."""

from __future__ import annotations

import contextlib

from smsctl.config import Settings
from smsctl.history.backends import open_reader
from smsctl.history.stats import StatsFigures, StatsQuery, StatsReport


def read_stats(settings: Settings, query: StatsQuery) -> StatsReport:
    """The core function of `smsctl stats` and `smsctl report`: the store's figures (empty without a store)."""
    store = open_reader(settings.store)
    if store is None:
        return StatsReport(StatsFigures(), query, query.now)
    with contextlib.closing(store):
        return StatsReport(store.delivery_stats(query), query, query.now)
