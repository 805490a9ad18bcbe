"""Text from elsewhere made safe to show on a terminal: control characters found, and escaped visibly."""

from __future__ import annotations

import json
import re

# C0 controls (escape sequences start with ESC, and \r rewrites a line), DEL, C1 controls (0x9b is a one-byte CSI on
# some terminals), and the bidirectional embeddings, overrides, isolates and marks that reorder what is shown.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def first_control(text: str) -> int | None:
    """The index of the first control character in ``text``, or None."""
    found = CONTROL.search(text)
    return found.start() if found is not None else None


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escaped(value: object) -> str:
    """``value`` as text for a terminal: each control character (tab and newline too) as ``\\xNN`` or ``\\uNNNN``."""
    return CONTROL.sub(_escape, value if isinstance(value, str) else str(value))


def json_escaped(item: object) -> str:
    """``item`` as JSON for a terminal: the same JSON, with the control characters json leaves raw (DEL, C1,
    bidi) written as ``\\uNNNN`` escapes, which can only stand inside its strings."""
    return CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(item, ensure_ascii=False))
