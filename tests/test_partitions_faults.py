"""Partitions per job against real faults and real sizes: actor processes on loopback, a reducer killed with
SIGKILL while it holds 3 of 8 partitions, and TeraSort's 1 M keys in 16 ranges."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from actors.core.keyorder import key_order
from actors.local import LocalCluster
from actors.sequential import run_sequential

from .support import DRILL_ENV, alive, make_text_file
from .test_faults import client_of, still_exact, wait_for_progress
from .test_partitions import EXAMPLES, check_total_order, entries, int_keys


async def test_a_reducer_killed_while_it_holds_3_of_8_partitions_is_exact(tmp_path: Path) -> None:
    data = make_text_file(tmp_path / "book.txt", 8, seed=18)
    pids: set[int] = set()
    async with LocalCluster(mappers=2, reducers=3, discovery="static", data_root=str(tmp_path), extra_env=DRILL_ENV,
                            log_dir=str(tmp_path / "logs"), restarts=None) as cluster, client_of(cluster) as client:
        try:
            job = await client.submit({"input": {"path": "book.txt"}, "partitions": 8})
            await wait_for_progress(client, job["id"], 10)
            cluster.signal("reducer-1", signal.SIGKILL)  # it holds partitions 1, 4 and 7
            await cluster.restart("reducer-1")
            assert await client.result(job["id"]) == run_sequential("wordcount", data)
            status = await client.status(job["id"])
            assert status["partitions"] == 8
            # Only reducer 1's partitions were re-mapped, each for the splits the new process lacked.
            assert {r["partition"] for r in status["recoveries"]} == {1, 4, 7}
            assert all(10 <= r["splits"] <= status["progress"]["splits_total"] for r in status["recoveries"])
            await still_exact(client)
        finally:
            pids.update(a.pid for a in cluster.actors if a.process is not None)
    assert not [pid for pid in pids if alive(pid)], "actor processes outlived the cluster"


@pytest.mark.slow
async def test_terasort_of_a_million_keys_leaves_no_range_empty(tmp_path: Path) -> None:
    keys = int_keys(random.Random(1), 1_000_000)
    (tmp_path / "keys.txt").write_text("".join(f"{k}\n" for k in keys), encoding="utf-8")
    env = {"MR_JOB_MODULES": EXAMPLES[0], "MR_SPLIT_SIZE": str(2 * 1024 * 1024)}
    async with LocalCluster(mappers=2, reducers=2, discovery="static", data_root=str(tmp_path), extra_env=env,
                            log_dir=str(tmp_path / "logs"), restarts=None) as cluster, client_of(cluster) as client:
        job = await client.submit({"job": "total_order_sort", "input": {"path": "keys.txt"}, "partitions": 16,
                                   "output": {"path": "sorted"}})
        await client.session.get(f"/v1/jobs/{job['id']}/result", params={"wait": "600"})
        status = await client.status(job["id"])
    assert status["state"] == "done", status
    parts = sorted((tmp_path / "sorted").glob("part-*.jsonl"))
    assert len(parts) == 16
    sizes = check_total_order(parts, keys)
    assert min(sizes) > 0, sizes
    # The sample's ranges are even: no part holds more than twice its share.
    assert max(sizes) < 2 * len(set(keys)) / 16, sizes
    assert sorted(entries(parts[0]), key=lambda e: key_order(int(e[0])))[0][0] in (min(keys), str(min(keys)))


def test_bench_partitions_runs_and_every_run_is_exact() -> None:
    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_partitions.py"
    done = subprocess.run([sys.executable, str(script), "--keys", "3000", "--partitions", "1", "4", "--json"],
                          capture_output=True, text=True, timeout=170, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads(done.stdout)
    assert [(row["kind"], row["partitions"]) for row in rows] == [("int", 1), ("int", 4), ("str", 1), ("str", 4)]
    for row in rows:
        assert row["exact"] and row["empty_parts"] == 0
        assert ("sample_ms" in row) == (row["partitions"] > 1)
