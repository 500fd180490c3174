"""``python -m rakijax`` = the ``rakijax`` command."""

import sys

from .cli import main

sys.exit(main())
