"""What ``mapreduce status`` shows of a job's counters and bad records (from its JSON status)."""

from __future__ import annotations

from typing import Any

from ..core.text import escaped


def tally_lines(raw: dict[str, Any]) -> list[str]:
    """``counters:`` then one ``  GROUP<TAB>NAME<TAB>VALUE`` line each; the bad records skipped and the first few."""
    lines: list[str] = []
    counters: dict[str, Any] = raw["counters"] if isinstance(raw.get("counters"), dict) else {}
    if counters:
        lines.append("counters:")
        for group, names in sorted(counters.items()):
            for name, value in sorted(names.items()) if isinstance(names, dict) else []:
                lines.append(f"  {escaped(group)}\t{escaped(name)}\t{escaped(value)}")
    bad: dict[str, Any] = raw["bad_records"] if isinstance(raw.get("bad_records"), dict) else {}
    if bad.get("count") or bad.get("allowed"):
        lines.append(f"bad records: {escaped(bad.get('count', 0))} skipped (max_bad_records "
                     f"{escaped(bad.get('allowed', 0))})")
        first: list[Any] = bad["first"] if isinstance(bad.get("first"), list) else []
        for record in first[:SHOWN]:
            if isinstance(record, dict):
                lines.append(f"  {escaped(record.get('input'))} at byte {escaped(record.get('offset'))}: "
                             f"{escaped(record.get('error'))}")
        if len(first) > SHOWN:
            lines.append(f"  ... (`mapreduce status --json` lists the first {len(first)})")
    return lines


SHOWN = 10  # bad records the text status lists; --json gives every one the master keeps
