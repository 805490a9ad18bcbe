"""A job's split failures as ``mapreduce status`` prints them: how many splits failed, and each one's last cause."""

from __future__ import annotations

from typing import Any

from ..core.text import escaped

CAUSE_CHARS = 300  # of one cause, on one line


def failure_lines(raw: dict[str, Any]) -> list[str]:
    """The ``splits:`` counts and, per failed split the status lists, its last failed attempt's cause."""
    splits = raw.get("splits") if isinstance(raw.get("splits"), dict) else {}
    counts = splits.get("counts") if isinstance(splits.get("counts"), dict) else {}
    if not counts:
        return []
    lines = [f"splits: {escaped(counts.get('done', 0))} done, {escaped(counts.get('running', 0))} running, "
             f"{escaped(counts.get('pending', 0))} pending, {escaped(counts.get('failed', 0))} failed"]
    listed = [s for s in splits.get("failed", []) if isinstance(s, dict)]
    for split in listed:
        attempts = [a for a in split.get("attempts", []) if isinstance(a, dict) and a.get("state") == "failed"]
        if attempts:
            last = attempts[-1]
            cause = escaped(last.get("cause", ""))
            lines.append(f"  split {escaped(split.get('split'))}: {len(attempts)} failed, last on "
                         f"{escaped(last.get('mapper'))} ({escaped(last.get('outcome', 'failed'))}): "
                         f"{cause[:CAUSE_CHARS]}")
    failed = counts.get("failed", 0)
    if isinstance(failed, int) and failed > len(listed):
        lines.append(f"  ... and {failed - len(listed)} more: the status's ?splits=failed lists them all")
    return lines
