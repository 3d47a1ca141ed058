"""`GET /metrics`: the listener's counters in Prometheus text format (prometheus_client).

Nothing is counted twice: a collector reads the listener's own counters and the writer's commit
figures at scrape time, into a registry of its own (prometheus_client's global one is untouched).
Counts only, like /healthz: no message data, no secrets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from smsctl.history.buckets import Buckets
    from smsctl.webhooks.server import Counters


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
        if c.stale_messages is not None:
            yield GaugeMetricFamily("smsctl_messages_stale", "Accepted messages without a final status past "
                                    "SMSCTL_STALE_AFTER (run smsctl reconcile)", value=c.stale_messages)  # fmt: skip
        yield CounterMetricFamily(
            "smsctl_reconciled", "Statuses filled in from the Reports API", value=c.reconciled
        )
        yield CounterMetricFamily("smsctl_sends_suppressed", "Sends the opt-out ledger stopped (any sender of the "
                                  "store, since this listener started)", value=c.suppressed)  # fmt: skip
        yield CounterMetricFamily("smsctl_sends_capped", "Sends a daily or batch cap stopped (since this "
                                  "listener started)", value=c.capped)  # fmt: skip
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
