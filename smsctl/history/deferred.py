"""A write's result that a backend may fetch later in the same transaction (its own module so the
storage interface and the backends' shared mixins can all use it without importing each other)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Deferred(Generic[T]):
    """A write's result that the backend fetches later in the same transaction.

    PostgreSQL sends a whole group commit's work in one pipeline (one round trip instead of one per
    statement); the writer resolves every Deferred before the commit. SQLite's are ready at once.
    """

    __slots__ = ("_fetch",)

    def __init__(self, fetch: Callable[[], T]) -> None:
        self._fetch = fetch

    @classmethod
    def ready(cls, value: T) -> Deferred[T]:
        return cls(lambda: value)

    def resolve(self) -> T:
        return self._fetch()

    def then(self, fn: Callable[[T], T]) -> Deferred[T]:
        """Run `fn` on the result once it is fetched, still inside the transaction."""
        return Deferred(lambda: fn(self.resolve()))
