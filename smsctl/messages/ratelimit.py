"""A request pacer shared by every concurrent send: a steady rate, and a pause for the whole batch on 429."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class RateLimiter:
    """Spaces request starts `1/rate` apart (no bursts); `rate=None` means unlimited.

    A 429 calls `pause(seconds)`, which holds back *every* sender, not just the one that was
    throttled: the account limit is shared, so the whole batch must slow down.
    """

    def __init__(self, rate: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:  # fmt: skip
        self.interval = 1.0 / rate if rate else 0.0
        self._clock, self._sleep = clock, sleep
        self._next_start = 0.0
        self._paused_until = 0.0
        self.pauses = 0

    async def acquire(self) -> None:
        """Wait for this request's slot."""
        while True:
            now = self._clock()
            start = max(now, self._next_start, self._paused_until)
            if start <= now:
                self._next_start = now + self.interval
                return
            if self._paused_until <= now:
                # Reserve the slot now so concurrent waiters queue behind it instead of racing.
                self._next_start = start + self.interval
                await self._sleep(start - now)
                if self._clock() >= self._paused_until:
                    return
            else:
                await self._sleep(start - now)

    def pause(self, seconds: float) -> None:
        """Hold back every sender for `seconds` (from a 429's Retry-After)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        self.pauses += 1
