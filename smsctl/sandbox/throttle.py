"""The emulator's rate limits: at most `rate` requests in any one second, as a sliding window."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable


class SlidingWindow:
    """`take()` is None when a request may go ahead (and counts it), else the seconds until one may."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self._clock = rate, clock
        self._recent: collections.deque[float] = collections.deque()

    def take(self) -> float | None:
        if not self.rate:
            return None
        now = self._clock()
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()
        if len(self._recent) < self.rate:
            self._recent.append(now)
            return None
        return self._recent[0] + 1.0 - now
