"""``python -m actors``: the same as the ``mapreduce`` command."""

import sys

from .cli import main

sys.exit(main())
