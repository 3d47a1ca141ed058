"""The store's writer: one thread owns the write connection and commits in groups.

Handlers `await writer.run(fn)`; the thread takes everything queued, runs it in one transaction
(SQLite: BEGIN IMMEDIATE … COMMIT, one fsync with synchronous=FULL; PostgreSQL: one commit with
synchronous_commit on), then resolves every waiter of the batch with a single wake-up of their
event loop. So durability does not cap throughput, and the driver never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from smsctl.config import Settings
from smsctl.errors import SmsctlError, StoreBug, StoreError, StoreUnavailable
from smsctl.history.backends import Location, location_of, open_store
from smsctl.history.buckets import BATCH_SIZES, COMMIT_SECONDS, Buckets
from smsctl.history.deferred import Deferred
from smsctl.history.interface import HistoryStore
from smsctl.history.scheduling import batch_scheduling

T = TypeVar("T")
MAX_BATCH = 256
TRANSIENT_RETRIES = 3  # a deadlock between two listeners' batches: run the batch again


class _Job:
    """One unit of work and who waits for it: an asyncio future (with its loop) or a thread future."""

    __slots__ = ("fn", "loop", "waiter", "result", "error")

    def __init__(self, fn: Callable[[HistoryStore], Any], loop: asyncio.AbstractEventLoop | None,
                 waiter: asyncio.Future[Any] | Future[Any]) -> None:  # fmt: skip
        self.fn, self.loop, self.waiter = fn, loop, waiter
        self.result: Any = None
        self.error: BaseException | None = None


def _settle_async(jobs: list[_Job]) -> None:
    """Runs on the event loop: hand every job of a batch its outcome."""
    for job in jobs:
        waiter = job.waiter
        if waiter.done():  # the handler was cancelled (client went away); the work is committed anyway
            continue
        if job.error is not None:
            waiter.set_exception(job.error)
        else:
            waiter.set_result(job.result)


def _resolve(batch: list[_Job]) -> None:
    """Fetch the answers of work the backend pipelined (see storage.Deferred), before the commit."""
    for job in batch:
        if isinstance(job.result, Deferred):
            job.result = job.result.resolve()


class StoreWriter:
    """Runs store writes on a dedicated thread, grouping concurrent ones into one commit."""

    def __init__(self, where: Location, *, busy_timeout: float = 5.0) -> None:
        location = location_of(where)
        self.path = location.display
        self.spool_path = location.spool_path
        self.replayed = 0  # accepted sends recorded from the spool when the store opened
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._opened: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._main, args=(location, busy_timeout), name="smsctl-writer", daemon=True
        )
        self.commits = 0
        self.batched = 0
        self.commit_seconds = Buckets(COMMIT_SECONDS)  # for /metrics
        self.batch_sizes = Buckets(BATCH_SIZES)
        self.failure: SmsctlError | None = None  # set when the thread died of a bug
        self.finished: Future[None] = Future()  # done when the thread ends; its exception if it died
        self._thread.start()
        self._opened.result()  # re-raises the error (a StoreError, a ConfigError) when the store cannot be opened

    @classmethod
    def for_settings(cls, settings: Settings) -> StoreWriter:
        return cls(settings.store, busy_timeout=settings.busy_timeout)

    async def run(self, fn: Callable[[HistoryStore], T]) -> T:
        """Run `fn(store)` inside the next group commit; returns once it is durable."""
        if self.failure is not None:
            raise self.failure
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, loop, waiter))
        if self.failure is not None:  # it died while this was queued
            self._fail_queued()
        return await waiter

    async def run_deferred(self, fn: Callable[[HistoryStore], Deferred[T]]) -> T:
        """`run` for work whose answer the backend may fetch later in the transaction (storage.Deferred)."""
        result: T = await self.run(fn)  # type: ignore[arg-type]  # resolved on the writer thread
        return result

    def run_sync(self, fn: Callable[[HistoryStore], T]) -> T:
        """The same, for callers outside an event loop."""
        waiter: Future[T] = Future()
        self._queue.put(_Job(fn, None, waiter))
        return waiter.result()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # what was queued is committed before the block's caller goes on

    def close(self) -> None:
        """Finish everything queued, then stop the thread and close the connection."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _main(self, location: Location, busy_timeout: float) -> None:
        batch_scheduling()  # wake-ups wait for the loop to block instead of preempting it (scheduling.py)
        store: HistoryStore | None = None
        try:
            store = open_store(location, busy_timeout=busy_timeout)
            self._replay_spool(store)
        except BaseException as exc:  # any failure (not only StoreError) reaches the opener: never a hang
            if store is not None:
                store.close()
            self._opened.set_exception(exc if isinstance(exc, SmsctlError) else StoreBug(exc))
            self._finish(None)
            return
        self._opened.set_result(None)
        batch: list[_Job] = []
        try:
            while (batch := self._next_batch() or []) != []:
                self._commit(store, batch)
                self._settle(batch)
                batch = []
        except BaseException as exc:  # a bug of ours: fail what waits, and say so to the owner
            self.failure = exc if isinstance(exc, SmsctlError) else StoreBug(exc)
            for job in batch:
                job.error = self.failure
            self._settle(batch)
            self._fail_queued()
            self._finish(self.failure)
            return
        finally:
            store.close()
        self._finish(None)

    def _finish(self, failure: BaseException | None) -> None:
        if self.finished.set_running_or_notify_cancel():  # False: nobody waits for it any more
            if failure is None:
                self.finished.set_result(None)
            else:
                self.finished.set_exception(failure)

    def _fail_queued(self) -> None:
        """Every job still queued gets the writer's failure (none waits forever on a dead thread)."""
        assert self.failure is not None
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                job.error = self.failure
                self._settle([job])

    def _replay_spool(self, store: HistoryStore) -> None:
        """Sends accepted while the store could not record them are recorded first (see spool.py)."""
        from smsctl.history import spool

        committed = False
        try:
            with store.transaction():
                self.replayed = spool.replay(store, self.spool_path)
            committed = True
        except Exception as exc:
            if not isinstance(store.classify(exc), StoreUnavailable):
                raise
            # still unwritable: the spool stays for the next writer
        finally:
            spool.finish(self.spool_path, committed)

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

    def _commit(self, store: HistoryStore, batch: list[_Job]) -> None:
        for attempt in range(TRANSIENT_RETRIES + 1):
            started = time.perf_counter()
            try:
                with store.transaction():
                    for job in batch:
                        job.result = job.fn(store)
                    _resolve(batch)
            except Exception as exc:
                error = store.classify(exc)
                if isinstance(error, StoreUnavailable) and error.transient and attempt < TRANSIENT_RETRIES:
                    continue
                self._failed(store, batch, error)
                return
            self.commits += 1
            self.batched += len(batch)
            self.commit_seconds.observe(time.perf_counter() - started)
            self.batch_sizes.observe(len(batch))
            return

    def _failed(self, store: HistoryStore, batch: list[_Job], error: StoreError) -> None:
        if isinstance(error, StoreUnavailable):  # busy, disk full, read-only, I/O: all of them fail
            for job in batch:
                job.error = error
            return
        # One job is broken (a bug, not the disk): run each alone so only it fails.
        for job in batch:
            self._commit_alone(store, job)

    def _commit_alone(self, store: HistoryStore, job: _Job) -> None:
        try:
            with store.transaction():
                job.result, job.error = job.fn(store), None
                _resolve([job])
        except Exception as exc:
            job.error = store.classify(exc)
        else:
            self.commits += 1

    @staticmethod
    def _settle(batch: list[_Job]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in batch:
            if job.loop is None:
                waiter: Any = job.waiter
                if job.error is not None:
                    waiter.set_exception(job.error)
                else:
                    waiter.set_result(job.result)
            else:
                by_loop.setdefault(job.loop, []).append(job)
        for loop, jobs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_async, jobs)  # one wake-up for the whole batch
            except RuntimeError:  # that loop has closed: nobody is waiting any more
                pass
