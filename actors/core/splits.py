"""Splits: planning byte ranges of an input and cutting out exactly the lines each range owns.

A split ``[start, end)`` owns every line whose first byte lies in ``[start, end)``. Equivalently it owns the
bytes ``[align(start), align(end))`` where ``align(0) = 0`` and ``align(p)`` is one past the first newline at or
after ``p - 1`` (or the end of the input). Consecutive splits therefore tile the input exactly, never cut a line,
and any attempt re-reads the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import KeyTooLarge

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
    input: int = 0  # which of the job's inputs the range is of: a split never crosses an input's boundary


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


def input_split_counts(sizes: list[int], whole: list[bool], split_size: int) -> list[int]:
    """Splits per input of a job with several: at most ``split_size`` bytes each, one for a ``whole`` input."""
    return [1 if w else split_count(size, split_size) for size, w in zip(sizes, whole, strict=True)]


def plan_inputs(sizes: list[int], whole: list[bool], split_size: int, min_splits: int, min_split_size: int = 0,
                max_splits: int = 0) -> list[Split]:
    """The splits of a job's inputs, numbered across them; none crosses an input's boundary.

    One plain input is planned by :func:`plan` (a multiple of the mappers). Several are planned input by input,
    each in :func:`input_split_counts` even ranges: the many inputs already keep the mappers busy. A ``whole``
    input (compressed: its byte offsets are no line offsets) is one split.
    """
    if len(sizes) == 1 and not whole[0]:
        return plan(sizes[0], split_size, min_splits, min_split_size, max_splits)
    splits: list[Split] = []
    for number, (size, count) in enumerate(zip(sizes, input_split_counts(sizes, whole, split_size), strict=True)):
        bounds, first = [size * i // count for i in range(count + 1)], len(splits)
        splits.extend(Split(first + i, bounds[i], bounds[i + 1], number) for i in range(count))
    return splits


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
        self.first = 0 if start == 0 else -1  # the input offset of the first owned byte, once found

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
            self.first = base + i
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


# The UTF-8 encodings of every non-ASCII character str.split() splits on (a test checks the list is complete).
UNICODE_WHITESPACE = tuple(
    chr(c).encode() for c in (0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000)
)


def last_unicode_cut(buffer: bytes | bytearray, start: int = 0) -> int:
    """One past the last non-ASCII whitespace character in ``buffer[start:]`` (0 if none), also a safe cut.

    A complete UTF-8 sequence ends any invalid run before it (its lead byte is no continuation byte), so cutting
    after it changes neither decoding with replacement nor tokenizing. Rarely needed, so not in the hot path.
    """
    best = 0
    for ws in UNICODE_WHITESPACE:
        found = buffer.rfind(ws, start)
        if found >= 0:
            best = max(best, found + len(ws))
    return best


class Chunker:
    """Regroups owned bytes into pieces of about ``size`` bytes that end on whitespace, so words stay whole.

    It holds at most ``max(size, max_key + 2)`` bytes plus one fed block: a run of text with no whitespace longer
    than ``max_key`` bytes is a word longer than any key may be (its UTF-8 form, with replacement characters, is
    never shorter than its bytes), and fails with :class:`KeyTooLarge` naming MR_MAX_KEY rather than growing.
    Each byte is scanned for cut points once, as it arrives, so a long word costs linear time.
    """

    def __init__(self, size: int, max_key: int) -> None:
        self.size = size
        self.max_key = max_key
        self._buffer = bytearray()
        self._cut = 0  # one past the last whitespace seen in the buffer, 0 if none
        self._scanned = 0  # the buffer was searched for non-ASCII whitespace up to here

    def feed(self, data: bytes) -> list[bytes]:
        base = len(self._buffer)
        self._buffer += data
        cut = last_cut(data)
        if cut:
            self._cut = self._scanned = base + cut
        run = len(self._buffer) - self._cut  # bytes since the last whitespace seen
        if run > self.size:
            # No ASCII whitespace for a whole chunk: a long word, or text spaced by Unicode spaces only.
            # Back up a few bytes so a character split across two feeds is found.
            unicode_cut = last_unicode_cut(self._buffer, max(self._cut, self._scanned - 2))
            self._scanned = len(self._buffer)
            self._cut = max(self._cut, unicode_cut)
            run = len(self._buffer) - self._cut  # a word so far, but for up to 2 bytes that may start a space
            if run > self.max_key + 2:
                raise KeyTooLarge(
                    f"a word of more than {self.max_key} bytes (no whitespace for {run} bytes) is longer than the "
                    f"longest key allowed (MR_MAX_KEY={self.max_key})"
                )
        if len(self._buffer) < self.size or self._cut == 0:
            return []  # too little yet, or one word longer than a chunk: keep reading until it ends
        with memoryview(self._buffer) as view:
            piece = bytes(view[: self._cut])  # one copy, not two (a slice of a bytearray is a copy too)
        del self._buffer[: self._cut]
        self._scanned = max(0, self._scanned - self._cut)
        self._cut = 0
        return [piece]

    @property
    def held(self) -> int:
        """Bytes buffered now: at most ``max(size, max_key + 2)`` between feeds."""
        return len(self._buffer)

    def finish(self) -> list[bytes]:
        rest = bytes(self._buffer)
        self._buffer.clear()
        self._cut = self._scanned = 0
        return [rest] if rest else []
