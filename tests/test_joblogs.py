"""Job logs: each actor's bounded ring per job, GET /v1/jobs/{id}/logs gathering them, the client and the CLI."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.api import AsyncClient, Client, LogLine
from actors.core.errors import BadRequest, NotFound, Unauthorized
from actors.core.joblog import ACTOR, JobLogRing, RingHandler, RingLimits, cut_text, user_output
from actors.core.logs import EventLog
from actors.jobs import load_catalog
from actors.local import LocalCluster
from actors.net import access
from actors.remote.commands import log_text

from .conftest import Cluster, ClusterFactory
from .support import held_url
from .test_remote import mapreduce

FAILING_JOBS = '''
from actors.sdk import MapReduceJob


def check_word(word):
    if word == "poison":
        raise ValueError("poisoned word " + word)
    return word


class FailsInMap(MapReduceJob):
    """Its mapper raises on one word."""

    name = "fails_in_map"

    def mapper(self, line):
        for word in line.split():
            yield check_word(word), 1

    def reducer(self, key, values):
        return sum(values)


class Talks(MapReduceJob):
    """Its mapper and reducer write to stderr, as user code does (print, a library's warnings)."""

    name = "talks"

    def mapper(self, line):
        if "poison" in line:
            import sys
            print("mapper saw: " + line, file=sys.stderr, flush=True)
        for word in line.split():
            yield word, 1

    def reducer(self, key, values):
        if key == "poison":
            import sys
            print("reducer got poison " + str(sum(values)) + " times", file=sys.stderr, flush=True)
        return sum(values)


class FailsInReduce(MapReduceJob):
    """Its reducer raises on one key."""

    name = "fails_in_reduce"

    def mapper(self, line):
        for word in line.split():
            yield word, 1

    def reducer(self, key, values):
        if key == "poison":
            raise KeyError("no reducer for " + key)
        return sum(values)
'''
MAP_LINE = 'raise ValueError("poisoned word " + word)'
TEXT = "a b c\n" * 200 + "the poison here\n" + "x y z\n" * 200


@pytest.fixture
def failing_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    name = f"failingjobs_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "failingpkg"
    root.mkdir()
    (root / f"{name}.py").write_text(FAILING_JOBS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(root))
    yield name, root
    sys.modules.pop(name, None)
    load_catalog.cache_clear()


# ---- the ring ----------------------------------------------------------------------------------------------------


def test_the_ring_drops_the_oldest_lines_past_each_bound() -> None:
    ring = JobLogRing("mapper-0", "inc", RingLimits(lines=3, jobs=2, budget=10**6, text=100))
    for i in range(5):
        ring.add("j1", "info", f"e{i}", {"job": "j1", "i": i}, float(i))
    entries, more = ring.read("j1")
    assert [e["event"] for e in entries] == ["e2", "e3", "e4"] and not more  # MR_JOB_LOG_LINES
    assert entries[0]["fields"] == {"i": 2} and entries[0]["actor"] == "mapper-0"
    ring.add("j2", "info", "other", {}, 6.0)
    ring.add("j1", "info", "again", {}, 7.0)  # j1 is now the most recently active
    ring.add("j3", "info", "third", {}, 8.0)  # past MR_JOB_LOG_JOBS: j2 goes, not j1
    assert "j2" not in ring and "j1" in ring and "j3" in ring
    held = ring.size
    ring.add("j3", "info", "x", {}, 9.0)
    assert ring.size > held  # counted as it grows ...
    tight = JobLogRing("r", "inc", RingLimits(lines=1000, jobs=10, budget=2000, text=100))
    for i in range(100):
        tight.add(f"job{i % 3}", "info", "e", {"n": "y" * 50}, float(i))
    assert tight.size <= 2000  # ... and never past MR_JOB_LOG_BYTES
    assert sum(len(tight.read(f"job{k}")[0]) for k in range(3)) < 100


def test_since_level_and_page_budget_select_what_is_read() -> None:
    ring = JobLogRing("m", "inc", RingLimits(lines=100, jobs=10, budget=10**6, text=100))
    for i, level in enumerate(["debug", "info", "warning", "error"] * 3):
        ring.add("j", level, f"e{i}", {"pad": "p" * 40}, float(i))
    everything, _ = ring.read("j")
    assert len(everything) == 12
    assert [e["level"] for e in ring.read("j", level=logging.WARNING)[0]] == ["warning", "error"] * 3
    after = everything[5]["seq"]
    assert [e["event"] for e in ring.read("j", since=after)[0]] == [f"e{i}" for i in range(6, 12)]
    page, more = ring.read("j", budget=250)
    assert more and 1 <= len(page) < 12
    page2, _ = ring.read("j", since=page[-1]["seq"], budget=10**6)
    assert [e["seq"] for e in page + page2] == [e["seq"] for e in everything]
    assert ring.read("unknown") == ([], False)


def test_long_texts_keep_their_head_and_tail_and_odd_values_become_text() -> None:
    trace = "Traceback (most recent call last):\n" + "  frame\n" * 2000 + "ValueError: the end"
    cut = cut_text(trace, 500)
    assert len(cut) <= 500 and cut.startswith("Traceback") and cut.endswith("ValueError: the end")
    assert "MR_JOB_LOG_TEXT" in cut
    ring = JobLogRing("m", "inc", RingLimits(text=300))
    ring.add("j", "error", "e", {"big": 1 << 70, "nan": float("nan"), "obj": object(), "trace": trace}, 1.0)
    fields = ring.read("j")[0][0]["fields"]
    assert fields["big"] == str(1 << 70) and fields["nan"] == "nan" and isinstance(fields["obj"], str)
    assert len(fields["trace"]) <= 300


def test_the_handler_keeps_only_its_own_actors_lines_with_a_job() -> None:
    """Several actors share a process in tests: each ring takes the records made in its actor's context only."""
    rings = [JobLogRing(f"mapper-{i}", f"inc{i}", RingLimits()) for i in range(2)]
    handlers = [RingHandler(ring, skip=frozenset({access.log.name})) for ring in rings]
    logger = logging.getLogger("actors")
    log = EventLog("actors.test_joblogs")
    for handler in handlers:
        logger.addHandler(handler)
    try:
        token = ACTOR.set("inc1")
        try:
            log.warning("split_failed", job="j", split=1)
            log.warning("no_job_here", split=2)
            access.log.warning("http_request", job="j", route="/v1/jobs/{id}")  # a request about it: stdout only
            user_output("j", "error", "Traceback ...\nValueError: x")
        finally:
            ACTOR.reset(token)
        log.warning("split_failed", job="j", split=3)  # no actor's context: no ring's
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
    assert rings[0].read("j") == ([], False)
    lines, _ = rings[1].read("j")
    assert [(e["event"], e["fields"]) for e in lines] == [
        ("split_failed", {"split": 1}), ("user_output", {"message": "Traceback ...\nValueError: x"})]


def test_a_log_line_prints_its_fields_and_its_traceback_below_escaped() -> None:
    trace = "Traceback:\n  File \"j.py\"\x1b[2J\nValueError"
    fields = {"split": 3, "cause": "job 'x' raised", "traceback": trace}
    line = LogLine(0.5, "mapper-1", "warning", "split_failed", fields)
    text = log_text(line)
    first, *rest = text.splitlines()
    assert first.endswith("mapper-1 WARNING split_failed split=3 cause=\"job 'x' raised\"")
    assert rest == ["  traceback:", "    Traceback:", '      File "j.py"\\x1b[2J', "    ValueError"]
    assert "\x1b" not in text


# ---- the API, on an in-process cluster ---------------------------------------------------------------------------


async def logs_of(cluster: Cluster, job_id: str, **params: str) -> list[dict[str, Any]]:
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job_id}/logs", params=params) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "application/x-ndjson"
        return [json.loads(line) for line in (await response.text()).splitlines() if line.strip()]


async def failed(cluster: Cluster, spec: dict[str, Any]) -> dict[str, Any]:
    job = await cluster.submit(spec)
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "30"}):
        pass
    status = await cluster.status(job["id"])
    assert status["state"] == "failed", status
    return status


async def test_a_failing_user_mapper_shows_its_traceback_at_the_mapper_that_ran_it(
        make_cluster: ClusterFactory, failing_jobs: tuple[str, Path]) -> None:
    cluster = await make_cluster(job_modules=(failing_jobs[0],))
    status = await failed(cluster, {"job": "fails_in_map", "input": {"text": TEXT}, "split_size": 1024})
    assert "ValueError: poisoned word poison" in status["error"]
    assert "Traceback" not in status["error"]  # the answer says what failed; the logs say where
    lines = await logs_of(cluster, status["id"])
    assert [line["time"] for line in lines] == sorted(line["time"] for line in lines)
    (failure,) = [line for line in lines if line["event"] == "split_failed"]
    trace = failure["fields"]["traceback"]
    assert trace.startswith("Traceback (most recent call last):")
    assert MAP_LINE in trace and "in check_word" in trace and f"{failing_jobs[0]}.py" in trace
    assert trace.rstrip().endswith("ValueError: poisoned word poison")
    assert "adapter.py" not in trace  # the framework's own frames are left out
    # Attributed to the mapper the master gave the split to, and only there.
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{status['id']}", params={"splits": "all"}) as r:
        (split,) = [item for item in (await r.json())["splits"]["items"]
                    if item["split"] == failure["fields"]["split"]]
    (attempt,) = [a for a in split["attempts"] if a["attempt"] == failure["fields"]["attempt"]]
    assert failure["actor"] == attempt["mapper"]
    assert any(line["event"] == "job_failed" and line["actor"] == "master-0" for line in lines)
    others = [m.settings.name for m in cluster.mappers if m.settings.name != failure["actor"]]
    for other in others:
        assert not [line for line in await logs_of(cluster, status["id"], actor=other)
                    if line["event"] == "split_failed"]
    only = await logs_of(cluster, status["id"], actor=failure["actor"], level="warning")
    assert {line["actor"] for line in only} == {failure["actor"]} and failure in only
    # The client reads the same lines.
    async with AsyncClient(cluster.url) as client:
        read = [line async for line in client.logs(status["id"], level="warning")]
    assert any(line.event == "split_failed" and MAP_LINE in line.fields["traceback"] for line in read)


async def test_what_user_code_writes_to_stderr_is_in_the_jobs_logs(
        make_cluster: ClusterFactory, failing_jobs: tuple[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    """A task process's stderr is relayed line by line into the logs of the job it works for, at its actor."""
    caplog.set_level(logging.INFO, logger="actors")  # user_output lines are INFO
    cluster = await make_cluster(job_modules=(failing_jobs[0],))
    job = await cluster.submit({"job": "talks", "input": {"text": TEXT}, "split_size": 1024})
    assert (await cluster.result(job["id"]))["poison"] == 1
    lines = [line for line in await logs_of(cluster, job["id"]) if line["event"] == "user_output"]
    said = {(line["actor"].split("-")[0], line["fields"]["message"]) for line in lines}
    assert ("mapper", "mapper saw: the poison here") in said, lines
    assert ("reducer", "reducer got poison 1 times") in said, lines


async def test_a_failing_user_reducer_shows_its_traceback_at_its_reducer(
        make_cluster: ClusterFactory, failing_jobs: tuple[str, Path]) -> None:
    cluster = await make_cluster(job_modules=(failing_jobs[0],))
    status = await failed(cluster, {"job": "fails_in_reduce", "input": {"text": TEXT}})
    lines = await logs_of(cluster, status["id"], level="warning")
    (failure,) = [line for line in lines if line["event"] == "user_code_failed"]
    assert failure["actor"].startswith("reducer-")
    assert 'raise KeyError("no reducer for " + key)' in failure["fields"]["traceback"]
    assert any(line["event"] == "job_failed" and line["actor"] == "master-0" for line in lines)


async def test_unknown_jobs_actors_and_levels_are_refused(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    job = await cluster.submit({"job": "wordcount", "input": {"text": "a b"}})
    await cluster.result(job["id"])
    async with AsyncClient(cluster.url) as client:
        with pytest.raises(NotFound, match="unknown job id"):
            _ = [line async for line in client.logs("no-such-job")]
        with pytest.raises(NotFound, match="no actor named 'mapper-9'"):
            _ = [line async for line in client.logs(job["id"], actor="mapper-9")]
        with pytest.raises(BadRequest, match="level must be one of"):
            _ = [line async for line in client.logs(job["id"], level="loud")]
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/logs", params={"follow": "2"}) as response:
        assert response.status == 400 and "follow must be" in (await response.json())["message"]
    async with AsyncClient(cluster.url) as client:
        assert [line async for line in client.logs(job["id"], level="error")] == []


async def test_the_route_needs_the_api_token_and_the_actors_route_the_cluster_token(
        make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1, api_token="logs-api-secret")
    job = await cluster.submit({"job": "wordcount", "input": {"text": "a b"}},
                               headers={"Authorization": "Bearer logs-api-secret"})
    async with AsyncClient(cluster.url) as client:
        with pytest.raises(Unauthorized):
            _ = [line async for line in client.logs(job["id"])]
    async with AsyncClient(cluster.url, "logs-api-secret") as client:
        await client.job(job["id"]).wait(30)
        lines = [line async for line in client.logs(job["id"])]  # with the token: answered, no refusal
        assert all(isinstance(line, LogLine) for line in lines)
    async with cluster.session.get(f"{cluster.mappers[0].url}/internal/v1/logs/{job['id']}") as response:
        assert response.status == 401


async def test_an_unreachable_actor_is_a_line_not_a_failure(make_cluster: ClusterFactory,
                                                            failing_jobs: tuple[str, Path]) -> None:
    cluster = await make_cluster(job_modules=(failing_jobs[0],))
    status = await failed(cluster, {"job": "fails_in_map", "input": {"text": TEXT}, "split_size": 1024})
    gone = cluster.reducers[1]
    await gone.runner.cleanup()
    lines = await logs_of(cluster, status["id"])
    notes = [line for line in lines if line["event"] == "logs_unavailable"]
    assert [line["actor"] for line in notes] == [gone.settings.name]
    assert any(line["event"] == "split_failed" for line in lines)


async def test_follow_streams_until_the_job_ends(make_cluster: ClusterFactory,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="actors")  # so the job's INFO lines are made at all
    text = ("the quick brown fox\n" * 5000).encode()
    cluster = await make_cluster(allow_private_urls=True, job_log_poll=0.1)
    async with held_url(text) as (url, reading), AsyncClient(cluster.url, timeout=10) as client:
        job = await cluster.submit({"job": "wordcount", "input": {"url": url}})
        async with asyncio.timeout(30):
            await reading.wait()  # a mapper is inside the job's input: it is running
        following = asyncio.create_task(_collect(client, job["id"]))
        await asyncio.sleep(0.5)  # several polls of a running job: the follower waits on, it does not end
        assert not following.done()
        await client.job(job["id"]).cancel()
        async with asyncio.timeout(10):  # ends with the job, not at a timeout
            lines = await following
    events = [(line.actor, line.event) for line in lines]
    assert ("master-0", "job_cancelled") in events  # the last gather, after the end, has the end
    assert not [line for line in lines if line.event == "http_request"]  # requests about the job stay on stdout


async def _collect(client: AsyncClient, job_id: str) -> list[LogLine]:
    return [line async for line in client.logs(job_id, follow=True)]


# ---- the CLI, on a real process cluster --------------------------------------------------------------------------


async def test_mapreduce_logs_shows_a_failing_mappers_traceback(tmp_path: Path,
                                                                 failing_jobs: tuple[str, Path]) -> None:
    name, root = failing_jobs
    env = {"MR_JOB_MODULES": name, "PYTHONPATH": f"{root}:{Path(__file__).resolve().parent.parent}"}
    async with LocalCluster(mappers=2, reducers=1, discovery="static", data_root=str(tmp_path),
                            extra_env=env) as cluster:
        with Client(cluster.master_url) as client:
            handle = await asyncio.to_thread(client.submit, "fails_in_map", TEXT)
            final = await asyncio.to_thread(handle.wait, 60)
            assert final.state == "failed", final
            lines = await asyncio.to_thread(lambda: list(client.logs(handle.id, level="warning")))
        assert any(line.event == "split_failed" and MAP_LINE in line.fields["traceback"] for line in lines)
        shown = await mapreduce("logs", handle.id, "--url", cluster.master_url)
        assert shown.code == 0, shown.err
        failure = next(line for line in shown.out.splitlines() if " split_failed " in line)
        assert " WARNING split_failed " in failure and " mapper-" in failure
        assert "  traceback:" in shown.out and MAP_LINE in shown.out
        assert "ValueError: poisoned word poison" in shown.out
        followed = await mapreduce("logs", "-f", "--json", handle.id, "--url", cluster.master_url, timeout=60)
        assert followed.code == 0, followed.err  # the job had ended: -f ends with the lines there are
        assert any(json.loads(line)["event"] == "split_failed" for line in followed.out.splitlines())
