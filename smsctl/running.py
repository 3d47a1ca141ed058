"""Running a command's coroutine so that SIGTERM stops it the way Ctrl-C does: cleanly.

asyncio.run already turns Ctrl-C into a cancellation of the main task (so in-flight sends record
what they know) followed by KeyboardInterrupt. SIGTERM, which process managers and `timeout` send,
gets the same treatment here and ends in Terminated (exit 143) instead of an abrupt death.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

from smsctl.errors import Terminated

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    terminated = False

    async def main() -> T:
        task = asyncio.current_task()
        assert task is not None

        def on_sigterm() -> None:
            nonlocal terminated
            terminated = True
            task.cancel()

        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_sigterm)
        return await coro

    try:
        return run_event_loop(main())
    except asyncio.CancelledError:
        if terminated:
            raise Terminated("terminated (SIGTERM); stopped cleanly") from None
        raise


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop when it is installed (libuv's loop: less per-request overhead in the
    transports than asyncio's own; see the README's listener and --wait figures), else on asyncio's. Both
    are asyncio.Runner underneath: Ctrl-C cancels the main task, then KeyboardInterrupt."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A loop of the kind run_event_loop runs on, for a thread that drives its own (an emulator in a
    test or benchmark beside the command under test)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (owned by us or not)."""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
