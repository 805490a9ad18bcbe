"""mapper_batch and declared folds (SUM, MIN, MAX): any chunking, any partitioning and any merge order give the
oracle's result exactly; keys and values are checked once per distinct key, and a bad one still fails the job."""

from __future__ import annotations

import itertools
import random
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from actors.core import wire
from actors.core.errors import BadRequest
from actors.core.partition import INT_MAX, Key, canonical_key, split_by_partition
from actors.jobs import load_catalog, partials
from actors.jobs.adapter import SdkJob
from actors.jobs.examples import BatchWordCount, LineWordCount
from actors.sdk import Fold, JobCodeError, MapReduceJob, check_key
from actors.sequential import run_job, run_sequential

from .conftest import ClusterFactory

# ---------------------------------------------------------------------------------------------------------------
# jobs whose line "i" yields the pairs PAIRS[i]: any key and value a test draws, with no text encoding between


class TableJob(MapReduceJob):
    name = "table"
    pairs: ClassVar[list[list[tuple[Any, Any]]]] = []

    def mapper(self, line: str) -> Iterator[tuple[Any, Any]]:
        yield from self.pairs[int(line)]

    def reducer(self, key: Key, values: list[Any]) -> Any:
        return sorted(values, key=repr)  # the values as a multiset: any order they come in


def table_job(fold: Fold | None, batch: bool, mapping: bool, reduce_fold: bool) -> type[MapReduceJob]:
    """A job over TableJob's pairs: per line or per batch (a mapping folded for the batch, or pairs), with ``fold``
    as its combiner and, if ``reduce_fold``, as its reducer too."""
    attributes: dict[str, Any] = {}
    if fold is not None:
        attributes["combiner"] = fold
        if reduce_fold:
            attributes["reducer"] = fold
        else:
            attributes["reducer"] = lambda self, key, values: ["reduced", values]
    if batch:
        def mapper_batch(self: TableJob, lines: list[str]) -> Any:
            pairs = [pair for line in lines for pair in self.pairs[int(line)]]
            if not mapping:
                return iter(pairs)
            assert fold is not None
            groups: dict[Any, list[Any]] = {}
            for key, value in pairs:
                groups.setdefault(key, []).append(value)
            return {key: fold(key, values) for key, values in groups.items()}
        attributes["mapper_batch"] = mapper_batch
    return type("Drawn", (TableJob,), attributes)


def engine_run(cls: type[MapReduceJob], lines: int, cuts: list[int], partitions: int, seed: int) -> dict[str, Any]:
    """What a cluster computes: chunks mapped into per-split accumulators, partitioned, sent through CBOR, checked,
    merged at the reducers in a shuffled order, then finished; keys as the master shows them."""
    job = SdkJob(cls())
    bounds = [0, *sorted({min(cut, lines) for cut in cuts}), lines]
    received: list[list[dict[str, Any]]] = [[] for _ in range(partitions)]
    for start, end in itertools.pairwise(bounds):
        if start >= end:
            continue
        acc = job.partial()
        middle = (start + end) // 2  # two chunks per split: map_into folds the second into the first
        for a, b in ((start, middle), (middle, end)):
            if a < b:
                job.map_into(acc, "".join(f"{i}\n" for i in range(a, b)), "in")
        for partition, items in enumerate(split_by_partition(acc, partitions)):
            if items:
                decoded = wire.decode(wire.encode(items), 1 << 30)
                job.check(decoded)
                assert job.checksum(decoded) == job.checksum(items)
                received[partition].append(decoded)
    result: dict[str, Any] = {}
    rng = random.Random(seed)
    for parts in received:
        rng.shuffle(parts)
        totals: dict[str, Any] = {}
        for part in parts:
            job.combine(totals, part)
        result.update(job.finish(totals))
    return result


def oracle(cls: type[MapReduceJob], lines: int) -> dict[str, Any]:
    out = run_job(cls(), [("in", "".join(f"{i}\n" for i in range(lines)))])
    return {canonical_key(key): value for key, value in out.items()}  # a result is keyed by canonical keys


def fold_outcome(run: Any) -> tuple[str, Any]:
    """A result, or that it failed: the engine with a job error, the oracle with the error the job's code or the
    value check raised."""
    try:
        return "ok", run()
    except (JobCodeError, BadRequest, TypeError):
        return "error", None


KEYS = st.one_of(st.text(max_size=4), st.integers(-(2**63), INT_MAX), st.sampled_from(["\x00nul", "", "the"]),
                 st.tuples(st.text(max_size=2), st.integers(-3, 3)),
                 st.tuples(st.tuples(st.integers(0, 2)), st.text(max_size=1)))
SMALL_KEYS = st.one_of(st.sampled_from(["a", "b", "日本", "\x00x"]), st.integers(-2, 2),
                       st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 1)))
INTS = st.one_of(st.integers(-3, 3), st.sampled_from([2**63 - 1, -(2**62), 2**62, 0]))


def lines_of_pairs(keys: st.SearchStrategy[Any], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(st.lists(st.tuples(keys, values), max_size=5), min_size=1, max_size=25)


def bounded_sums(pairs: list[list[tuple[Any, Any]]]) -> bool:
    """Every partial sum of every key stays a 64-bit value (the SDK's contract for a summed value)."""
    magnitude: dict[Any, int] = {}
    for line in pairs:
        for key, value in line:
            magnitude[key] = magnitude.get(key, 0) + abs(value)
    return all(total < 2**63 for total in magnitude.values())


FOLDS = [MapReduceJob.SUM, MapReduceJob.MIN, MapReduceJob.MAX]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs=lines_of_pairs(st.one_of(KEYS, SMALL_KEYS), INTS), cuts=st.lists(st.integers(0, 25), max_size=4),
       partitions=st.integers(1, 3), style=st.sampled_from(["line", "batch pairs", "batch mapping"]),
       reduce_fold=st.booleans(), fold=st.sampled_from(FOLDS), seed=st.integers(0, 9))
def test_declared_folds_over_ints_equal_the_oracle(pairs: list[list[tuple[Any, Any]]], cuts: list[int],
                                                   partitions: int, style: str, reduce_fold: bool, fold: Fold,
                                                   seed: int) -> None:
    assume(bounded_sums(pairs))
    TableJob.pairs = pairs
    cls = table_job(fold, style != "line", style == "batch mapping", reduce_fold)
    expected = oracle(cls, len(pairs))
    assert engine_run(cls, len(pairs), cuts, partitions, seed) == expected
    if fold is MapReduceJob.SUM and reduce_fold:
        assert all(type(value) is int for value in expected.values())  # sums of ints, 0 and negatives included


VALUES = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=3),
                   st.lists(st.integers(0, 3), max_size=2), st.tuples(st.integers(0, 3)))


@settings(max_examples=60, deadline=None)
@given(pairs=lines_of_pairs(SMALL_KEYS, VALUES), cuts=st.lists(st.integers(0, 25), max_size=4),
       partitions=st.integers(1, 3), style=st.sampled_from(["line", "batch pairs", "batch mapping"]),
       fold=st.sampled_from([MapReduceJob.MIN, MapReduceJob.MAX]), seed=st.integers(0, 9))
def test_min_and_max_of_values_that_are_not_ints_equal_the_oracle(pairs: list[list[tuple[Any, Any]]],
                                                                  cuts: list[int], partitions: int, style: str,
                                                                  fold: Fold, seed: int) -> None:
    # One type of value per key: floats, strs, lists or tuples compare among themselves (equal values of two types,
    # such as 1 and 1.0, would leave which one survives to the order values meet in).
    kinds: dict[Any, set[type]] = {}
    for line in pairs:
        for key, value in line:
            kinds.setdefault(key, set()).add(type(value))
    assume(all(len(found) == 1 for found in kinds.values()))
    TableJob.pairs = pairs
    cls = table_job(fold, style != "line", style == "batch mapping", True)
    assert engine_run(cls, len(pairs), cuts, partitions, seed) == oracle(cls, len(pairs))


@settings(max_examples=40, deadline=None)
@given(pairs=lines_of_pairs(SMALL_KEYS, st.one_of(INTS, st.text(max_size=2), st.none())),
       cuts=st.lists(st.integers(0, 25), max_size=4), partitions=st.integers(1, 3), seed=st.integers(0, 9))
def test_a_general_job_with_mapper_batch_equals_the_oracle(pairs: list[list[tuple[Any, Any]]], cuts: list[int],
                                                           partitions: int, seed: int) -> None:
    TableJob.pairs = pairs
    cls = table_job(None, batch=True, mapping=False, reduce_fold=False)
    assert engine_run(cls, len(pairs), cuts, partitions, seed) == oracle(cls, len(pairs))


@pytest.mark.parametrize("fold", FOLDS)
def test_a_fold_job_fails_where_the_oracle_fails(fold: Fold) -> None:
    """A sum leaving 64 bits, or values that do not add or compare: a job error, in the oracle as in the engine."""
    cases: list[list[list[tuple[Any, Any]]]] = [[[("k", 2**63)], [("k", 2**63)]], [[("k", "a")], [("k", 1)]],
                                                [[("k", [1])], [("k", "x")]]]
    for pairs in cases:
        TableJob.pairs = pairs
        cls = table_job(fold, batch=False, mapping=False, reduce_fold=True)
        engine = fold_outcome(lambda cls=cls: engine_run(cls, 2, [], 1, 0))
        expected = fold_outcome(lambda cls=cls: oracle(cls, 2))
        assert engine == expected


# ---------------------------------------------------------------------------------------------------------------
# keys and values checked once per distinct key, and still refused by name


@pytest.mark.parametrize(("bad", "message"), [
    (1.5, "a job key must be a str, an int or a tuple of them, not a float: 1.5"),
    (("a", 2.5), "not a float"),
    ("a\ud800", "a key 'a\\ud800' has a lone surrogate, which has no UTF-8 form"),
    (2**64, "integer key 18446744073709551616 is out of the 64-bit range"),
])
@pytest.mark.parametrize("style", ["line", "batch pairs", "batch mapping"])
@pytest.mark.parametrize("fold", [MapReduceJob.SUM, None])
def test_a_bad_key_anywhere_fails_the_job_naming_it(bad: Any, message: str, style: str, fold: Fold | None) -> None:
    good = [[("w", 1), (7, 1), (("t", 1), 1)] for _ in range(50)]
    for where in (0, 25, 49):
        TableJob.pairs = [*good[:where], [("w", 1), (bad, 1)], *good[where:]]
        cls = table_job(fold or MapReduceJob.SUM, style != "line", style == "batch mapping", True)
        if fold is None:  # a combiner of the job's own: values grouped in lists, keys checked the same way
            cls = type("Grouped", (cls,), {"combiner": lambda self, key, values: sum(values),
                                           "reducer": lambda self, key, values: sum(values)})
        mapping = "mapper_batch" if style != "line" else "mapper"
        with pytest.raises(JobCodeError, match=f"job 'table': {mapping} \\(input 'in'\\): ") as error:
            SdkJob(cls()).map("".join(f"{i}\n" for i in range(len(TableJob.pairs))), "in")
        assert message in error.value.message
        with pytest.raises(Exception, match="key"):
            oracle(cls, len(TableJob.pairs))


def test_each_distinct_key_is_checked_once_per_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[Any] = []

    def counting(key: Any) -> str:
        checked.append(key)
        return check_key(key)

    monkeypatch.setattr(partials, "check_key", counting)
    TableJob.pairs = [[(i % 10, 1), (("t", i % 3), 1), ("w", 1)] for i in range(1000)]
    cls = table_job(MapReduceJob.SUM, batch=False, mapping=False, reduce_fold=True)
    job = SdkJob(cls())
    acc = job.map("".join(f"{i}\n" for i in range(1000)), "in")
    assert len(checked) == 14  # 10 ints, 3 tuples, one str: not 3000 pairs
    assert acc[canonical_key(3)] == 100 and acc["w"] == 1000
    checked.clear()
    TableJob.pairs = [[("plain", 1), ("日本語", 2)] for _ in range(1000)]
    assert job.map("".join(f"{i}\n" for i in range(1000)), "in") == {"plain": 1000, "日本語": 2000}
    assert checked == []  # plain str keys: checked in one pass over the chunk's distinct keys, no call per key


def test_a_bad_combined_value_fails_the_job_naming_it() -> None:
    TableJob.pairs = [[("k", float("nan"))], [("k", 1.0)]]
    cls = table_job(MapReduceJob.MAX, batch=False, mapping=False, reduce_fold=True)
    with pytest.raises(JobCodeError, match="job 'table': mapper \\(input 'in'\\): value nan is not a finite number"):
        SdkJob(cls()).map("0\n1\n", "in")
    TableJob.pairs = [[("k", 2**63)], [("k", 2**63)]]
    cls = table_job(MapReduceJob.SUM, batch=False, mapping=False, reduce_fold=True)
    with pytest.raises(JobCodeError, match="integer value 18446744073709551616 is out of the 64-bit range"):
        SdkJob(cls()).map("0\n1\n", "in")


def test_a_reducer_refuses_folded_values_no_mapper_sends() -> None:
    from actors.core.errors import WireError

    job = SdkJob(LineWordCount())
    job.check({"a": 3, "b": -2, "c": 0.5, "\x007": 1})
    for bad in ({"a": "x"}, {"a": [1]}, {"a": 2**64}, {"\x00[1,": 1}, {"a": float("nan")}):
        with pytest.raises(WireError):
            job.check(bad)


# ---------------------------------------------------------------------------------------------------------------
# the API


def test_declared_folds_are_callable_like_the_methods_they_stand_for() -> None:
    assert LineWordCount().combiner("k", [1, 2, 3]) == 6 and LineWordCount().reducer("k", []) == 0
    assert MapReduceJob.MIN("k", [3, 1, 2]) == 1 and MapReduceJob.MAX("k", ["a", "c", "b"]) == "c"
    assert LineWordCount.declared_fold() is MapReduceJob.SUM and LineWordCount.has_combiner()
    assert BatchWordCount.declared_fold() is MapReduceJob.SUM  # the reducer's fold is its own combiner
    assert BatchWordCount.has_mapper_batch() and not LineWordCount.has_mapper_batch()
    assert TableJob.declared_fold() is None and not TableJob.has_combiner()
    own: type[MapReduceJob] = type("Own", (TableJob,), {"combiner": lambda self, key, values: sum(values),
                                                        "reducer": MapReduceJob.SUM})
    assert own.declared_fold() is None  # a combiner of its own code: the reducer's fold does not replace it
    assert repr(MapReduceJob.SUM) == "MapReduceJob.SUM"


def test_the_example_jobs_equal_counter() -> None:
    text = b"the cat\n\nsat on the  mat\n\xff the end\n"
    expected = Counter(text.decode("utf-8", "replace").split())
    for name in ("line_wordcount", "batch_wordcount"):
        assert run_sequential(name, text, modules=("actors.jobs.examples",)) == expected
        job = load_catalog(("actors.jobs.examples",)).get(name)
        assert job.finish(job.map(text.decode("utf-8", "replace"), "x")) == expected


# ---------------------------------------------------------------------------------------------------------------
# on a real cluster

FOLD_MODULE = '''
from collections import Counter

from actors.sdk import MapReduceJob


class Shapes(MapReduceJob):
    """Per word: (first letter, length) and length keys; a signed sum (negative for odd lengths)."""

    name = "signed_shapes"
    combiner = MapReduceJob.SUM
    reducer = MapReduceJob.SUM

    def mapper(self, line):
        for word in line.split():
            sign = -1 if len(word) % 2 else 1
            yield (word[0], len(word)), sign
            yield len(word), sign * 2**40
            yield word, 1


class Extremes(MapReduceJob):
    """Per first letter: the longest word (MAX of [length, word]) with mapper_batch."""

    name = "extremes"
    reducer = MapReduceJob.MAX

    def mapper_batch(self, lines):
        best = {}
        for line in lines:
            for word in line.split():
                value = [len(word), word]
                if word[0] not in best or value > best[word[0]]:
                    best[word[0]] = value
        return best


class Shortest(MapReduceJob):
    """Per word length: the alphabetically first word, per line (MIN), reduced by code of its own."""

    name = "shortest"
    combiner = MapReduceJob.MIN

    def mapper(self, line):
        for word in line.split():
            yield len(word), word

    def reducer(self, key, values):
        return [values, len(values)]
'''

WORDS = ["alpha", "beta", "γάμμα", "日本語", "x", "The", "the", "ab", "\x00nul"]


@pytest.fixture
def fold_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"folds_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(FOLD_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)
    load_catalog.cache_clear()


async def test_user_jobs_of_every_style_on_a_cluster_equal_the_oracle(make_cluster: ClusterFactory,
                                                                      fold_module: str, data_root: Path) -> None:
    rng = random.Random(11)
    text = "\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.choice([0, 1, 3, 8]))) for _ in range(5000))
    data = text.encode() + b"\n\xff broken\n"
    (data_root / "words.txt").write_bytes(data)
    modules = (fold_module, "actors.jobs.examples")
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=modules)
    for name in ("line_wordcount", "batch_wordcount", "signed_shapes", "extremes", "shortest"):
        job = await cluster.submit({"job": name, "input": {"path": "words.txt"}, "split_size": 8192})
        result = await cluster.result(job["id"])
        expected = run_sequential(name, data, "words.txt", {}, modules)
        assert result == expected, name
        if name.endswith("wordcount"):
            assert result == Counter(data.decode("utf-8", "replace").split())
    shapes = run_sequential("signed_shapes", data, "words.txt", {}, modules)
    assert any(type(v) is int and v < 0 for v in shapes.values()) and '["a",2]' in shapes


def test_the_documented_fast_jobs_run_and_equal_counter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    section = (Path(__file__).resolve().parent.parent / "docs" / "jobs.md").read_text(encoding="utf-8")
    start = section.rindex("  ```python\n", 0, section.index("class LineWordCount")) + len("  ```python\n")
    code = "\n".join(line[2:] for line in section[start:section.index("  ```\n", start)].splitlines())
    name = f"readme_fast_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(code, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    text = b"In the beginning\n\nGod created  the heaven\n\xff and the earth\n"
    try:
        for job in ("line_wordcount", "batch_wordcount"):
            assert run_sequential(job, text, modules=(name,)) == Counter(text.decode("utf-8", "replace").split())
    finally:
        sys.modules.pop(name, None)
        load_catalog.cache_clear()


def test_a_declared_max_of_one_long_list_is_never_cut_into_two_values() -> None:
    """A general job's list of values may travel in pieces (merged by extending); a MAX's list is one value, which
    halves would turn into two values whose MAX is not the list: too large for a frame, it fails by name."""
    from actors.core.errors import ValueTooLarge
    from actors.mapper.spool import Spool

    folded = Spool(SdkJob(table_job(MapReduceJob.MAX, False, False, True)()), 1, 1000, 1024)
    grouped = Spool(SdkJob(TableJob()), 1, 1000, 1024)
    try:
        TableJob.pairs = [[("k", list(range(1000)))], [("k", [0])]]
        folded.map("0\n1\n", "in")
        with pytest.raises(ValueTooLarge, match="does not fit a shuffle frame"):
            folded.flush()
        TableJob.pairs = [[("k", i)] for i in range(1000)]
        grouped.map("".join(f"{i}\n" for i in range(1000)), "in")
        grouped.flush()
        assert grouped.commit(0).frames > 1 and grouped.commit(0).checksum == 1000
    finally:
        folded.close()
        grouped.close()

