"""What the client reads back of a job's logs: one typed line per actor event, checked as it arrives."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import PeerError
from .errors import server_error

LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class LogLine:
    """One line of a job's logs: when, which actor, its level and event, and the event's fields (a failing user
    function's traceback is ``fields["traceback"]``; what user code wrote, ``fields["message"]``)."""

    time: float
    actor: str
    level: str
    event: str
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, line: bytes, path: str) -> LogLine:
        try:
            item = json.loads(line)
        except ValueError:
            raise PeerError(f"GET {path}: a log line is not JSON: {line[:100]!r}") from None
        if isinstance(item, dict) and isinstance(item.get("error"), str) and "event" not in item:
            raise server_error(None, line, {}, f"GET {path}")  # the server failed after it began to answer
        if not (isinstance(item, dict) and type(item.get("time")) in (int, float)
                and isinstance(item.get("actor"), str) and item.get("level") in LEVELS
                and isinstance(item.get("event"), str) and isinstance(item.get("fields"), dict)):
            raise PeerError(f"GET {path}: a log line is not a log entry: {line[:100]!r}")
        return cls(float(item["time"]), item["actor"], item["level"], item["event"], item["fields"])
