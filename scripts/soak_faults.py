#!/usr/bin/env python3
"""Randomized fault soak: many jobs on a local cluster while mappers and reducers are killed and restarted.

Every job's result must equal the sequential oracle. Bounded by --jobs and --minutes; stops by itself; loopback
only. The CI suite (tests/test_faults.py) runs a few fixed seeds of the same faults; this runs as many as you like:

    .venv/bin/python scripts/soak_faults.py --jobs 30 --seed 7
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout: its tests' drill settings
from actors.local import LocalCluster
from actors.sequential import run_sequential
from tests.support import DRILL_ENV


def make_text(path: Path, megabytes: float, rng: random.Random) -> bytes:
    vocabulary = [f"w{i}" for i in range(5000)] + ["γάμμα", "日本語", "The", "the"]
    words = rng.choices(vocabulary, k=int(megabytes * 1024 * 1024 / 5))
    data = "\n".join(" ".join(words[i : i + 12]) for i in range(0, len(words), 12)).encode()
    path.write_bytes(data)
    return data


async def one_job(cluster: LocalCluster, session: aiohttp.ClientSession, data: bytes, rng: random.Random) -> str:
    async with session.post("/v1/jobs", json={"input": {"path": "input.txt"}}) as response:
        job = await response.json()
    faults = []
    for _ in range(rng.randint(1, 3)):
        await asyncio.sleep(rng.uniform(0.05, 0.5))  # a random moment of the job: the fault's timing
        victim = rng.choice([a.name for a in cluster.actors if a.role != "master"])
        cluster.signal(victim, signal.SIGKILL)
        await cluster.restart(victim)
        faults.append(victim)
    async with session.get(f"/v1/jobs/{job['id']}/result", params={"wait": "120"}) as response:
        body = await response.json()
    if response.status != 200:
        raise SystemExit(f"job {job['id']} did not finish after killing {faults}: {body}")
    if body["result"] != run_sequential("wordcount", data):
        raise SystemExit(f"job {job['id']} is NOT exact after killing {faults}")
    return ", ".join(faults)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=10.0, help="stop starting new jobs after this long")
    parser.add_argument("--megabytes", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.minutes * 60
    done = 0
    with tempfile.TemporaryDirectory(prefix="mr-soak-") as root:
        data = make_text(Path(root) / "input.txt", args.megabytes, rng)
        async with LocalCluster(mappers=3, reducers=2, discovery="static", data_root=root, extra_env=DRILL_ENV) \
                as cluster:
            timeout = aiohttp.ClientTimeout(total=300)
            async with aiohttp.ClientSession(base_url=cluster.master_url, timeout=timeout,
                                             headers=cluster.api_headers) as session:
                for number in range(1, args.jobs + 1):
                    if time.monotonic() > deadline:
                        break
                    started = time.monotonic()
                    killed = await one_job(cluster, session, data, rng)
                    done = number
                    print(f"job {number}: exact in {time.monotonic() - started:.2f} s, killed {killed}", flush=True)
    print(f"soak passed: {done} jobs exact under faults (seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
