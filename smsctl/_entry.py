"""The console script's entry point, kept tiny: a Ctrl-C while the command line is still being
imported ends quietly (exit 130), as it does once a command runs."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from smsctl.cli import main as run

        run()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
