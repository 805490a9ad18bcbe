"""GET /metrics on every actor: real jobs on loopback, scraped and parsed, move each counter by exactly its amount."""

from __future__ import annotations

import asyncio
import dataclasses
import platform
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import actors
from actors.core import wire
from actors.core.messages import Commit, Data, Release, StreamHeader, to_wire
from actors.discovery import Peer, PeerRole
from actors.jobs import get_job, job_names
from actors.mapper.spool import Spool
from actors.master.keys import REGISTRY
from actors.net.metrics import METRICS, PEERS_FRESH, MapperMetrics, MasterMetrics, Metrics
from actors.reducer.app import BUDGET
from actors.sequential import run_sequential

from .conftest import FAST, TOKEN, Actor, Cluster, ClusterFactory, HeldInputFactory, eventually
from .fakes import FakeClock

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CAP = 16 * 1024 * 1024
WORDS = ["alpha", "beta", "γάμμα", "日本語", "naïve", "x", "The", "the"]


def text_of(seed: int, lines: int) -> str:
    rng = random.Random(seed)
    return "\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 9))) for _ in range(lines)) + "\n"


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; a labelled series not yet created reads 0, as Prometheus' increase() would."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape_text(session: aiohttp.ClientSession, actor: Actor) -> str:
    async with session.get(actor.url + "/metrics") as response:  # no token: /metrics is open
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        return await response.text()


async def scrape(session: aiohttp.ClientSession, actor: Actor) -> Samples:
    return parse(await scrape_text(session, actor))


def local_samples(actor: Actor) -> Samples:
    """The actor's registry read in-process, for a wait that must not add requests of its own."""
    return parse(generate_latest(actor.app[METRICS].registry).decode())


async def ended(cluster: Cluster, job_id: str) -> None:
    """Wait (bounded) until the job's task has ended: it counts the job as it ends, just after the result is
    answered, and has released the job's state on the reducers by then."""
    registry = cluster.master.app[REGISTRY]
    await registry.wait_cancelled(registry.get(job_id), timeout=20.0)  # waits for the task, however it ends


class Scrapes:
    """Every actor of a cluster scraped once: sums over the mappers or the reducers."""

    def __init__(self, master: Samples, mappers: list[Samples], reducers: list[Samples]) -> None:
        self.master, self.mappers, self.reducers = master, mappers, reducers

    @classmethod
    async def of(cls, cluster: Cluster) -> Scrapes:
        session = cluster.session
        return cls(await scrape(session, cluster.master), [await scrape(session, a) for a in cluster.mappers],
                   [await scrape(session, a) for a in cluster.reducers])

    def mapper(self, name: str, **labels: str) -> float:
        return sum(value(s, name, **labels) for s in self.mappers)

    def reducer(self, name: str, **labels: str) -> float:
        return sum(value(s, name, **labels) for s in self.reducers)

    def moved(self, before: Scrapes, where: str, name: str, **labels: str) -> float:
        if where == "master":
            return value(self.master, name, **labels) - value(before.master, name, **labels)
        total = self.mapper if where == "mappers" else self.reducer
        earlier = before.mapper if where == "mappers" else before.reducer
        return total(name, **labels) - earlier(name, **labels)


# ---------------------------------------------------------------------------------------------- a faulty input


class FlakyInput:
    """A URL input served like an object store (HEAD, byte ranges) whose next ``failing`` reads answer 500: a fake
    at the world's edge that makes a split attempt fail on demand."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.failing = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        size = len(self.data)
        if request.method == "HEAD":
            return web.Response(headers={"Accept-Ranges": "bytes", "Content-Length": str(size)})
        if self.failing > 0:
            self.failing -= 1
            return web.Response(status=500, text="injected failure")
        first = int(request.headers.get("Range", "bytes=0-")[len("bytes="):].partition("-")[0])
        return web.Response(status=206, body=self.data[first:],
                            headers={"Accept-Ranges": "bytes", "Content-Range": f"bytes {first}-{size - 1}/{size}"})


@pytest.fixture
async def flaky_input() -> AsyncIterator[Callable[[bytes], Awaitable[FlakyInput]]]:
    runners: list[web.AppRunner] = []

    async def serve(data: bytes) -> FlakyInput:
        flaky = FlakyInput(data)
        app = web.Application()
        app.router.add_route("*", "/{name}", flaky.handle)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        flaky.url = f"http://127.0.0.1:{runner.addresses[0][1]}/input.txt"
        runners.append(runner)
        return flaky

    yield serve
    for runner in runners:
        await runner.cleanup()


async def finish(cluster: Cluster, job_id: str) -> dict[str, Any]:
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job_id}/result", params={"wait": "60"}) as response:
        await response.read()
    return await cluster.status(job_id)


# ---------------------------------------------------------------------------------------------- real jobs


async def test_a_done_job_moves_every_counter_by_exactly_its_amount(make_cluster: ClusterFactory,
                                                                    data_root: Path) -> None:
    # No backups: on a busy machine a backup attempt would (rightly) add attempts and duplicate streams.
    cluster = await make_cluster(mappers=2, reducers=2, backup_tasks=False)
    text = text_of(7, 4000)
    data = text.encode()
    (data_root / "in.txt").write_bytes(data)
    before = await Scrapes.of(cluster)
    job = await cluster.submit({"input": {"path": "in.txt"}, "split_size": 4096})
    assert await cluster.result(job["id"]) == run_sequential("wordcount", data)
    splits = (await cluster.status(job["id"]))["progress"]["splits_total"]
    assert splits > 4
    await ended(cluster, job["id"])
    after = await Scrapes.of(cluster)

    # The master: one job done (by NAME), its duration observed once, every split's one attempt counted ok.
    assert after.moved(before, "master", "mapreduce_jobs_total", job="wordcount", state="done") == 1
    assert after.moved(before, "master", "mapreduce_job_duration_seconds_count", job="wordcount") == 1
    assert after.moved(before, "master", "mapreduce_split_attempts_total", outcome="ok") == splits
    for outcome in ("failed", "backup", "stale"):
        assert after.moved(before, "master", "mapreduce_split_attempts_total", outcome=outcome) == 0
    assert after.moved(before, "master", "mapreduce_reducer_recoveries_total") == 0
    assert value(after.master, "mapreduce_jobs_running") == value(after.master, "mapreduce_jobs_queued") == 0
    assert value(after.master, "mapreduce_peers_visible", role="mapper") == 2
    assert value(after.master, "mapreduce_peers_visible", role="reducer") == 2
    assert after.moved(before, "master", "mapreduce_http_requests_total", route="/v1/jobs", status="202") == 1
    assert after.moved(before, "master", "mapreduce_http_requests_total", route="/v1/jobs/{id}/result",
                       status="200") == 1

    # The mappers: every owned byte read once, every split done once, one assignment request each.
    assert after.moved(before, "mappers", "mapreduce_mapper_bytes_read_total") == len(data)
    assert after.moved(before, "mappers", "mapreduce_mapper_splits_done_total") == splits
    assert after.moved(before, "mappers", "mapreduce_mapper_splits_failed_total") == 0
    assert after.moved(before, "mappers", "mapreduce_shuffle_send_retries_total") == 0
    assert after.moved(before, "mappers", "mapreduce_http_requests_total", route="/internal/v1/assign",
                       status="200") == splits
    assert after.mapper("mapreduce_shuffle_bytes_sent_total") > 0
    assert after.mapper("mapreduce_mapper_spool_disk_bytes") == 0

    # Time per split and per stream: each histogram observed exactly once per split, stream or request.
    assert after.moved(before, "master", "mapreduce_split_attempt_duration_seconds_count", outcome="ok") == splits
    for end in ("failed", "superseded"):
        assert after.moved(before, "master", "mapreduce_split_attempt_duration_seconds_count", outcome=end) == 0
    assert after.moved(before, "master", "mapreduce_split_leases_expired_total") == 0
    assert after.moved(before, "mappers", "mapreduce_shuffle_send_duration_seconds_count") == splits * 2
    assert after.moved(before, "reducers", "mapreduce_reducer_stream_duration_seconds_count",
                       outcome="committed") == splits * 2
    assert after.moved(before, "master", "mapreduce_http_request_duration_seconds_count", route="/v1/jobs",
                       method="POST") == 1
    assert after.moved(before, "mappers", "mapreduce_http_request_duration_seconds_count",
                       route="/internal/v1/assign", method="POST") == splits
    assert after.moved(before, "reducers", "mapreduce_http_request_duration_seconds_count",
                       route="/internal/v1/shuffle", method="POST") == splits * 2

    # The reducers: one committed stream per split and partition, nothing else.
    assert after.moved(before, "reducers", "mapreduce_reducer_streams_total", outcome="committed") == splits * 2
    for outcome in ("duplicate", "cut", "rejected"):
        assert after.moved(before, "reducers", "mapreduce_reducer_streams_total", outcome=outcome) == 0
    assert after.reducer("mapreduce_reducer_staging_bytes") == 0
    assert after.moved(before, "reducers", "mapreduce_reducer_staging_waits_total") == 0
    assert after.moved(before, "reducers", "mapreduce_http_requests_total", route="/internal/v1/shuffle",
                       status="200") == splits * 2
    assert after.reducer("mapreduce_reducer_keys_held") == 0  # the master released the job on every reducer

    # Low cardinality and nothing secret: no job id, no token, no input name anywhere.
    for actor in [cluster.master, *cluster.mappers, *cluster.reducers]:
        exposition = await scrape_text(cluster.session, actor)
        assert job["id"] not in exposition and TOKEN not in exposition and "in.txt" not in exposition


async def test_shuffle_bytes_sent_are_the_acknowledged_data_frames(make_cluster: ClusterFactory) -> None:
    # One split, one flush (a key budget above the text's keys): the spool the test builds is the mapper's.
    cluster = await make_cluster(mappers=2, reducers=2, backup_tasks=False, key_budget=1_000_000)
    text = text_of(3, 2000)
    settings = cluster.mappers[0].settings
    spool = Spool(get_job("wordcount"), 2, settings.key_budget, settings.frame_cap, frame_keys=settings.frame_keys,
                  max_key=settings.max_key)
    spool.map(text, "text")
    spool.flush()
    expected = sum(spool.sizes)
    spool.close()
    before = await Scrapes.of(cluster)
    job = await cluster.submit({"input": {"text": text}})
    assert await cluster.result(job["id"]) == run_sequential("wordcount", text.encode())
    after = await Scrapes.of(cluster)
    assert (await cluster.status(job["id"]))["progress"]["splits_total"] == 1
    assert after.moved(before, "mappers", "mapreduce_shuffle_bytes_sent_total") == expected > 0


async def test_a_retried_split_and_a_failed_job(make_cluster: ClusterFactory,
                                                flaky_input: Callable[[bytes], Awaitable[FlakyInput]]) -> None:
    cluster = await make_cluster(mappers=2, reducers=2, backup_tasks=False, allow_private_urls=True, max_attempts=3)
    data = text_of(11, 500).encode()
    source = await flaky_input(data)

    # The first read fails: the split's first attempt fails, its second is ok, the job is done and exact.
    source.failing = 1
    before = await Scrapes.of(cluster)
    job = await cluster.submit({"input": {"url": source.url}})
    assert await cluster.result(job["id"]) == run_sequential("wordcount", data)
    status = await cluster.status(job["id"])
    assert status["progress"]["splits_total"] == 1 and status["attempts"]["retries"] == 1
    await ended(cluster, job["id"])
    after = await Scrapes.of(cluster)
    assert after.moved(before, "master", "mapreduce_split_attempts_total", outcome="failed") == 1
    assert after.moved(before, "master", "mapreduce_split_attempts_total", outcome="ok") == 1
    assert after.moved(before, "master", "mapreduce_split_attempt_duration_seconds_count", outcome="failed") == 1
    assert after.moved(before, "master", "mapreduce_split_attempt_duration_seconds_count", outcome="ok") == 1
    assert after.moved(before, "master", "mapreduce_split_leases_expired_total") == 0  # it failed, it did not stall
    assert after.moved(before, "mappers", "mapreduce_mapper_splits_failed_total") == 1
    assert after.moved(before, "mappers", "mapreduce_mapper_splits_done_total") == 1
    assert after.moved(before, "reducers", "mapreduce_reducer_streams_total", outcome="committed") == 2

    # Every read fails: each of the MR_MAX_ATTEMPTS attempts fails, then the job.
    source.failing = 1_000
    before = after
    job = await cluster.submit({"input": {"url": source.url}})
    status = await finish(cluster, job["id"])
    assert status["state"] == "failed" and "failed 3 attempts" in status["error"]
    await ended(cluster, job["id"])
    after = await Scrapes.of(cluster)
    assert after.moved(before, "master", "mapreduce_jobs_total", job="wordcount", state="failed") == 1
    assert after.moved(before, "master", "mapreduce_jobs_total", job="wordcount", state="done") == 0
    assert after.moved(before, "master", "mapreduce_job_duration_seconds_count", job="wordcount") == 1
    assert after.moved(before, "master", "mapreduce_split_attempts_total", outcome="failed") == 3
    assert after.moved(before, "master", "mapreduce_split_attempts_total", outcome="ok") == 0
    assert after.moved(before, "master", "mapreduce_split_attempt_duration_seconds_count", outcome="failed") == 3
    assert after.moved(before, "mappers", "mapreduce_shuffle_send_duration_seconds_count") == 0
    assert after.moved(before, "mappers", "mapreduce_mapper_splits_failed_total") == 3
    assert after.moved(before, "mappers", "mapreduce_mapper_bytes_read_total") == 0
    assert after.moved(before, "reducers", "mapreduce_reducer_streams_total", outcome="committed") == 0


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
async def test_a_stalled_split_expires_its_lease_once(make_cluster: ClusterFactory,
                                                      held_input: HeldInputFactory) -> None:
    lease = 1.0
    cluster = await make_cluster(mappers=2, reducers=2, backup_tasks=False, allow_private_urls=True,
                                 timeouts=dataclasses.replace(FAST, lease=lease))
    data = text_of(5, 300).encode()
    source = await held_input(data)
    source.hold_next_read(0, 0)  # the first attempt's read stops mid-split: no progress, its lease runs out
    before = await Scrapes.of(cluster)
    job = await cluster.submit({"input": {"url": source.url}})
    assert await cluster.result(job["id"]) == run_sequential("wordcount", data)
    await ended(cluster, job["id"])
    after = await Scrapes.of(cluster)
    assert after.moved(before, "master", "mapreduce_split_leases_expired_total") == 1
    # The stalled attempt ends as lease_expired (its own label, as in its status), not as a plain failure.
    assert after.moved(before, "master", "mapreduce_split_attempt_duration_seconds_count", outcome="lease_expired") == 1
    assert after.moved(before, "master", "mapreduce_split_attempt_duration_seconds_count", outcome="failed") == 0
    assert after.moved(before, "master", "mapreduce_split_attempt_duration_seconds_count", outcome="ok") == 1
    # The stalled attempt was timed to its lease's end: at least one lease, in the buckets at or above it.
    assert after.moved(before, "master", "mapreduce_split_attempt_duration_seconds_sum",
                       outcome="lease_expired") >= lease
    assert after.moved(before, "master", "mapreduce_split_attempt_duration_seconds_bucket", outcome="lease_expired",
                       le="0.5") == 0


async def test_running_queued_and_cancelled_jobs(make_cluster: ClusterFactory, held_input: HeldInputFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1, allow_private_urls=True, max_running_jobs=1)
    source = await held_input(b"word " * 20_000)
    source.hold_all = True
    held = await cluster.submit({"input": {"url": source.url}})
    await source.held(1)  # the job's only split is held mid-read: it is certainly running
    queued = await cluster.submit({"input": {"text": "a b a"}})
    samples = await scrape(cluster.session, cluster.master)
    assert value(samples, "mapreduce_jobs_running") == 1
    assert value(samples, "mapreduce_jobs_queued") == 1
    async with cluster.session.delete(f"{cluster.url}/v1/jobs/{held['id']}") as response:
        assert (await response.json())["state"] == "cancelled"
    source.release_all()
    assert await cluster.result(queued["id"]) == {"a": 2, "b": 1}
    await ended(cluster, held["id"])
    await ended(cluster, queued["id"])
    samples = await scrape(cluster.session, cluster.master)
    assert value(samples, "mapreduce_jobs_total", job="wordcount", state="cancelled") == 1
    assert value(samples, "mapreduce_jobs_total", job="wordcount", state="done") == 1
    assert value(samples, "mapreduce_job_duration_seconds_count", job="wordcount") == 2
    assert value(samples, "mapreduce_jobs_running") == value(samples, "mapreduce_jobs_queued") == 0


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
async def test_a_full_staging_budget_counts_a_wait_and_a_send_retry(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=2, backup_tasks=False)
    budget = cluster.reducers[0].app[BUDGET]
    before = await Scrapes.of(cluster)
    # The test holds reducer 0's whole budget: the mapper's stream waits MR_TIMEOUT_STAGE_WAIT, gets 503, retries.
    async with budget.reserve(budget.capacity, timeout=1.0):
        text = " ".join(f"w{i % 40}" for i in range(400))  # keys in both partitions: no stream is empty
        job = await cluster.submit({"input": {"text": text}})
        held = await scrape(cluster.session, cluster.reducers[0])
        assert value(held, "mapreduce_reducer_staging_bytes") == budget.capacity
        await eventually(lambda: value(local_samples(cluster.mappers[0]), "mapreduce_shuffle_send_retries_total") >= 1,
                         timeout=20.0)
    assert await cluster.result(job["id"]) == {f"w{i}": 10 for i in range(40)}
    after = await Scrapes.of(cluster)
    assert after.moved(before, "mappers", "mapreduce_shuffle_send_retries_total") == 1
    assert after.moved(before, "reducers", "mapreduce_reducer_streams_total", outcome="rejected") == 1
    assert after.moved(before, "reducers", "mapreduce_reducer_streams_total", outcome="committed") == 2
    assert after.moved(before, "reducers", "mapreduce_reducer_stream_duration_seconds_count", outcome="rejected") == 1
    assert after.moved(before, "mappers", "mapreduce_shuffle_send_duration_seconds_count") == 2  # acknowledged only
    assert after.moved(before, "reducers", "mapreduce_reducer_staging_waits_total") >= 1
    assert after.moved(before, "reducers", "mapreduce_http_requests_total", route="/internal/v1/shuffle",
                       status="503") == 1
    assert after.reducer("mapreduce_reducer_staging_bytes") == 0


# ---------------------------------------------------------------------------------------------- a reducer's streams


def stream(split: int, items: dict[str, int], partition: int = 0, partitions: int = 1, commit: bool = True) -> bytes:
    header = StreamHeader(job="j1", epoch=1, split=split, attempt=1, partition=partition, partitions=partitions,
                          job_name="wordcount", size=10_000)
    body = wire.frame(to_wire(header), CAP) + wire.frame(to_wire(Data(items)), CAP)
    if commit:
        body += wire.frame(to_wire(Commit(frames=1, keys=len(items), checksum=sum(items.values()))), CAP)
    return body


async def test_committed_duplicate_cut_and_rejected_streams(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    reducer = cluster.reducers[0]

    async def post(body: bytes, path: str = "/internal/v1/shuffle") -> int:
        async with cluster.session.post(reducer.url + path, data=body, headers=AUTH) as response:
            await response.read()
            return response.status

    assert await post(stream(0, {"a": 2, "b": 1})) == 200
    assert await post(stream(0, {"a": 2, "b": 1})) == 200  # a replay: duplicate
    assert await post(stream(1, {"c": 1}, commit=False)) == 400  # ended before its COMMIT: cut
    assert await post(stream(1, {"c": 1})[:-3]) == 400  # ended inside a frame: cut
    assert await post(stream(1, {"c": 1}, partition=1, partitions=2)) == 409  # misrouted: rejected
    samples = await scrape(cluster.session, reducer)
    for outcome, count in {"committed": 1, "duplicate": 1, "cut": 2, "rejected": 1}.items():
        assert value(samples, "mapreduce_reducer_streams_total", outcome=outcome) == count, outcome
        assert value(samples, "mapreduce_reducer_stream_duration_seconds_count", outcome=outcome) == count, outcome
    assert value(samples, "mapreduce_http_request_duration_seconds_count", route="/internal/v1/shuffle",
                 method="POST") == 5
    assert value(samples, "mapreduce_reducer_keys_held") == 2
    assert value(samples, "mapreduce_http_requests_total", route="/internal/v1/shuffle", status="200") == 2
    assert await post(wire.encode(to_wire(Release(job="j1", epoch=1))), "/internal/v1/release") == 200
    assert value(await scrape(cluster.session, reducer), "mapreduce_reducer_keys_held") == 0


# ---------------------------------------------------------------------------------------------- the endpoint


async def test_metrics_needs_no_token_while_the_api_does(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1, api_token="public-secret")
    for actor in [cluster.master, *cluster.mappers, *cluster.reducers]:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with cluster.session.get(actor.url + "/metrics", headers=headers) as response:
                assert response.status == 200
                exposition = await response.text()
        assert "public-secret" not in exposition and TOKEN not in exposition
        assert "mapreduce_http_requests_total" in exposition
    async with cluster.session.get(cluster.url + "/v1/jobs") as response:
        assert response.status == 401
    samples = await scrape(cluster.session, cluster.master)
    assert value(samples, "mapreduce_http_requests_total", route="/v1/jobs", status="401") == 1


async def test_every_actor_shows_its_build_and_its_process_and_no_created_samples(
        make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    for actor, role in [(cluster.master, "master"), (cluster.mappers[0], "mapper"), (cluster.reducers[0], "reducer")]:
        exposition = await scrape_text(cluster.session, actor)
        samples = parse(exposition)
        assert value(samples, "mapreduce_build_info", version=actors.__version__, role=role,
                     python=platform.python_version()) == 1
        assert value(samples, "process_resident_memory_bytes") > 0  # the process collector, from /proc
        assert value(samples, "process_start_time_seconds") > 0
        assert [name for name, _ in samples if name.startswith("python_info")]
        assert not [name for name, _ in samples if name.endswith("_created")], "created samples are off"
        assert "_created" not in exposition


async def test_request_latency_is_by_route_pattern_and_a_known_method(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    before = await scrape(cluster.session, cluster.master)
    for path in ("/v1/jobs/some-unknown-id-1", "/v1/jobs/some-unknown-id-2"):
        async with cluster.session.get(cluster.url + path) as response:
            assert response.status == 404
    async with cluster.session.request("PROPFIND", cluster.url + "/healthz") as response:
        assert response.status == 405
    samples = await scrape(cluster.session, cluster.master)

    def moved(**labels: str) -> float:
        name = "mapreduce_http_request_duration_seconds_count"
        return value(samples, name, **labels) - value(before, name, **labels)

    assert moved(route="/v1/jobs/{id}", method="GET") == 2
    assert moved(route="(no route)", method="other") == 1  # an unknown method is one label, not a new one each
    assert not [labels for name, labels in samples if ("method", "PROPFIND") in labels]


async def test_requests_are_counted_by_route_pattern_never_by_path(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    for path in ("/no/such/place-1", "/no/such/place-2", "/v1/jobs/some-unknown-id-1", "/v1/jobs/some-unknown-id-2"):
        async with cluster.session.get(cluster.url + path) as response:
            assert response.status == 404
    exposition = await scrape_text(cluster.session, cluster.master)
    assert "place-1" not in exposition and "some-unknown-id" not in exposition
    samples = parse(exposition)
    assert value(samples, "mapreduce_http_requests_total", route="(no route)", status="404") == 2
    assert value(samples, "mapreduce_http_requests_total", route="/v1/jobs/{id}", status="404") == 2


# ---------------------------------------------------------------------------------------------- the parts alone


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    MasterMetrics(first).job_finished("wordcount", "done", 1.5)
    MasterMetrics(second)  # the same names again: no clash, because no registry is shared
    one, other = parse(generate_latest(first.registry).decode()), parse(generate_latest(second.registry).decode())
    assert value(one, "mapreduce_jobs_total", job="wordcount", state="done") == 1
    assert value(other, "mapreduce_jobs_total", job="wordcount", state="done") == 0


def test_only_final_states_are_counted_as_finished_jobs() -> None:
    metrics = Metrics()
    master = MasterMetrics(metrics)
    master.job_finished("wordcount", "running", 1.0)  # a job's task that ended without a final state
    samples = parse(generate_latest(metrics.registry).decode())
    assert value(samples, "mapreduce_job_duration_seconds_count", job="wordcount") == 0
    assert not [key for key in samples if key[0] == "mapreduce_jobs_total"]


async def test_every_known_job_has_its_series_from_the_start(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    samples = await scrape(cluster.session, cluster.master)
    for job in job_names():
        for state in ("done", "failed", "cancelled"):
            assert samples[("mapreduce_jobs_total", frozenset({("job", job), ("state", state)}))] == 0
        assert samples[("mapreduce_job_duration_seconds_count", frozenset({("job", job)}))] == 0


def test_spool_bytes_on_disk_are_read_at_scrape_time() -> None:
    metrics = Metrics()
    mapper = MapperMetrics(metrics)
    spool = Spool(get_job("wordcount"), 2, key_budget=10, frame_cap=CAP, memory_limit=1024)
    mapper.spools.add(spool)
    try:
        spool.map(" ".join(f"w{i}" for i in range(5000)), "text")
        spool.flush()
        on_disk = [size for size in spool.sizes if size > 1024]
        assert on_disk  # both partitions passed the memory limit: their files moved to disk
        samples = parse(generate_latest(metrics.registry).decode())
        assert value(samples, "mapreduce_mapper_spool_disk_bytes") == sum(on_disk) == spool.disk_bytes
    finally:
        mapper.spools.discard(spool)
        spool.close()
    assert value(parse(generate_latest(metrics.registry).decode()), "mapreduce_mapper_spool_disk_bytes") == 0


class CountingDiscovery:
    """Static peers that count how often they are asked."""

    def __init__(self) -> None:
        self.asked = 0
        self.mappers = 2

    async def peers(self, role: PeerRole) -> list[Peer]:
        self.asked += 1
        await asyncio.sleep(0)  # a look-up takes a moment: concurrent scrapes overlap it
        count = self.mappers if role == "mapper" else 1
        return [Peer(i, role, f"{role}-{i}", f"http://127.0.0.1:{9000 + i}") for i in range(count)]

    async def wait_for(self, role: PeerRole, count: int, timeout: float) -> list[Peer]:
        return await self.peers(role)


async def test_a_flood_of_scrapes_makes_one_discovery_look_up_per_interval() -> None:
    clock = FakeClock()
    metrics = Metrics()
    master = MasterMetrics(metrics, clock=clock)
    discovery = CountingDiscovery()
    await asyncio.gather(*(master.count_peers(discovery, timeout=1.0) for _ in range(50)))
    assert discovery.asked == 2  # one look-up per role, shared by all fifty
    discovery.mappers = 3
    clock.advance(PEERS_FRESH - 0.1)
    await master.count_peers(discovery, timeout=1.0)
    assert discovery.asked == 2
    assert value(parse(generate_latest(metrics.registry).decode()), "mapreduce_peers_visible", role="mapper") == 2
    clock.advance(0.2)
    await master.count_peers(discovery, timeout=1.0)
    assert discovery.asked == 4
    assert value(parse(generate_latest(metrics.registry).decode()), "mapreduce_peers_visible", role="mapper") == 3


class StalledDiscovery:
    """Discovery that never answers (a DNS server that went silent)."""

    async def peers(self, role: PeerRole) -> list[Peer]:
        await asyncio.Event().wait()
        return []

    async def wait_for(self, role: PeerRole, count: int, timeout: float) -> list[Peer]:
        return await self.peers(role)


async def test_counting_peers_is_bounded_and_keeps_the_last_values() -> None:
    metrics = Metrics()
    master = MasterMetrics(metrics)
    master.peers.labels("mapper").set(3)
    async with asyncio.timeout(5.0):
        await master.count_peers(StalledDiscovery(), timeout=0.05)
    assert value(parse(generate_latest(metrics.registry).decode()), "mapreduce_peers_visible", role="mapper") == 3
