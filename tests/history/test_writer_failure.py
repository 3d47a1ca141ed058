"""The listener never lingers as a zombie when its store fails (issue 20, item 22): a store that cannot be
opened exits 3 before the port opens; a writer thread that dies later fails every waiter and ends the
listener with its error."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from smsctl.config import StoreKind, StoreLocation
from smsctl.errors import StoreBug
from smsctl.history.writer import StoreWriter
from smsctl.webhooks.listening import _serve_until


@pytest.mark.integration
@pytest.mark.integration
def test_listen_exits_3_naming_the_extra_when_the_postgresql_driver_cannot_load(
    credentials: dict[str, str], tmp_path: Path
) -> None:
    broken = tmp_path / "site" / "psycopg"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('No module named psycopg (in this test)')\n")
    env = {
        **credentials,
        "SMSCTL_DB": "postgresql://smsctl@127.0.0.1:1/smsctl",
        "PYTHONPATH": str(tmp_path / "site"),
    }
    import os

    result = subprocess.run([sys.executable, "-m", "smsctl", "listen", "--port", "0", "--json"],
                            env={**os.environ, **env}, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "pip install 'smsctl[postgresql]'" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == "", "no `ready` line: the port never opened"


class Bug(BaseException):
    """Something no commit path catches: the writer thread dies of it."""


async def test_a_writer_thread_that_dies_fails_every_waiter_and_ends_the_listener(db_path: Path) -> None:
    writer = StoreWriter(StoreLocation(StoreKind.SQLITE, path=db_path))
    try:

        def die(store: object) -> None:
            raise Bug("the writer's bug")

        with pytest.raises(StoreBug, match="the writer's bug"):
            await writer.run(die)
        with pytest.raises(StoreBug):  # later work fails at once instead of waiting forever
            await asyncio.wait_for(writer.run(lambda s: s.counts()), 5)
        with pytest.raises(StoreBug):
            await asyncio.wait_for(_serve_until(asyncio.Event(), writer), 5)
    finally:
        writer.close()
