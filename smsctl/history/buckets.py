"""The writer's own measurements (commit time, batch size) as histogram buckets: observed on the
writer thread, read by /metrics (webhooks/metrics.py) at scrape time. They live here, below the
server, so the writer needs nothing from the webhook side."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence

COMMIT_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Buckets:
    """A histogram's cumulative buckets, sum and count; observed on the writer thread, read on scrape."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self._counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound (+Inf)
        self.total = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self.bounds, value)] += 1
            self.total += value

    def cumulative(self) -> tuple[list[tuple[str, float]], float]:
        """[(le, count)], with +Inf last, and the sum, as prometheus_client's HistogramMetricFamily wants."""
        with self._lock:
            counts, total = list(self._counts), self.total
        running, buckets = 0, []
        for bound, count in zip([*map(str, self.bounds), "+Inf"], counts, strict=True):
            running += count
            buckets.append((bound, float(running)))
        return buckets, total
