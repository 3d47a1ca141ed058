"""One writer thread owns the write connection and commits in groups.

Handlers `await writer.run(fn)`; the thread takes everything queued, runs it in one
BEGIN IMMEDIATE … COMMIT (one fsync with synchronous=FULL), then resolves every waiter. So
durability does not cap throughput, and SQLite never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from smsctl.errors import StoreError, StoreUnavailable
from smsctl.store import Store

T = TypeVar("T")
MAX_BATCH = 256

_Job = tuple[Callable[[Store], Any], "Future[Any]"]


class StoreWriter:
    """Runs store writes on a dedicated thread, grouping concurrent ones into one commit."""

    def __init__(self, path: Path | str, *, busy_timeout: float = 5.0) -> None:
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._opened: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._main, args=(path, busy_timeout), name="smsctl-writer", daemon=True
        )
        self.commits = 0
        self.batched = 0
        self._thread.start()
        self._opened.result()  # re-raises StoreError when the store cannot be opened

    async def run(self, fn: Callable[[Store], T]) -> T:
        """Run `fn(store)` inside the next group commit; returns once it is durable."""
        future: Future[T] = Future()
        self._queue.put((fn, future))
        return await asyncio.wrap_future(future)

    def run_sync(self, fn: Callable[[Store], T]) -> T:
        """The same, for callers outside an event loop."""
        future: Future[T] = Future()
        self._queue.put((fn, future))
        return future.result()

    def close(self) -> None:
        """Finish everything queued, then stop the thread and close the connection."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _main(self, path: Path | str, busy_timeout: float) -> None:
        try:
            store = Store(path, busy_timeout=busy_timeout)
        except StoreError as exc:
            self._opened.set_exception(exc)
            return
        self._opened.set_result(None)
        try:
            while (batch := self._next_batch()) is not None:
                self._commit(store, batch)
        finally:
            store.close()

    def _next_batch(self) -> list[_Job] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:  # keep the sentinel for the next round, after this batch commits
                self._queue.put(None)
                break
            batch.append(job)
        return batch

    def _commit(self, store: Store, batch: list[_Job]) -> None:
        live = [(fn, fut) for fn, fut in batch if fut.set_running_or_notify_cancel()]
        try:
            with store.transaction():
                results = [fn(store) for fn, _ in live]
        except sqlite3.OperationalError as exc:  # busy, disk full, read-only, I/O error
            error = StoreUnavailable(f"the store cannot commit: {exc}", hint="retry shortly")
            for _, fut in live:
                fut.set_exception(error)
            return
        except Exception:
            # One job is broken (a bug, not the disk): run each alone so only it fails.
            for job in live:
                self._commit_alone(store, job)
            return
        self.commits += 1
        self.batched += len(live)
        for (_, fut), result in zip(live, results, strict=True):
            fut.set_result(result)

    def _commit_alone(self, store: Store, job: _Job) -> None:
        fn, fut = job
        try:
            with store.transaction():
                result = fn(store)
        except Exception as exc:
            fut.set_exception(
                StoreUnavailable(f"the store cannot commit: {exc}")
                if isinstance(exc, sqlite3.OperationalError)
                else exc
            )
            return
        self.commits += 1
        fut.set_result(result)
