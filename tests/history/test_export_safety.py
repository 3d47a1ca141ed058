"""`smsctl export` never destroys what it exports, neutralises spreadsheet formulas, counts right, and
turns a full disk into an error (issue 20, items 1, 9 and 10)."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smsctl.cli import app
from smsctl.history.backends import open_store
from smsctl.history.events import parse_status
from smsctl.history.export import safe_cell

runner = CliRunner()


def status(n: int, value: str = "delivered", **extra: object) -> bytes:
    return json.dumps({"message_uuid": f"aaaaaaaa-0000-4000-8000-{n:012d}", "to": "14155550101",
                       "from": "14155550199", "status": value, "timestamp": "2025-02-03T12:00:00Z",
                       "channel": "sms", **extra}).encode()  # fmt: skip


def seed(db: Path, count: int, **extra: object) -> None:
    store = open_store(db)
    try:
        with store.transaction():
            for n in range(count):
                store.apply_status(parse_status(status(n, **extra)), time.time())
    finally:
        store.close()


def stored_count(db: Path) -> int:
    store = open_store(db)
    try:
        return sum(1 for _ in store.recent_messages(10_000))
    finally:
        store.close()


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", ".unrecorded"])
def test_export_onto_the_store_or_its_files_is_refused_and_loses_nothing(
    credentials: dict[str, str], db_path: Path, suffix: str
) -> None:
    seed(db_path, 5)
    own = Path(f"{db_path}{suffix}")
    own.touch(exist_ok=True)
    before = own.read_bytes()
    result = runner.invoke(app, ["export", "-o", str(own)])
    assert result.exit_code == 2, result.output
    assert "the store's own file" in result.stderr and "destroy the history" in result.stderr
    assert own.read_bytes() == before, "not a byte of the store's file changed"
    assert stored_count(db_path) == 5


def test_another_name_for_the_store_is_refused_too(credentials: dict[str, str], db_path: Path) -> None:
    seed(db_path, 3)
    (db_path.parent / "alias.db").symlink_to(db_path)
    os.link(db_path, db_path.parent / "hardlink.db")
    for other in ("alias.db", "hardlink.db"):
        result = runner.invoke(app, ["export", "-o", str(db_path.parent / other)])
        assert result.exit_code == 2 and "the store's own file" in result.stderr, result.output
    assert stored_count(db_path) == 3


def test_a_failing_export_leaves_the_existing_file_whole(
    credentials: dict[str, str], db_path: Path, tmp_path: Path
) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_text("message_uuid,to\nnot,a database\n")  # SMSCTL_DB is not a store: the export fails
    target = tmp_path / "last-week.csv"
    target.write_text("precious\n")
    result = runner.invoke(app, ["export", "--format", "csv", "-o", str(target)])
    assert result.exit_code == 3, result.output
    assert target.read_text() == "precious\n", "never truncated before the export produced its rows"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == [], "no temporary left"


def test_export_replaces_an_existing_file_once_complete_and_keeps_it_private(
    credentials: dict[str, str], db_path: Path, tmp_path: Path
) -> None:
    seed(db_path, 2)
    target = tmp_path / "out.jsonl"
    target.write_text("old contents that are longer than the new ones will be, surely\n" * 100)
    target.chmod(0o644)
    result = runner.invoke(app, ["export", "-o", str(target), "--json"])
    assert result.exit_code == 0, result.output
    assert len(target.read_text().splitlines()) == 2
    assert target.stat().st_mode & 0o777 == 0o600
    assert json.loads(result.stdout) == {"exported": 2, "kind": "messages", "output": str(target),
                                         "format": "jsonl"}  # fmt: skip


@pytest.mark.parametrize("rows", [0, 1, 2, 1500])
def test_the_csv_count_is_the_number_of_rows(credentials: dict[str, str], db_path: Path, rows: int) -> None:
    seed(db_path, rows)
    result = runner.invoke(app, ["export", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert len(list(csv.DictReader(io.StringIO(result.stdout)))) == rows
    assert f"exported {rows:,} messages" in result.stderr


@pytest.mark.integration
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="this system has no /dev/full")
@pytest.mark.integration
def test_a_full_disk_is_a_clear_error_not_a_traceback(credentials: dict[str, str], db_path: Path) -> None:
    import subprocess
    import sys

    seed(db_path, 3)
    to_file = subprocess.run([sys.executable, "-m", "smsctl", "export", "-o", "/dev/full"],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    with open("/dev/full", "w") as full:
        to_stdout = subprocess.run([sys.executable, "-m", "smsctl", "export"], stdout=full,
                                   stderr=subprocess.PIPE, text=True, timeout=60)  # fmt: skip
    for result in (to_file, to_stdout):
        assert result.returncode == 3, result.stderr
        assert "Traceback" not in result.stderr
        assert "No space left on device" in result.stderr and "hint: the disk is full" in result.stderr


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(
    credentials: dict[str, str], db_path: Path
) -> None:
    seed(db_path, 1, client_ref='=HYPERLINK("http://evil","x")')
    result = runner.invoke(app, ["export", "--format", "csv"])
    (row,) = list(csv.DictReader(io.StringIO(result.stdout)))
    assert row["client_ref"] == '\'=HYPERLINK("http://evil","x")'
    jsonl = runner.invoke(app, ["export"])
    assert json.loads(jsonl.stdout)["client_ref"] == '=HYPERLINK("http://evil","x")', "JSON Lines stays exact"


@pytest.mark.parametrize(
    ("cell", "written"),
    [("=1+1", "'=1+1"), ("+SUM(A1)", "'+SUM(A1)"), ("-2+3", "'-2+3"), ("@cmd", "'@cmd"), ("\tx", "'\tx"),
     ("\rx", "'\rx"), ("+14155550101", "+14155550101"), ("-0.05", "-0.05"), ("hello = x", "hello = x"),
     ("", ""), (3, 3)],
)  # fmt: skip
def test_safe_cell(cell: object, written: object) -> None:
    assert safe_cell(cell) == written
