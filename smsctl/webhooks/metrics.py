"""`GET /metrics`: the listener's counters in Prometheus text format (prometheus_client).

Nothing is counted twice: a collector reads the listener's own counters and the writer's commit
figures at scrape time, into a registry of its own (prometheus_client's global one is untouched).
Counts only, like /healthz: no message data, no secrets.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from smsctl.webhooks.server import Counters

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


class _Collector:
    def __init__(
        self, counters: Counters, commit_seconds: Buckets, batch_sizes: Buckets, listeners: int | None
    ):
        self.counters, self.commit_seconds, self.batch_sizes = counters, commit_seconds, batch_sizes
        self.listeners = listeners

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        c = self.counters
        accepted = CounterMetricFamily(
            "smsctl_events_accepted", "Status events stored, by status", labels=["status"]
        )
        for status, count in sorted(c.statuses.items()):
            accepted.add_metric([status], count)
        yield accepted
        rejected = CounterMetricFamily(
            "smsctl_requests_rejected", "Requests refused, by reason", labels=["reason"]
        )
        for reason, count in sorted(c.rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected
        for name, value, meaning in (
            ("smsctl_events_duplicate", c.duplicates, "Re-deliveries of events already stored"),
            ("smsctl_inbound", c.inbound, "Inbound SMS stored"),
            ("smsctl_dead_letters", c.dead_letters, "Signed bodies kept as dead letters"),
            ("smsctl_stale_tokens", c.stale_tokens, "Authentic tokens older than the stale threshold"),
            ("smsctl_previous_secret", c.previous_secret, "Requests verified with the previous secret"),
            ("smsctl_store_errors", c.store_errors, "Store failures that are bugs (answered 500)"),
            (
                "smsctl_store_unavailable",
                c.store_unavailable,
                "Commits refused by an unavailable store (503)",
            ),
        ):
            yield CounterMetricFamily(name, meaning, value=value)
        if c.forwarding:
            forwards = CounterMetricFamily("smsctl_forwards", "Forward attempts to your app, by outcome",
                                           labels=["outcome"])  # fmt: skip
            for outcome, count in (("delivered", c.forwarded), ("retry", c.forward_retries),
                                   ("failed", c.forward_failed)):  # fmt: skip
                forwards.add_metric([outcome], count)
            yield forwards
        yield GaugeMetricFamily(
            "smsctl_store_up", "1 when the last commit succeeded", value=float(c.store_ok)
        )
        buckets, total = self.commit_seconds.cumulative()
        yield HistogramMetricFamily("smsctl_store_commit_seconds", "Time of one group commit",
                                    buckets=buckets, sum_value=total)  # fmt: skip
        buckets, total = self.batch_sizes.cumulative()
        yield HistogramMetricFamily("smsctl_store_batch_size", "Writes per group commit",
                                    buckets=buckets, sum_value=total)  # fmt: skip
        if self.listeners is not None:
            yield GaugeMetricFamily(
                "smsctl_listeners_alive", "Listeners sharing this store", value=self.listeners
            )


def render(counters: Counters, commit_seconds: Buckets, batch_sizes: Buckets, listeners: int | None) -> bytes:
    """The exposition text for one scrape."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(counters, commit_seconds, batch_sizes, listeners))
    return generate_latest(registry)
