"""``python -m ensemble_otel ...``: the ``ensemble-otel`` command line."""

import sys

from ensemble_otel.cli import main

if __name__ == "__main__":
    sys.exit(main())
