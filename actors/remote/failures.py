"""A job's split failures as ``mapreduce status`` prints them: how many splits failed, and each one's last cause."""

from __future__ import annotations

from typing import Any

from ..core.text import escaped

CAUSE_CHARS = 300  # of one cause, on one line


def failure_lines(raw: dict[str, Any]) -> list[str]:
    """The ``splits:`` counts and, per failed split the status lists, its last failed attempt's cause."""
    splits = raw.get("splits")
    counts = splits.get("counts") if isinstance(splits, dict) else None
    if not isinstance(splits, dict) or not isinstance(counts, dict):
        return []
    lines = [f"splits: {escaped(counts.get('done', 0))} done, {escaped(counts.get('running', 0))} running, "
             f"{escaped(counts.get('pending', 0))} pending, {escaped(counts.get('failed', 0))} failed"]
    failed_splits = splits.get("failed")
    listed = [s for s in failed_splits if isinstance(s, dict)] if isinstance(failed_splits, list) else []
    for split in listed:
        tried = split.get("attempts")
        attempts = [a for a in tried if isinstance(a, dict) and a.get("state") == "failed"] \
            if isinstance(tried, list) else []
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
