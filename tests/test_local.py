"""The local cluster and the `mapreduce` command: real processes on loopback, found by mDNS or a static list."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from actors.core.errors import ConfigError
from actors.local import LocalCluster
from actors.sequential import run_sequential

from .support import alive

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "genesis-kjv.txt"


@pytest.mark.parametrize("discovery", ["mdns", "static"])
async def test_local_cluster_runs_jobs_and_stops_cleanly(discovery: str, tmp_path: Path) -> None:
    (tmp_path / "book.txt").write_bytes(SAMPLE.read_bytes())
    async with LocalCluster(mappers=3, reducers=2, discovery=discovery, data_root=str(tmp_path)) as cluster:  # type: ignore[arg-type]
        pids = [a.pid for a in cluster.actors]
        seen = await cluster.get_json("/v1/cluster")
        assert [p["name"] for p in seen["mappers"]] == ["mapper-0", "mapper-1", "mapper-2"]
        assert [p["name"] for p in seen["reducers"]] == ["reducer-0", "reducer-1"]
        async with aiohttp.ClientSession(base_url=cluster.master_url) as session:
            async with session.get("/compute", params={"text": "hello hello hello hello world world world"}) as r:
                assert await r.json() == {"hello": 4, "world": 3}
            async with session.post("/v1/jobs", json={"input": {"path": "book.txt"}, "split_size": 20_000}) as r:
                job = await r.json()
            async with session.get(f"/v1/jobs/{job['id']}/result", params={"wait": "60"}) as r:
                body = await r.json()
            assert body["result"] == run_sequential("wordcount", SAMPLE.read_bytes(), SAMPLE.name)
            # Without the cluster's token an internal route is refused.
            async with session.get("/internal/v1/inputs/whatever") as r:
                assert r.status == 401
        codes = await cluster.stop()
    assert all(code == 0 for code in codes.values()), codes  # SIGTERM drains and exits 0
    assert not [pid for pid in pids if alive(pid)]


def test_mapreduce_run_prints_the_counts(tmp_path: Path) -> None:
    text = "b a\nc a b a\n\nd"
    path = tmp_path / "in.txt"
    path.write_text(text)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "actors", "run", str(path), "--json", "--mappers", "2", "--reducers", "2"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == dict(Counter(text.split()))
    assert "done: 4 keys" in done.stderr

    top = subprocess.run(
        [sys.executable, "-m", "actors", "run", str(SAMPLE), "--top", "3", "--static"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )
    assert top.returncode == 0, top.stderr
    expected = Counter(SAMPLE.read_text().split()).most_common(3)
    assert top.stdout.splitlines() == [f"{count}\t{word}" for word, count in expected]


def test_mapreduce_run_reports_a_missing_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "actors", "run", str(tmp_path / "nope.txt")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 1
    assert "is not a readable file" in done.stderr


async def test_an_actor_that_cannot_start_is_named_with_its_own_one_line_reason(tmp_path: Path) -> None:
    """The launcher relays what the actor said (`mapreduce: ...`, exit status 2), not a page of its log: here the
    master's port is taken after any check the command line could make."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        cluster = LocalCluster(mappers=1, reducers=1, discovery="static", master_port=port, data_root=str(tmp_path))
        with pytest.raises(ConfigError) as error:
            async with cluster:
                pass
    assert error.value.message == (f"master-0: cannot listen on 127.0.0.1:{port}: address already in use; another "
                                   "process is listening there: stop it, or choose another port (MR_PORT)")
    assert all(actor.process is not None and actor.process.returncode is not None for actor in cluster.actors)


async def test_a_malformed_setting_stops_the_launcher_before_any_process(tmp_path: Path) -> None:
    # The launcher reads its own timeouts from the environment its actors get: a malformed one stops it when it is
    # made, before it could start a process.
    with pytest.raises(ConfigError, match="MR_TIMEOUT_LEASE"):
        LocalCluster(mappers=1, reducers=1, discovery="static", data_root=str(tmp_path),
                     extra_env={"MR_TIMEOUT_LEASE": "soon"})
    with pytest.raises(ConfigError, match="MR_MAX_ATTEMPTS"):  # an actor-only setting: refused before any process
        cluster = LocalCluster(mappers=1, reducers=1, discovery="static", data_root=str(tmp_path),
                               extra_env={"MR_MAX_ATTEMPTS": "many"})
        async with cluster:
            pass
    assert all(actor.process is None for actor in cluster.actors)


async def test_the_launcher_waits_as_long_as_its_actors_are_told_to(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The launcher's startup, peers and drain waits come from the environment its actors get, not a second copy."""
    monkeypatch.setenv("MR_TIMEOUT_DRAIN", "7")  # a user's own setting, inherited by every actor
    cluster = LocalCluster(discovery="static", log_dir=str(tmp_path), extra_env={"MR_TIMEOUT_STARTUP": "45"})
    assert (cluster.timeouts.drain, cluster.timeouts.startup) == (7.0, 45.0)
