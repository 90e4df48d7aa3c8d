"""``python -m ivr.cli``: the ``ivr`` command (tests and the trainer run it so)."""

import sys

from ivr.cli import main

sys.exit(main())
