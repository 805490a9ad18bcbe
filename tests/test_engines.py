"""Engine capabilities: a native-style engine defined here runs on a real cluster without any change to the roles."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.jobs import load_catalog, packing_of
from actors.jobs.wordcount import kernel
from actors.sequential import run_sequential

from .conftest import ClusterFactory

# An integer-sum engine: for each line, its first word gets the line's word count. Its SDK methods are the
# contract (the oracle runs them); its engine is the fast path, and declares word count's packing as its own
# capability, so its counts travel as COLUMNS frames, merge in count tables and are reported as ordered runs.
ENGINE_MODULE = '''
from __future__ import annotations

import heapq
from typing import Any

from actors.core.errors import WireError
from actors.jobs.engine import COUNT_LIMIT
from actors.jobs.result import OrderedRuns, as_mapping, general_json
from actors.jobs.wordcount.packing import CountPacking, count_packing
from actors.sdk import MapReduceJob

ENCODED: list[str] = []  # what the master handed encode(): proof of which report path ran


class LineSumEngine:
    name = "line_sum"

    def map(self, text, source):
        acc: dict[str, Any] = {}
        self.map_into(acc, text, source)
        return acc

    def partial(self):
        return {}

    def map_into(self, acc, text, source):
        for line in text.split("\\n"):
            words = line.split()
            if words:
                acc[words[0]] = acc.get(words[0], 0) + len(words)

    def weight(self, acc):
        return len(acc)

    def combine(self, into, part):
        for key, value in part.items():
            into[key] = into.get(key, 0) + value

    def checksum(self, part):
        return sum(part.values())

    def check(self, part):
        if any(type(v) is not int or not 0 < v < COUNT_LIMIT for v in part.values()):
            raise WireError("line_sum values must be positive 63-bit integers")

    def finish(self, totals):
        return totals

    def top(self, result, n):
        return heapq.nsmallest(n, result.items(), key=lambda item: (-item[1], item[0]))

    def encode(self, result):
        ENCODED.append("runs" if isinstance(result, OrderedRuns) else "map")
        return general_json(as_mapping(result), self.top)

    def packing(self, native: bool) -> CountPacking | None:
        return count_packing(native)


class LineSum(MapReduceJob):
    """Each line's first word, summed with the number of words on its line."""

    name = "line_sum"

    def mapper(self, line):
        words = line.split()
        if words:
            yield words[0], len(words)

    def combiner(self, key, values):
        return sum(values)

    def reducer(self, key, values):
        return sum(values)

    def order(self, key, value):
        return -value

    def engine(self):
        return LineSumEngine()
'''

WORDS = ["alpha", "beta", "γάμμα", "日本語", "x", "The", "the", "ab"]


@pytest.fixture
def engine_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"line_sum_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(ENGINE_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)
    load_catalog.cache_clear()


def test_the_toy_engine_declares_its_capability(engine_module: str) -> None:
    engine = load_catalog((engine_module,)).get("line_sum")
    assert (packing_of(engine, native=True) is not None) == kernel.NATIVE
    assert packing_of(engine, native=False) is None


async def test_a_native_style_engine_runs_through_the_roles_untouched(make_cluster: ClusterFactory,
                                                                     engine_module: str, data_root: Path) -> None:
    rng = random.Random(7)
    text = "\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.choice([0, 1, 3, 8]))) for _ in range(4000))
    (data_root / "lines.txt").write_text(text, encoding="utf-8")
    cluster = await make_cluster(mappers=2, reducers=3, job_modules=(engine_module,))
    job = await cluster.submit({"job": "line_sum", "input": {"path": "lines.txt"}, "split_size": 8192})
    result = await cluster.result(job["id"])
    expected = run_sequential("line_sum", text.encode(), "lines.txt", {}, (engine_module,))
    assert result == expected and len(result) == len(WORDS)
    assert list(result) == sorted(result, key=lambda key: (-result[key], key))  # its own top order
    encoded = sys.modules[engine_module].ENCODED
    assert encoded == ["runs" if kernel.NATIVE else "map"]  # with the kernel: packed all the way to the master


async def test_word_count_on_a_cluster_equals_the_oracle(make_cluster: ClusterFactory, data_root: Path) -> None:
    rng = random.Random(3)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.choice([0, 2, 7]))) for _ in range(3000)]
    data = "\n".join(lines).encode() + b"\n\xff\xfe broken \xe2\x82 bytes\n"  # invalid UTF-8: replaced
    (data_root / "words.txt").write_bytes(data)
    cluster = await make_cluster(mappers=2, reducers=2)
    job = await cluster.submit({"job": "wordcount", "input": {"path": "words.txt"}, "split_size": 8192})
    result = await cluster.result(job["id"])
    assert result == run_sequential("wordcount", data, "words.txt") == Counter(data.decode("utf-8", "replace").split())


def test_the_cluster_tests_pass_without_the_extension() -> None:
    """The pure-Python fallback on real clusters: this module's cluster tests again, the extensions made absent."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "MR_REQUIRE_NATIVE_KERNEL": "0"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.without_native", "-q", "-p", "no:cacheprovider",
         "-k", "not without_the_extension", f"{Path(__file__).relative_to(root)}",
         "tests/test_kernel.py::test_fallback_is_used_when_the_extension_is_absent"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "4 passed" in run.stdout, run.stdout[-2000:]  # none skipped
