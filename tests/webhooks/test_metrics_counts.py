"""The counts issue 22 and 23 add to /metrics and the footer: stale messages, reconciled statuses, and
the sends the opt-out ledger and the caps stopped."""

from __future__ import annotations

from smsctl.history.buckets import Buckets
from smsctl.webhooks.metrics import render
from smsctl.webhooks.server import Counters
from smsctl.webhooks.view import LiveView


def test_metrics_and_footer_show_stale_reconciled_suppressed_and_capped() -> None:
    counters = Counters(stale_messages=7, reconciled=3, suppressed=2, capped=1)
    text = render(counters, Buckets((0.01, 0.1)), Buckets((1.0, 10.0)), None).decode()
    for line in ("smsctl_messages_stale 7.0", "smsctl_reconciled_total 3.0", "smsctl_sends_suppressed_total 2.0",
                 "smsctl_sends_capped_total 1.0"):  # fmt: skip
        assert line in text.splitlines(), line
    footer = LiveView(counters)._footer().plain
    assert "stale 7: smsctl reconcile" in footer and "reconciled 3" in footer
    assert "sends stopped: opted out 2, caps 1" in footer


def test_before_the_first_count_there_is_no_stale_gauge() -> None:
    text = render(Counters(), Buckets((0.01,)), Buckets((1.0,)), None).decode()
    assert "smsctl_messages_stale" not in text and "stale" not in LiveView(
        Counters()
    )._footer().plain.replace("stale tokens", "")
