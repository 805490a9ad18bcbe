"""Held results: each finished job's result, encoded once as JSON, and the byte budget all of them share."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..core.errors import Gone, JobFailed
from ..jobs.result import STR_KEYS, Result, key_encoding

Encode = Callable[[Result], bytes]  # a job's ``encode``: the result as JSON, entries in its top order
CHUNK = 256 * 1024  # a response writes this much at a time, so a slow reader holds no copy of the whole result
_SCAN_FIRST = 64 * 1024
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class HeldResult:
    """One job's result as the JSON object ``{key: value, ...}`` in ASCII bytes, entries in the job's top order, its
    keys named by ``key_encoding`` (actors.jobs.result), or (a job whose output is records) the JSON array
    ``[[key, value], ...]``."""

    job_id: str
    keys: int
    payload: bytes
    held_at: float
    key_encoding: str = STR_KEYS

    @property
    def size(self) -> int:
        return len(self.payload)

    def chunks(self) -> Iterator[memoryview]:
        """The payload in slices of CHUNK bytes, without copying it."""
        view = memoryview(self.payload)
        for start in range(0, len(view), CHUNK):
            yield view[start : start + CHUNK]

    def entries(self, n: int) -> Iterator[list[Any]]:
        """The first ``n`` entries as ``[key, value]``, the key typed (a str, an int or an array, as part files
        carry it), decoded one window at a time: the order was computed once, so a top-N reads only a prefix, and
        even a top-everything holds one window, not a copy of the result."""
        start, width, produced = 1, _SCAN_FIRST, 0  # start: where the next entry (or its comma) begins
        records = self.payload.startswith(b"[")
        typed = not records and self.key_encoding != STR_KEYS
        while produced < n:
            text = self.payload[start : start + width].decode("ascii")
            batch, used, complete = _entries(text, n - produced, records)
            if typed:  # each key is its JSON text: the key itself is that JSON value
                for entry in batch:
                    entry[0] = json.loads(entry[0])
            yield from batch
            produced += len(batch)
            if complete:
                return
            if not batch and start + width >= len(self.payload):
                raise ValueError(f"the held result of job {self.job_id} ends inside an entry")  # never encoded so
            start += used
            width = width * 2 if not batch else _SCAN_FIRST  # an entry longer than the window: widen it

    def top(self, n: int) -> list[list[Any]]:
        return list(self.entries(n))


def _entries(text: str, n: int, records: bool = False) -> tuple[list[list[Any]], int, bool]:
    """Up to ``n`` entries from the start of ``text``, a window onto the payload that begins at an entry, its
    comma or the closing brace (bracket, for ``records``: each entry is then one ``[key, value]`` array); with how
    much of ``text`` they used, and True once there are no more to read."""
    entries: list[list[Any]] = []
    pos = 0
    close = "]" if records else "}"
    while len(entries) < n:
        if pos < len(text) and text[pos] == close:
            return entries, pos, True
        at = pos + 1 if pos < len(text) and text[pos] == "," else pos
        try:
            if records:
                entry, end = _DECODER.raw_decode(text, at)
            else:
                key, at = _DECODER.raw_decode(text, at)  # the key: a JSON string
                value, end = _DECODER.raw_decode(text, at + 1)  # at + 1: just past the colon
                entry = [key, value]
        except (ValueError, IndexError):
            return entries, pos, False  # the window ends inside this entry
        if end >= len(text):
            return entries, pos, False  # a number cut at the window's edge would still parse: wait for its delimiter
        entries.append(entry)
        pos = end
    return entries, pos, True


def check_result_size(size: int, per_job: int) -> None:
    """A job's result of ``size`` bytes of JSON fails the job past MR_RESULT_MAX."""
    if size > per_job:
        raise JobFailed(f"the result is {size} bytes of JSON, more than the {per_job} bytes one job may hold "
                        "(MR_RESULT_MAX); narrow the job, or raise the setting and the master's memory together")


class Results:
    """The finished results the master holds: each at most ``per_job`` bytes, all together at most ``budget``.

    A result is encoded once, when it is held; every request is served from those bytes. Holding one that would
    pass the budget drops the oldest held results first; asking for a dropped one raises Gone (410).
    """

    def __init__(self, per_job: int, budget: int, clock: Callable[[], float]) -> None:
        self.per_job = per_job
        self.budget = budget
        self.clock = clock
        self.encodes = 0
        self.held_bytes = 0
        self._held: dict[str, HeldResult] = {}  # insertion order is age order: the oldest is dropped first
        self._dropped: dict[str, tuple[float, float]] = {}  # job id -> (held at, dropped at)

    def hold(self, job_id: str, result: Result, encode: Encode) -> HeldResult:
        """Encode ``result`` once (with its job's ``encode``) and hold it; raises JobFailed if it can never fit."""
        held = self.get(job_id)
        if held is not None:
            return held
        payload = encode(result)
        self.encodes += 1
        check_result_size(len(payload), self.per_job)
        if len(payload) > self.budget:
            raise JobFailed(f"the result is {len(payload)} bytes of JSON, more than all held results may take "
                            f"({self.budget} bytes, MR_RESULTS_BUDGET)")
        while self._held and self.held_bytes + len(payload) > self.budget:
            self._drop_oldest()
        held = HeldResult(job_id, len(result), payload, self.clock(), key_encoding(result))
        self._held[job_id] = held
        self.held_bytes += held.size
        return held

    def _drop_oldest(self) -> None:
        job_id = next(iter(self._held))
        old = self._held.pop(job_id)
        self.held_bytes -= old.size
        self._dropped[job_id] = (old.held_at, self.clock())

    def get(self, job_id: str) -> HeldResult | None:
        """The held result, None if ``job_id`` never had one held; raises Gone if it was dropped for the budget."""
        held = self._held.get(job_id)
        if held is not None:
            return held
        dropped = self._dropped.get(job_id)
        if dropped is not None:
            held_at, dropped_at = dropped
            raise Gone(f"the result of job {job_id} expired for memory: it was dropped {dropped_at - held_at:.0f} s "
                       f"after it finished, to keep held results within {self.budget} bytes (MR_RESULTS_BUDGET); "
                       "run the job again")
        return None

    def forget(self, job_id: str) -> None:
        """The job itself is forgotten (its TTL passed): let go of its result and of the memory that it was dropped."""
        held = self._held.pop(job_id, None)
        if held is not None:
            self.held_bytes -= held.size
        self._dropped.pop(job_id, None)

    def clear(self) -> None:
        self._held.clear()
        self._dropped.clear()
        self.held_bytes = 0
