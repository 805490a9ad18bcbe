"""A pytest plugin (``-p tests.without_native``): the C extensions are absent, as on a machine without a compiler."""

from __future__ import annotations

import sys

for _name in ("actors.jobs.wordcount._wordcount", "actors.jobs.wordcount._resultjson"):
    sys.modules[_name] = None  # type: ignore[assignment]  # importing it now raises ImportError, as if never built
