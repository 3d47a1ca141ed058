"""Reading a recipients file for `bulk`: once, from any kind of file, streamed in constant memory.

A regular file is read where it is (twice: once to validate, once to send). A pipe, FIFO, process
substitution (`<(…)`) or standard input (`-`) can be read only once, so it is copied once into a
private temporary file first. Either way the rows are streamed, never held in memory.
"""

from __future__ import annotations

import csv
import hashlib
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from smsctl.errors import UsageError

CHUNK = 1 << 20
DELIMITERS = (",", ";", "\t")


@dataclass(frozen=True)
class Row:
    """One recipient line of the file."""

    line: int
    to: str
    text: str | None
    client_ref: str | None
    fields: dict[str, str]


class Recipients:
    """`with Recipients(source) as recipients:` — `rows()` streams them, `digest` identifies the content."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.path, self._copy, digest = self._readable(source)
        self.digest = digest or self._digest()

    def __enter__(self) -> Recipients:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        if self._copy is not None:
            self._copy.unlink(missing_ok=True)

    def _readable(self, source: str) -> tuple[Path, Path | None, str | None]:
        """(where to read, the private copy to delete, the content's digest if already known)."""
        if source == "-":
            return self._copied(sys.stdin.buffer)
        path = Path(source)
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise UsageError(
                f"cannot read {source}: {exc.strerror}", hint="give a CSV file, or - for stdin"
            ) from None
        if stat.S_ISDIR(mode):
            raise UsageError(f"{source} is a directory", hint="give the CSV file inside it")
        if stat.S_ISREG(mode):
            return path, None, None
        try:  # a pipe, FIFO or device: it can be read only once
            with open(path, "rb") as stream:
                return self._copied(stream)
        except OSError as exc:
            raise UsageError(f"cannot read {source}: {exc.strerror}") from None

    @staticmethod
    def _copied(stream: IO[bytes]) -> tuple[Path, Path, str]:
        fd, name = tempfile.mkstemp(prefix="smsctl-bulk-")  # 0600: it holds phone numbers
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as copy:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
                copy.write(chunk)
        return Path(name), Path(name), digest.hexdigest()

    def _digest(self) -> str:
        digest = hashlib.sha256()
        try:
            with open(self.path, "rb") as stream:
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
        except OSError as exc:
            raise UsageError(f"cannot read {self.source}: {exc.strerror}") from None
        return digest.hexdigest()

    def rows(self) -> Iterator[Row]:
        """Every recipient row: a CSV with a `to` column (comma, semicolon or tab separated; optional
        `text`, `client_ref`, any placeholders), or one number a line (`#` starts a comment)."""
        try:
            with open(self.path, encoding="utf-8-sig", newline="") as stream:
                first = _first_content_line(stream)
                stream.seek(0)  # the utf-8-sig decoder starts afresh: a BOM is skipped again
                delimiter = next((d for d in DELIMITERS if d in first), None)
                if delimiter is None and first.strip().lower() != "to":
                    yield from _plain_rows(stream)
                else:
                    yield from self._csv_rows(stream, delimiter or ",")
        except UnicodeDecodeError:
            raise UsageError(
                f"{self.source} is not UTF-8 text", hint="save the file as UTF-8 (CSV UTF-8)"
            ) from None

    def _csv_rows(self, stream: IO[str], delimiter: str) -> Iterator[Row]:
        reader = csv.DictReader(stream, delimiter=delimiter)
        headers = [h.strip().lower() for h in reader.fieldnames or []]
        if "to" not in headers:
            others = [d for d in DELIMITERS if d != delimiter and any(d in h for h in headers)]
            raise UsageError(
                f"{self.source} has no `to` column (columns read: {', '.join(headers)[:80]})",
                hint=f"columns look separated by {others[0]!r}, not {delimiter!r}: fix the first line"
                if others
                else "the first line must name the columns, e.g. to,name",
            )
        reader.fieldnames = headers
        for record in reader:
            fields = {
                k: (v or "").strip() for k, v in record.items() if isinstance(k, str) and isinstance(v, str)
            }
            yield Row(reader.line_num, fields.get("to", ""), fields.get("text") or None,
                      fields.get("client_ref") or None, fields)  # fmt: skip


def _first_content_line(stream: IO[str]) -> str:
    for line in stream:
        if line.strip() and not line.lstrip().startswith("#"):
            return line
    return ""


def _plain_rows(stream: IO[str]) -> Iterator[Row]:
    for number, line in enumerate(stream, 1):
        text = line.strip()
        if text and not text.startswith("#"):
            yield Row(number, text, None, None, {})
