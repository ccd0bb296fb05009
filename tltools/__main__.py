"""``python -m tltools``: the command-line interface."""

import sys

from tltools.cli import main

sys.exit(main())
