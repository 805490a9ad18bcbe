"""A result's entries for a person: one tab-separated line each, as `mapreduce run` and `mapreduce result` print."""

from __future__ import annotations

import json
from typing import Any


def entry_fields(key: Any, value: Any) -> tuple[str, str]:
    """The two fields of one entry's line: a count first (``3<TAB>word``, as ``uniq -c`` and ``sort -rn`` read it);
    a list after its key (``word<TAB>a.txt b.txt``), space-separated, so each line starts with what it is about. A
    typed key that is not a str (an int, a list for a tuple) is written as its compact JSON text."""
    if not isinstance(key, str):
        key = json.dumps(key, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, list):
        return key, " ".join(map(str, value))
    return str(value), key
