"""Splits: planning byte ranges of an input and cutting out exactly the lines each range owns.

A split ``[start, end)`` owns every line whose first byte lies in ``[start, end)``. Equivalently it owns the
bytes ``[align(start), align(end))`` where ``align(0) = 0`` and ``align(p)`` is one past the first newline at or
after ``p - 1`` (or the end of the input). Consecutive splits therefore tile the input exactly, never cut a line,
and any attempt re-reads the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

NEWLINE = b"\n"
# Bytes that ``str.split()`` treats as whitespace and that UTF-8 never uses inside a multi-byte sequence:
# cutting a chunk after one of them cannot change how the text tokenizes or decodes.
ASCII_WHITESPACE = b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f "


@dataclass(frozen=True)
class Split:
    """One planned byte range of an input."""

    index: int
    start: int
    end: int


def split_count(size: int, split_size: int) -> int:
    """How many splits of at most ``split_size`` bytes an input of ``size`` bytes needs (at least one)."""
    return max(1, -(-size // max(1, split_size)))


def plan(size: int, split_size: int, min_splits: int, min_split_size: int = 0, max_splits: int = 0) -> list[Split]:
    """Even byte ranges of at most about ``split_size``, in a multiple of ``min_splits`` (the mappers).

    A multiple keeps every mapper busy to the end: 5 splits on 2 mappers would leave one idle for a whole round.
    Inputs too small to give every mapper ``min_split_size`` bytes get fewer splits: three assignments and
    3 x R streams for a 40-byte text cost far more than mapping it (measured: it halved /compute throughput).
    ``max_splits`` (if set) is never passed: rounding up to the multiple yields to it, making splits a bit larger.
    """
    workers = max(1, min(min_splits, -(-size // min_split_size)) if min_split_size > 0 else min_splits)
    wanted = split_count(size, split_size)
    count = -(-wanted // workers) * workers
    if 0 < max_splits < count:
        count = max_splits - max_splits % workers if max_splits >= workers else max_splits
    bounds = [size * i // count for i in range(count + 1)]
    return [Split(i, bounds[i], bounds[i + 1]) for i in range(count)]


def read_from(start: int) -> int:
    """Where a reader of the split starting at ``start`` must begin: one byte early, to see a line start."""
    return start - 1 if start > 0 else 0


class OwnedLines:
    """Fed the input from ``read_from(start)`` onwards, block by block, returns only the bytes the split owns."""

    def __init__(self, start: int, end: int) -> None:
        self.end = end
        self.pos = read_from(start)
        self.skipping = start > 0
        self.done = start >= end

    def feed(self, block: bytes) -> bytes:
        """The owned part of ``block``; ``done`` turns true once the last owned line is complete."""
        if self.done:
            return b""
        base = self.pos
        self.pos += len(block)
        i = 0
        if self.skipping:
            newline = block.find(NEWLINE)
            if newline < 0:
                return b""
            self.skipping = False
            i = newline + 1
            if base + i >= self.end:
                self.done = True
                return b""
        # The owned bytes run through the first newline at or after end - 1.
        search_from = max(i, self.end - 1 - base)
        if search_from >= len(block):
            return block[i:] if i else block
        newline = block.find(NEWLINE, search_from)
        if newline < 0:
            return block[i:] if i else block
        self.done = True
        return block[i : newline + 1]


def last_cut(buffer: bytes | bytearray) -> int:
    """One past the last ASCII whitespace byte in ``buffer`` (0 if none): a safe place to cut text."""
    cut = buffer.rfind(NEWLINE)
    if cut < 0:
        cut = max(buffer.rfind(bytes((b,))) for b in ASCII_WHITESPACE)
    return cut + 1


class Chunker:
    """Regroups owned bytes into pieces of about ``size`` bytes that end on whitespace, so words stay whole."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        if len(self._buffer) < self.size:
            return []
        cut = last_cut(self._buffer)
        if cut == 0:
            return []  # one word longer than a chunk: keep reading until it ends
        piece = bytes(self._buffer[:cut])
        del self._buffer[:cut]
        return [piece]

    def finish(self) -> list[bytes]:
        rest = bytes(self._buffer)
        self._buffer.clear()
        return [rest] if rest else []
