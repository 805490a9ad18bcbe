"""The word-count kernel, native and pure Python alike: exactly ``Counter(data.decode("utf-8", "replace").split())``.

Every test runs against both implementations. The native one is skipped (with the reason) only when the extension
was not built; scripts/asan_kernel.sh sets MR_REQUIRE_NATIVE_KERNEL=1 so that a missing build fails instead, and
MR_KERNEL_FUZZ_EXAMPLES to fuzz longer under AddressSanitizer.
"""

from __future__ import annotations

import functools
import gc
import os
import subprocess
import sys
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core.errors import WireError
from actors.core.messages import Columns
from actors.core.partition import split_by_partition
from actors.jobs.engine import CountTable as WordCounts
from actors.jobs.wordcount import encode, kernel
from actors.jobs.wordcount.columns import pack_columns, unpack_columns
from actors.jobs.wordcount.encode import counts_json_in_python
from actors.jobs.wordcount.kernel import NativeCountTable, PythonCountTable

from .test_partition import partition_of

Factory = Callable[[int], WordCounts]


def _native(partitions: int) -> WordCounts:
    if NativeCountTable is None:
        if os.environ.get("MR_REQUIRE_NATIVE_KERNEL") == "1":
            pytest.fail(f"MR_REQUIRE_NATIVE_KERNEL=1 but the native kernel is not built: {kernel.native_status()}")
        pytest.skip(f"the native kernel is not built ({kernel.native_status()}): pip install -e . with a C compiler")
    return NativeCountTable(partitions)


IMPLEMENTATIONS = pytest.mark.parametrize("make", [_native, PythonCountTable], ids=["native", "python"])
FUZZ_EXAMPLES = int(os.environ.get("MR_KERNEL_FUZZ_EXAMPLES", "300"))

# All 29 code points str.split() treats as whitespace (c.isspace()), UTF-8 encoded.
WHITESPACE = [chr(c) for c in range(0x110000) if chr(c).isspace()]
SPECIAL_BYTES = [
    b"\x00", b"\x1c", b"\x1d", b"\x1e", b"\x1f", b"\x7f",  # NUL, the ASCII separators str.split() honours, DEL
    b"\x80", b"\xbf", b"\xff", b"\xc0\xaf", b"\xc2", b"\xe2\x80", b"\xf0\x9f\x98",  # stray, overlong, truncated
    b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80",  # encoded surrogate, > U+10FFFF, 5-byte form
    "é".encode(), "e\u0301".encode(), "日本語".encode(), "😀".encode(), "\ufffd".encode(), "ß".encode(),
]
WORDS = [b"a", b"b", b"the", b"The", b"word", b"x" * 5000, b"y" * 70_000]
PIECE = st.one_of(
    st.sampled_from([w.encode() for w in WHITESPACE]),
    st.sampled_from([b"\n", b"\r\n", b" ", b"\t"]),
    st.sampled_from(SPECIAL_BYTES),
    st.sampled_from(WORDS),
    st.binary(max_size=12),
    st.text(max_size=8).map(lambda s: s.encode("utf-8", "surrogatepass")),
)
TEXT = st.lists(PIECE, max_size=80).map(b"".join)
PARTITIONS = st.one_of(st.integers(1, 8), st.sampled_from([16, 64, 1000]))


def oracle(data: bytes) -> Counter[str]:
    return Counter(data.decode("utf-8", "replace").split())


def merged(parts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in parts:
        assert not out.keys() & part.keys(), "a key in two partitions"
        out.update(part)
    return out


def whole_line_pieces(data: bytes, cut: list[bool]) -> list[bytes]:
    """``data`` cut after some of its newlines (``cut[i]`` for the i-th): chunks of whole lines, as a mapper reads."""
    pieces, start, n = [], 0, 0
    for i, byte in enumerate(data):
        if byte == 0x0A:
            if cut[n % len(cut)] if cut else False:
                pieces.append(data[start : i + 1])
                start = i + 1
            n += 1
    pieces.append(data[start:])
    return pieces


@IMPLEMENTATIONS
@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(data=TEXT, partitions=PARTITIONS, cut=st.lists(st.booleans(), max_size=20))
def test_fuzz_equals_counter_oracle_partitioned(make: Factory, data: bytes, partitions: int, cut: list[bool]) -> None:
    table = make(partitions)
    for piece in whole_line_pieces(data, cut):
        table.feed(piece)
    expected = oracle(data)
    assert len(table) == len(expected)
    parts = table.take()
    assert parts == split_by_partition(expected, partitions)
    assert all(type(v) is int for part in parts for v in part.values())
    assert len(table) == 0 and table.take() == [{} for _ in range(partitions)]


@IMPLEMENTATIONS
@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(lines=st.lists(st.lists(PIECE, max_size=10).map(b"".join), max_size=30))
def test_fuzz_runs_of_dirty_and_clean_lines(make: Factory, lines: list[bytes]) -> None:
    """Many short lines: clean and dirty lines interleave, so runs of dirty lines start and end everywhere."""
    data = b"\n".join(lines)
    table = make(3)
    table.feed(data)
    assert table.take() == split_by_partition(oracle(data), 3)


@functools.cache
def _every_code_point() -> tuple[bytes, Counter[str]]:
    """Lines of every code point but surrogates, and their counts as c.isspace() predicts: each space c as the line
    "a" + c + "b" (two tokens), the other code points 64 to a line between "a" and "b" (one token each line).

    Runs, not a line per code point: the same check of every code point with 17 thousand keys instead of a million
    (the table, the dict it gives and the comparison took most of 10 s)."""
    points = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    spaces = [c for c in points if c.isspace()]
    others = [c for c in points if not c.isspace()]
    runs = ["a" + "".join(others[i : i + 64]) + "b" for i in range(0, len(others), 64)]
    expected = Counter(runs)
    expected.update({"a": len(spaces), "b": len(spaces)})
    return "\n".join([*runs, *("a" + c + "b" for c in spaces)]).encode("utf-8"), expected


# ASCII lines the C tokenizer takes whole: the six whitespace bytes and their neighbours (\x08, \x0e, \x1b, \x21).
ASCII_EDGES = [bytes([b]) for b in b"\t\n\x0b\x0c\r \x00\x08\x0e\x1b!\x7f"] + [b"a", b"b", b"ab", b"abcdefgh" * 9]


@IMPLEMENTATIONS
@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(data=st.lists(st.sampled_from(ASCII_EDGES), max_size=400).map(b"".join))
def test_fuzz_clean_lines_across_64_byte_blocks(make: Factory, data: bytes) -> None:
    """Long clean lines: tokens and spaces start and end at every place of the 64-byte blocks scanned at once."""
    table = make(2)
    table.feed(data)
    assert table.take() == split_by_partition(oracle(data), 2)


@IMPLEMENTATIONS
def test_tokens_at_every_block_offset(make: Factory) -> None:
    table = make(1)
    for lead in range(0, 140):
        for length in (1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 65, 130):
            data = b" " * lead + b"w" * length + b"\t" + b"v" * (lead % 70) + b"\r\n" + b"u" * length
            table.feed(data)
            got = table.take()[0]
            assert got == oracle(data), (lead, length)


@IMPLEMENTATIONS
def test_every_code_point_splits_exactly_as_isspace(make: Factory) -> None:
    """Every code point (surrogates excluded) splits a token exactly when c.isspace(): each space alone between
    "a" and "b", the others in runs of 64 between "a" and "b", a run one token unless one of its points splits."""
    data, expected = _every_code_point()
    table = make(1)
    table.feed(data)
    got = table.take()[0]
    if got != expected:
        wrong = [f"U+{ord(token[1]):04X}..U+{ord(token[-2]):04X}" for token in expected
                 if len(token) > 2 and got.get(token) != expected[token]]
        pytest.fail(f"split disagrees with str.isspace() in the code points {wrong[:20]} (or the counts of the "
                    f"spaces' a and b: {got.get('a')}, {got.get('b')}; expected {expected['a']})")


@IMPLEMENTATIONS
@pytest.mark.parametrize("data", [
    b"ab\xe2\x82\n\xacd",  # a truncated sequence before the newline, its continuation byte after it
    b"\xf0\x9f\n\x98\x80 x",
    b"x\xe2\n\x80\x83y\n",  # the halves of U+2003 (EM SPACE) on two lines: two replacement tokens, not a space
    b"\xc2\n\xa0",  # the halves of U+00A0
    b"\xed\xa0\x80\n\xed\xb0\x80",  # encoded surrogates are invalid UTF-8 in Python too
])
def test_decoding_line_by_line_equals_decoding_the_chunk(make: Factory, data: bytes) -> None:
    table = make(1)
    table.feed(data)
    assert table.take() == [dict(oracle(data))]
    for piece in whole_line_pieces(data, [True]):
        table.feed(piece)
    assert table.take() == [dict(oracle(data))]


@IMPLEMENTATIONS
def test_whitespace_bytes_and_separators_in_clean_and_dirty_lines(make: Factory) -> None:
    data = ("a\tb\x0bc\x0cd\re f\x1cg\x1dh\x1ei\x1fj\nk\x85l\xa0m\u2028n\u3000o é\n\x00 \x00\n").encode()
    table = make(2)
    table.feed(data)
    assert merged(table.take()) == oracle(data)
    assert set(oracle(data)) == {*"abcdefghijklmno", "é", "\x00"}


@IMPLEMENTATIONS
def test_take_resets_and_feeds_accumulate(make: Factory) -> None:
    table = make(4)
    assert len(table) == 0 and table.partitions == 4
    table.feed(b"the cat sat\n")
    table.feed(bytearray(b"the mat\n"))
    table.feed(memoryview(b"caf\xc3\xa9 the\n"))
    assert len(table) == 5
    assert merged(table.take()) == {"the": 3, "cat": 1, "sat": 1, "mat": 1, "café": 1}
    assert len(table) == 0
    table.feed(b"the")
    assert merged(table.take()) == {"the": 1}
    assert table.take() == [{}, {}, {}, {}]


@IMPLEMENTATIONS
@pytest.mark.parametrize("partitions", [1, 2, 3, 7, 1000])
def test_each_key_lands_in_the_partition_partition_of_names(make: Factory, partitions: int) -> None:
    keys = [f"w{i}" for i in range(3000)] + ["é", "日本語", "😀", "\ufffd", "x" * 10_000]
    table = make(partitions)
    table.feed(" ".join(keys).encode() + b"\n" + "\n".join(keys).encode())
    parts = table.take()
    assert len(parts) == partitions
    for index, part in enumerate(parts):
        for key, count in part.items():
            assert partition_of(key, partitions) == index and count == 2
    assert sum(len(part) for part in parts) == len(keys)


@IMPLEMENTATIONS
def test_many_distinct_keys_and_long_tokens_grow_the_table(make: Factory) -> None:
    words = [f"k{i}" for i in range(200_000)]
    long_token = b"z" * (3 << 20)
    data = " ".join(words).encode() + b"\n" + long_token + b"\n" + " ".join(words[:1000]).encode()
    table = make(5)
    table.feed(data)
    assert len(table) == len(words) + 1
    counts = merged(table.take())
    assert counts[long_token.decode()] == 1 and counts["k0"] == 2 and counts["k199999"] == 1
    assert counts == oracle(data)


@IMPLEMENTATIONS
def test_empty_and_blank_input(make: Factory) -> None:
    table = make(3)
    for data in (b"", b"\n", b" \t\r\n\x0b\x0c", "\u3000\x85\n".encode()):
        table.feed(data)
    assert len(table) == 0 and table.take() == [{}, {}, {}]


@IMPLEMENTATIONS
def test_hostile_arguments_are_refused(make: Factory) -> None:
    for bad in (0, -1):
        with pytest.raises(ValueError, match="partitions must be at least 1"):
            make(bad)
    for wrong in ("2", 2.5, None):
        with pytest.raises(TypeError):
            make(wrong)  # type: ignore[arg-type]
    table = make(2)
    for not_bytes in ("text", None, 3, ["a"]):
        with pytest.raises(TypeError):
            table.feed(not_bytes)  # type: ignore[arg-type]
    with pytest.raises((BufferError, TypeError, ValueError)):
        table.feed(memoryview(b"a b c d")[::2])  # not contiguous
    assert len(table) == 0


@IMPLEMENTATIONS
def test_take_releases_memory_and_nothing_leaks(make: Factory) -> None:
    data = (" ".join(f"key{i}" for i in range(50_000)) + "\né\u2028ü x\n").encode()
    table = make(3)
    table.feed(data)
    table.take()  # warm up caches (interned ints and so on) before measuring
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for _ in range(5):
            table.feed(data)
            assert tracemalloc.get_traced_memory()[0] - baseline > 500_000  # the table holds 50k keys
            table.take()
        assert tracemalloc.get_traced_memory()[0] - baseline < 100_000  # all of it released by take()
    finally:
        tracemalloc.stop()


def test_native_table_refuses_reentry_from_code_run_by_the_gc() -> None:
    """feed() calls str.split(), whose list allocation can run the GC, and GC callbacks can run any code."""
    table = _native(2)
    refused: list[RuntimeError] = []
    intruded: list[str] = []  # collections that ran outside feed(), where feeding is fine

    def callback(phase: str, info: dict[str, int]) -> None:
        try:
            table.feed(b"intruder\n")
            intruded.append(phase)
        except RuntimeError as error:
            refused.append(error)

    data = "café au lait\nplain words\n".encode() * 200  # 200 runs of dirty lines: 200 str.split() lists
    threshold, enabled, fed = gc.get_threshold(), gc.isenabled(), 0
    gc.callbacks.append(callback)
    try:
        for _ in range(20):  # the first try should do; more only if something else collected just before
            gc.disable()
            # Empties the list free list: str.split() must make a new GC object.
            hold: list[list[object]] = [[] for _ in range(200)]
            gc.set_threshold(1)  # ... and that allocation collects: the young generation already holds > 1
            gc.enable()
            table.feed(data)
            fed += 1
            del hold
            if refused:
                break
    finally:
        gc.callbacks.remove(callback)
        gc.set_threshold(*threshold)
        if not enabled:
            gc.disable()
    assert refused and "re-entered" in str(refused[0]), "no collection ran inside feed()"
    assert merged(table.take()) == oracle(data * fed + b"intruder\n" * len(intruded))


MEMORY_CHILD = """
import resource, sys
from actors.jobs.wordcount.kernel import NativeCountTable, PythonCountTable
make = NativeCountTable if sys.argv[1] == "native" else PythonCountTable
with open("/proc/self/status") as status:
    size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
limit = size + (96 << 20)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
table = make(2)
try:
    for block in range(10**6):
        table.feed(" ".join(f"{block}-{i}" for i in range(20000)).encode())
except MemoryError:
    pass
else:
    sys.exit("never ran out of memory")
held = len(table)
table = None  # frees it all: the next allocations must succeed
table = make(2)
table.feed(b"still works")
print("ok", held, len(table))
"""


@IMPLEMENTATIONS
@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc are Linux's")
@pytest.mark.skipif("asan" in os.environ.get("LD_PRELOAD", ""), reason="ASan reserves terabytes of address space")
def test_running_out_of_memory_raises_memory_error(make: Factory) -> None:
    name = "native" if make is _native else "python"
    if make is _native:
        make(1)  # skips when not built
    done = subprocess.run([sys.executable, "-c", MEMORY_CHILD, name], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    word, held, after = done.stdout.split()
    assert word == "ok" and int(held) > 10_000 and after == "2"


def test_native_flag_and_status_agree() -> None:
    if kernel.NATIVE:
        assert kernel.CountTable is NativeCountTable and kernel.native_status() == "yes"
    else:
        assert kernel.CountTable is PythonCountTable and kernel.native_status().startswith("no (")


@pytest.mark.timeout(120)
def test_bench_kernel_script_runs_and_both_kernels_are_exact(tmp_path: Path) -> None:
    """Smoke test of scripts/bench_kernel.py on small inputs; no timing is asserted (shared, noisy machines)."""
    script = Path(__file__).resolve().parent.parent / "scripts" / "bench_kernel.py"
    done = subprocess.run([sys.executable, str(script), "--real-mb", "1", "--zipf-mb", "1", "--zipf-words", "20000",
                           "--repeat", "1", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = [row for row in map(str.split, done.stdout.splitlines()) if len(row) == 6 and row[0] in ("native", "python")]
    assert len(rows) == (4 if kernel.NATIVE else 2) and all(row[-1] == "yes" for row in rows), done.stdout
    assert f"native kernel: {kernel.native_status()}" in done.stdout


def _native_table(partitions: int) -> Any:
    table = _native(partitions)
    assert hasattr(table, "take_columns")
    return table


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(data=TEXT, partitions=PARTITIONS, frame_keys=st.integers(1, 40), frame_bytes=st.integers(1, 2000))
def test_fuzz_take_columns_packs_exactly_what_take_holds(data: bytes, partitions: int, frame_keys: int,
                                                         frame_bytes: int) -> None:
    table = _native_table(partitions)
    table.feed(data)
    frames = table.take_columns(frame_keys, frame_bytes)
    assert len(table) == 0 and table.take() == [{} for _ in range(partitions)]
    expected = split_by_partition(oracle(data), partitions)
    assert len(frames) == partitions
    for part, want in zip(frames, expected, strict=True):
        got: dict[str, int] = {}
        for keys, ends, counts, checksum in part:
            items = unpack_columns(Columns(keys, ends, counts))  # the strict wire check: any flaw raises
            assert 1 <= len(items) <= frame_keys
            # Cut at about frame_bytes: only a frame of one key (too long for any frame) may be over it.
            assert len(keys) + 12 * len(items) + 80 <= frame_bytes or len(items) == 1
            assert checksum == sum(items.values())
            assert not got.keys() & items.keys()
            got.update(items)
        assert got == want
        assert list(got) == list(want)  # first-seen order, as take() gives


def test_take_columns_refuses_bad_sizes_and_keeps_the_table() -> None:
    table = _native_table(2)
    table.feed(b"a b a\n")
    for args in [(0, 100), (1, 0), (-1, 5)]:
        with pytest.raises(ValueError, match="at least 1"):
            table.take_columns(*args)
    with pytest.raises(TypeError):
        table.take_columns(1)
    assert len(table) == 2
    assert merged(table.take()) == {"a": 2, "b": 1}


def _python_only(function: Callable[..., Any]) -> Callable[..., Any]:
    """The kernel's wrapper with the native helpers hidden: its pure-Python path."""

    def run(*args: Any) -> Any:
        saved = kernel._native_add, kernel._native_move
        kernel._native_add = kernel._native_move = None
        try:
            return function(*args)
        finally:
            kernel._native_add, kernel._native_move = saved

    return run


def _native_only(function: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        if not kernel.NATIVE:
            pytest.skip(f"the native kernel is not built ({kernel.native_status()})")
        return function(*args)

    return run


MERGERS = pytest.mark.parametrize("wrap", [_native_only, _python_only], ids=["native", "python"])
COUNTS = st.dictionaries(st.text(max_size=4), st.integers(1, 2**70), max_size=40)


@MERGERS
@settings(max_examples=150, deadline=None)
@given(into=COUNTS, parts=st.lists(COUNTS, max_size=4), limits=st.lists(st.integers(1, 15), min_size=1, max_size=8))
def test_add_and_move_counts_sum_exactly_and_never_lose_or_double_a_count(
    wrap: Callable[..., Any], into: dict[str, int], parts: list[dict[str, int]], limits: list[int],
) -> None:
    expected = Counter(into)
    for part in parts:
        expected.update(part)
    totals = dict(into)
    for part in parts[:1]:
        wrap(kernel.add_counts)(totals, dict(part))
    pending = [dict(part) for part in parts[1:]]
    step = 0
    while pending:
        items = pending[-1]
        before = sum(totals.values()) + sum(items.values())
        moved = wrap(kernel.move_counts)(totals, items, limits[step % len(limits)])
        step += 1
        assert moved == min(limits[(step - 1) % len(limits)], moved + len(items))
        assert sum(totals.values()) + sum(items.values()) == before  # each count exactly once, between slices
        if not items:
            pending.pop()
    assert totals == dict(expected)


def test_native_merges_refuse_what_is_not_two_dicts() -> None:
    if not kernel.NATIVE:
        pytest.skip("the native kernel is not built")
    from actors.jobs.wordcount import _wordcount

    same: dict[str, int] = {"a": 1}
    args: tuple[Any, ...]
    for args in [(same, same), ({}, [("a", 1)]), ([], {}), ({},)]:
        with pytest.raises(TypeError):
            _wordcount.add_counts(*args)  # type: ignore[arg-type]
    for args in [(same, same, 1), ({}, {}, "1"), ({}, {}), (Counter(), {}, 1)]:
        with pytest.raises(TypeError):
            _wordcount.move_counts(*args)  # type: ignore[arg-type]
    assert _wordcount.move_counts({}, {"a": 1}, 0) == 0 and _wordcount.move_counts({}, {"a": 1}, -5) == 0


def _outcome(unpack: Callable[[Columns], dict[str, int]], columns: Columns) -> Any:
    try:
        return unpack(columns)
    except WireError:
        return WireError


COLUMN_KEYS = st.lists(st.one_of(st.sampled_from(SPECIAL_BYTES), st.binary(max_size=6), st.sampled_from([b"a", b""])),
                       max_size=8)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(keys=COLUMN_KEYS, counts=st.lists(st.integers(0, 2**64 - 1), max_size=9), extra=st.binary(max_size=3),
       shuffle=st.randoms(use_true_random=False))
def test_fuzz_native_unpack_agrees_with_the_python_unpack(keys: list[bytes], counts: list[int], extra: bytes,
                                                          shuffle: Any) -> None:
    # Near-valid columns (maybe decreasing, short, long, invalid UTF-8, zero counts, duplicates): the native
    # unpacking must accept exactly what the Python one accepts, and give the same dict; and the native check the
    # reducer stages a word count's frames with (checked, never decoded) must refuse exactly those too.
    if not kernel.NATIVE:
        pytest.skip(f"the native kernel is not built ({kernel.native_status()})")
    ends, at = [], 0
    for key in keys:
        at += len(key)
        ends.append(at)
    if shuffle.random() < 0.3:
        shuffle.shuffle(ends)
    if shuffle.random() < 0.6:  # mostly as many counts as keys, so many cases are valid
        counts = (counts + [1] * len(keys))[: len(keys)]
    blob = b"".join(keys) + (extra if shuffle.random() < 0.3 else b"")
    columns = Columns(blob, b"".join(e.to_bytes(4, "little") for e in ends),
                      b"".join(c.to_bytes(8, "little") for c in counts))
    assert _outcome(kernel.unpack_columns, columns) == _outcome(unpack_columns, columns)
    assert _checked(columns) == _unpacked(columns)


def _checked(columns: Columns) -> Any:
    """What the reducer's native staging makes of a frame: (its keys, the sum of its counts), or WireError."""
    try:
        return len(columns), kernel.check_columns(columns)
    except WireError:
        return WireError


def _unpacked(columns: Columns) -> Any:
    """The same, through the Python unpacking."""
    try:
        items = unpack_columns(columns)
    except WireError:
        return WireError
    return len(items), sum(items.values())


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(frames=st.lists(st.dictionaries(st.sampled_from(["a", "b", "é", "日本", "😀", "", "x" * 20, "x" * 21]),
                                       st.integers(1, 2**40), min_size=1), max_size=6),
       text=st.lists(st.sampled_from([b"a b\n", "é x\n".encode(), b"\xff a\n"]), max_size=4))
def test_fuzz_native_add_columns_counts_like_merging_the_dicts(frames: list[dict[str, int]], text: list[bytes]) -> None:
    # The reducer's count table takes checked frames (and the table is the mapper's: words fed in text add up too).
    if not kernel.NATIVE or NativeCountTable is None:
        pytest.skip(f"the native kernel is not built ({kernel.native_status()})")
    table = NativeCountTable(1)
    expected: Counter[str] = Counter()
    for frame in frames:
        columns = pack_columns(frame)
        kernel.check_columns(columns)
        table.add_columns(columns.keys, columns.ends, columns.counts)
        expected.update(frame)
    for line in text:
        table.feed(line)
        expected.update(line.decode("utf-8", "replace").split())
    assert table.take() == [dict(expected)]


def test_native_add_columns_refuses_offsets_outside_the_frame() -> None:
    if NativeCountTable is None:
        pytest.skip(f"the native kernel is not built ({kernel.native_status()})")
    table = NativeCountTable(1)
    one = (1).to_bytes(8, "little")
    for keys, ends, counts in [(b"ab", (5).to_bytes(4, "little"), one), (b"ab", (1).to_bytes(4, "little"), one),
                               (b"ab", (2).to_bytes(4, "little") + (1).to_bytes(4, "little"), one * 2),
                               (b"a", b"", b""), (b"a", (1).to_bytes(4, "little"), b"\x01")]:
        with pytest.raises(ValueError):
            table.add_columns(keys, ends, counts)
    assert len(table) == 0
    with pytest.raises(TypeError):
        table.add_columns(b"a", (1).to_bytes(4, "little"))  # type: ignore[call-arg]


@st.composite
def hostile_columns(draw: st.DrawFn) -> Columns:
    """A COLUMNS frame as a lying peer may send it: any key bytes, and offsets that may point anywhere a uint32
    reaches (past the blob in the middle while the last is right, decreasing, at the very top), with any counts."""
    blob = draw(st.one_of(st.binary(max_size=24), st.lists(st.sampled_from(SPECIAL_BYTES), max_size=6).map(b"".join)))
    size = len(blob)
    offset = st.one_of(st.integers(0, size), st.integers(size + 1, size + 64),
                       st.sampled_from([2**31 - 1, 2**31, 2**32 - 8, 2**32 - 1]))
    ends: list[int] = draw(st.lists(offset, max_size=8))
    last_right: bool = draw(st.booleans())
    if ends and last_right:
        ends[-1] = size  # the one offset the old check looked at: right, so only the middle ones lie
    counts = draw(st.lists(st.integers(0, 2**64 - 1), min_size=len(ends), max_size=len(ends)))
    if draw(st.integers(0, 9)) == 0:
        counts = counts[:-1]
    return Columns(blob, b"".join(e.to_bytes(4, "little") for e in ends),
                   b"".join(c.to_bytes(8, "little") for c in counts))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(columns=hostile_columns())
def test_fuzz_native_entry_points_refuse_hostile_offsets(columns: Columns) -> None:
    # Every native function that reads a peer's offsets (unpack, check, add to the table, the master's merge)
    # refuses what the Python unpacking refuses, before reading a byte it names: under scripts/asan_kernel.sh an
    # offset read past the blob aborts the run.
    if not kernel.NATIVE or NativeCountTable is None or encode._native_merge is None:
        if os.environ.get("MR_REQUIRE_NATIVE_KERNEL") == "1":
            pytest.fail("MR_REQUIRE_NATIVE_KERNEL=1 but the native kernel or result encoder is not built")
        pytest.skip(f"the native kernel is not built ({kernel.native_status()})")
    expected = _outcome(unpack_columns, columns)
    assert _outcome(kernel.unpack_columns, columns) == expected
    assert _checked(columns) == _unpacked(columns)
    table = NativeCountTable(1)
    if expected is WireError:
        if columns != Columns(b"", b"", b""):  # no keys at all: an empty run, which the merge takes as {}
            with pytest.raises(ValueError):
                encode._native_merge([(columns.keys, columns.ends, columns.counts)])
        if not _offsets_valid(columns):
            with pytest.raises(ValueError):
                table.add_columns(columns.keys, columns.ends, columns.counts)
        assert len(table) == 0
        return
    try:
        merged = encode._native_merge([(columns.keys, columns.ends, columns.counts)])
    except ValueError:
        pass  # a valid frame not in top order: the master then takes the general path
    else:
        assert merged == counts_json_in_python(expected)
    try:
        table.add_columns(columns.keys, columns.ends, columns.counts)
    except OverflowError:  # a table holds counts to 2**63 - 1 (a reducer then folds into unbounded ints)
        assert max(expected.values()) > 2**63 - 1
        assert len(table) == 0
    else:
        assert table.take() == [expected]


def _offsets_valid(columns: Columns) -> bool:
    """Whether a frame's offsets alone are sound (what add_columns checks again: all reading it safely needs)."""
    n, rest = divmod(len(columns.ends), 4)
    if rest or n == 0 or len(columns.counts) != 8 * n:
        return False
    ends = [int.from_bytes(columns.ends[i:i + 4], "little") for i in range(0, len(columns.ends), 4)]
    return ends == sorted(ends) and ends[-1] == len(columns.keys)


def test_native_unpack_refuses_a_middle_offset_past_the_blob() -> None:
    # The last offset right, a middle one past the key bytes: refused before anything is read (it once read there).
    if not kernel.NATIVE:
        pytest.skip(f"the native kernel is not built ({kernel.native_status()})")
    from actors.jobs.wordcount import _wordcount

    one = (1).to_bytes(8, "little")
    for middle in (3, 4096, 2**31, 2**32 - 1):
        ends = middle.to_bytes(4, "little") + (2).to_bytes(4, "little")
        with pytest.raises(ValueError, match=f"key 0 ends at {middle}, past the end of 2 key bytes"):
            _wordcount.unpack_columns(b"ab", ends, one * 2)


def test_native_check_sums_counts_past_64_bits() -> None:
    if not kernel.NATIVE:
        pytest.skip(f"the native kernel is not built ({kernel.native_status()})")
    items = {f"k{i}": 2**63 - 1 for i in range(5)}
    assert kernel.check_columns(pack_columns(items)) == 5 * (2**63 - 1)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(frames=st.lists(st.dictionaries(st.sampled_from(["a", "b", "é", "日本", "😀", "", "abcdefgh", "abcdefghi",
                                                         "abcdefgh\x00", "abcdefg"]),
                                       st.integers(1, 6), min_size=1), max_size=6),
       text=st.lists(st.sampled_from([b"a b\n", "é x\n".encode(), b"\xff a\n", b"abcdefgh abcdefg\n"]), max_size=4))
def test_fuzz_native_ordered_columns_is_the_table_in_top_order(frames: list[dict[str, int]], text: list[bytes]) -> None:
    # What a reducer reports of a word count: every count, largest first and ties by key (code point order), with
    # the table left as it was, so a repeated finalize answers the same.
    if NativeCountTable is None:
        pytest.skip(f"the native kernel is not built ({kernel.native_status()})")
    table = NativeCountTable(1)
    expected: Counter[str] = Counter()
    for frame in frames:
        columns = pack_columns(frame)
        table.add_columns(columns.keys, columns.ends, columns.counts)
        expected.update(frame)
    for line in text:
        table.feed(line)
        expected.update(line.decode("utf-8", "replace").split())
    run = Columns(*table.ordered_columns())
    assert Columns(*table.ordered_columns()) == run
    if expected:
        in_order = sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))
        assert list(unpack_columns(run).items()) == in_order
    else:
        assert run == Columns(b"", b"", b"")
    assert table.take() == [dict(expected)]


def test_native_add_columns_is_all_or_nothing_when_a_count_would_pass_63_bits() -> None:
    if NativeCountTable is None:
        pytest.skip(f"the native kernel is not built ({kernel.native_status()})")
    table = NativeCountTable(1)
    first = pack_columns({"b": 2**63 - 1})
    table.add_columns(first.keys, first.ends, first.counts)
    for items in ({"a": 5, "b": 1}, {"new": 2**63}):
        frame = pack_columns(items)
        assert kernel.check_columns(frame) == sum(items.values())  # a valid frame, as unpacking says
        with pytest.raises(OverflowError):
            table.add_columns(frame.keys, frame.ends, frame.counts)
    assert table.take() == [{"b": 2**63 - 1}]  # nothing of either frame was added


@IMPLEMENTATIONS
def test_both_tables_have_one_interface_and_give_the_same_frames_runs_and_refusals(make: Factory) -> None:
    table = make(3)
    table.feed(b"b a a c\nd b\n")
    frames = table.take_columns(2, 1 << 20)
    assert len(frames) == 3 and len(table) == 0
    merged: dict[str, int] = {}
    for part, cut in enumerate(frames):
        for keys, ends, counts, checksum in cut:
            items = unpack_columns(Columns(keys, ends, counts))
            assert len(items) <= 2 and sum(items.values()) == checksum
            assert {partition_of(key, 3) for key in items} == {part}
            merged.update(items)
    assert merged == {"a": 2, "b": 2, "c": 1, "d": 1}
    one = make(1)
    for frame in (pack_columns(merged), pack_columns({"a": 1})):
        one.add_columns(frame.keys, frame.ends, frame.counts)
    assert Columns(*one.ordered_columns()) == pack_columns({"a": 3, "b": 2, "c": 1, "d": 1})
    past = pack_columns({"z": 1, "a": 2**63 - 3})
    with pytest.raises(OverflowError):
        one.add_columns(past.keys, past.ends, past.counts)  # all or nothing: "z" is not added either
    assert one.take() == [{"a": 3, "b": 2, "c": 1, "d": 1}]


def test_check_columns_without_the_extension_checks_what_unpacking_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel, "_native_check", None)
    assert kernel.check_columns(pack_columns({"a": 2, "é": 3})) == 5
    with pytest.raises(WireError, match="UTF-8"):
        kernel.check_columns(Columns(b"a\xff", (1).to_bytes(4, "little") + (2).to_bytes(4, "little"),
                                     (1).to_bytes(8, "little") * 2))


def test_fallback_is_used_when_the_extension_is_absent() -> None:
    """Run under ``-p tests.without_native`` (tests/test_engines.py does): every native path is off."""
    if "actors.jobs.wordcount._wordcount" not in sys.modules or sys.modules["actors.jobs.wordcount._wordcount"]:
        pytest.skip("only meaningful with the extension made absent (-p tests.without_native)")
    from actors.jobs.wordcount import encode

    assert not kernel.NATIVE and not encode.NATIVE and kernel.CountTable is PythonCountTable
    assert kernel.native_status().startswith("no (")


# ---------------------------------------------------------------------------------------------------------------
# fold_sum: an SDK job's declared SUM (actors.jobs.partials)


def python_fold_sum(into: dict[Any, Any], pairs: Any) -> None:
    get = into.get
    for key, value in pairs:
        into[key] = get(key, 0) + value


FOLD_KEYS = st.one_of(st.sampled_from(["a", "b", "日本", 1.0, True]), st.integers(-2, 2),
                      st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 1)))
FOLD_INTS = st.one_of(st.integers(-3, 3), st.sampled_from([2**63 - 1, -(2**62), 2**64, 0]))
PAIR_ITEMS = st.one_of(
    st.tuples(FOLD_KEYS, st.one_of(FOLD_INTS, st.floats(allow_nan=False), st.booleans(), st.just(-0.0),
                                   st.just("s"))),
    st.lists(st.sampled_from(["a", 1]), max_size=3),  # a list unpacks like a tuple, or fails to by its length
    st.sampled_from(["ab", 5, ([], 1)]))  # a 2-character str unpacks; an int does not; a list key is unhashable


@pytest.mark.skipif(not kernel.NATIVE, reason="the native kernel is not built")
@settings(max_examples=200, deadline=None)
@given(items=st.lists(PAIR_ITEMS, max_size=12), start=st.dictionaries(FOLD_KEYS, FOLD_INTS, max_size=3))
def test_the_native_fold_sum_does_what_the_python_loop_does(items: list[Any], start: dict[Any, Any]) -> None:
    native, python = dict(start), dict(start)
    outcomes: list[type[Exception] | None] = []
    for fold, into in ((kernel.fold_sum, native), (python_fold_sum, python)):
        try:
            fold(into, iter(items))
            outcomes.append(None)
        except Exception as error:  # the same type (the unpacking messages change between Python versions)
            outcomes.append(type(error))
    assert outcomes[0] == outcomes[1]
    assert native == python and [type(v) for v in native.values()] == [type(v) for v in python.values()]
    assert [repr(v) for v in native.values()] == [repr(v) for v in python.values()]  # -0.0 and 0.0 too
