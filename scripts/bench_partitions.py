#!/usr/bin/env python3
"""Benchmark of total-order partitions (TeraSort's shape): what the sample costs and how even its ranges are.

For each key kind (random 64-bit integers, random 10-byte strings) it writes ``--keys`` keys, one a line, starts a
local cluster (``--mappers`` x ``--reducers``, static discovery, ``actors.jobs.examples`` loaded) and runs the
``total_order_sort`` example job for each ``--partitions`` count with an output directory. Printed per run: the
job's wall time, its phases (``sample_ms``, ``map_ms``, ``finalize_ms`` from its status), the sample's share of
the job's time, what the sample read (places, records, keys, cuts), and the part-size skew: the largest and the
smallest part against the mean (1.00 is perfectly even). Every run is checked: the parts concatenated in order
hold every key once, in the natural key order (``exact``). Ratios, not absolute times: the machines are shared.

    python scripts/bench_partitions.py                        # 1 M keys of each kind, 4 and 16 partitions
    python scripts/bench_partitions.py --keys 20000 --json    # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from actors.core.keyorder import key_order
from actors.local import LocalCluster

EXAMPLES = "actors.jobs.examples"


def make_keys(kind: str, count: int, seed: int) -> list[Any]:
    rng = random.Random(seed)
    if kind == "int":
        return [rng.randrange(-(2**63), 2**63) for _ in range(count)]
    alphabet = string.ascii_letters + string.digits
    return ["".join(rng.choices(alphabet, k=10)) for _ in range(count)]


def read_parts(directory: Path, kind: str) -> list[list[Any]]:
    """Each part's keys (an int key may be shown as its JSON text), sorted within the part in the natural order."""
    parts = []
    for path in sorted(directory.glob("part-*.jsonl")):
        keys = [json.loads(line)[0] for line in path.read_text(encoding="utf-8").splitlines()]
        parts.append(sorted((int(k) if kind == "int" else k for k in keys), key=key_order))
    return parts


async def run_one(session: aiohttp.ClientSession, root: Path, kind: str, keys: list[Any],
                  partitions: int) -> dict[str, Any]:
    out = f"out-{kind}-{partitions}"
    spec = {"job": "total_order_sort", "input": {"path": f"{kind}.txt"}, "partitions": partitions,
            "output": {"path": out}}
    started = time.perf_counter()
    async with session.post("/v1/jobs", json=spec) as response:
        job = await response.json()
        if response.status != 202:
            raise SystemExit(f"submit refused: {job}")
    async with session.get(f"/v1/jobs/{job['id']}/result", params={"wait": "3600"}) as response:
        await response.read()
    wall = time.perf_counter() - started
    async with session.get(f"/v1/jobs/{job['id']}") as response:
        status = await response.json()
    if status["state"] != "done":
        raise SystemExit(f"job failed: {status.get('error')}")
    parts = read_parts(root / out, kind)
    sizes = [len(p) for p in parts]
    flat = [k for part in parts for k in part]
    exact = flat == sorted(set(keys), key=key_order)
    mean = statistics.fmean(sizes)
    phases = status.get("phases", {})
    return {
        "kind": kind, "keys": len(keys), "partitions": partitions, "wall_s": round(wall, 3),
        **phases, "sample_share": round(phases.get("sample_ms", 0.0) / 1000 / wall, 4),
        "sample": status.get("sample", {}), "largest_vs_mean": round(max(sizes) / mean, 3),
        "smallest_vs_mean": round(min(sizes) / mean, 3), "empty_parts": sizes.count(0), "exact": exact,
    }


async def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-partitions-") as directory:
        root = Path(directory)
        inputs = {}
        for kind in args.kinds:
            inputs[kind] = make_keys(kind, args.keys, args.seed)
            (root / f"{kind}.txt").write_text("".join(f"{k}\n" for k in inputs[kind]), encoding="utf-8")
        env = {"MR_JOB_MODULES": EXAMPLES, "MR_SAMPLE_SIZE": str(args.sample_size)}
        async with LocalCluster(mappers=args.mappers, reducers=args.reducers, discovery="static",
                                data_root=str(root), extra_env=env) as cluster, \
                aiohttp.ClientSession(base_url=cluster.master_url, headers=cluster.api_headers,
                                      timeout=aiohttp.ClientTimeout(total=None)) as session:
            for kind in args.kinds:
                for partitions in args.partitions:
                    row = await run_one(session, root, kind, inputs[kind], partitions)
                    rows.append(row)
                    if not args.json:
                        print(describe(row), flush=True)
    return rows


def describe(row: dict[str, Any]) -> str:
    sample = row["sample"]
    return (f"{row['kind']:>3} keys={row['keys']} N={row['partitions']:>3}  wall {row['wall_s']:.2f} s  "
            f"sample {row.get('sample_ms', 0):.0f} ms ({100 * row['sample_share']:.1f}% of the job; "
            f"{sample.get('places', 0)} places, {sample.get('keys', 0)} keys, {sample.get('cuts', 0)} cuts)  "
            f"map {row.get('map_ms', 0):.0f} ms  finalize {row.get('finalize_ms', 0):.0f} ms  "
            f"parts largest/mean {row['largest_vs_mean']:.2f} smallest/mean {row['smallest_vs_mean']:.2f} "
            f"empty {row['empty_parts']}  exact {'yes' if row['exact'] else 'NO'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys per kind (default 1,000,000)")
    parser.add_argument("--kinds", nargs="+", choices=("int", "str"), default=["int", "str"])
    parser.add_argument("--partitions", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--mappers", type=int, default=2)
    parser.add_argument("--reducers", type=int, default=2)
    parser.add_argument("--sample-size", type=int, default=10_000, help="MR_SAMPLE_SIZE (default 10,000)")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--json", action="store_true", help="print one JSON list of the runs")
    args = parser.parse_args(argv)
    rows = asyncio.run(bench(args))
    if args.json:
        print(json.dumps(rows))
    return 0 if all(row["exact"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
