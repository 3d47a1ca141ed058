"""One runtime object: credentials, the Messages API client and the store writer, built once and
closed in one place, in the right order.

`send`, `send --wait`, `bulk`, `listen` and the demo each used to wire these by hand:

    async with Runtime(settings) as rt:
        client = await rt.client()          # credentials are checked on first use only
        await rt.writer.run(...)

On exit the HTTP client closes first, then the writer drains what is queued and closes the store,
so nothing that was acknowledged is left uncommitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from smsctl.config import Settings

if TYPE_CHECKING:
    from smsctl.history.writer import StoreWriter
    from smsctl.messages.client import MessagesClient
    from smsctl.messages.ratelimit import RateLimiter


@dataclass(frozen=True)
class Recording:
    """How long to keep trying to record an accepted send before spooling it (SMSCTL_RECORD_RETRY)."""

    retry_for: float = 30.0
    pause: float = 0.2


DEFAULT_RECORDING = Recording()


def recording(settings: Settings) -> Recording:
    return Recording(retry_for=settings.record_retry)


class Runtime:
    """What a command needs at run time; `async with Runtime(settings) as rt:`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.recording: Recording = recording(settings)
        self._writer: StoreWriter | None = None
        self._client: MessagesClient | None = None

    @property
    def writer(self) -> StoreWriter:
        assert self._writer is not None, "use Runtime as `async with`"
        return self._writer

    async def client(self, *, limiter: RateLimiter | None = None, connections: int = 100) -> MessagesClient:
        """The Messages API client (one session, one JWT), made on first use; ConfigError without credentials."""
        if self._client is None:
            from smsctl.messages.auth import credentials_from
            from smsctl.messages.client import MessagesClient

            credentials = credentials_from(self.settings)
            client = MessagesClient(self.settings.api_url, credentials, timeout=self.settings.http_timeout,
                                    limiter=limiter, connections=connections)  # fmt: skip
            self._client = await client.__aenter__()
        return self._client

    async def __aenter__(self) -> Runtime:
        from smsctl.history.writer import StoreWriter

        self._writer = StoreWriter.for_settings(self.settings)  # StoreError here: the store cannot be opened
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:  # fmt: skip
        try:
            if self._client is not None:
                await self._client.__aexit__(exc_type, exc, tb)
        finally:
            if self._writer is not None:
                self._writer.close()  # after everything that writes: what was queued is committed
