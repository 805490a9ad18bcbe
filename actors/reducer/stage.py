"""The stage: one incoming shuffle stream, held privately until its COMMIT proves it whole."""

from __future__ import annotations

import sys
from typing import Any

from ..core.errors import KeyTooLarge, WireError
from ..core.messages import Columns, Commit, Data, KeyPart
from ..jobs import Job, packing_of
from ..jobs.engine import COUNT_LIMIT
from .budget import footprint


class Stage:
    """One incoming stream, staged privately: nothing of it is visible until a valid COMMIT.

    ``held`` is what the staged values take in memory (see budget.footprint), so the budget bounds real memory.
    The frames' maps are kept as they were decoded, not combined here: combining happens once, into the totals,
    after the commit (combining twice cost a quarter of a reducer's time on a million-key split).
    """

    def __init__(self, job: Job, max_key: int) -> None:
        self.job = job
        self.max_key = max_key
        # Each frame's decoded map, in arrival order; or, for a job whose engine packs its values, the COLUMNS
        # frame itself, checked but never decoded: the partition's count table merges it as it is.
        self.parts: list[dict[str, Any] | Columns] = []
        self.packing = packing_of(job, native=True)
        self.frames = 0
        self.keys = 0
        self.checksum = 0
        self.held = 0
        self._parts: list[str] = []  # pieces of a key longer than a frame, until its last piece arrives
        self._part_bytes = 0

    def add(self, data: Data | Columns) -> None:
        """Stage one DATA frame, or a COLUMNS frame of a job whose engine packs its values (checked, not decoded)."""
        if isinstance(data, Columns):
            self._add_packed(data)
            return
        items = data.items
        if self._parts:
            items = self._join(items)
        held = footprint(items)
        self.job.check(items)
        self.held += held
        self.frames += 1
        self.keys += len(items)
        self.checksum += self.job.checksum(items)
        if items:
            self.parts.append(items)  # the decoder's fresh dict: kept, never copied

    def _add_packed(self, data: Columns) -> None:
        if self.packing is None:
            raise WireError(f"job {self.job.name!r} takes no COLUMNS frames here (its values travel as DATA maps)")
        self.checksum += self.packing.check(data)  # every rule unpacking checks; no object made per key
        if self.checksum >= COUNT_LIMIT:  # a count past 63 bits: refused here, so no total ever overflows
            raise WireError("columns frame: counts must be below 2**63")
        self.held += sum(map(sys.getsizeof, (data.keys, data.ends, data.counts)))
        self.frames += 1
        self.keys += len(data)
        self.parts.append(data)

    @property
    def packed(self) -> bool:
        """Whether COLUMNS frames stay packed here (what the staging reservation assumes)."""
        return self.packing is not None

    def add_part(self, part: KeyPart) -> None:
        """A piece of a long key: held until the DATA frame with its last piece."""
        self._part_bytes += _utf8_length(part.text)
        if self._part_bytes > self.max_key:
            raise KeyTooLarge(f"a key of more than {self.max_key} bytes is longer than allowed (MR_MAX_KEY)")
        self._parts.append(part.text)
        self.held += sys.getsizeof(part.text)
        self.frames += 1

    def _join(self, items: dict[str, Any]) -> dict[str, Any]:
        if len(items) != 1:
            raise WireError(f"the DATA frame after KEYPART frames must hold one item (the key's end), not {len(items)}")
        ((last, value),) = items.items()
        if self._part_bytes + _utf8_length(last) > self.max_key:
            raise KeyTooLarge(f"a key of more than {self.max_key} bytes is longer than allowed (MR_MAX_KEY)")
        self._parts.append(last)
        key = "".join(self._parts)
        self.held -= sum(map(sys.getsizeof, self._parts[:-1]))  # the pieces go; the whole key is charged in add()
        self._parts.clear()
        self._part_bytes = 0
        return {key: value}

    def verify(self, commit: Commit) -> None:
        if self._parts:
            raise WireError("COMMIT arrived inside a long key: KEYPART frames without the DATA frame ending them")
        seen = Commit(frames=self.frames, keys=self.keys, checksum=self.checksum)
        if seen != commit:
            raise WireError(
                f"COMMIT does not match the stream: it claims {commit.frames} frames, {commit.keys} keys, "
                f"checksum {commit.checksum}; received {seen.frames}, {seen.keys}, {seen.checksum}"
            )


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
