"""Master readiness: /readyz, /compute and job submission wait for every reducer ordinal 0..R-1 and a mapper.

Right after a cluster starts, DNS may list reducer-1 before reducer-0: a job planned then used to fail with a 500
("no reducer with ordinal 0 is visible"). Now the master is not ready (503, saying what it waits for) and holds
new jobs for a bounded time, then answers 503 with Retry-After — never 500.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from actors.core.config import Settings
from actors.core.errors import ConfigError
from actors.master.app import build_master
from actors.master.readiness import expected_reducers

from .conftest import FAST, Actor, actor_settings, eventually, start_actor
from .dnsserver import FakeClusterDns

PEERS = 1.0  # how long a job waits for readiness in these tests


@pytest.fixture
async def dns() -> AsyncIterator[FakeClusterDns]:
    async with FakeClusterDns() as server:
        yield server


@pytest.fixture
async def master(dns: FakeClusterDns, data_root: Path) -> AsyncIterator[Actor]:
    settings = actor_settings("master", 0, data_root, discovery="dns", dns_nameserver=dns.host, dns_port=dns.port,
                              reducer_count=2, timeouts=dataclasses.replace(FAST, peers=PEERS, discovery=1.0))
    actor = await start_actor(settings)
    try:
        yield actor
    finally:
        await actor.runner.cleanup()


def publish(dns: FakeClusterDns, reducers: list[int], mappers: list[int]) -> None:
    # Addresses nothing listens on: readiness is about what discovery shows, not about calling the peers.
    dns.set_headless_service("reducer", {f"reducer-{i}": f"127.0.0.{10 + i}" for i in reducers}, port=9)
    dns.set_headless_service("mapper", {f"mapper-{i}": f"127.0.0.{20 + i}" for i in mappers}, port=9)


async def test_readyz_is_503_until_every_reducer_ordinal_and_a_mapper_are_seen(
    dns: FakeClusterDns, master: Actor
) -> None:
    publish(dns, reducers=[1], mappers=[])  # reducer-1 first: the start-up race of the issue
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{master.url}/readyz") as response:
            body = await response.json()
        assert response.status == 503, body
        assert body["status"] == "waiting" and body["reducer_count"] == 2
        assert body["waiting_for"] == {"reducer_ordinals": [0], "mappers": 1}
        assert body["seen"] == {"reducer_ordinals": [1], "mappers": 0}
        assert "reducer ordinals [0]" in body["message"] and "MR_REDUCER_COUNT=2" in body["message"]

        publish(dns, reducers=[0, 1], mappers=[])
        async with asyncio.timeout(5):  # probes closer than COALESCE share an answer: ask again until it moves
            while True:
                async with session.get(f"{master.url}/readyz") as response:
                    body = await response.json()
                if body["waiting_for"]["reducer_ordinals"] == []:
                    break
                await asyncio.sleep(0.05)
        assert response.status == 503 and body["waiting_for"]["mappers"] == 1, body

        publish(dns, reducers=[0, 1], mappers=[0])
        async with asyncio.timeout(5):
            while True:
                async with session.get(f"{master.url}/readyz") as response:
                    if response.status == 200:
                        break
                await asyncio.sleep(0.05)
        # Latched: a reducer restarting later does not take the master out of its Service.
        publish(dns, reducers=[1], mappers=[0])
        async with session.get(f"{master.url}/readyz") as response:
            assert response.status == 200


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
@pytest.mark.parametrize("method, path", [("GET", "/compute?text=hello+world"), ("POST", "/v1/jobs")])
async def test_jobs_before_readiness_wait_then_get_503_with_retry_after(
    dns: FakeClusterDns, master: Actor, method: str, path: str
) -> None:
    publish(dns, reducers=[1], mappers=[0])
    async with aiohttp.ClientSession() as session, session.request(
        method, f"{master.url}{path}", json={"input": {"text": "hello world"}} if method == "POST" else None
    ) as response:
        body = await response.json()
        assert response.status == 503, body  # never a 500
        assert response.headers["Retry-After"] == "2"
        assert body["error"] == "unavailable"
        assert "not ready" in body["message"] and "reducer ordinals [0]" in body["message"], body
    async with aiohttp.ClientSession() as session, session.get(f"{master.url}/v1/jobs") as response:
        assert (await response.json())["jobs"] == [], "no job may start before the master is ready"


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
async def test_a_job_submitted_while_waiting_starts_once_the_cluster_appears(
    dns: FakeClusterDns, master: Actor, data_root: Path
) -> None:
    publish(dns, reducers=[1], mappers=[])
    async with aiohttp.ClientSession() as session:
        queries = len(dns.queries)

        async def submit() -> tuple[int, dict[str, object]]:
            async with session.post(f"{master.url}/v1/jobs", json={"input": {"text": "hello"}}) as response:
                return response.status, await response.json()

        waiting = asyncio.create_task(submit())
        await eventually(lambda: len(dns.queries) > queries, 5)  # the master polls discovery for ordinal 0
        assert not waiting.done()
        publish(dns, reducers=[0, 1], mappers=[0])
        status, body = await asyncio.wait_for(waiting, PEERS + 5)
        assert status == 202, body


def test_a_dns_or_mdns_master_needs_the_reducer_count() -> None:
    for mode in ("dns", "mdns"):
        settings = Settings(role="master", discovery=mode, reducer_count=0)
        with pytest.raises(ConfigError, match="MR_REDUCER_COUNT"):
            build_master(settings)
        assert expected_reducers(settings.replace(reducer_count=3)) == 3
    static = Settings(role="master", discovery="static", reducer_urls=("http://a:1", "http://b:1"))
    assert expected_reducers(static) == 2  # a static list's length is the count


def test_serve_refuses_to_start_a_master_without_the_reducer_count(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MR_", "KUBERNETES_"))}
    env.update({"TYPE": "master", "MR_DISCOVERY": "dns", "MR_HOST": "127.0.0.1", "MR_PORT": "0",
                "MR_STATE_DIR": str(tmp_path)})
    done = subprocess.run([sys.executable, "-m", "actors", "serve"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done  # a configuration mistake: exit 2, one line naming the fix
    assert "MR_REDUCER_COUNT" in done.stderr, done.stderr
