"""The spool: combined, partitioned DATA frames that decode back to exactly the mapper's output, replayable."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core import wire
from actors.core.config import Settings
from actors.core.errors import KeyTooLarge
from actors.core.messages import Columns, Commit, Data, KeyPart, from_wire
from actors.core.splits import Chunker
from actors.jobs import get_job
from actors.jobs.wordcount.columns import unpack_columns
from actors.mapper.spool import Spool
from actors.reducer.stage import Stage

from .framing import FrameDecoder
from .support import staged_items
from .test_partition import partition_of

CAP = 1 << 20


@pytest.fixture
def spools() -> Iterator[list[Spool]]:
    made: list[Spool] = []
    yield made
    for spool in made:
        spool.close()


def make(spools: list[Spool], job: str = "wordcount", partitions: int = 3, key_budget: int = 1000,
         frame_cap: int = CAP, **kwargs: Any) -> Spool:
    spool = Spool(get_job(job), partitions, key_budget, frame_cap, **kwargs)
    spools.append(spool)
    return spool


def frames_of(spool: Spool, partition: int) -> list[dict[str, Any]]:
    """Decode a partition's bytes as a reducer would: frame decoder, then strict message parsing."""
    decoder = FrameDecoder(spool.frame_cap)
    items: list[dict[str, Any]] = []
    parts: list[str] = []  # a long key's pieces: KEYPART frames, then one DATA item ending the key
    for block in spool.blocks(partition):
        for raw in decoder.feed(block):
            message = from_wire(raw, Data, Columns, KeyPart)
            if isinstance(message, KeyPart):
                parts.append(message.text)
                continue
            # Integer-valued jobs (word count) ship COLUMNS frames, the others CBOR maps; a long key ends in DATA.
            assert isinstance(message, Columns) == (spool.packing is not None and not parts)
            decoded = message.items if isinstance(message, Data) else unpack_columns(message)
            if parts:
                ((last, value),) = decoded.items()
                items.append({"".join(parts) + last: value})
                parts.clear()
            else:
                items.append(decoded)
    decoder.close()
    assert not parts
    return items


def expected_by_partition(total: Counter[str], partitions: int) -> list[dict[str, int]]:
    parts: list[dict[str, int]] = [{} for _ in range(partitions)]
    for key, count in total.items():
        parts[partition_of(key, partitions)][key] = count
    return parts


def check_decodes_to(spool: Spool, total: Counter[str]) -> None:
    expected = expected_by_partition(total, spool.partitions)
    for partition in range(spool.partitions):
        frames = frames_of(spool, partition)
        merged: Counter[str] = Counter()
        for items in frames:
            assert items, "empty DATA frame"
            assert all(partition_of(k, spool.partitions) == partition for k in items)
            merged.update(items)
        assert merged == expected[partition]
        # COMMIT totals computed here from what was decoded.
        assert spool.commit(partition) == Commit(
            frames=len(frames), keys=sum(len(f) for f in frames), checksum=sum(sum(f.values()) for f in frames)
        )


WORDS = st.text(alphabet="abcdeé日", min_size=1, max_size=6)  # tokens as str.split() makes them
CHUNKS = st.lists(st.lists(WORDS, max_size=30), max_size=8)


@given(chunks=CHUNKS, partitions=st.integers(1, 4), key_budget=st.integers(1, 20))
@settings(max_examples=80, deadline=None)
def test_frames_decode_to_the_combined_map_output(chunks: list[list[str]], partitions: int, key_budget: int) -> None:
    spool = Spool(get_job("wordcount"), partitions, key_budget, CAP)
    try:
        total: Counter[str] = Counter()
        for words in chunks:
            spool.map(" ".join(words), "in.txt")
            total.update(words)
        spool.flush()
        check_decodes_to(spool, total)
        assert spool.total_keys == sum(spool.commit(p).keys for p in range(partitions))
    finally:
        spool.close()


def test_flush_at_key_budget(spools: list[Spool]) -> None:
    spool = make(spools, partitions=2, key_budget=5)
    spool.map("a b c d", "in.txt")
    assert sum(spool.frames) == 0  # 4 keys: under the budget, nothing written yet
    spool.map("a a b b", "in.txt")  # combined: still 4 distinct keys
    assert sum(spool.frames) == 0
    spool.map("e", "in.txt")  # 5 distinct keys: flushed
    assert sum(spool.frames) >= 1
    assert sum(spool.keys) == 5
    spool.map("a " * 10, "in.txt")
    assert sum(spool.keys) == 5  # a new accumulator, under budget again
    spool.flush()
    check_decodes_to(spool, Counter({"a": 13, "b": 3, "c": 1, "d": 1, "e": 1}))


def test_flush_of_nothing_writes_nothing(spools: list[Spool]) -> None:
    spool = make(spools)
    spool.flush()
    spool.flush()
    for partition in range(spool.partitions):
        assert spool.commit(partition) == Commit(frames=0, keys=0, checksum=0)
        assert list(spool.blocks(partition)) == []


def test_oversized_frame_is_split_in_halves(spools: list[Spool]) -> None:
    counts = {f"key-{i:04d}-" + "x" * 40: i + 1 for i in range(200)}
    one_frame = len(wire.frame({"v": 1, "type": "data", "items": counts}, 1 << 30))
    cap = one_frame // 5  # about five frames' worth
    spool = make(spools, partitions=1, frame_cap=cap)
    spool.map(" ".join(k for k, n in counts.items() for _ in range(n)), "in.txt")
    spool.flush()
    frames = frames_of(spool, 0)
    assert 5 <= len(frames) <= 16
    assert Counter(dict(counts)) == sum((Counter(f) for f in frames), Counter())
    # Every frame is within the cap.
    data = b"".join(spool.blocks(0))
    pos = 0
    while pos < len(data):
        length = wire.frame_length(data[pos : pos + wire.PREFIX], cap)
        pos += wire.PREFIX + length
    assert pos == len(data)
    assert spool.commit(0).frames == len(frames)
    assert spool.sizes[0] == len(data)


def test_a_key_longer_than_a_frame_travels_in_pieces(spools: list[Spool]) -> None:
    word = "k" * 150 + "é日" * 40 + "\U0001f600" * 30  # multi-byte characters straddle the piece boundaries
    spool = make(spools, partitions=1, frame_cap=128, max_key=4096)
    spool.map(f"{word} a {word} b {word}", "in.txt")
    spool.flush()
    frames = frames_of(spool, 0)
    assert sum((Counter(f) for f in frames), Counter()) == Counter({word: 3, "a": 1, "b": 1})
    data = b"".join(spool.blocks(0))
    pos, count = 0, 0
    while pos < len(data):
        pos += wire.PREFIX + wire.frame_length(data[pos : pos + wire.PREFIX], 128)  # each within the cap
        count += 1
    assert count == spool.commit(0).frames > len(frames)
    assert spool.commit(0) == Commit(frames=count, keys=3, checksum=5)


def test_a_key_longer_than_max_key_fails_naming_it(spools: list[Spool]) -> None:
    spool = make(spools, partitions=1, frame_cap=1024, max_key=2000)
    spool.map("k" * 2001, "in.txt")
    with pytest.raises(KeyTooLarge, match="MR_MAX_KEY"):
        spool.flush()
    fits = make(spools, partitions=1, frame_cap=1024, max_key=2000)
    fits.map("k" * 2000, "in.txt")
    fits.flush()
    assert frames_of(fits, 0) == [{"k" * 2000: 1}]
    assert fits.commit(0).frames > 1  # it did travel in pieces


def test_frames_hold_at_most_frame_keys_keys(spools: list[Spool]) -> None:
    words = [f"w{i}" for i in range(1000)]
    spool = make(spools, partitions=1, key_budget=10_000, frame_keys=64)
    spool.map(" ".join(words), "in.txt")
    spool.flush()
    frames = frames_of(spool, 0)
    assert max(map(len, frames)) == 64
    assert len(frames) == -(-1000 // 64)
    assert sum((Counter(f) for f in frames), Counter()) == Counter(words)


def test_blocks_replay_identically(spools: list[Spool]) -> None:
    rng = random.Random(7)
    # Enough data to exceed one read block and, with a small memory limit, to spill to disk.
    words = [f"w{rng.randrange(50_000)}" for _ in range(120_000)]
    spool = make(spools, partitions=3, key_budget=5000, memory_limit=64 * 1024)
    for start in range(0, len(words), 10_000):
        spool.map(" ".join(words[start : start + 10_000]), "in.txt")
    spool.flush()
    for partition in range(3):
        first = list(spool.blocks(partition))
        second = list(spool.blocks(partition))
        assert first == second
        assert sum(map(len, first)) == spool.sizes[partition]
        # A retry that stopped half way through still replays from the start.
        partial = spool.blocks(partition)
        next(partial)
        assert b"".join(spool.blocks(partition)) == b"".join(first)
    check_decodes_to(spool, Counter(words))


def test_inverted_index_spool(spools: list[Spool]) -> None:
    job = get_job("inverted_index")
    spool = make(spools, job="inverted_index", partitions=2, key_budget=3)
    spool.map("a b c", "one.txt")
    spool.map("b d", "two.txt")
    spool.map("a", "three.txt")
    spool.flush()
    merged: dict[str, Any] = {}
    for partition in range(2):
        for items in frames_of(spool, partition):
            job.combine(merged, items)
    # Key budget 3: "a b c" flushed on its own, then "b d" and "a" combined.
    assert merged == {"a": ["one.txt", "three.txt"], "b": ["one.txt", "two.txt"], "c": ["one.txt"], "d": ["two.txt"]}


@pytest.mark.parametrize("key_budget", [1, 3, 1000])
def test_map_counts_chunks_straight_into_the_partial(spools: list[Spool], key_budget: int) -> None:
    chunks = ["a b a", "b c\nd a", "", "é é a"]
    spool = make(spools, partitions=2, key_budget=key_budget)
    for chunk in chunks:
        spool.map(chunk, "in.txt")
    spool.flush()
    check_decodes_to(spool, Counter(" ".join(chunks).split()))


def test_spool_defaults_are_the_settings_defaults() -> None:
    spool = Spool(get_job("wordcount"), 1, 10, Settings().frame_cap)
    try:
        assert (spool.frame_keys, spool.max_key) == (Settings().frame_keys, Settings().max_key)
    finally:
        spool.close()


LONG_TEXT = st.lists(
    st.one_of(
        st.sampled_from([" ", "\n", "\t", "\u3000", "\u00a0", "a", "é", "日", "\U0001f600"]),
        st.tuples(st.sampled_from(["x", "é", "日本", "\U0001f600"]), st.integers(1, 400)).map(lambda t: t[0] * t[1]),
    ),
    max_size=30,
).map("".join)


@given(text=LONG_TEXT, chunk_size=st.integers(1, 64), frame_cap=st.integers(60, 300), frame_keys=st.integers(1, 5))
@settings(max_examples=150, deadline=None)
def test_long_words_survive_mapper_and_reducer_exactly(text: str, chunk_size: int, frame_cap: int,
                                                      frame_keys: int) -> None:
    # The whole path a long word takes: chunked on whitespace, counted, framed (in pieces when longer than a
    # frame), then staged by a reducer that joins the pieces.
    job = get_job("wordcount")
    data = text.encode()
    spool = Spool(job, 2, 3, frame_cap, frame_keys=frame_keys, max_key=1 << 20)
    try:
        chunker = Chunker(chunk_size, 1 << 20)
        for start in range(0, len(data), 7):
            for piece in chunker.feed(data[start : start + 7]):
                spool.map(piece.decode("utf-8", "replace"), "in.txt")
        for piece in chunker.finish():
            spool.map(piece.decode("utf-8", "replace"), "in.txt")
        spool.flush()
        merged: Counter[str] = Counter()
        for partition in range(2):
            stage = Stage(job, 1 << 20)
            decoder = FrameDecoder(frame_cap)
            for block in spool.blocks(partition):
                for raw in decoder.feed(block):
                    message = from_wire(raw, Data, Columns, KeyPart)
                    if isinstance(message, KeyPart):
                        stage.add_part(message)
                    else:
                        assert len(message.items if isinstance(message, Data) else message) <= frame_keys
                        stage.add(message)
            stage.verify(spool.commit(partition))
            merged.update(staged_items(stage))
    finally:
        spool.close()
    assert merged == Counter(text.split())


