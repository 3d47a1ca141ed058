"""The one error tree of smsctl, and the exit codes it maps to.

Core modules raise these; `cli.py` turns them into `error: …` / `hint: …` (or JSON) in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Process exit codes, documented in the README and in `smsctl --help`."""

    OK = 0
    MESSAGE_FAILED = 1
    USAGE = 2
    CONFIG = 3
    API_REFUSED = 4
    API_UNAVAILABLE = 5
    WAIT_TIMEOUT = 6
    NOT_FOUND = 7
    SENT_NOT_RECORDED = 8
    UNRESOLVED = 9
    OPTED_OUT = 10
    GUARD = 11
    INTERRUPTED = 130
    TERMINATED = 143


EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success (with --wait: the message was delivered)",
    ExitCode.MESSAGE_FAILED: "the message failed: rejected or undeliverable (with --wait)",
    ExitCode.USAGE: "usage error: a bad argument, number or text; nothing was sent",
    ExitCode.CONFIG: "configuration error: missing or unusable settings, or the store",
    ExitCode.API_REFUSED: "the API refused the request (400, 401, 402, 403, 404, 422)",
    ExitCode.API_UNAVAILABLE: "the API was unreachable or failing (429 after retries, 5xx, timeout)",
    ExitCode.WAIT_TIMEOUT: "timed out waiting for a final status (with --wait)",
    ExitCode.NOT_FOUND: "no such message in the local history",
    ExitCode.SENT_NOT_RECORDED: "sent, not recorded: the API accepted it, the store could not record it (do not resend)",
    ExitCode.UNRESOLVED: "reconcile: messages past the grace period are still without a final status, or a record "
    "disagrees with a stored final status",
    ExitCode.OPTED_OUT: "the recipient opted out (the opt-out ledger): nothing was sent",
    ExitCode.GUARD: "a send guard refused it (SMSCTL_ALLOW_COUNTRIES, SMSCTL_DAILY_CAP, SMSCTL_BATCH_CAP, SMSCTL_DAILY_SPEND, SMSCTL_BATCH_SPEND): nothing was sent",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
    ExitCode.TERMINATED: "terminated (SIGTERM): stopped cleanly, as for Ctrl-C",
}


class SmsctlError(Exception):
    """Base of every error smsctl reports to the user."""

    exit_code: ExitCode = ExitCode.MESSAGE_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed under `--json`."""
        return {"code": int(self.exit_code), "message": self.message, "hint": self.hint}


class UsageError(SmsctlError):
    """A bad argument (number, text, option value); nothing was sent."""

    exit_code = ExitCode.USAGE


class OptedOut(SmsctlError):
    """The recipient opted out of this sender (or of all): the send was refused before any request."""

    exit_code = ExitCode.OPTED_OUT

    def __init__(self, number: str, sender: str, source: str, since: float) -> None:
        import time

        whom = "every sender" if sender == "*" else f"sender {sender}"
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(since))
        super().__init__(
            f"+{number} opted out of {whom} ({source}, {when}); nothing was sent",
            hint=f"`smsctl optout show +{number}` shows its history; only for a documented transactional "
            "exception (an OTP the user asked for, say): send --ignore-optout",
        )
        self.number = number


class GuardRefused(SmsctlError):
    """A send guard (allowed countries, a daily or per-batch cap) refused the send before any request."""

    exit_code = ExitCode.GUARD


class ConfigError(SmsctlError):
    """Missing or unusable configuration."""

    exit_code = ExitCode.CONFIG


class StoreError(SmsctlError):
    """The local store cannot be opened or written."""

    exit_code = ExitCode.CONFIG


class StoreBug(StoreError):
    """A store operation failed for a reason that is ours (an SQL or schema error): a bug, not the disk."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(
            f"internal error in the store: {type(cause).__name__}: {cause}",
            hint="this is a bug in smsctl: please report it with the command you ran (run again with --debug)",
        )
        self.__cause__ = cause


class StoreUnavailable(StoreError):
    """A store failure that is not ours to fix (busy, disk full, read-only, I/O): `reason` says which."""

    def __init__(self, reason: str, hint: str | None = None, *, transient: bool = False) -> None:
        super().__init__(f"the store cannot commit: {reason}", hint)
        self.reason = reason
        self.transient = transient  # a deadlock or serialization failure: the same work, run again, succeeds


class OutputUnwritable(SmsctlError):
    """The output (a file, or stdout) failed mid-write: disk full, an I/O error. Exits as the store's
    I/O failures do, since both are the machine's to fix."""

    exit_code = ExitCode.CONFIG

    @classmethod
    def of(cls, where: str, exc: OSError) -> OutputUnwritable:
        import errno

        hint = {
            errno.ENOSPC: "the disk is full: free some space, or write elsewhere",
            errno.EDQUOT: "your disk quota is used up: free some space, or write elsewhere",
            errno.EIO: "the disk reported an I/O error: check it, or write elsewhere",
        }.get(exc.errno or 0, "check the destination, or write elsewhere")
        return cls(f"cannot write {where}: {exc.strerror or exc}", hint=hint)


@dataclass(frozen=True)
class Problem:
    """An RFC 7807 problem+json body as the Messages API returns it."""

    status: int
    type: str = ""
    title: str = ""
    detail: str = ""
    instance: str = ""
    invalid_parameters: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def from_response(cls, status: int, body: bytes) -> Problem:
        """Read an error response's problem+json body; anything else becomes its first 200 bytes as the title."""
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return cls(status, title=body[:200].decode("utf-8", "replace"))
        params = data.get("invalid_parameters") or []
        if isinstance(params, dict):  # some SDK typings show a single object
            params = [params]
        return cls(
            status,
            type=str(data.get("type", "")),
            title=str(data.get("title", "")),
            detail=str(data.get("detail", "")),
            instance=str(data.get("instance", "")),
            invalid_parameters=[
                {"name": str(p.get("name", "")), "reason": str(p.get("reason", ""))}
                for p in params
                if isinstance(p, dict)
            ],
        )

    def describe(self) -> str:
        """One readable paragraph: title, detail and each invalid parameter."""
        parts = [f"{self.status} {self.title}".strip()]
        if self.detail:
            parts.append(self.detail)
        for param in self.invalid_parameters:
            parts.append(f"  {param.get('name', '?')}: {param.get('reason', '?')}")
        if self.instance:
            parts.append(f"(instance {self.instance})")
        return "\n".join(parts)


class ApiRefused(SmsctlError):
    """The API answered with a 4xx: the request itself is wrong; retrying will not help."""

    exit_code = ExitCode.API_REFUSED

    def __init__(self, problem: Problem, hint: str | None = None) -> None:
        super().__init__(problem.describe(), hint)
        self.problem = problem

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["status"] = self.problem.status
        data["problem"] = {
            "type": self.problem.type,
            "title": self.problem.title,
            "detail": self.problem.detail,
            "instance": self.problem.instance,
            "invalid_parameters": self.problem.invalid_parameters,
        }
        return data


class RowsRefused(SmsctlError):
    """Some rows of a batch were refused by the API (each row's problem is in its outcome)."""

    exit_code = ExitCode.API_REFUSED


class ApiUnavailable(SmsctlError):
    """The API could not be reached, kept throttling, failed, or timed out."""

    exit_code = ExitCode.API_UNAVAILABLE


class OutcomeUnknown(ApiUnavailable):
    """The request went out but no usable answer came back: the message may exist."""


class SentNotRecorded(SmsctlError):
    """The API accepted the message, but the store could not record it. Never a reason to resend."""

    exit_code = ExitCode.SENT_NOT_RECORDED

    def __init__(self, message: str, hint: str, message_uuid: str | None = None) -> None:
        super().__init__(message, hint)
        self.message_uuid = message_uuid

    @classmethod
    def one(cls, message_uuid: str, reason: str, spooled: str | None) -> SentNotRecorded:
        where = (
            f"kept in {spooled} and recorded the next time smsctl can write the store"
            if spooled
            else "could not be kept anywhere: write it down"
        )
        return cls(
            f"the message was sent (message_uuid {message_uuid}) but the store could not record it: {reason}",
            f"do NOT send it again. Its uuid is {where}; free the store (disk space, the process holding "
            "its lock) and `smsctl status` will show it",
            message_uuid,
        )

    @classmethod
    def rows(cls, count: int, reason: str) -> SentNotRecorded:
        return cls(
            f"{count} row(s) were sent but the store could not record them: {reason}",
            "do NOT use --resend-unknown for them. Free the store, then rerun the same command: their "
            "uuids are recorded first (from the spool beside the store), so nothing is sent twice",
        )

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "message_uuid": self.message_uuid, "sent": True, "recorded": False}


class MessageFailed(SmsctlError):
    """The message reached a failed final status (rejected or undeliverable)."""

    exit_code = ExitCode.MESSAGE_FAILED


class WaitTimeout(SmsctlError):
    """No final status arrived within the timeout."""

    exit_code = ExitCode.WAIT_TIMEOUT


class Terminated(SmsctlError):
    """SIGTERM: the command stopped as cleanly as on Ctrl-C."""

    exit_code = ExitCode.TERMINATED


class NotFound(SmsctlError):
    """No such message in the local history."""

    exit_code = ExitCode.NOT_FOUND
