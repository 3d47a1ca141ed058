"""`python -m smsctl`: Ctrl-C even while this first import runs ends quietly."""

import sys

try:
    from smsctl._entry import main
except KeyboardInterrupt:
    sys.stderr.write("interrupted\n")
    raise SystemExit(130) from None

main()
