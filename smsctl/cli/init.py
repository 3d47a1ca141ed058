"""`smsctl init`: a commented .env to fill in, for people who installed smsctl without the repository."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from smsctl.cli.options import DebugOption, JsonOption


def init(
    path: Annotated[Path, typer.Argument(help="Where to write it.")] = Path(".env"),
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Write a commented .env (mode 0600: it will hold secrets) listing every setting; never overwrites.

    Example: smsctl init && $EDITOR .env
    """
    from smsctl.config import write_env_template
    from smsctl.output import emit_json, note, reporting

    with reporting(json_output, debug):
        written = write_env_template(path)
        if json_output:
            emit_json({"written": str(written)})
        note(f"wrote {written} (mode 600): fill in your credentials; `smsctl config` shows what is set")
