"""Job logs: an actor's bounded ring of recent log lines per job, fed by a logging handler, read back per job."""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import OrderedDict, deque
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest
from .logs import EventLog

# The actor (its incarnation) whose work the running code is doing. Several actors share one process in tests, and
# log records carry no actor: each ring keeps only the records made in its own actor's context (set for every
# request by a middleware and for the app's start and stop by its runner, and copied into every task they start).
ACTOR: ContextVar[str] = ContextVar("mapreduce_actor", default="")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
INT_LIMIT = 1 << 63  # larger integers would need a CBOR tag (refused by the wire codec): kept as text
ENTRY_OVERHEAD = 16  # bytes counted per entry beyond its JSON, for the deque slot and the dict

user_log = EventLog("actors.user")


@dataclass(frozen=True)
class RingLimits:
    """What one actor keeps (MR_JOB_LOG_LINES, MR_JOB_LOG_JOBS, MR_JOB_LOG_BYTES, MR_JOB_LOG_TEXT)."""

    lines: int = 1000  # per job
    jobs: int = 100  # the most recently active are kept
    budget: int = 16 * 1024 * 1024  # bytes of all jobs' entries, as JSON
    text: int = 8192  # characters of one text value; a longer one keeps its head and its tail


def level_number(name: str) -> int:
    """A ``?level=`` value as a logging level; a 400 naming the choices for anything else."""
    number = LEVELS.get(name.lower())
    if number is None:
        raise BadRequest(f"level must be one of {', '.join(LEVELS)}, not {name[:40]!r}")
    return number


def cut_text(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters: its head and its tail (a traceback's last lines name the error)."""
    if len(text) <= limit:
        return text
    note = f"\n... [{len(text) - limit} characters cut (MR_JOB_LOG_TEXT)] ...\n"
    head = max(0, (limit - len(note)) // 2)
    tail = max(0, limit - len(note) - head)
    return text[:head] + note + (text[-tail:] if tail else "")


def plain(value: Any, limit: int) -> Any:
    """A field's value as JSON and CBOR both carry it: scalars as they are, anything else as (bounded) text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -INT_LIMIT <= value < INT_LIMIT else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return cut_text(value if isinstance(value, str) else str(value), limit)


class JobLogRing:
    """One actor's recent lines per job, oldest dropped first: per job past ``lines``, whole jobs past ``jobs``
    (the least recently active), and the oldest lines of the least recently active job past ``budget`` bytes.

    Every entry gets a sequence number, increasing in this actor's lifetime, so a reader asks for what is new."""

    def __init__(self, actor: str, incarnation: str, limits: RingLimits) -> None:
        self.actor = actor
        self.incarnation = incarnation
        self.limits = limits
        self._jobs: OrderedDict[str, deque[tuple[dict[str, Any], int]]] = OrderedDict()
        # A record may come from a worker thread (asyncio.to_thread keeps the actor's context) while the loop
        # reads: held for an append or one read, never across an await.
        self._lock = threading.Lock()
        self._seq = 0
        self.size = 0  # bytes held: each entry's JSON (ASCII-escaped, so at least its UTF-8 size) and its overhead

    def __contains__(self, job: str) -> bool:
        return job in self._jobs

    def add(self, job: str, level: str, event: str, fields: Mapping[str, Any], when: float) -> None:
        """Keep one line of ``job``; O(1) but for the lines it drops."""
        limit = self.limits.text
        entry = {"seq": 0, "time": when, "actor": self.actor, "level": level, "event": event,
                 "fields": {str(k)[:limit]: plain(v, limit) for k, v in fields.items() if k != "job"}}
        size = len(json.dumps(entry)) + ENTRY_OVERHEAD  # the overhead covers the sequence number's digits
        with self._lock:
            self._seq += 1
            entry["seq"] = self._seq
            self._keep(job, entry, size)

    def _keep(self, job: str, entry: dict[str, Any], size: int) -> None:
        lines = self._jobs.get(job)
        if lines is None:
            while len(self._jobs) >= self.limits.jobs:
                self._drop_job()
            lines = self._jobs[job] = deque()
        else:
            self._jobs.move_to_end(job)
        lines.append((entry, size))
        self.size += size
        if len(lines) > self.limits.lines:
            self.size -= lines.popleft()[1]
        while self.size > self.limits.budget and self._jobs:
            oldest_job, oldest = next(iter(self._jobs.items()))
            self.size -= oldest.popleft()[1]
            if not oldest:
                del self._jobs[oldest_job]

    def _drop_job(self) -> None:
        _, lines = self._jobs.popitem(last=False)
        self.size -= sum(size for _, size in lines)

    def read(self, job: str, since: int = 0, level: int = logging.DEBUG,
             budget: int | None = None) -> tuple[list[dict[str, Any]], bool]:
        """The entries of ``job`` after sequence number ``since`` at ``level`` or above, oldest first, within
        ``budget`` bytes (at least one entry); and whether more remain."""
        with self._lock:
            return self._read(job, since, level, budget)

    def _read(self, job: str, since: int, level: int, budget: int | None) -> tuple[list[dict[str, Any]], bool]:
        out: list[dict[str, Any]] = []
        used = 0
        for entry, size in self._jobs.get(job, ()):
            if entry["seq"] <= since or LEVELS.get(entry["level"], logging.ERROR) < level:
                continue
            if budget is not None and out and used + size > budget:
                return out, True
            out.append(entry)
            used += size
        return out, False


class RingHandler(logging.Handler):
    """Feeds a ring with the records of its own actor that carry a ``job`` field (an :class:`EventLog` field), but
    those of the loggers in ``skip``."""

    def __init__(self, ring: JobLogRing, skip: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.ring = ring
        self.skip = skip

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", None)
        if not isinstance(fields, dict) or record.name in self.skip:
            return
        job = fields.get("job")
        if not isinstance(job, str) or not job or ACTOR.get() != self.ring.incarnation:
            return
        try:
            if record.exc_info:
                fields = {**fields, "traceback": logging.Formatter().formatException(record.exc_info)}
            level = record.levelname.lower()
            self.ring.add(job, "error" if level == "critical" else level, record.getMessage(), fields,
                          record.created)
        except Exception:
            self.handleError(record)


def user_output(job: str, level: str, text: str) -> None:
    """What a job's user code wrote (a task process's stderr line, a traceback) as a line of ``job``'s logs: on
    stdout with the actor's other logs, and in its ring. Call it from a task the actor owns (its context names the
    actor); ``level`` is one of :data:`LEVELS`."""
    user_log.log(LEVELS.get(level, logging.INFO), "user_output", job=job, message=text)
