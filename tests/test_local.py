"""The local cluster and the `mapreduce` command: real processes on loopback, found by mDNS or a static list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

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


async def test_the_launcher_waits_as_long_as_its_actors_are_told_to(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The launcher's startup, peers and drain waits come from the environment its actors get, not a second copy."""
    monkeypatch.setenv("MR_TIMEOUT_DRAIN", "7")  # a user's own setting, inherited by every actor
    cluster = LocalCluster(discovery="static", log_dir=str(tmp_path), extra_env={"MR_TIMEOUT_STARTUP": "45"})
    assert (cluster.timeouts.drain, cluster.timeouts.startup) == (7.0, 45.0)
