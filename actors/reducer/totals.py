"""Merged totals: how one partition holds and merges its committed values, one strategy chosen when it is created.

- :class:`Totals`: the job's own ``combine`` into one dict (any job);
- :class:`PackedTotals`: a packing engine's counts (actors.jobs.engine.Packing): COLUMNS frames merge into its count
  table with no object per key, maps into the dict, and the partition is reported as one run in top order;
- :class:`SpillingTotals`: a general job's grouped values, which leave memory as sorted runs past MR_REDUCE_MEMORY.

Keys leave a pending frame as they join the totals, so totals plus pending always hold each committed split exactly
once, whenever a caller stops between slices.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..core.errors import Conflict, InsufficientStorage, WireError
from ..core.messages import Columns
from ..jobs import Job, Packing
from ..jobs.adapter import SdkJob
from ..jobs.engine import COUNT_LIMIT
from ..tasks.runs import SpillRuns

Part = dict[str, Any] | Columns  # a staged frame: a decoded map, or a checked COLUMNS frame of a packing engine


class Totals:
    """Committed values combined by the job into one dict, a slice at a time."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.values: dict[str, Any] = {}
        self.pending: list[Part] = []  # committed, not merged yet; merged from the end
        self.held = 0  # bytes of committed values held in values and pending (budget.footprint)

    def admit(self, checksum: int) -> None:
        """Refuse a committed stream these totals cannot hold (before it counts); nothing to refuse here."""

    def add(self, parts: list[Part], held: int) -> None:
        """A committed stream's frames: they count from now on (the first split's first map simply becomes the
        values: copying it would cost a pass over its keys)."""
        self.held += held
        first = parts[0] if parts else None
        if isinstance(first, dict) and not self.values and not self.pending:
            self.values = first
            parts = parts[1:]
        # Taken from the end: reversed, one stream's frames combine in the order they came, as a job whose values
        # are lists (appended in order) expects.
        self.pending.extend(reversed(parts))

    def merge_some(self, limit: int) -> bool:
        """Merge up to ``limit`` pending keys; True once nothing is pending."""
        while self.pending and limit > 0:
            items = self.pending[-1]
            if isinstance(items, Columns):
                self._merge_packed(items)
                self.pending.pop()
                limit -= len(items)
            elif len(items) <= limit:
                # A whole frame (the usual case: frames hold at most MR_FRAME_KEYS keys, the slice the reducer asks
                # for) is combined at once and then dropped, with no key deleted one by one.
                self._combine(self.values, items)
                self.pending.pop()
                limit -= len(items)
            else:
                limit -= self._merge_part(items, limit)
                if not items:
                    self.pending.pop()
        return not self.pending

    def _merge_packed(self, frame: Columns) -> None:
        raise WireError(f"job {self.job.name!r} takes no COLUMNS frames")  # Stage never keeps one for such a job

    def _merge_part(self, items: dict[str, Any], limit: int) -> int:
        part = dict(items.popitem() for _ in range(min(limit, len(items))))
        self._combine(self.values, part)
        return len(part)

    def _combine(self, into: dict[str, Any], part: dict[str, Any]) -> None:
        self.job.combine(into, part)

    def merge_pending(self) -> None:
        self.merge_some(sum(map(len, self.pending)))

    def settle(self) -> None:
        """Merge everything pending: :attr:`values` are then complete."""
        self.merge_pending()

    def ordered_run(self) -> Columns | None:
        """The partition as one run in top order, made without a dict of its keys, when it can be; else None."""
        return None

    def report_run(self, result: dict[str, Any]) -> Columns | None:
        """A finished result as one run in top order, or None: it is reported as a map."""
        return None

    @property
    def keys_held(self) -> int:
        """Keys in the values and pending frames (a key in several is counted in each)."""
        return len(self.values) + sum(map(len, self.pending))

    @property
    def spills(self) -> int:
        return 0

    def spilled(self) -> bool:
        return False

    def close(self) -> Future[None] | None:
        self.values, self.pending, self.held = {}, [], 0
        return None


class PackedTotals(Totals):
    """A packing engine's counts: COLUMNS frames merge into a count table (natively, no object per key), maps into
    the dict; a partition held in the table alone is reported as one run, sorted there.

    A partition's counts sum to less than 2**63 (a stream that would pass it is refused before it counts), so no
    total can overflow the table: no input holds that many values, only a lying peer sends such counts."""

    def __init__(self, job: Job, packing: Packing) -> None:
        super().__init__(job)
        self.packing = packing
        self.table = packing.table(1)
        self.counted = 0  # the sum of every committed count (the packing's checksums)

    def admit(self, checksum: int) -> None:
        if self.counted + checksum >= COUNT_LIMIT:
            raise WireError(f"counts summing past 2**63 - 1 in one partition of job {self.job.name!r}: no input "
                            "holds that many values")
        self.counted += checksum

    def _merge_packed(self, frame: Columns) -> None:
        self.table.add_columns(frame.keys, frame.ends, frame.counts)  # checked by Stage; bounded by admit()

    def _merge_part(self, items: dict[str, Any], limit: int) -> int:
        return self.packing.move_some(self.values, items, limit)

    def settle(self) -> None:
        """Merge everything pending, and the count table into the values."""
        self.merge_pending()
        if len(self.table):
            (counted,) = self.table.take()
            if self.values:
                self.job.combine(self.values, counted)
            else:
                self.values = counted

    def ordered_run(self) -> Columns | None:
        """With everything merged and held in the table alone: the table as one run, unchanged (a repeated finalize
        answers the same); else None."""
        if self.pending or self.values or not len(self.table):
            return None
        try:
            return Columns(*self.table.ordered_columns())
        except OverflowError:  # past 4 GiB of keys: the dict path reports them
            return None

    def report_run(self, result: dict[str, Any]) -> Columns | None:
        return self.packing.report(result)

    @property
    def keys_held(self) -> int:
        return super().keys_held + len(self.table)

    def close(self) -> Future[None] | None:
        self.table = self.packing.table(1)
        return super().close()


class SpillingTotals(Totals):
    """An SDK job's values grouped per key: past ``memory`` bytes held they leave memory as a sorted run written
    by ``pool`` (one thread, so its tasks run in order: a finish or a removal submitted after a spill sees that run
    on disk).

    No user code runs here, not even a combiner: values are only grouped (a mapper's combiner already folded each
    split's), and the job's reducer runs over the runs in a task process (:meth:`hand_over`)."""

    def __init__(self, job: SdkJob, runs: SpillRuns, pool: ThreadPoolExecutor, memory: int) -> None:
        super().__init__(job)
        self.sdk = job
        self.runs: SpillRuns | None = runs
        self.pool = pool
        self.memory = memory
        self.writing: list[Future[None]] = []
        self.handed = 0  # runs written only to hand the values to a task process (not spills)

    def _combine(self, into: dict[str, Any], part: dict[str, Any]) -> None:
        if self.sdk.fold is not None:  # a declared fold: the framework folds each split's value in (no user code)
            self.sdk.combine(into, part)
            return
        for key, values in part.items():
            have = into.get(key)
            if have is None:
                into[key] = values
            else:
                have.extend(values)

    def merge_some(self, limit: int) -> bool:
        if not super().merge_some(limit):
            return False
        if self.runs is not None and self.memory and self.held > self.memory:
            self._spill()
        return True

    def _spill(self) -> None:
        """Hand the values to the spill thread as a sorted run; synchronous, so every committed value is, at any
        moment, either in the values or in a run submitted before anything that reads the runs."""
        assert self.runs is not None
        groups, self.values, self.held = self._grouped(self.values), {}, 0
        self.writing.append(self.pool.submit(self.runs.spill, groups))

    def _grouped(self, values: dict[str, Any]) -> dict[str, Any]:
        """Values as runs hold them, a list per key: a declared fold's one value becomes a list of it (the job's
        reduce folds a key's values from several runs into one again before its reducer sees them)."""
        return {key: [value] for key, value in values.items()} if self.sdk.fold is not None else values

    @property
    def spills(self) -> int:
        return len(self.writing) - self.handed

    def spilled(self) -> bool:
        return bool(self.writing)

    def finish_spilled(self) -> Future[dict[str, Any] | list[list[Any]]]:
        """The result merged from the runs and the values, computed on the spill thread after every write; call
        after :meth:`settle`."""
        assert self.runs is not None
        return self.pool.submit(self._merge, self.runs, self.sdk, self._grouped(self.values), list(self.writing))

    def hand_over(self) -> Future[list[Path]]:
        """Every value as sorted runs on disk, for a task process to reduce (call after :meth:`settle`): the values
        held are spilled as one more run; the same runs answer a repeated finalize."""
        if self.runs is None:
            raise Conflict(f"job {self.job.name!r} was released while it was finalized")
        if self.values:
            self._spill()
            self.handed += 1
        return self.pool.submit(self._paths, self.runs, list(self.writing))

    @staticmethod
    def _paths(runs: SpillRuns, writes: list[Future[None]]) -> list[Path]:
        try:
            for write in writes:
                write.result()
            runs.compact()  # at most FAN_IN runs: what one merge opens
        except OSError as error:
            raise InsufficientStorage(f"a reducer could not write or read its spilled runs under MR_SPOOL_DIR "
                                      f"({error}); the job's values there are lost, so it cannot finish") from None
        return list(runs.paths)

    @staticmethod
    def _merge(runs: SpillRuns, job: SdkJob, memory: dict[str, Any],
               writes: list[Future[None]]) -> dict[str, Any] | list[list[Any]]:
        try:
            for write in writes:
                write.result()  # a failed write (say, a full disk) fails the finalize rather than losing values
            return job.reduce_groups(runs.groups(memory))
        except OSError as error:
            raise InsufficientStorage(f"a reducer could not write or read its spilled runs under MR_SPOOL_DIR "
                                      f"({error}); the job's values there are lost, so it cannot finish") from None

    def close(self) -> Future[None] | None:
        """Remove the spilled runs (after any write still queued); a stream still committing spills no more."""
        runs, self.runs = self.runs, None
        super().close()
        return self.pool.submit(runs.remove) if runs is not None else None
