"""Which backend a store is, and opening it: SMSCTL_DB as a file path is SQLite (history/sqlite.py), a
postgresql:// URL is PostgreSQL (history/postgres.py). The factory lives here, apart from the
interface (history/interface.py), so the interface imports neither backend nor the writer: the
backends import the interface, and this module imports them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Union

from smsctl.history.interface import HistoryStore

if TYPE_CHECKING:
    from smsctl.config import StoreLocation


Location = Union["StoreLocation", Path, str]


def location_of(where: Location) -> StoreLocation:
    from smsctl.config import StoreKind, StoreLocation, store_location

    if isinstance(where, StoreLocation):
        return where
    if isinstance(where, Path) or "://" not in str(where):
        return StoreLocation(StoreKind.SQLITE, path=Path(where))
    return store_location(str(where))


def _pgstore() -> ModuleType:
    """The PostgreSQL backend, or a ConfigError that says how to install its driver."""
    try:
        from smsctl.history import postgres as pgstore
    except ImportError as exc:
        from smsctl.errors import ConfigError

        raise ConfigError(
            f"SMSCTL_DB is a PostgreSQL URL, but its driver cannot be loaded ({exc})",
            hint="pip install 'smsctl[postgresql]' (psycopg 3), or set SMSCTL_DB to a file path",
        ) from None
    return pgstore


def open_reader(where: Location) -> HistoryStore | None:
    """The store opened read-only; None when there is none yet. Never creates or migrates one."""
    location = location_of(where)
    if location.url is not None:
        reader: HistoryStore | None = _pgstore().PgStore.reader(location)
        return reader
    from smsctl.history.sqlite import Store

    return Store.reader(location.path or Path())


def open_store(where: Location, *, busy_timeout: float = 5.0) -> HistoryStore:
    """The store opened for writing (created and migrated as needed)."""
    location = location_of(where)
    if location.url is not None:
        store: HistoryStore = _pgstore().PgStore(location, busy_timeout=busy_timeout)
        return store
    from smsctl.history.sqlite import Store

    return Store(location.path or Path(), busy_timeout=busy_timeout)


async def watch_changes(where: Location, timeout: float, read: Callable[[HistoryStore], bool]) -> None:
    """Call `read(store)` each time the store may have changed (another process committed), until it
    returns True or `timeout` passes: how waiters notice statuses stored by a listener."""
    location = location_of(where)
    if location.url is not None:
        await _pgstore().watch_changes(location, timeout, read)
        return
    from smsctl.history import sqlite as store

    await store.watch_changes(location.path or Path(), timeout, read)


def environment_notes(where: Location) -> list[str]:
    """What the backend wants the user to know about this machine (`smsctl config` shows it)."""
    if location_of(where).url is not None:
        return []
    from smsctl.history import sqlite as store

    return store.environment_notes()
