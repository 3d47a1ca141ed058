"""Settings and where each came from: flag > environment > `.env` in the working directory > default."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from smsctl.errors import ConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

DEFAULT_API_URL = "https://api.nexmo.com"
MIN_RSA_BITS = 2048  # what Vonage generates; PyJWT warns below it, and such a key is forgeable


@dataclass(frozen=True)
class Variable:
    """One configuration variable: its name, default, whether it is secret, and what it means."""

    name: str
    default: str | None
    secret: bool
    meaning: str


VARIABLES: tuple[Variable, ...] = (
    Variable("VONAGE_API_KEY", None, False, "API key (Basic auth; checked against webhook `api_key`)"),
    Variable("VONAGE_API_SECRET", None, True, "API secret (Basic auth when there is no application)"),
    Variable("VONAGE_APPLICATION_ID", None, False, "application ID (JWT auth, with a private key)"),
    Variable("VONAGE_PRIVATE_KEY_PATH", None, False, "path of the application's private key (PEM)"),
    Variable("VONAGE_PRIVATE_KEY", None, True, "the private key PEM text itself (CI, containers)"),
    Variable("VONAGE_SIGNATURE_SECRET", None, True, "signature secret that signs webhooks (HS256)"),
    Variable(
        "VONAGE_SIGNATURE_SECRET_PREVIOUS",
        None,
        True,
        "the previous secret, accepted while rotating",
    ),
    Variable("VONAGE_NUMBER", None, False, "default sender: your Vonage number or sender ID"),
    Variable("PORT", "3000", False, "port of `smsctl listen` and of the embedded --wait listener"),
    Variable("BASE_URL", None, False, "public URL of the listener (e.g. your ngrok URL)"),
    Variable("VONAGE_API_URL", DEFAULT_API_URL, False, "Messages API base URL (http:// loopback only)"),
    Variable(
        "SMSCTL_DB",
        None,
        False,
        "the store: a SQLite file path (default: user data directory) or a postgresql:// URL",
    ),
    Variable("SMSCTL_HTTP_TIMEOUT", "15", False, "seconds to wait for the API to answer a request"),
    Variable(
        "SMSCTL_STORE_TEXT",
        "true",
        False,
        "false: keep SMS texts out of the store (length and segments stay)",
    ),
    Variable(
        "SMSCTL_BUSY_TIMEOUT", "5", False, "seconds a write waits for another process's lock on the store"
    ),
    Variable(
        "SMSCTL_HEARTBEAT", "2", False, "seconds between a listener's heartbeats (gone after missing 5)"
    ),
    Variable("SMSCTL_RECORD_RETRY", "30", False, "seconds to keep retrying to record an accepted send"),
    Variable(
        "SMSCTL_REPORTS_RATE",
        "9",
        False,
        "Reports API requests per second (`reconcile`): the API allows 10; lower it if others share the account",
    ),
    Variable(
        "SMSCTL_ALLOW_COUNTRIES",
        None,
        False,
        "countries sends may go to, e.g. US,CA,GB (ISO 3166 codes); unset: any",
    ),
    Variable("SMSCTL_DAILY_CAP", None, False, "most messages sent per UTC day, by every sender of the store"),
    Variable("SMSCTL_BATCH_CAP", None, False, "most messages one bulk batch may send"),
    Variable(
        "SMSCTL_OPTOUT_KEYWORDS",
        "STOP,UNSUBSCRIBE,CANCEL,END,QUIT",
        False,
        "an inbound SMS that is one of these words opts its sender out (whole text, any case; STOPALL: of every sender)",
    ),
    Variable(
        "SMSCTL_OPTIN_KEYWORDS", "START,UNSTOP,YES", False, "an inbound SMS that is one of these opts back in"
    ),
    Variable(
        "SMSCTL_DAILY_SPEND",
        None,
        False,
        "most estimated spend per UTC day (in the currency Vonage prices in, e.g. 50), by every sender of the store",
    ),
    Variable("SMSCTL_BATCH_SPEND", None, False, "most estimated spend of one bulk batch"),
    Variable(
        "SMSCTL_FALLBACK_PRICE",
        None,
        False,
        "price of one segment to a country no price was seen for yet (estimates for spend caps and --dry-run)",
    ),
    Variable(
        "SMSCTL_STALE_AFTER",
        "15m",
        False,
        "a message without a final status this long after sending is `stale` (and `reconcile` asks about it)",
    ),
    Variable(
        "SMSCTL_FORWARD_BACKOFF",
        "5,300",
        False,
        "seconds between retries of a failed forward: first,longest (doubling, with jitter)",
    ),
)
VARIABLES_BY_NAME = {v.name: v for v in VARIABLES}


def default_db_path() -> Path:
    """The store's default path: `$XDG_DATA_HOME/smsctl/smsctl.db` (or ~/.local/share/…)."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "smsctl" / "smsctl.db"


def _read_dotenv(directory: Path) -> dict[str, str]:
    path = directory / ".env"
    try:
        if not path.is_file():
            return {}
    except OSError:  # the working directory itself cannot be read: there is no .env to use
        return {}
    from dotenv import dotenv_values  # lazily: only when a .env exists

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


@dataclass(frozen=True)
class Settings:
    """Resolved settings; `sources` says where each value came from."""

    values: Mapping[str, str | None]
    sources: Mapping[str, str]

    def _get(self, name: str) -> str | None:
        """The value of one variable, or None when unset or empty."""
        value = self.values.get(name)
        return value if value else None

    def require(self, name: str, why: str) -> str:
        """The value of one variable, or a ConfigError that says how to set it."""
        value = self._get(name)
        if value is None:
            raise ConfigError(
                f"{name} is not set; it is needed {why}",
                hint=f"export {name}=… or add it to .env (see .env.example)",
            )
        return value

    def with_overrides(self, **values: str) -> Settings:
        """The same settings with some values replaced, as if given as flags (the demo's own emulator)."""
        return Settings({**self.values, **values}, {**self.sources, **dict.fromkeys(values, "flag")})

    @property
    def api_key(self) -> str | None:
        return self._get("VONAGE_API_KEY")

    @property
    def api_secret(self) -> str | None:
        return self._get("VONAGE_API_SECRET")

    @property
    def application_id(self) -> str | None:
        return self._get("VONAGE_APPLICATION_ID")

    @property
    def sender(self) -> str | None:
        """The default sender (VONAGE_NUMBER)."""
        return self._get("VONAGE_NUMBER")

    @property
    def base_url(self) -> str | None:
        """The listener's public URL (BASE_URL), without a trailing slash."""
        base = self._get("BASE_URL")
        return base.rstrip("/") if base else None

    @property
    def signature_secret(self) -> str | None:
        return self._get("VONAGE_SIGNATURE_SECRET")

    @property
    def api_url(self) -> str:
        """The validated Messages API base URL, without a trailing slash."""
        return validate_api_url(self._get("VONAGE_API_URL") or DEFAULT_API_URL)

    @property
    def api_is_local(self) -> bool:
        """The API is on this machine (the emulator)."""
        from urllib.parse import urlsplit

        return is_loopback_host(urlsplit(self.api_url).hostname or "")

    @property
    def store(self) -> StoreLocation:
        """Where the history lives: a SQLite file or a PostgreSQL URL (other URLs are refused)."""
        return store_location(self._get("SMSCTL_DB"))

    @property
    def db_path(self) -> Path:
        """The SQLite store's path (tests and SQLite-only tools); ConfigError for a PostgreSQL store."""
        location = self.store
        if location.path is None:
            raise ConfigError(f"SMSCTL_DB={location.display} is a PostgreSQL database, not a file")
        return location.path

    @property
    def port(self) -> int:
        """The listener port."""
        return _parse_number("PORT", self._get("PORT") or "3000", int, 0, 65535)

    @property
    def http_timeout(self) -> float:
        """Seconds to wait for one API request."""
        return _parse_number(
            "SMSCTL_HTTP_TIMEOUT", self._get("SMSCTL_HTTP_TIMEOUT") or "15", float, 0.01, 600
        )

    @property
    def store_text(self) -> bool:
        """Whether texts (often one-time codes) are kept in the store."""
        raw = (self._get("SMSCTL_STORE_TEXT") or "true").strip().lower()
        if raw in ("true", "1", "yes", "on"):
            return True
        if raw in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"SMSCTL_STORE_TEXT={raw!r} is not true or false", hint="set it to true or false")

    @property
    def busy_timeout(self) -> float:
        """Seconds one store write waits for a lock held by another process."""
        return _parse_number("SMSCTL_BUSY_TIMEOUT", self._get("SMSCTL_BUSY_TIMEOUT") or "5", float, 0, 600)

    @property
    def heartbeat(self) -> float:
        """Seconds between a running listener's heartbeats in the store."""
        return _parse_number("SMSCTL_HEARTBEAT", self._get("SMSCTL_HEARTBEAT") or "2", float, 0.05, 60)

    @property
    def record_retry(self) -> float:
        """Seconds to keep trying to record a send the API accepted, before spooling it."""
        return _parse_number("SMSCTL_RECORD_RETRY", self._get("SMSCTL_RECORD_RETRY") or "30", float, 0, 3600)

    @property
    def allowed_countries(self) -> frozenset[str] | None:
        """SMSCTL_ALLOW_COUNTRIES as upper-case ISO codes; None: any country."""
        raw = self._get("SMSCTL_ALLOW_COUNTRIES")
        if not raw:
            return None
        codes = frozenset(c.strip().upper() for c in raw.split(",") if c.strip())
        if not codes or not all(len(c) == 2 and c.isalpha() and c.isascii() for c in codes):
            raise ConfigError(f"SMSCTL_ALLOW_COUNTRIES={raw!r} is not a list of two-letter country codes",
                              hint="e.g. SMSCTL_ALLOW_COUNTRIES=US,CA,GB")  # fmt: skip
        return codes

    @property
    def daily_cap(self) -> int | None:
        raw = self._get("SMSCTL_DAILY_CAP")
        return _parse_number("SMSCTL_DAILY_CAP", raw, int, 0, 10**9) if raw else None

    @property
    def batch_cap(self) -> int | None:
        raw = self._get("SMSCTL_BATCH_CAP")
        return _parse_number("SMSCTL_BATCH_CAP", raw, int, 0, 10**9) if raw else None

    @property
    def optout_keywords(self) -> tuple[frozenset[str], frozenset[str]]:
        """(opt-out words, opt-in words), each as inbound texts are compared (no spaces, upper case)."""
        lists = []
        for name in ("SMSCTL_OPTOUT_KEYWORDS", "SMSCTL_OPTIN_KEYWORDS"):
            raw = self._get(name) or str(VARIABLES_BY_NAME[name].default)
            words = frozenset("".join(w.split()).upper().strip(".!") for w in raw.split(","))
            if not words or "" in words or any(len(w) > 40 for w in words):
                raise ConfigError(f"{name}={raw!r} is not a comma-separated list of words",
                                  hint="e.g. SMSCTL_OPTOUT_KEYWORDS=STOP,UNSUBSCRIBE,CANCEL,END,QUIT,ARRET")  # fmt: skip
            lists.append(words)
        if both := lists[0] & lists[1]:
            raise ConfigError(f"{', '.join(sorted(both))} is both an opt-out and an opt-in keyword",
                              hint="keep each word in one of SMSCTL_OPTOUT_KEYWORDS and SMSCTL_OPTIN_KEYWORDS")  # fmt: skip
        return lists[0], lists[1]

    @property
    def daily_spend(self) -> float | None:
        """SMSCTL_DAILY_SPEND: the most a UTC day's sends may cost, estimated, in the prices' currency."""
        return self._amount("SMSCTL_DAILY_SPEND")

    @property
    def batch_spend(self) -> float | None:
        return self._amount("SMSCTL_BATCH_SPEND")

    @property
    def fallback_price(self) -> float | None:
        """SMSCTL_FALLBACK_PRICE: the price of a segment to a country the store has seen no price for."""
        return self._amount("SMSCTL_FALLBACK_PRICE")

    def _amount(self, name: str) -> float | None:
        raw = self._get(name)
        return float(_parse_number(name, raw, float, 0, 10**9)) if raw else None

    @property
    def reports_rate(self) -> float:
        """Requests per second `reconcile` sends to the Reports API (it allows 10)."""
        return _parse_number("SMSCTL_REPORTS_RATE", self._get("SMSCTL_REPORTS_RATE") or "9", float, 0.1, 1000)

    @property
    def stale_after(self) -> float:
        """Seconds after sending when a message still without a final status is shown as `stale`."""
        import re

        raw = (self._get("SMSCTL_STALE_AFTER") or "15m").strip()
        match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", raw)
        if not match or float(match.group(1)) <= 0:
            raise ConfigError(
                f"SMSCTL_STALE_AFTER={raw!r} is not a duration", hint="e.g. 15m, 2h or 900 (seconds)"
            )
        return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]

    @property
    def forward_backoff(self) -> tuple[float, float]:
        """(first, longest) pause between retries of a failed forward (`listen --forward-to`)."""
        raw = self._get("SMSCTL_FORWARD_BACKOFF") or "5,300"
        parts = raw.split(",")
        if len(parts) != 2:
            raise ConfigError(
                f"SMSCTL_FORWARD_BACKOFF={raw!r} is not FIRST,LONGEST", hint="e.g. 5,300 (seconds)"
            )
        first = _parse_number("SMSCTL_FORWARD_BACKOFF", parts[0].strip(), float, 0.01, 86400)
        longest = _parse_number("SMSCTL_FORWARD_BACKOFF", parts[1].strip(), float, first, 86400)
        return first, longest

    def signature_secrets(self) -> list[bytes]:
        """The signature secrets to verify webhooks with: current first, then the previous one."""
        current = self.require("VONAGE_SIGNATURE_SECRET", "to verify signed webhooks")
        secrets = [current.encode()]
        previous = self._get("VONAGE_SIGNATURE_SECRET_PREVIOUS")
        if previous:
            secrets.append(previous.encode())
        return secrets


def _parse_number(name: str, raw: str, kind: type[int] | type[float], low: float, high: float) -> int:
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number", hint=f"set {name} to a number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={raw!r} is out of range ({low}–{high})")
    return value  # type: ignore[return-value]


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback addresses, the only hosts allowed over plain http."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_api_url(url: str) -> str:
    """Accept https URLs, and http only for loopback hosts (the local emulator)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"VONAGE_API_URL={url!r} is not an http(s) URL",
            hint="use https://api.nexmo.com, or http://127.0.0.1:PORT for `smsctl sandbox`",
        )
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"VONAGE_API_URL={url!r} uses plain http for a non-loopback host",
            hint="credentials would cross the network unencrypted: use https://",
        )
    return url.rstrip("/")


def redact_url(url: str) -> str:
    """A URL with any password (in the authority or a `password=` parameter) replaced, so it can be shown."""
    parts = urlsplit(url)
    if parts.password is not None:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":•••@", 1))
    if "password=" in parts.query:
        query = "&".join(
            "password=•••" if pair.split("=", 1)[0] == "password" else pair for pair in parts.query.split("&")
        )
        parts = parts._replace(query=query)
    return parts.geturl()


class StoreKind(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


POSTGRES_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class StoreLocation:
    """Where the history lives: a SQLite file, or a PostgreSQL database shared by a team."""

    kind: StoreKind
    path: Path | None = None  # SQLite
    url: str | None = None  # PostgreSQL: a libpq URL (PG* variables and ~/.pgpass fill the gaps)

    @property
    def display(self) -> str:
        """What to show: the path, or the URL with its password replaced."""
        return str(self.path) if self.path is not None else redact_url(self.url or "")

    @property
    def spool_path(self) -> Path:
        """Where accepted sends are kept when the store cannot record them (see spool.py): beside a
        SQLite file, or in the user data directory for a database on another machine."""
        if self.path is not None:
            return Path(f"{self.path}.unrecorded")
        import hashlib

        digest = hashlib.sha256((self.url or "").encode()).hexdigest()[:16]
        return default_db_path().parent / f"postgresql-{digest}.unrecorded"

    @property
    def own_files(self) -> list[Path]:
        """Every file that belongs to this store, existing or not: what an output file must never be."""
        if self.path is None:
            return [self.spool_path]
        return [self.path, *(Path(f"{self.path}{suffix}") for suffix in ("-wal", "-shm", "-journal")),
                self.spool_path]  # fmt: skip


def store_location(configured: str | None) -> StoreLocation:
    """SMSCTL_DB as a store: a postgresql:// URL, else a SQLite file path (the default: the user data
    directory). Other URLs and `:memory:` would silently keep nothing where users look."""
    if not configured:
        return StoreLocation(StoreKind.SQLITE, path=default_db_path())
    scheme = configured.split("://", 1)[0].lower() if "://" in configured else ""
    if scheme in POSTGRES_SCHEMES:
        return StoreLocation(StoreKind.POSTGRESQL, url=configured)
    if scheme:
        raise ConfigError(
            f"SMSCTL_DB={redact_url(configured)!r} is a {scheme}:// URL; smsctl stores history in a SQLite "
            "file or a PostgreSQL database",
            hint="set SMSCTL_DB to a file path, or to postgresql://user@host:5432/dbname for team mode",
        )
    if configured == ":memory:" or configured.startswith("file:"):
        raise ConfigError(
            f"SMSCTL_DB={configured!r} is not a file: an in-memory store keeps nothing, and "
            "`send --wait` could never see a status",
            hint="set SMSCTL_DB to a file path, e.g. ./smsctl.db",
        )
    return StoreLocation(StoreKind.SQLITE, path=Path(configured).expanduser())


def load_settings(
    flags: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve every variable: flag > environment > `.env` > default."""
    flags = flags or {}
    environ = os.environ if environ is None else environ
    dotenv = _read_dotenv(cwd or Path.cwd())
    values: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for var in VARIABLES:
        for source, layer in (("flag", flags), ("environment", environ), (".env", dotenv)):
            value = layer.get(var.name)
            if value not in (None, ""):
                values[var.name], sources[var.name] = value, source
                break
        else:
            values[var.name] = var.default
            sources[var.name] = "default" if var.default is not None else "unset"
    return Settings(values, sources)


@cache
def _parse_pem(pem: bytes) -> object:
    """A PEM private key, parsed once per process: loading checks an RSA key's consistency, which costs
    milliseconds, and a send asks for the key twice (the settings check, then the credentials)."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return load_pem_private_key(pem, password=None)


def load_private_key(settings: Settings) -> RSAPrivateKey | None:
    """Parse the application's private key once, from VONAGE_PRIVATE_KEY or VONAGE_PRIVATE_KEY_PATH."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    pem_text, name = settings._get("VONAGE_PRIVATE_KEY"), "VONAGE_PRIVATE_KEY"
    if pem_text is not None:
        pem = pem_text.replace("\\n", "\n").encode()
    else:
        path, name = settings._get("VONAGE_PRIVATE_KEY_PATH"), "VONAGE_PRIVATE_KEY_PATH"
        if path is None:
            return None
        try:
            pem = Path(path).expanduser().read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"{name}={path!r} cannot be read: {exc.strerror}",
                hint="point it at the private.key file you downloaded when creating the application",
            ) from None
    try:
        key = _parse_pem(pem)
    except (ValueError, TypeError):
        raise ConfigError(
            f"{name} does not hold a usable PEM private key",
            hint="it must be the unencrypted private key (-----BEGIN PRIVATE KEY-----) of the application",
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError(f"{name} is not an RSA key; Vonage application keys are RSA")
    if key.key_size < MIN_RSA_BITS:
        raise ConfigError(
            f"{name} is a {key.key_size}-bit RSA key; Vonage application keys have {MIN_RSA_BITS} bits or more",
            hint="use the private.key downloaded when the application was created (or generate a new pair)",
        )
    return key


def redacted(settings: Settings) -> list[tuple[str, str, str]]:
    """(name, shown value, source) for every variable, with secrets masked."""
    rows = []
    for var in VARIABLES:
        value = settings.values.get(var.name)
        if value and var.secret:
            shown = "•••• (set)"
        elif value and var.name == "SMSCTL_DB":
            shown = redact_url(value)
        else:
            shown = value or ""
        rows.append((var.name, shown, settings.sources[var.name]))
    return rows


def env_template() -> str:
    """The commented settings template (`smsctl init`; `.env.example` links to it), shipped inside the
    package so a wheel has it too."""
    from importlib.resources import files

    return (files("smsctl") / "data" / "env.example").read_text(encoding="utf-8")


def write_env_template(path: Path) -> Path:
    """Create `path` (0600) with the template; UsageError when it exists (it is never overwritten)."""
    from smsctl.errors import UsageError

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} exists already: it was left as it is",
                         hint="edit it, or give another path: smsctl init PATH") from None  # fmt: skip
    except OSError as exc:
        raise UsageError(
            f"cannot write {path}: {exc.strerror}", hint="choose a directory you can write"
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(env_template())
    return path
