"""Split listings: the summary, or one page, of a split table that a job's status shows."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..core.errors import BadRequest
from .attempts import Attempt, SplitState
from .splittable import SplitTable

SUMMARY_LIMIT = 10  # failed and running splits listed in the default summary
DEFAULT_PAGE = 100
MAX_PAGE = 1000  # the largest ``limit`` a status page may ask for
_NUMBER = re.compile(r"[0-9]{1,15}")


class SplitFilter(StrEnum):
    """Which splits a status page lists: every one, those with a failed attempt, or those running now."""

    ALL = "all"
    FAILED = "failed"
    RUNNING = "running"


@dataclass(frozen=True)
class SplitQuery:
    """One page of a job's splits: ``which`` of them, in table order, from ``offset``, at most ``limit``."""

    which: SplitFilter
    offset: int = 0
    limit: int = DEFAULT_PAGE


def parse_query(query: Mapping[str, str]) -> SplitQuery | None:
    """The page ``?splits=all|failed|running&offset=N&limit=N`` asks for; None (the summary) without ``splits``."""
    which = query.get("splits")
    if which is None:
        if "offset" in query or "limit" in query:
            raise BadRequest("offset and limit page a split listing: add splits=all, failed or running")
        return None
    if which not in {f.value for f in SplitFilter}:
        raise BadRequest(f"splits must be one of all, failed or running, not {_short(which)}")
    offset = _count(query.get("offset", "0"), "offset", None)
    limit = _count(query.get("limit", str(DEFAULT_PAGE)), "limit", MAX_PAGE)
    return SplitQuery(SplitFilter(which), offset, limit)


def _count(value: str, name: str, high: int | None) -> int:
    bound = f" from 0 to {high}" if high is not None else " (0 or more)"
    if not _NUMBER.fullmatch(value):
        raise BadRequest(f"{name} must be a whole number{bound}, not {_short(value)}")
    number = int(value)
    if high is not None and number > high:
        raise BadRequest(f"{name} must be a whole number{bound}, not {number}: pages hold at most {high} splits")
    return number


def _short(value: str) -> str:
    return repr(value) if len(value) <= 40 else repr(value[:37] + "...")


def summary(table: SplitTable | None) -> dict[str, Any]:
    """Counts by state and the first few failed and running splits: the default, whatever the table's size."""
    if table is None:
        return {"counts": _counts(None), "failed": [], "running": [], "straggler_after": None}
    shown = Shown(table)
    return {
        "counts": _counts(table),
        "failed": [shown.entry(table.split_at(p)) for p in table.failed_positions()[:SUMMARY_LIMIT]],
        "running": [shown.entry(table.split_at(p)) for p in table.running_positions()[:SUMMARY_LIMIT]],
        "straggler_after": shown.straggler_after,
    }


def page(table: SplitTable | None, query: SplitQuery) -> dict[str, Any]:
    """One page of splits, in table order, with how many match the filter in all."""
    heading = {"counts": _counts(table), "filter": query.which, "offset": query.offset, "limit": query.limit}
    if table is None:
        return {**heading, "matching": 0, "items": [], "straggler_after": None}
    positions: range | list[int]
    if query.which == SplitFilter.ALL:
        positions = range(table.total)
    elif query.which == SplitFilter.FAILED:
        positions = table.failed_positions()
    else:
        positions = table.running_positions()
    shown = Shown(table)
    return {
        **heading,
        "matching": len(positions),
        "items": [shown.entry(table.split_at(p)) for p in positions[query.offset : query.offset + query.limit]],
        "straggler_after": shown.straggler_after,
    }


def _counts(table: SplitTable | None) -> dict[str, int]:
    if table is None:
        return {"total": 0, "pending": 0, "running": 0, "done": 0, "failed": 0}
    running, done = table.running_count, table.done_count
    return {
        "total": table.total,
        "pending": table.total - running - done,
        "running": running,
        "done": done,
        "failed": table.failed_count,  # with a failed attempt, whether or not a retry has finished it since
    }


class Shown:
    """Splits as one status answer shows them: every attempt timed against the same moment and straggler rule."""

    def __init__(self, table: SplitTable) -> None:
        self.now = table.clock()
        self.wall_offset = table.wall_offset
        # The coordinator's own rule for a backup: over MR_BACKUP_AFTER and twice the median finished attempt.
        self.straggler_after = round(table.straggler_time(), 3)

    def entry(self, state: SplitState) -> dict[str, Any]:
        """One split as the status shows it."""
        return {
            "split": state.split.index,
            "start": state.split.start,
            "end": state.split.end,
            "done": state.done,
            "attempts": [self.attempt(a) for a in state.attempts],
        }

    def attempt(self, a: Attempt) -> dict[str, Any]:
        """Started and ended in wall-clock seconds (display), ``seconds`` from the table's clock (durations)."""
        end = a.finished if a.finished is not None else self.now
        return {
            "attempt": a.number, "mapper": a.mapper, "state": a.state, "outcome": a.outcome, "backup": a.backup,
            "cause": a.cause, "bytes": a.bytes_read,
            "started": round(a.started + self.wall_offset, 3),
            "ended": round(a.finished + self.wall_offset, 3) if a.finished is not None else None,
            "seconds": round(end - a.started, 3),
            "straggler": end - a.started > self.straggler_after,
        }


def entry(state: SplitState, table: SplitTable) -> dict[str, Any]:
    """One split as the status shows it, on its own."""
    return Shown(table).entry(state)
