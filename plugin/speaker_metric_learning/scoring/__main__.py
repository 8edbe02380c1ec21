"""Entry point of the command line (``python -m ...scoring``), see ``cli``."""

import sys

from speaker_metric_learning.scoring.cli import main

if __name__ == "__main__":
    sys.exit(main())
