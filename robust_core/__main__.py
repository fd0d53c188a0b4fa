"""``python -m robust_core ...``: see ``robust_core/cli.py``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
