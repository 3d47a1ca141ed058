"""The console script's entry point and `python -m smsctl`, kept tiny: a Ctrl-C while the command line
is still being imported ends quietly (exit 130), as it does once a command runs."""

from __future__ import annotations

import sys

COMPLETE = "_SMSCTL_COMPLETE"
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")


def _click_style_completion() -> None:
    """Accept Click's documented `_SMSCTL_COMPLETE=bash_source` (shell first) as well as Typer's own
    `source_bash`: users copy either from the docs they know."""
    import os

    shell, _, instruction = os.environ.get(COMPLETE, "").partition("_")
    if shell in SHELLS and instruction in ("source", "complete"):
        os.environ[COMPLETE] = f"{instruction}_{shell}"


def main() -> None:
    _click_style_completion()
    try:
        from smsctl.cli import main as run

        run()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
