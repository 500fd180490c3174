"""``python -m rakijax.cli`` = the ``rakijax`` command."""

import sys

from . import main

sys.exit(main())
