"""``python -m digitwin_db``: the operations command line (see :mod:`digitwin_db.cli`)."""

import sys

from digitwin_db.cli import main

sys.exit(main())
