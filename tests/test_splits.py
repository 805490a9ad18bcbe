"""Splits: planning byte ranges, cutting out exactly the lines a range owns, and chunking on whitespace."""

from __future__ import annotations

from collections import Counter
from itertools import cycle, pairwise

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from actors.core.errors import KeyTooLarge
from actors.core.splits import (
    ASCII_WHITESPACE,
    UNICODE_WHITESPACE,
    Chunker,
    OwnedLines,
    Split,
    last_cut,
    last_unicode_cut,
    plan,
    read_from,
    split_count,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------------------------------------------
# Reference model, written independently of the code under test.


def line_spans(data: bytes) -> list[tuple[int, int]]:
    """(first byte, one past last byte) of every line, a line ending with its newline or at EOF."""
    spans, start = [], 0
    for i, byte in enumerate(data):
        if byte == 0x0A:
            spans.append((start, i + 1))
            start = i + 1
    if start < len(data):
        spans.append((start, len(data)))
    return spans


def expected_owned(data: bytes, start: int, end: int) -> bytes:
    """The lines whose first byte lies in [start, end), concatenated."""
    return b"".join(data[a:b] for a, b in line_spans(data) if start <= a < end)


def read_split(data: bytes, start: int, end: int, block_sizes: list[int]) -> bytes:
    """Drive OwnedLines as a reader would: from read_from(start), block by block, until done or EOF."""
    owned = OwnedLines(start, end)
    pos = read_from(start)
    out = []
    sizes = cycle(block_sizes)
    while pos < len(data) and not owned.done:
        size = next(sizes)
        out.append(owned.feed(data[pos : pos + size]))
        pos += size
    if owned.done:
        # Once done, further input (a reader that over-read) must add nothing.
        assert owned.feed(data[pos : pos + 7] or b"tail\n") == b""
    return b"".join(out)


# ---------------------------------------------------------------------------------------------------------------
# Strategies: newline-heavy text with multi-byte UTF-8, empty lines, CRLF, invalid bytes and sometimes a long line.

SEGMENTS = st.one_of(
    st.just(b"\n"),
    st.just(b"\n"),
    st.just(b"\n\n"),
    st.sampled_from([b"a", b"word", b" ", b"\t", b"\r\n", "é".encode(), "日本語".encode(), "😀".encode(), b"x y z"]),
    st.binary(max_size=6),
    st.just(b"L" * 3000),
)
TEXT = st.lists(SEGMENTS, max_size=40).map(b"".join)
BLOCK_SIZES = st.lists(
    st.integers(min_value=1, max_value=64) | st.sampled_from([1, 1, 2, 4096]), min_size=1, max_size=5
)


@st.composite
def text_and_bounds(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    data = draw(TEXT)
    size = len(data)
    # Interior boundaries, duplicates allowed (empty splits happen when there are more splits than bytes).
    inner = draw(st.lists(st.integers(min_value=0, max_value=size), max_size=8))
    # Favour boundaries right at, before and after newlines, where off-by-one errors live.
    newlines = [i for i, b in enumerate(data) if b == 0x0A]
    if newlines:
        picks = draw(st.lists(st.sampled_from(newlines), max_size=4))
        delta = draw(st.sampled_from([-1, 0, 1, 2]))
        inner += [min(size, max(0, p + delta)) for p in picks]
    return data, [0, *sorted(inner), size]


# ---------------------------------------------------------------------------------------------------------------
# plan


@pytest.mark.parametrize(
    ("size", "split_size", "min_splits"),
    [(0, 10, 1), (0, 10, 3), (1, 10, 1), (5, 10, 3), (100, 10, 1), (101, 10, 1), (100, 7, 2), (100, 1000, 4),
     (10**9, 16 * 2**20, 2), (3, 1, 1), (17, 0, 1)],
)
def test_plan_tiles_the_input(size: int, split_size: int, min_splits: int) -> None:
    splits = plan(size, split_size, min_splits)
    assert len(splits) >= max(1, min_splits)
    assert [s.index for s in splits] == list(range(len(splits)))
    assert splits[0].start == 0
    assert splits[-1].end == size
    for a, b in pairwise(splits):
        assert a.end == b.start
    assert all(s.start <= s.end for s in splits)


@given(size=st.integers(0, 10**9), split_size=st.integers(1, 10**8), min_splits=st.integers(1, 64))
@FAST
def test_plan_sizes_are_about_split_size(size: int, split_size: int, min_splits: int) -> None:
    assume(size // split_size <= 2000)  # keep the plans small enough to check quickly
    splits = plan(size, split_size, min_splits)
    assert len(splits) >= min_splits
    assert sum(s.end - s.start for s in splits) == size
    lengths = [s.end - s.start for s in splits]
    # Even: no two splits differ by more than a byte.
    assert max(lengths) - min(lengths) <= 1
    # Never (noticeably) bigger than split_size, and the fewest splits that are a multiple of the mappers.
    assert max(lengths) <= split_size
    needed = max(1, -(-size // split_size))
    workers = max(1, min_splits)
    assert len(splits) % workers == 0
    assert len(splits) - workers < needed <= len(splits)


def test_plan_of_empty_input() -> None:
    assert plan(0, 1024, 1) == [Split(0, 0, 0)]
    assert all(s.start == s.end == 0 for s in plan(0, 1024, 4))


# ---------------------------------------------------------------------------------------------------------------
# OwnedLines / read_from


def test_read_from() -> None:
    assert read_from(0) == 0
    assert read_from(1) == 0
    assert read_from(10) == 9


@pytest.mark.parametrize(
    ("data", "bounds", "parts"),
    [
        (b"ab\ncd\nef\n", [0, 3, 9], [b"ab\n", b"cd\nef\n"]),  # boundary right at a line start
        (b"ab\ncd\nef\n", [0, 2, 9], [b"ab\n", b"cd\nef\n"]),  # boundary on the newline: the line is the first's
        (b"ab\ncd\nef\n", [0, 4, 9], [b"ab\ncd\n", b"ef\n"]),  # boundary mid-line
        (b"ab\ncd\nef", [0, 7, 8], [b"ab\ncd\nef", b""]),  # no trailing newline
        (b"\n\n\n", [0, 1, 2, 3], [b"\n", b"\n", b"\n"]),  # empty lines
        (b"abc", [0, 1, 2, 3], [b"abc", b"", b""]),  # one line, many splits
        (b"", [0, 0], [b""]),
    ],
)
def test_owned_lines_examples(data: bytes, bounds: list[int], parts: list[bytes]) -> None:
    got = [read_split(data, a, b, [1]) for a, b in pairwise(bounds)]
    assert got == parts
    got = [read_split(data, a, b, [4096]) for a, b in pairwise(bounds)]
    assert got == parts


@given(case=text_and_bounds(), block_sizes=BLOCK_SIZES)
@FAST
def test_owned_lines_tile_the_input(case: tuple[bytes, list[int]], block_sizes: list[int]) -> None:
    data, bounds = case
    owned = [read_split(data, a, b, block_sizes) for a, b in pairwise(bounds)]
    # Consecutive splits tile the input exactly.
    assert b"".join(owned) == data
    line_starts = {a for a, _ in line_spans(data)}
    offset = 0
    for (start, end), part in zip(pairwise(bounds), owned, strict=True):
        # Every line is owned by exactly the split holding its first byte.
        assert part == expected_owned(data, start, end)
        if part:
            # Owned bytes begin at a line start and end at a newline or at EOF.
            assert offset in line_starts
            assert part.endswith(b"\n") or offset + len(part) == len(data)
        offset += len(part)


@given(case=text_and_bounds(), block_sizes=BLOCK_SIZES)
@FAST
def test_owned_lines_rereads_identically(case: tuple[bytes, list[int]], block_sizes: list[int]) -> None:
    data, bounds = case
    for start, end in pairwise(bounds):
        assert read_split(data, start, end, block_sizes) == read_split(data, start, end, [4096])


@given(data=TEXT, split_size=st.integers(16, 400), min_splits=st.integers(1, 6), block_sizes=BLOCK_SIZES)
@FAST
def test_planned_splits_tile_the_input(data: bytes, split_size: int, min_splits: int, block_sizes: list[int]) -> None:
    # At most about 40 splits: every split inside a long line reads the rest of it, in blocks of a byte or two, so
    # thousands of 16-byte splits of a 100 KB line made this one test take minutes and found nothing more.
    splits = plan(len(data), max(split_size, len(data) // 40), min_splits)
    assert b"".join(read_split(data, s.start, s.end, block_sizes) for s in splits) == data


def test_very_long_line_is_owned_whole_by_one_split() -> None:
    data = b"short\n" + b"y" * 100_000 + b"\nend\n"
    splits = plan(len(data), 1000, 1)
    parts = [read_split(data, s.start, s.end, [777]) for s in splits]
    assert b"".join(parts) == data
    assert sum(1 for p in parts if b"y" * 100_000 in p) == 1
    # "short" and the long line start in the first split, "end" in the last: every other split is empty.
    assert [bool(p) for p in parts] == [True] + [False] * (len(parts) - 2) + [True]


# ---------------------------------------------------------------------------------------------------------------
# last_cut / Chunker

WS_BYTES = set(ASCII_WHITESPACE)


def test_ascii_whitespace_is_what_str_split_splits_on() -> None:
    # Every byte in ASCII_WHITESPACE splits text, and no other ASCII byte does.
    for byte in range(128):
        char = chr(byte)
        assert (byte in WS_BYTES) == char.isspace(), repr(char)


@pytest.mark.parametrize(
    ("buffer", "acceptable"),
    [
        (b"", {0}),
        (b"abc", {0}),
        (b"a b", {2}),
        (b"a\tb", {2}),
        (b"a\nb", {2}),
        (b"a\nb c", {2, 4}),  # any ASCII whitespace position is safe
        (b"a\xc2\x85b", {0}),  # U+0085 encoded: not an ASCII byte, not a safe cut
        ("a\u2003b".encode(), {0}),
        (b"a\x1cb", {2}),
        (b"abc ", {4}),
    ],
)
def test_last_cut(buffer: bytes, acceptable: set[int]) -> None:
    cut = last_cut(buffer)
    assert cut in acceptable
    assert last_cut(bytearray(buffer)) == cut


def chunk(data: bytes, size: int, block_sizes: list[int], max_key: int = 1 << 30) -> list[bytes]:
    chunker = Chunker(size, max_key)
    pieces: list[bytes] = []
    pos = 0
    sizes = cycle(block_sizes)
    while pos < len(data):
        step = next(sizes)
        pieces += chunker.feed(data[pos : pos + step])
        # Bounded memory: never more than a chunk or the longest key allowed between feeds.
        assert chunker.held <= max(size, max_key + 2)
        pos += step
    pieces += chunker.finish()
    return pieces


def ends_on_whitespace(piece: bytes) -> bool:
    return piece[-1] in WS_BYTES or any(piece.endswith(ws) for ws in UNICODE_WHITESPACE)


CHUNK_SEGMENTS = st.one_of(
    st.binary(max_size=8),
    st.sampled_from(
        [b" ", b"\n", b"\t", b"\r", b"\x0b", b"\x0c", b"\x1c", b"\x1f", b"\x85", b"\xa0", b"\xc2", b"\xe2\x80",
         "\u0085".encode(), "\u2003".encode(), "\u00a0".encode(), "\u3000".encode(), "é".encode(), "日本".encode(),
         b"\xff", b"\xed\xa0\x80", b"word", b"a"]
    ),
)
RAW = st.lists(CHUNK_SEGMENTS, max_size=60).map(b"".join)


@given(data=RAW, size=st.integers(1, 40), block_sizes=BLOCK_SIZES)
@settings(max_examples=300, deadline=None)
def test_chunker_pieces(data: bytes, size: int, block_sizes: list[int]) -> None:
    pieces = chunk(data, size, block_sizes)
    assert b"".join(pieces) == data
    assert all(pieces)
    for piece in pieces[:-1]:
        assert ends_on_whitespace(piece)
    # The key property: cutting changes neither decoding (with replacement) nor tokenizing.
    pieced = Counter(word for piece in pieces for word in piece.decode("utf-8", "replace").split())
    assert pieced == Counter(data.decode("utf-8", "replace").split())


def test_chunker_keeps_an_overlong_word_whole() -> None:
    chunker = Chunker(4, 100)
    assert chunker.feed(b"abcdefgh") == []
    assert chunker.feed(b"ij") == []
    assert chunker.feed(b"k lm") == [b"abcdefghijk "]
    assert chunker.finish() == [b"lm"]
    assert chunker.finish() == []


def test_chunker_waits_for_size() -> None:
    chunker = Chunker(10, 100)
    assert chunker.feed(b"a b ") == []
    pieces = chunker.feed(b"c d e f g")
    assert len(pieces) == 1
    assert b"".join(pieces) + b"".join(chunker.finish()) == b"a b c d e f g"


def test_tiny_inputs_get_fewer_splits_than_mappers() -> None:
    assert len(plan(40, 16 << 20, 3, min_split_size=64 * 1024)) == 1
    assert len(plan(0, 16 << 20, 3, min_split_size=64 * 1024)) == 1
    assert len(plan(130 * 1024, 16 << 20, 3, min_split_size=64 * 1024)) == 3
    assert len(plan(100 * 1024, 16 << 20, 3, min_split_size=64 * 1024)) == 2
    assert len(plan(1 << 30, 16 << 20, 3, min_split_size=64 * 1024)) == 66  # 64 rounded up to a multiple of 3


@pytest.mark.parametrize(("size", "split_size", "mappers", "max_splits", "count"), [
    (100_000, 1000, 3, 100, 99),  # 100 wanted, rounded up to 102 for 3 mappers: yields to the cap, down to 99
    (100_000, 1000, 3, 102, 102),
    (100_000, 1000, 7, 5, 5),  # fewer allowed than mappers: the cap wins
    (100_000, 1000, 3, 0, 102),  # no cap
])
def test_plan_never_passes_max_splits(size: int, split_size: int, mappers: int, max_splits: int, count: int) -> None:
    splits = plan(size, split_size, mappers, max_splits=max_splits)
    assert len(splits) == count
    assert splits[0].start == 0 and splits[-1].end == size
    assert all(a.end == b.start for a, b in pairwise(splits))
    assert split_count(size, split_size) == -(-size // split_size)


# ---------------------------------------------------------------------------------------------------------------
# Long words: bounded memory, exact counts, a clear failure past MR_MAX_KEY


def test_unicode_whitespace_is_every_non_ascii_character_str_split_splits_on() -> None:
    expected = {chr(c).encode() for c in range(0x80, 0x110000) if chr(c).isspace()}
    assert set(UNICODE_WHITESPACE) == expected


def test_last_unicode_cut() -> None:
    assert last_unicode_cut("ab\u3000cd".encode()) == 5
    assert last_unicode_cut("a\u00a0b\u2003c".encode()) == 7
    assert last_unicode_cut(b"abc") == 0
    assert last_unicode_cut("a\u3000b".encode(), start=5) == 0


LONG_SEGMENTS = st.one_of(
    CHUNK_SEGMENTS,
    st.integers(1, 300).map(lambda n: b"w" * n),
    st.integers(1, 100).map(lambda n: "é".encode() * n),
    st.integers(1, 100).map(lambda n: b"\xff" * n),
    st.integers(1, 60).map(lambda n: "x\u3000".encode() * n),  # words spaced only by a Unicode space
)
LONG_RAW = st.lists(LONG_SEGMENTS, max_size=30).map(b"".join)


@given(data=LONG_RAW, size=st.integers(1, 40), block_sizes=BLOCK_SIZES, max_key=st.integers(1, 400))
@FAST
def test_chunker_with_long_tokens_is_exact_or_names_the_limit(data: bytes, size: int, block_sizes: list[int],
                                                              max_key: int) -> None:
    tokens = data.decode("utf-8", "replace").split()
    longest = max((len(t.encode()) for t in tokens), default=0)
    try:
        pieces = chunk(data, size, block_sizes, max_key)
    except KeyTooLarge as error:
        # Only a token truly longer than the limit may fail the split, and the error names the setting.
        assert longest > max_key
        assert "MR_MAX_KEY" in error.message
        return
    assert b"".join(pieces) == data
    assert Counter(w for p in pieces for w in p.decode("utf-8", "replace").split()) == Counter(tokens)


def test_a_word_longer_than_the_limit_fails_with_bounded_memory() -> None:
    chunker = Chunker(1024, 10_000)
    with pytest.raises(KeyTooLarge, match="MR_MAX_KEY"):
        for _ in range(100):
            chunker.feed(b"z" * 4096)
            assert chunker.held <= 10_002


def test_text_spaced_only_by_unicode_spaces_is_cut_not_refused() -> None:
    data = "ab\u3000".encode() * 20_000  # 100 KB without one ASCII whitespace byte, words of 2 characters
    pieces = chunk(data, 1024, [4096], max_key=64)
    assert len(pieces) > 10
    assert Counter(w for p in pieces for w in p.decode().split()) == Counter({"ab": 20_000})
