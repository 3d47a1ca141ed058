"""How a psycopg error becomes smsctl's: the server's or the network's condition (down, full, read-only,
a deadlock: retry later, with a hint that says what to check) or ours (a bug, never disguised as
unavailable). The PostgreSQL backend's half of what sqlite.py decides for SQLite's errors."""

from __future__ import annotations

import psycopg
from psycopg import errors as pgerrors

from smsctl.errors import StoreBug, StoreUnavailable

# SQLSTATE classes that are the server's or the network's condition, not our bug.
_TRANSIENT = (pgerrors.DeadlockDetected, pgerrors.SerializationFailure)
_UNAVAILABLE = (
    psycopg.OperationalError,  # connection lost or refused, server shutting down, too many clients
    pgerrors.InsufficientResources,  # disk full, out of memory
    pgerrors.ReadOnlySqlTransaction,  # a standby, or default_transaction_read_only
    pgerrors.LockNotAvailable,  # lock_timeout
    pgerrors.QueryCanceled,  # statement_timeout
    pgerrors.InsufficientPrivilege,
)


def classify(exc: BaseException) -> StoreUnavailable | StoreBug:
    """The server's condition (down, full, read-only, a deadlock: retry later) or ours (SQL or schema
    errors: a bug, never disguised as unavailable)."""
    if isinstance(exc, _TRANSIENT):
        return StoreUnavailable(f"PostgreSQL: {first_line(exc)}", transient=True)
    if isinstance(exc, psycopg.InterfaceError) and "closed" in str(exc):
        return StoreUnavailable("PostgreSQL: the connection was closed", hint=_DOWN_HINT)
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(f"PostgreSQL: {first_line(exc)}", hint=hint_for(exc))
    return StoreBug(exc)


_DOWN_HINT = "check that the PostgreSQL server in SMSCTL_DB is running and reachable"


def hint_for(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, pgerrors.InsufficientPrivilege):
        return "grant the SMSCTL_DB user rights on smsctl's tables (or use the user that created them)"
    if isinstance(exc, pgerrors.ReadOnlySqlTransaction):
        return "SMSCTL_DB points at a read-only server (a standby?): point it at the primary"
    if "password" in text or "authentication" in text:
        return "check the user and password in SMSCTL_DB (or in ~/.pgpass, PGPASSWORD)"
    if "does not exist" in text:
        return "create the database (createdb NAME) or fix its name in SMSCTL_DB"
    if "translate host name" in text or "Name or service not known" in text:
        return "check the host name in SMSCTL_DB"
    return _DOWN_HINT


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
