"""The commented settings template (`smsctl init`), shipped inside the package so a wheel has it too."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from smsctl.errors import UsageError


def env_template() -> str:
    return (files("smsctl") / "data" / "env.example").read_text(encoding="utf-8")


def write_env_template(path: Path) -> Path:
    """Create `path` (0600) with the template; UsageError when it exists (it is never overwritten)."""
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
