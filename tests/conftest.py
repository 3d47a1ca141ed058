"""Shared fixtures: an isolated environment per test, throwaway credentials, and a real emulator."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from smsctl.config import StoreKind, StoreLocation
from tests.helpers import APPLICATION_ID, SIGNATURE_SECRET, BackgroundSandbox
from tests.pg import INSTALL_HINT, Cluster, find_bindir

_SETTING_PREFIXES = ("VONAGE_", "SMSCTL_")
_SETTING_NAMES = {"PORT", "BASE_URL"}


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No setting leaks in from the shell, no .env from the repo, and a private data directory."""
    for name in list(os.environ):
        if name.startswith(_SETTING_PREFIXES) or name in _SETTING_NAMES:
            monkeypatch.delenv(name)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "200")
    return work


@pytest.fixture(scope="session")
def private_key_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "smsctl.db"


NO_POSTGRESQL = "no PostgreSQL binaries (initdb, pg_ctl): PostgreSQL tests skipped"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL server per test process; each test gets its own database."""
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {NO_POSTGRESQL.split(':')[0]}: {INSTALL_HINT}")
        pytest.skip(f"{NO_POSTGRESQL}; {INSTALL_HINT}")
    cluster = Cluster(bindir, flush_to_disk=False).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> str:
    """A fresh, empty PostgreSQL database (what a first `smsctl` run migrates)."""
    return pg_cluster.create_database()


@pytest.fixture(scope="session")
def pg_schema(pg_cluster: Cluster) -> str:
    """The name of a database smsctl's own migrations brought to the current schema, once per test
    process: the stores `store_at` gives are copies of it (a create and first open cost 72–92 ms of
    server CPU, a copy 37–56, and ~100 tests a run ask for one). Tests of the migrations themselves, and of what an
    empty database gets, use `pg_url`."""
    from smsctl.history.backends import open_store

    url = pg_cluster.create_database()
    open_store(StoreLocation(StoreKind.POSTGRESQL, url=url)).close()
    return url.rsplit("/", 1)[1]


@pytest.fixture
def pg_store_url(pg_cluster: Cluster, pg_schema: str) -> str:
    """A fresh PostgreSQL store with the current schema and nothing in it."""
    return pg_cluster.create_database(template=pg_schema)


@pytest.fixture(params=[StoreKind.SQLITE, StoreKind.POSTGRESQL])
def store_at(request: pytest.FixtureRequest, db_path: Path) -> StoreLocation:
    """The store under test, once per backend: the same test proves the same guarantee on both. The
    PostgreSQL one starts with the current schema (`pg_store_url`); SQLite's file is new, so smsctl
    migrates it as on a first run."""
    if request.param is StoreKind.SQLITE:
        return StoreLocation(StoreKind.SQLITE, path=db_path)
    return StoreLocation(StoreKind.POSTGRESQL, url=request.getfixturevalue("pg_store_url"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if NO_POSTGRESQL in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} tests skipped: {NO_POSTGRESQL}. To run them: {INSTALL_HINT}"
        )


@pytest.fixture
def credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, private_key_pem: bytes, db_path: Path
) -> dict[str, str]:
    """Application credentials, a signature secret, a sender and a store, in the environment."""
    key_path = tmp_path / "private.key"
    key_path.write_bytes(private_key_pem)
    env = {
        "VONAGE_APPLICATION_ID": APPLICATION_ID,
        "VONAGE_PRIVATE_KEY_PATH": str(key_path),
        "VONAGE_SIGNATURE_SECRET": SIGNATURE_SECRET,
        "VONAGE_API_KEY": "abcd1234",
        "VONAGE_NUMBER": "+14155550199",
        "SMSCTL_DB": str(db_path),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def sandbox(credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[BackgroundSandbox]:
    """The emulator on an ephemeral port in a background thread; VONAGE_API_URL points at it."""
    with BackgroundSandbox.from_environment(time_scale=0.01) as running:
        monkeypatch.setenv("VONAGE_API_URL", running.url)
        yield running


@pytest.fixture
def on_backend(
    store_at: StoreLocation, credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> StoreLocation:
    """Commands in this test use the backend under test (SMSCTL_DB set to its path or URL)."""
    monkeypatch.setenv("SMSCTL_DB", store_at.url or str(store_at.path))
    return store_at


# --- test tiers: `make test-fast` runs the unit tier (no processes, no servers, no PostgreSQL) ---------

# A test that asks for one of these starts a server, a process or a database: integration.
INTEGRATION_FIXTURES = frozenset({"sandbox", "emulator", "pg_cluster", "pg_url", "pg_store_url", "store_at",
                                  "on_backend", "aiohttp_client", "aiohttp_server", "client", "history", "writer",
                                  "lost_sandbox", "reports_emulator"})  # fmt: skip
UNIT_TIER = os.environ.get("SMSCTL_TEST_TIER") == "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.long)
    items[:] = long_tests_first(items, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


def long_tests_first(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """The order xdist hands out: it gives each worker a contiguous share of the list (then idle workers
    steal from the busiest's end), so a test that runs or waits for seconds goes at the start of a share
    (where the CPU-bound tests around it fill both cores), and the rest are interleaved file by file
    (each file's own order kept). Left in file order, the two browser tests ran last, one after the
    other, 7 s after the rest had finished."""
    long: dict[str, list[pytest.Item]] = {}  # a test's parametrizations stay together: one browser, one share
    for item in items:
        if item.get_closest_marker("long"):
            long.setdefault(getattr(item, "originalname", item.name), []).append(item)
    if workers < 2 or not long:
        return items
    rest = [item for item in items if not item.get_closest_marker("long")]
    # The rest, one file's test after another's: a file's tests wait alike (on a browser, on timeouts, on
    # PostgreSQL) or burn CPU alike, and in file order the waiting ones came together, idling both cores.
    by_file: dict[str, list[pytest.Item]] = {}
    for item in rest:
        by_file.setdefault(item.nodeid.split("::")[0], []).append(item)
    files = list(by_file.values())
    rest = [f[i] for i in range(max(map(len, files), default=0)) for f in files if i < len(f)]
    units = list(long.values())
    shares = [[item for unit in units[w::workers] for item in unit] for w in range(workers)]
    remaining = len(items)
    for w, share in enumerate(shares):  # the sizes xdist's worksteal scheduler gives each worker
        size = remaining // (workers - w)
        remaining -= size
        take = max(0, size - len(share))
        share.extend(rest[:take])
        del rest[:take]
    return [item for share in shares for item in share] + rest


@pytest.fixture(autouse=True)
def unit_tier_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the unit tier, a test that starts a process or opens a server fails, saying so: the tier
    stays what it claims to be (mark such a test `integration`)."""
    if not UNIT_TIER or request.node.get_closest_marker("integration"):
        return
    import socket
    import subprocess

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{request.node.nodeid} starts a process or a server: mark it integration")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    monkeypatch.setattr(socket.socket, "bind", refuse)


def pytest_configure(config: pytest.Config) -> None:
    _convert_the_app_once()
    _temporary_files_on_tmpfs()


def _convert_the_app_once() -> None:
    """Typer's CliRunner converts the app to its Click command on every invoke: ~30 ms of signature and
    annotation inspection across every command, ~550 times a run (~15 CPU-s, a sixth of the suite). A
    Click command keeps no state between invocations (each gets a fresh context), so every invocation
    still parses, runs and renders as in a fresh process; only the conversion is done once per process."""
    import functools

    import typer.main
    import typer.testing

    typer.testing._get_command = functools.cache(typer.main.get_command)  # type: ignore[attr-defined]


def _temporary_files_on_tmpfs() -> None:
    """Temporary files (every test's store, the PostgreSQL clusters) on tmpfs when the machine has one
    and TMPDIR does not say otherwise. They are real files either way; on disk each SQLite commit's fsync
    went to the block device, and the suite spent ~40 of its ~150 CPU-seconds (4 workers, 2 cores) in the
    kernel's I/O work and waits for it. Workers inherit the variable from the main process."""
    import tempfile

    shm = Path("/dev/shm")
    if "TMPDIR" in os.environ or not (shm.is_dir() and os.access(shm, os.W_OK)):
        return
    base = shm / f"smsctl-tests-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        base.mkdir(mode=0o711)  # traversable, not listable: the clusters' server user must reach its own
    if base.is_symlink() or base.stat().st_uid != os.getuid() or base.stat().st_mode & 0o022:
        return  # someone else's: stay in the default temporary directory
    os.environ["TMPDIR"] = str(base)
    tempfile.tempdir = None  # computed again, from TMPDIR


def pytest_collection_finish(session: pytest.Session) -> None:
    """Everything imported and collected so far lives until the end: out of the collector's sight, so
    its full collections walk only what the tests make (a worker's heap holds every test module,
    Hypothesis and Playwright)."""
    import gc

    gc.collect()
    gc.freeze()
