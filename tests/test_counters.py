"""Counters and bad records on real clusters: summed over committed attempts only, equal to the sequential oracle's,
with a mapper killed mid-split and with backup attempts; bad records skipped, counted and listed, or failing the
job naming them; hostile counters and max_bad_records values refused by name."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from actors.core.counters import CounterLimits, Counters, JobTally
from actors.jobs import load_catalog
from actors.local import LocalCluster
from actors.remote.counted import tally_lines
from actors.sequential import Counted, run_counted

from .conftest import Cluster, ClusterFactory
from .fakes import FakeDiscovery, FakeTransport, Faults
from .support import DRILL_ENV, alive
from .test_coordinator_unit import make_job, make_settings

REPO = Path(__file__).resolve().parent.parent

JOBS = '''
import os
import time

from actors.sdk import MapReduceJob


def stall(marker, seconds):
    """The first attempt to get here (no marker yet) says where it runs (its actor's pid) and stalls."""
    if not marker or os.path.exists(marker):
        return
    with open(marker + ".tmp", "w") as file:
        file.write(str(os.getppid()))
    os.replace(marker + ".tmp", marker)
    time.sleep(seconds)


class Counting(MapReduceJob):
    """Word count that counts lines, words and keys, and fails on lines starting with BAD."""

    name = "counting"
    parameters = {"stall": "a marker file: the first attempt to reach a STALL line stalls", "seconds": "how long"}

    def mapper(self, line):
        if line.startswith("BAD"):
            raise ValueError("a bad line: " + line[:20])
        if line.startswith("STALL"):
            stall(self.params.get("stall", ""), float(self.params.get("seconds", "60")))
        self.increment_counter("map", "lines")
        words = line.split()
        self.increment_counter("map", "words", len(words))
        self.increment_counter("map", "minus", -len(words))
        for word in words:
            yield word, 1

    def combiner(self, key, values):
        self.increment_counter("combine", "calls")
        return sum(values)

    def reducer(self, key, values):
        self.increment_counter("reduce", "keys")
        self.increment_counter("reduce", "total", sum(values))
        return sum(values)


class BatchCounting(MapReduceJob):
    """The same as one mapper_batch (no mapper): a raising batch is mapped again line by line."""

    name = "batch_counting"
    reducer = MapReduceJob.SUM

    def mapper_batch(self, lines):
        pairs = []
        for line in lines:
            if line.startswith("BAD"):
                raise ValueError("a bad line in a batch: " + line[:20])
            self.increment_counter("map", "lines")
            pairs.extend((word, 1) for word in line.split())
        return pairs


class Hostile(MapReduceJob):
    """Counters past every limit, chosen by the "mode" parameter."""

    name = "hostile_counters"
    parameters = {"mode": "long, many, huge, float, overflow, caught, negative, spread"}

    def mapper(self, line):
        mode = self.params["mode"]
        if mode == "long":
            self.increment_counter("g", "n" * 100_000)
        elif mode == "many":
            for i in range(1000):
                self.increment_counter("g", "c%d" % i)
        elif mode == "huge":
            self.increment_counter("g", "n", 2 ** 63)
        elif mode == "float":
            self.increment_counter("g", "n", 1.5)
        elif mode == "overflow":
            self.increment_counter("g", "n", 2 ** 63 - 1)
            self.increment_counter("g", "n", 1)
        elif mode == "caught":
            try:
                self.increment_counter("g", "x" * 300)
            except Exception:
                pass
        elif mode == "negative":
            self.increment_counter("g", "n", -(2 ** 53))
        elif mode == "spread":  # a counter per 40 lines "wNNN": an attempt of a few lines has a few
            self.increment_counter("g", "c%d" % (int(line[1:]) // 40))
        yield line, 1

    reducer = MapReduceJob.SUM
'''


@pytest.fixture
def jobs_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The jobs above in a module on sys.path (task workers and actor processes get it) under a unique name."""
    name = f"counterjobs_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "jobpkg"
    root.mkdir()
    (root / f"{name}.py").write_text(JOBS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(root))
    yield name
    sys.modules.pop(name, None)
    load_catalog.cache_clear()


def oracle(module: str, job: str, inputs: list[tuple[str, bytes]], max_bad_records: int = 0,
           params: dict[str, str] | None = None) -> Counted:
    return run_counted(load_catalog((module,)).sdk(job, params), inputs, max_bad_records)


def text_of(lines: int, bad: set[int] = frozenset(), stall: int | None = None) -> bytes:  # type: ignore[assignment]
    words = ["alpha", "beta", "gamma", "delta", "épsilon", "zeta"]
    out = []
    for i in range(lines):
        if i in bad:
            out.append(f"BAD record {i}")
        elif i == stall:
            out.append("STALL here")
        else:
            out.append(" ".join(words[(i * k) % len(words)] for k in range(1 + i % 5)))
    return ("\n".join(out) + "\n").encode()


async def submit(cluster: Cluster, spec: dict[str, Any]) -> str:
    async with cluster.session.post(f"{cluster.url}/v1/jobs", json=spec, headers=cluster.auth) as response:
        body = await response.json()
        assert response.status == 202, body
        return str(body["id"])


async def ended(cluster: Cluster, job_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job_id}/result", params={"wait": "120"},
                                   headers=cluster.auth) as response:
        answer = await response.json()
    state = await cluster.status(job_id)
    return state, dict(answer.get("result") or {}) if response.status == 200 else {}


def without(counters: dict[str, Any], group: str) -> dict[str, Any]:
    return {g: names for g, names in counters.items() if g != group}


# ---------------------------------------------------------------------------------------------------------------
# the pure core


def test_counters_check_names_amounts_and_the_number_of_counters() -> None:
    counters = Counters(CounterLimits(counters=2, name=5))
    counters.increment("g", "a", -3)
    counters.increment("g", "a", 10)
    counters.increment("g", "b")
    assert counters.to_wire() == {"g": {"a": 7, "b": 1}}
    for group, name, amount, named in [("g", "c", 1, "MR_MAX_COUNTERS=2"), ("g", "toolong", 1, "MR_MAX_COUNTER_NAME"),
                                       ("g", "a", 2 ** 63, "64-bit"), ("g", "a", True, "must be an int"),
                                       ("g", "a", 1.0, "must be an int"), (3, "a", 1, "must be a str"),
                                       ("g", "", 1, "empty"), ("g", "\ud800", 1, "surrogate")]:
        with pytest.raises(Exception, match=named):
            counters.increment(group, name, amount)
    assert counters.failure is not None  # remembered: a job that catches it still fails
    overflowing = Counters(CounterLimits())
    overflowing.increment("g", "n", 2 ** 63 - 1)
    with pytest.raises(Exception, match="left the signed 64-bit range"):
        overflowing.increment("g", "n", 1)


def test_the_job_tally_sums_counted_attempts_and_keeps_the_first_bad_records_in_order() -> None:
    tally = JobTally(CounterLimits(counters=3), max_bad_records=150)
    tally.add_counters({"g": {"a": 1, "b": 2}})
    tally.add_counters({"g": {"a": 5}})
    assert tally.counters_json() == {"g": {"a": 6, "b": 2}}
    with pytest.raises(Exception, match="MR_MAX_COUNTERS=3"):
        tally.add_counters({"h": {"x": 1}, "i": {"y": 1}})
    tally.add_bad(1, 120, [["b.txt", offset, "E"] for offset in range(0, 1000, 10)])
    tally.add_bad(0, 2, [["a.txt", 7, "E"], ["a.txt", 3, "E"]])
    listed = tally.bad_json()
    assert listed["count"] == 122 and len(listed["first"]) == 100
    assert listed["first"][:3] == [{"input": "a.txt", "offset": 3, "error": "E"},
                                   {"input": "a.txt", "offset": 7, "error": "E"},
                                   {"input": "b.txt", "offset": 0, "error": "E"}]
    assert not tally.over()
    tally.add_bad(2, 29, [])
    assert "151 bad records, more than max_bad_records=150; the first: 'a.txt' at byte 3" in tally.over()


def test_the_oracle_skips_bad_records_with_their_offsets_and_rolls_back_their_counts(jobs_module: str) -> None:
    data = b"one two\nBAD x\n\xff\xfe three\nBAD y\n"
    counted = oracle(jobs_module, "counting", [("in.txt", data)], max_bad_records=2)
    assert counted.result == {"one": 1, "two": 1, "\ufffd\ufffd": 1, "three": 1}
    assert counted.bad_count == 2
    assert [(b["input"], b["offset"]) for b in counted.bad_first] == [("in.txt", 8), ("in.txt", 23)]
    assert counted.bad_first[0]["error"] == "ValueError: a bad line: BAD x"
    assert counted.counters["map"] == {"lines": 2, "words": 4, "minus": -4}
    assert counted.counters["reduce"] == {"keys": 4, "total": 4}
    batch = oracle(jobs_module, "batch_counting", [("in.txt", data)], max_bad_records=2)
    assert batch.counters == {"map": {"lines": 2}}  # the raising batch's counts rolled back, then line by line
    with pytest.raises(ValueError, match="a bad line"):
        oracle(jobs_module, "counting", [("in.txt", data)])
    with pytest.raises(Exception, match=re.escape("2 bad records, more than max_bad_records=1; the first: 'in.txt' at "
                                                  "byte 8")):
        oracle(jobs_module, "counting", [("in.txt", data)], max_bad_records=1)


# ---------------------------------------------------------------------------------------------------------------
# in-process clusters (task processes run the user code)


async def test_counters_equal_the_oracle_and_come_from_mapper_combiner_and_reducer(
        make_cluster: ClusterFactory, jobs_module: str) -> None:
    data = text_of(3000)
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=(jobs_module,), split_size=4096)
    expected = oracle(jobs_module, "counting", [("text", data)])
    job_id = await submit(cluster, {"job": "counting", "input": {"text": data.decode()}})
    state, result = await ended(cluster, job_id)
    assert state["state"] == "done", state
    assert result == expected.result
    assert state["progress"]["splits_total"] > 4
    # The oracle runs no combiner of the job's own: its counts are what the combiner's runs made, at least one.
    assert without(state["counters"], "combine") == expected.counters
    assert state["counters"]["combine"]["calls"] > 0
    assert state["bad_records"] == {"allowed": 0, "count": 0, "first": []}


async def test_a_bad_line_fails_the_job_naming_it_or_is_skipped_counted_and_listed(
        make_cluster: ClusterFactory, jobs_module: str) -> None:
    data = text_of(2000, bad={5, 777, 1999})
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=(jobs_module,), split_size=4096)
    failing = await submit(cluster, {"job": "counting", "input": {"text": data.decode()}})
    state, _ = await ended(cluster, failing)
    assert state["state"] == "failed"
    offsets = [b["offset"] for b in oracle(jobs_module, "counting", [("text", data)], 3).bad_first]
    assert "raised ValueError: a bad line: BAD record" in state["error"]
    assert any(f"(the record at byte {offset})" in state["error"] for offset in offsets), state["error"]
    for job in ("counting", "batch_counting"):
        expected = oracle(jobs_module, job, [("text", data)], max_bad_records=3)
        job_id = await submit(cluster, {"job": job, "input": {"text": data.decode()}, "max_bad_records": 3})
        state, result = await ended(cluster, job_id)
        assert state["state"] == "done", state
        assert result == expected.result
        assert state["bad_records"] == {"allowed": 3, "count": 3, "first": expected.bad_first}
        assert [b["offset"] for b in expected.bad_first] == offsets
        assert data[offsets[1]:].startswith(b"BAD record 777\n")
        assert without(state["counters"], "combine") == expected.counters


async def test_past_max_bad_records_the_job_fails_naming_the_first_records(make_cluster: ClusterFactory,
                                                                          jobs_module: str) -> None:
    bad = set(range(0, 3000, 100))
    data = text_of(3000, bad=bad)
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=(jobs_module,), split_size=4096)
    job_id = await submit(cluster, {"job": "counting", "input": {"text": data.decode()}, "max_bad_records": 5})
    state, _ = await ended(cluster, job_id)
    assert state["state"] == "failed"
    assert "bad records, more than max_bad_records=5; the first: 'text' at byte " in state["error"], state["error"]
    everything = oracle(jobs_module, "counting", [("text", data)], max_bad_records=len(bad))
    named = state["error"].split("the first: ")[1]
    assert named.split(":")[0].split("at byte ")[1].isdigit()
    offsets = {b["offset"] for b in everything.bad_first}
    assert int(named.split("at byte ")[1].split(":")[0]) in offsets


@pytest.mark.parametrize(("mode", "named"), [
    ("long", "MR_MAX_COUNTER_NAME=256"), ("many", "MR_MAX_COUNTERS=120"), ("huge", "signed 64-bit"),
    ("float", "must be an int"), ("overflow", "left the signed 64-bit range"), ("caught", "MR_MAX_COUNTER_NAME"),
])
async def test_hostile_counters_fail_the_job_naming_the_limit(make_cluster: ClusterFactory, jobs_module: str,
                                                              mode: str, named: str) -> None:
    cluster = await make_cluster(mappers=1, reducers=1, job_modules=(jobs_module,))
    # Skipping bad records never hides a broken counter limit: it is the job's failure, not a record's.
    job_id = await submit(cluster, {"job": "hostile_counters", "params": {"mode": mode}, "input": {"text": "a\nb\n"},
                                    "max_bad_records": 100})
    state, _ = await ended(cluster, job_id)
    assert state["state"] == "failed", state
    assert named in state["error"], state["error"]
    assert state["attempts"]["retries"] == 0  # deterministic: not retried


async def test_counters_past_the_limit_summed_over_splits_fail_the_job(make_cluster: ClusterFactory,
                                                                      jobs_module: str) -> None:
    """Each attempt stays within MR_MAX_COUNTERS; their sum at the master does not. Negative amounts add up."""
    data = "\n".join(f"w{i:03}" for i in range(400)) + "\n"
    cluster = await make_cluster(mappers=2, reducers=1, job_modules=(jobs_module,), max_counters=5)
    job_id = await submit(cluster, {"job": "hostile_counters", "params": {"mode": "negative"},
                                    "input": {"text": data}, "split_size": 512})
    state, result = await ended(cluster, job_id)
    assert state["state"] == "done", state
    assert state["counters"] == {"g": {"n": -(2 ** 53) * 400}}
    assert len(result) == 400
    job_id = await submit(cluster, {"job": "hostile_counters", "params": {"mode": "spread"},
                                    "input": {"text": data}, "split_size": 512})
    state, _ = await ended(cluster, job_id)
    assert state["state"] == "failed", state
    assert state["progress"]["splits_total"] >= 4
    assert "past the 5 distinct counters a job may have (MR_MAX_COUNTERS=5)" in state["error"], state["error"]


@pytest.mark.parametrize("value", [-1, 1.5, "3", True, None, [], 2 ** 63])
async def test_bad_max_bad_records_values_are_400s_naming_the_field(make_cluster: ClusterFactory,
                                                                    value: Any) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    async with cluster.session.post(f"{cluster.url}/v1/jobs", json={"input": {"text": "a"}, "max_bad_records": value},
                                    headers=cluster.auth) as response:
        body = await response.json()
    assert response.status == 400, body
    assert "max_bad_records" in body["message"]
    for raw in ("-1", "x", "9" * 30, ""):
        async with cluster.session.post(f"{cluster.url}/v1/jobs", params={"max_bad_records": raw}, data=b"a b",
                                        headers={**cluster.auth, "Content-Type": "text/plain"}) as response:
            body = await response.json()
        assert response.status == 400, body
        assert "max_bad_records" in body["message"]


async def test_success_lists_the_jobs_counters_and_bad_records(make_cluster: ClusterFactory, jobs_module: str,
                                                             data_root: Path) -> None:
    data = text_of(1000, bad={10})
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=(jobs_module,), split_size=4096)
    expected = oracle(jobs_module, "counting", [("text", data)], max_bad_records=1)
    job_id = await submit(cluster, {"job": "counting", "input": {"text": data.decode()}, "max_bad_records": 1,
                                    "output": {"path": "out"}})
    state, _ = await ended(cluster, job_id)
    assert state["state"] == "done", state
    success = json.loads((data_root / "out" / "_SUCCESS").read_text())
    assert success["counters"] == state["counters"]
    assert without(success["counters"], "combine") == expected.counters
    assert success["bad_records"] == {"allowed": 1, "count": 1}


def test_the_status_command_shows_counters_and_bad_records() -> None:
    raw = {"counters": {"map": {"lines": 3, "words": -2}}, "bad_records": {
        "allowed": 5, "count": 1, "first": [{"input": "a.txt", "offset": 12, "error": "ValueError: \x1b[31m"}]}}
    assert tally_lines(raw) == ["counters:", "  map\tlines\t3", "  map\twords\t-2",
                                "bad records: 1 skipped (max_bad_records 5)",
                                "  a.txt at byte 12: ValueError: \\x1b[31m"]
    assert tally_lines({"counters": {}, "bad_records": {"allowed": 0, "count": 0, "first": []}}) == []


# ---------------------------------------------------------------------------------------------------------------
# real actor processes: a mapper killed mid-split, and backup attempts


@contextlib.asynccontextmanager
async def process_cluster(tmp_path: Path, module: str, env: dict[str, str]) -> AsyncIterator[LocalCluster]:
    """3 mappers and 2 reducers as processes with the jobs module; no actor process may outlive it."""
    full = {**DRILL_ENV, "MR_JOB_MODULES": module, "MR_TIMEOUT_LEASE": "30",
            "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path / "jobpkg")]), **env}
    async with LocalCluster(mappers=3, reducers=2, discovery="static", data_root=str(tmp_path), extra_env=full,
                            log_dir=str(tmp_path / "logs"), restarts=None) as running:
        pids: set[int] = set()
        try:
            yield running
        finally:
            pids.update(a.pid for a in running.actors if a.process is not None)
            await running.stop()
    assert not [pid for pid in pids if alive(pid)], "actor processes outlived the cluster"


async def wait_for_file(path: Path, timeout: float = 60.0) -> str:
    async with asyncio.timeout(timeout):
        while True:
            if path.exists():
                return path.read_text()
            await asyncio.sleep(0.02)  # another process's file: nothing to wait on but the file itself


async def run_stalled(tmp_path: Path, module: str, env: dict[str, str], seconds: float,
                      kill: bool) -> tuple[dict[str, Any], dict[str, Any], Counted, int]:
    """A job whose first attempt at the split holding a STALL line stalls there, after mapping (and counting) the
    chunks before it; ``kill``: its mapper is then killed with SIGKILL. Answers the status (every split listed),
    the result, the oracle and the struck split."""
    data = text_of(40_000, stall=25_000)
    (tmp_path / "book.txt").write_bytes(data)
    marker = tmp_path / "stalled"
    expected = oracle(module, "counting", [("book.txt", data)])
    async with process_cluster(tmp_path, module, env) as cluster, aiohttp.ClientSession(
            base_url=cluster.master_url, headers=cluster.api_headers) as session:
        spec = {"job": "counting", "input": {"path": "book.txt"},
                "params": {"stall": str(marker), "seconds": str(seconds)}}
        async with session.post("/v1/jobs", json=spec) as response:
            job_id = (await response.json())["id"]
        pid = int(await wait_for_file(marker))
        if kill:
            victim = next(a.name for a in cluster.actors if a.process is not None and a.pid == pid)
            assert victim.startswith("mapper-")
            cluster.signal(victim, signal.SIGKILL)
            await cluster.restart(victim)
        async with session.get(f"/v1/jobs/{job_id}/result", params={"wait": "120"}) as response:
            answer = await response.json()
            assert response.status == 200, answer
        async with session.get(f"/v1/jobs/{job_id}", params={"splits": "all", "limit": "1000"}) as response:
            status = await response.json()
    offset = data.index(b"STALL")
    struck = next(s["split"] for s in status["splits"]["items"] if s["start"] <= offset < s["end"])
    return status, answer["result"], expected, struck


async def test_a_mapper_killed_mid_split_leaves_the_counters_exact(tmp_path: Path, jobs_module: str) -> None:
    status, result, expected, struck = await run_stalled(tmp_path, jobs_module, {"MR_BACKUP_TASKS": "false"}, 60,
                                                         kill=True)
    stall_offset = text_of(40_000, stall=25_000).index(b"STALL")
    assert result == expected.result
    assert without(status["counters"], "combine") == expected.counters
    split = status["splits"]["items"][struck]
    assert [a["state"] for a in split["attempts"]].count("failed") == 1 and len(split["attempts"]) == 2, split
    # The killed attempt had mapped (and counted) whole chunks of the split before the STALL line.
    assert stall_offset - split["start"] > 2 * 32 * 1024, split
    assert status["progress"]["splits_total"] >= 4


async def test_backup_attempts_leave_the_counters_exact(tmp_path: Path, jobs_module: str) -> None:
    env = {"MR_BACKUP_TASKS": "true", "MR_BACKUP_AFTER": "0.5"}
    status, result, expected, struck = await run_stalled(tmp_path, jobs_module, env, 8, kill=False)
    assert result == expected.result
    assert without(status["counters"], "combine") == expected.counters
    attempts = status["splits"]["items"][struck]["attempts"]
    assert any(a["backup"] for a in attempts) and len(attempts) >= 2, attempts
    assert [a["state"] for a in attempts].count("done") == 1, attempts


# ---------------------------------------------------------------------------------------------------------------
# the coordinator on a fake transport: each split's counts and each partition's once, whatever is redone


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
@pytest.mark.parametrize("seed", range(3))
async def test_counts_are_added_once_per_split_and_partition_under_faults_and_a_lost_reducer(seed: int) -> None:
    faults = Faults(drop_stream=0.05, drop_ack=0.05, drop_report=0.1, duplicate_stream=0.1, stale_message=0.1)
    transport = FakeTransport.with_reducers({}, 3, faults=faults, rng=random.Random(seed))
    lost: list[int] = []

    def before_finalize(partition: int) -> None:
        if partition == 1 and not lost:  # its splits are all re-mapped for it: their counts must not count again
            transport.reducers[1].restart()
            lost.append(1)

    transport.before_finalize = before_finalize
    job = make_job(transport, FakeDiscovery(2, 3), settings=make_settings(reducer_count=3, max_attempts=10))
    record = await job.run()
    assert record.state == "done", record.error
    assert record.recoveries and record.table is not None
    redone = sum(1 for _, a in transport.assignments if not a.only_partitions) - len(record.splits)
    assert redone > 0 or seed  # some attempts were redone (seed 0 is checked to have some)
    assert record.tally.counters_json() == {"map": {"splits": len(record.splits), "bytes": len(job.data)},
                                            "reduce": {"reports": 3}}
