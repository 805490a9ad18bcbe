#!/usr/bin/env python3
"""Flood a mapreduce-actors master with job submissions and measure whether ``/compute`` stays responsive.

``--jobs`` submissions (``POST /v1/jobs`` with a small text each) are sent ``--concurrency`` at a time, as fast as
the master answers; a refused one (429) is retried after its Retry-After, as a polite client would (``--retries``),
so the flood lasts until every job is in. Meanwhile one prober sends ``GET /compute`` with the original example
back to back (and ``GET /healthz`` between them) and records each latency. Reported: submissions accepted (202)
and refused (429, with Retry-After) and any other answers; ``/compute`` and ``/healthz`` latency p50/p99/max and
errors; and whether every accepted job ended with exactly the expected counts. The issue-8 target: ``/compute``
p99 under 2 s.

Without ``--url`` it starts its own local cluster (``--max-running`` / ``--max-queued`` set its admission limits);
with ``--url`` only loopback masters are accepted. Everything is bounded: job count, per-request timeout.

    python scripts/flood.py                      # 2,000 jobs at concurrency 50 against a local 3+2 cluster
    python scripts/flood.py --url http://127.0.0.1:8080 --token "$MR_API_TOKEN"
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ipaddress
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = "hello hello hello hello world world world"  # the original /compute example
TARGET_P99_S = 2.0
MAX_JOBS = 100_000


@dataclass
class Tally:
    submitted: collections.Counter[str] = field(default_factory=collections.Counter)
    accepted: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    retry_after_missing: int = 0
    compute: list[float] = field(default_factory=list)
    compute_errors: collections.Counter[str] = field(default_factory=collections.Counter)
    healthz: list[float] = field(default_factory=list)
    healthz_errors: collections.Counter[str] = field(default_factory=collections.Counter)
    results: collections.Counter[str] = field(default_factory=collections.Counter)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[min(int(rank), len(ordered)) - 1]


def text_for(i: int) -> str:
    return f"flood job{i % 97} " * (1 + i % 5) + "to be or not to be"


def counts(text: str) -> dict[str, int]:
    return dict(collections.Counter(text.split()))


class Flood:
    def __init__(self, session: aiohttp.ClientSession, url: str, token: str, timeout: float, retries: int) -> None:
        self.session = session
        self.retries = retries
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.tally = Tally()
        self.flooding = True

    async def submit(self, i: int) -> None:
        """One job; a 429 is retried after its Retry-After (jittered, at most ``self.retries`` times)."""
        text = text_for(i)
        for attempt in range(self.retries + 1):
            try:
                async with self.session.post(f"{self.url}/v1/jobs", json={"input": {"text": text}},
                                             headers=self.headers, timeout=self.timeout) as r:
                    body = await r.json(content_type=None)
                    self.tally.submitted[str(r.status)] += 1
                    if r.status == 202:
                        self.tally.accepted.append((body["id"], counts(text)))
                    if r.status != 429:
                        return
                    if "Retry-After" not in r.headers:
                        self.tally.retry_after_missing += 1
                        return
                    wait = float(r.headers["Retry-After"])
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                self.tally.submitted[f"error:{type(exc).__name__}"] += 1
                return
            if attempt < self.retries:
                await asyncio.sleep(wait * random.uniform(0.5, 1.5))  # the client's backoff, as a client should
        self.tally.submitted["gave_up"] += 1

    async def submitter(self, queue: asyncio.Queue[int]) -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await self.submit(i)

    async def probe(self) -> None:
        """Back-to-back /compute (and /healthz) while the flood lasts, one at a time."""
        expected = counts(EXAMPLE)
        while self.flooding:
            for path, params, latencies, errors in (
                ("/compute", {"text": EXAMPLE}, self.tally.compute, self.tally.compute_errors),
                ("/healthz", None, self.tally.healthz, self.tally.healthz_errors),
            ):
                started = time.perf_counter()
                try:
                    async with self.session.get(f"{self.url}{path}", params=params, headers=self.headers,
                                                timeout=self.timeout) as r:
                        body = await r.json(content_type=None)
                        ok = r.status == 200 and (path != "/compute" or body == expected)
                        if not ok:
                            errors[f"http_{r.status}" if r.status != 200 else "wrong_result"] += 1
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    errors[f"error:{type(exc).__name__}"] += 1
                    continue
                if ok:
                    latencies.append(time.perf_counter() - started)

    async def check(self, job_id: str, expected: dict[str, int]) -> None:
        try:
            async with self.session.get(f"{self.url}/v1/jobs/{job_id}/result", params={"wait": "60"},
                                        headers=self.headers,
                                        timeout=aiohttp.ClientTimeout(total=90)) as r:
                body = await r.json(content_type=None)
                verdict = "exact" if r.status == 200 and body.get("result") == expected else f"http_{r.status}"
                if r.status == 200 and verdict != "exact":
                    verdict = "wrong_result"
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            verdict = f"error:{type(exc).__name__}"
        self.tally.results[verdict] += 1

    async def run(self, jobs: int, concurrency: int) -> float:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(jobs):
            queue.put_nowait(i)
        prober = asyncio.ensure_future(self.probe())
        started = time.perf_counter()
        try:
            await asyncio.gather(*(self.submitter(queue) for _ in range(concurrency)))
        finally:
            self.flooding = False
            await prober
        elapsed = time.perf_counter() - started
        pending = list(self.tally.accepted)
        for start in range(0, len(pending), concurrency):
            await asyncio.gather(*(self.check(job_id, want) for job_id, want in pending[start:start + concurrency]))
        return elapsed


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def report(tally: Tally, elapsed: float, jobs: int, concurrency: int) -> bool:
    print(f"\n== flood: {jobs} submissions at concurrency {concurrency} in {elapsed:.1f} s")
    print("submissions: " + ", ".join(f"{k}={v}" for k, v in sorted(tally.submitted.items())))
    if tally.retry_after_missing:
        print(f"  429 answers without Retry-After: {tally.retry_after_missing}")
    for name, values, errors in (("/compute", tally.compute, tally.compute_errors),
                                 ("/healthz", tally.healthz, tally.healthz_errors)):
        print(f"{name:<9} answered {len(values):>5}  p50 {percentile(values, 50) * 1000:8.1f} ms  "
              f"p99 {percentile(values, 99) * 1000:8.1f} ms  max {max(values, default=float('nan')) * 1000:8.1f} ms"
              f"  errors: {dict(errors) or 'none'}")
    print("accepted jobs: " + (", ".join(f"{k}={v}" for k, v in sorted(tally.results.items())) or "none"))
    p99 = percentile(tally.compute, 99)
    ok = (p99 < TARGET_P99_S and not tally.compute_errors and not tally.healthz_errors
          and set(tally.results) <= {"exact"} and not tally.retry_after_missing
          and set(tally.submitted) <= {"202", "429", "gave_up"})
    verdict = "target met" if p99 < TARGET_P99_S else "TARGET MISSED"
    print(f"{verdict}: /compute p99 {p99:.3f} s {'<' if p99 < TARGET_P99_S else '>='} {TARGET_P99_S:g} s under the "
          "flood")
    print("all accepted jobs exact, no errors" if ok else "PROBLEMS: see the counts above")
    return ok


async def main_async(args: argparse.Namespace) -> int:
    async with contextlib.AsyncExitStack() as stack:
        url = args.url
        if not url:
            try:
                from actors.local import LocalCluster
            except ImportError:
                sys.path.insert(0, str(REPO))
                from actors.local import LocalCluster
            env: dict[str, Any] = {"MR_LOG_LEVEL": "WARNING"}
            if args.max_running:
                env["MR_MAX_RUNNING_JOBS"] = str(args.max_running)
            if args.max_queued is not None:
                env["MR_MAX_QUEUED_JOBS"] = str(args.max_queued)
            if args.token:
                env["MR_API_TOKEN"] = args.token
            cluster = await stack.enter_async_context(LocalCluster(
                mappers=args.mappers, reducers=args.reducers, discovery="static", extra_env=env))
            url = cluster.master_url
            print(f"flood: local cluster {args.mappers}+{args.reducers} at {url}", file=sys.stderr, flush=True)
        connector = aiohttp.TCPConnector(limit=args.concurrency + 4)
        session = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
        flood = Flood(session, url, args.token, args.timeout, args.retries)
        elapsed = await flood.run(args.jobs, args.concurrency)
        return 0 if report(flood.tally, elapsed, args.jobs, args.concurrency) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="", help="a running master (loopback only); default: start a local cluster")
    p.add_argument("--token", default=os.environ.get("MR_API_TOKEN", ""), help="API token (default $MR_API_TOKEN)")
    p.add_argument("--jobs", type=int, default=2000, help="submissions to send (default 2000)")
    p.add_argument("--concurrency", type=int, default=50, help="submissions in flight at once (default 50)")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds (default 30)")
    p.add_argument("--retries", type=int, default=20, help="retries of a 429 after its Retry-After (default 20; "
                   "0: a refused job stays refused)")
    p.add_argument("--mappers", type=int, default=3, help="own cluster: mappers (default 3)")
    p.add_argument("--reducers", type=int, default=2, help="own cluster: reducers (default 2)")
    p.add_argument("--max-running", type=int, default=0, help="own cluster: MR_MAX_RUNNING_JOBS (default: its own)")
    p.add_argument("--max-queued", type=int, default=None, help="own cluster: MR_MAX_QUEUED_JOBS (default: its own)")
    args = p.parse_args(argv)
    if not 1 <= args.jobs <= MAX_JOBS or not 1 <= args.concurrency <= 1000 or args.timeout <= 0:
        p.error(f"--jobs 1..{MAX_JOBS}, --concurrency 1..1000 and a positive --timeout")
    if args.url and not is_loopback(args.url):
        p.error(f"{args.url}: only loopback masters (127.0.0.0/8, ::1, localhost)")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
