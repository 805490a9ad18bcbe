"""A sample assignment: the first records of a split, mapped, their keys answered to the master (total order).

A total-order job's master samples keys before the map phase (actors/master/sampler.py): a mapper reads at most
``Assignment.sample`` records (lines) from the start of an owned range, maps them in a task process like any
split, and instead of streaming the frames to reducers reads the keys back out of its spool.
"""

from __future__ import annotations

from ..core import wire
from ..core.messages import Columns, Data, KeyPart, from_wire
from .spool import Spool

#: Bytes of sampled keys one answer may carry beyond its message cap's half; a longer key is left out of the
#: sample (a cut point that long would be a poor one anyway).
LONGEST_SAMPLE_KEY = 1024


class LineBudget:
    """Whole lines up to a count, from pieces that end anywhere: what a sample reads of its split."""

    def __init__(self, lines: int) -> None:
        self.left = lines

    @property
    def done(self) -> bool:
        return self.left <= 0

    def take(self, pieces: list[bytes]) -> list[bytes]:
        """The pieces up to and including the line that spends the budget."""
        taken: list[bytes] = []
        for piece in pieces:
            if self.done:
                break
            count = piece.count(b"\n")
            if count < self.left:
                self.left -= count
                taken.append(piece)
                continue
            end = -1
            for _ in range(self.left):
                end = piece.index(b"\n", end + 1)
            taken.append(piece[: end + 1])
            self.left = 0
        return taken


def sampled_keys(spool: Spool, cap: int, limit: int) -> list[str]:
    """The canonical keys the spool's frames hold, at most ``limit`` of them (evenly strided: a record may make
    many keys) within about half of ``cap`` bytes (one answer's message cap); a key that travelled in pieces
    (KEYPART) is left out."""
    keys = _keys(spool, cap)
    if len(keys) > limit:
        stride = -(-len(keys) // limit)
        keys = keys[::stride]
    return keys


def _keys(spool: Spool, cap: int) -> list[str]:
    keys: list[str] = []
    size, budget = 0, cap // 2
    for partition in range(spool.partitions):
        data = b"".join(spool.blocks(partition))
        view, offset, after_part = memoryview(data), 0, False
        while offset < len(data):
            length = wire.frame_length(bytes(view[offset: offset + wire.PREFIX]), len(data))
            body = bytes(view[offset + wire.PREFIX: offset + wire.PREFIX + length])
            offset += wire.PREFIX + length
            message = from_wire(wire.decode(body, len(body) + 1), Data, KeyPart, Columns)
            if isinstance(message, Columns):
                assert spool.packing is not None  # only a packing engine's spool holds COLUMNS frames
                message = Data(spool.packing.unpack(message))
            if isinstance(message, KeyPart):
                after_part = True
                continue
            if after_part:  # the last piece of a long key
                after_part = False
                continue
            for key in message.items:
                if len(key) > LONGEST_SAMPLE_KEY:
                    continue
                size += len(key) + 8
                if size > budget:
                    return keys
                keys.append(key)
    return keys
