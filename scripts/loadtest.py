#!/usr/bin/env python3
"""Open-loop load test of a mapreduce-actors master: many small jobs at a target rate.

Requests are sent on a fixed schedule (``--rate`` per second) whatever the answers do, and each latency is
measured from the request's *scheduled* time, so a slow server cannot hide its queueing (no coordinated
omission). Two kinds of small job, mixed by ``--mix``:

- ``compute``: the original trigger, ``GET /compute?text=<the original example>``;
- ``text``: ``POST /v1/jobs`` with a ~10 KB ``{"text": ...}`` input, then ``GET /v1/jobs/{id}/result?wait=S``.

Every answer is checked against the exact expected counts (a wrong answer is an error of kind
``wrong_result``). Reported: jobs/s achieved, latency p50/p90/p99/p99.9/max per kind, errors by kind.

Modes: a fixed rate (default, open loop), ``--clients N`` (closed loop: N clients, each sending its next request
as soon as its last one was answered, for ``--duration``: the throughput the cluster sustains, and the latency
each request saw from its own send), ``--ramp`` (raise the rate step by step until the master no longer keeps up:
the saturation rate), ``--soak MINUTES`` (a long run at ``--rate`` reporting every actor's RSS and open file
descriptors at the start and the end). Every phase also reports each actor's CPU time per answered job (from
``/proc/<pid>/stat``, when the actors run on this machine): where a small job's time goes. Without ``--url`` it
starts its own local cluster (and so knows the actors' pids); with ``--url`` it finds the actors' pids through
the master's ``/v1/cluster`` and the listening sockets in ``/proc`` when they run on this machine. Only loopback
addresses are accepted (a port-forwarded cluster is on loopback too). Everything is bounded: request count,
duration, per-request timeout.

    python scripts/loadtest.py --rate 150 --duration 20
    python scripts/loadtest.py --clients 32 --duration 20
    python scripts/loadtest.py --ramp
    python scripts/loadtest.py --url http://127.0.0.1:8080 --token "$MR_API_TOKEN" --soak 10 --rate 50
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ipaddress
import json
import os
import random
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "genesis-kjv.txt"  # in the repository, next to this script: no outside path
EXAMPLE = "hello hello hello hello world world world"  # the original /compute example
MAX_DURATION = 3600.0

# Targets from issue 11 (small jobs on the default local cluster, 3 mappers + 2 reducers): /compute p99 at most
# 50 ms at 150 jobs/s offered (open loop), and at least 400 jobs/s answered with 32 closed-loop clients; no errors.
TARGET_RATE = 150.0
TARGET_P99_MS = 50.0
TARGET_SUSTAINED = 150.0  # --ramp: the rate that must still keep up
TARGET_CLIENTS = 32
TARGET_CLOSED_JOBS = 400.0
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# ---------------------------------------------------------------------------------------------------- workload


def ten_kb_texts(count: int = 16, size: int = 10_000) -> list[str]:
    """Deterministic ~10 KB texts cut on line boundaries from the sample text (or made up if it is missing)."""
    source = SAMPLE.read_text("utf-8") if SAMPLE.is_file() else ""
    if not source:
        rng = random.Random(1)
        source = "\n".join(" ".join(rng.choice(["alpha", "beta", "gamma", "delta", "omega"]) for _ in range(12))
                           for _ in range(5000))
    texts, pos = [], 0
    for _ in range(count):
        end = source.find("\n", pos + size)
        if end < 0:
            pos, end = 0, source.find("\n", size)
        texts.append(source[pos:end + 1])
        pos = end + 1
    return texts


@dataclass
class Outcome:
    kind: str
    scheduled: float
    latency: float = 0.0
    error: str = ""


@dataclass
class Stats:
    rate: float  # offered jobs/s (open loop); 0 for a closed loop
    duration: float
    outcomes: list[Outcome] = field(default_factory=list)
    elapsed: float = 0.0  # from the first scheduled send to the last answer
    clients: int = 0  # closed loop: how many clients
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds each actor (and this client) used

    def summary(self) -> dict[str, Any]:
        by_kind: dict[str, Any] = {}
        for kind in [*sorted({o.kind for o in self.outcomes}), "all"]:
            chosen = [o for o in self.outcomes if kind in ("all", o.kind)]
            ok = sorted(o.latency for o in chosen if not o.error)
            errors = collections.Counter(o.error for o in chosen if o.error)
            by_kind[kind] = {
                "sent": len(chosen), "ok": len(ok), "errors": dict(errors),
                "jobs_per_s": len(ok) / self.elapsed if self.elapsed else 0.0,
                **{f"p{q:g}_ms": percentile(ok, q) * 1000 for q in (50, 90, 99, 99.9)},
                "max_ms": ok[-1] * 1000 if ok else float("nan"),
            }
        answered = by_kind["all"]["ok"]
        cpu_ms = {name: seconds * 1000 / answered for name, seconds in self.cpu.items()} if answered else {}
        return {"target_rate": self.rate, "clients": self.clients, "duration": self.duration,
                "elapsed": self.elapsed, "kinds": by_kind, "cpu_ms_per_job": cpu_ms}


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[min(int(rank), len(ordered)) - 1]


class Load:
    """Sends one request at a time on schedule; each request is its own task."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str, mix: list[str], timeout: float,
                 max_inflight: int) -> None:
        self.session = session
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.mix = mix
        self.timeout = timeout
        self.max_inflight = max_inflight
        self.inflight = 0
        self.texts = ten_kb_texts()
        self.expected_texts = [dict(collections.Counter(t.split())) for t in self.texts]
        self.expected_example = dict(collections.Counter(EXAMPLE.split()))

    async def _compute(self) -> str:
        async with self.session.get(f"{self.url}/compute", params={"text": EXAMPLE}, headers=self.headers) as r:
            if r.status != 200:
                return f"http_{r.status}"
            return "" if await r.json() == self.expected_example else "wrong_result"

    async def _text(self, i: int) -> str:
        spec = {"job": "wordcount", "input": {"text": self.texts[i % len(self.texts)]}}
        async with self.session.post(f"{self.url}/v1/jobs", json=spec, headers=self.headers) as r:
            if r.status != 202:
                return f"submit_http_{r.status}"
            job_id = (await r.json())["id"]
        wait = max(1, int(self.timeout))
        async with self.session.get(f"{self.url}/v1/jobs/{job_id}/result", params={"wait": str(wait)},
                                    headers=self.headers) as r:
            if r.status != 200:
                return f"result_http_{r.status}"
            body = await r.json()
        return "" if body.get("result") == self.expected_texts[i % len(self.texts)] else "wrong_result"

    async def one(self, i: int, scheduled: float, out: list[Outcome]) -> None:
        kind = self.mix[i % len(self.mix)]
        outcome = Outcome(kind, scheduled)
        out.append(outcome)
        if self.inflight >= self.max_inflight:
            outcome.error = "client_inflight_cap"
            return
        self.inflight += 1
        try:
            async with asyncio.timeout(self.timeout):
                outcome.error = await (self._compute() if kind == "compute" else self._text(i))
        except TimeoutError:
            outcome.error = "timeout"
        except aiohttp.ClientConnectionError as exc:
            outcome.error = f"connection:{type(exc).__name__}"
        except (aiohttp.ClientError, ValueError, KeyError) as exc:
            outcome.error = f"client:{type(exc).__name__}"
        finally:
            self.inflight -= 1
            outcome.latency = time.perf_counter() - scheduled

    async def phase(self, rate: float, duration: float, max_requests: int, poisson: bool, seed: int) -> Stats:
        """Open loop: request i is due at start + i/rate (or Poisson arrivals), sent then whatever happened."""
        count = max(1, min(int(rate * duration), max_requests))
        rng = random.Random(seed)
        stats = Stats(rate, duration)
        tasks = []
        start = time.perf_counter() + 0.01
        due = start
        for i in range(count):
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.one(i, due, stats.outcomes)))
            due += rng.expovariate(rate) if poisson else 1.0 / rate
        await asyncio.gather(*tasks)
        stats.elapsed = max(time.perf_counter() - start, duration)
        return stats

    async def closed(self, clients: int, duration: float, max_requests: int) -> Stats:
        """Closed loop: ``clients`` clients, each sending its next request once its last was answered, until
        ``duration`` has passed (or ``max_requests`` were sent); latency is from each request's own send."""
        stats = Stats(0.0, duration, clients=clients)
        start = time.perf_counter()
        end = start + duration
        sent = 0

        async def client() -> None:
            nonlocal sent
            while time.perf_counter() < end and sent < max_requests:
                i, sent = sent, sent + 1
                await self.one(i, time.perf_counter(), stats.outcomes)

        await asyncio.gather(*(client() for _ in range(clients)))
        stats.elapsed = time.perf_counter() - start
        return stats


# ---------------------------------------------------------------------------------------------------- actors


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listening_inodes(ports: set[int]) -> dict[int, int]:
    """inode -> port of the sockets listening on ``ports`` (from /proc/net/tcp and tcp6)."""
    found: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f)
            for line in f:
                parts = line.split()
                port = int(parts[1].rsplit(":", 1)[1], 16)
                if parts[3] == "0A" and port in ports:  # 0A: LISTEN
                    found[int(parts[9])] = port
    return found


def pids_listening(ports: dict[int, str]) -> dict[str, int]:
    """Name -> pid of the local processes listening on the given ports (name by port)."""
    inodes = _listening_inodes(set(ports))
    names: dict[str, int] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                    names[ports[inodes[int(target[8:-1])]]] = int(pid)
    return names


async def actor_pids(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> dict[str, int]:
    """The pids of the master and the peers it lists, if they listen on this machine."""
    ports = {urlsplit(url).port or 80: "master"}
    with contextlib.suppress(aiohttp.ClientError, ValueError, KeyError, TimeoutError):
        async with session.get(f"{url}/v1/cluster", headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as r:
            seen = await r.json()
        for peer in seen["mappers"] + seen["reducers"]:
            if is_loopback(peer["url"]):
                ports[urlsplit(peer["url"]).port or 80] = peer["name"]
    return pids_listening(ports)


def process_snapshot(pids: dict[str, int]) -> dict[str, dict[str, int]]:
    """RSS, peak RSS (bytes) and open file descriptors of each process."""
    snap: dict[str, dict[str, int]] = {}
    for name, pid in sorted(pids.items()):
        entry = {"pid": pid, "rss": 0, "hwm": 0, "fds": -1}
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(("VmRSS:", "VmHWM:")):
                        entry["rss" if line.startswith("VmRSS") else "hwm"] = int(line.split()[1]) * 1024
            entry["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
        snap[name] = entry
    return snap


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds each process has used so far (``/proc/<pid>/stat``), and this client's own."""
    used: dict[str, float] = {}
    for name, pid in sorted({**pids, "loadtest": os.getpid()}.items()):
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            used[name] = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime: fields 14 and 15
    return used


async def measured(pids: dict[str, int], phase: Awaitable[Stats]) -> Stats:
    """Run a phase (an awaitable of Stats) and record the CPU every actor spent during it."""
    before = cpu_seconds(pids)
    stats = await phase
    after = cpu_seconds(pids)
    stats.cpu = {name: after[name] - before[name] for name in after if name in before}
    return stats


# ---------------------------------------------------------------------------------------------------- report


def print_phase(title: str, summary: dict[str, Any]) -> None:
    offered = (f"{summary['clients']} closed-loop clients" if summary.get("clients")
               else f"target {summary['target_rate']:g} jobs/s")
    print(f"\n== {title}: {offered} for {summary['duration']:g} s (took {summary['elapsed']:.1f} s)")
    print(f"{'kind':<9}{'sent':>7}{'ok':>7}{'jobs/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}"
          f"{'max ms':>9}  errors")
    for kind, k in summary["kinds"].items():
        errors = ", ".join(f"{e}={n}" for e, n in sorted(k["errors"].items())) or "none"
        print(f"{kind:<9}{k['sent']:>7}{k['ok']:>7}{k['jobs_per_s']:>9.1f}{k['p50_ms']:>9.1f}{k['p90_ms']:>9.1f}"
              f"{k['p99_ms']:>9.1f}{k['p99.9_ms']:>10.1f}{k['max_ms']:>9.1f}  {errors}")
    cpu = summary.get("cpu_ms_per_job") or {}
    if cpu:
        spent = ", ".join(f"{name} {ms:.2f}" for name, ms in cpu.items())
        actors = sum(ms for name, ms in cpu.items() if name != "loadtest")
        print(f"CPU ms per answered job: {spent}; actors in all {actors:.2f}")


def phase_verdicts(summary: dict[str, Any]) -> list[str]:
    lines = []
    compute = summary["kinds"].get("compute")
    only_compute = set(summary["kinds"]) == {"compute", "all"}
    if compute and summary.get("clients") and only_compute and summary["clients"] >= TARGET_CLIENTS:
        rate, ok = compute["jobs_per_s"], compute["jobs_per_s"] >= TARGET_CLOSED_JOBS and not compute["errors"]
        lines.append(f"{'target met' if ok else 'TARGET MISSED'}: /compute with {summary['clients']} closed-loop "
                     f"clients: {rate:.1f} jobs/s {'>=' if rate >= TARGET_CLOSED_JOBS else '<'} "
                     f"{TARGET_CLOSED_JOBS:g} jobs/s" + ("" if not compute["errors"] else ", with errors"))
    elif compute and summary["target_rate"] >= TARGET_RATE and compute["ok"]:
        at = f"/compute at {summary['target_rate']:g} jobs/s offered"
        value, limit = compute["p99_ms"], TARGET_P99_MS
        verdict = "target met" if value <= limit else "TARGET MISSED"
        lines.append(f"{verdict}: {at}: p99 {value:.1f} ms {'<=' if value <= limit else '>'} {limit:g} ms "
                     f"(p50 {compute['p50_ms']:.1f} ms)")
    total = summary["kinds"]["all"]
    if total["errors"]:
        lines.append(f"ERRORS: {sum(total['errors'].values())} of {total['sent']} requests failed: {total['errors']}")
    return lines


def keeps_up(summary: dict[str, Any], p99_limit_ms: float) -> bool:
    k = summary["kinds"]["all"]
    return (not k["errors"] and k["jobs_per_s"] >= 0.95 * summary["target_rate"]
            and k["p99_ms"] <= p99_limit_ms)


# ---------------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="", help="a running master (loopback only); default: start a local cluster")
    p.add_argument("--token", default=os.environ.get("MR_API_TOKEN", ""),
                   help="API token, sent as Authorization: Bearer (default $MR_API_TOKEN)")
    p.add_argument("--rate", type=float, default=TARGET_RATE,
                   help=f"target jobs per second, open loop (default {TARGET_RATE:g})")
    p.add_argument("--clients", type=int, default=0, metavar="N",
                   help="closed loop instead: N clients, each sending its next request once its last was answered")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of load per phase (default 20)")
    p.add_argument("--max-requests", type=int, default=200_000, help="never send more than this per phase")
    p.add_argument("--mix", default="compute", help="request kinds in rotation, e.g. compute,text "
                   "(compute: /compute example; text: ~10 KB via /v1/jobs); default compute")
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout in seconds (default 10)")
    p.add_argument("--max-inflight", type=int, default=2000, help="client-side cap on requests in flight")
    p.add_argument("--poisson", action="store_true", help="Poisson arrivals instead of evenly spaced")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of unreported load first (default 2)")
    p.add_argument("--ramp", action="store_true", help="find the saturation rate")
    p.add_argument("--ramp-start", type=float, default=25.0)
    p.add_argument("--ramp-factor", type=float, default=1.4)
    p.add_argument("--ramp-max", type=float, default=2000.0)
    p.add_argument("--ramp-step", type=float, default=8.0, help="seconds per ramp step (default 8)")
    p.add_argument("--ramp-p99-ms", type=float, default=1000.0, help="a step with a higher p99 is saturated")
    p.add_argument("--soak", type=float, default=0.0, metavar="MINUTES", help="run MINUTES at --rate, report "
                   "every actor's RSS and open fds at the start and the end")
    p.add_argument("--mappers", type=int, default=3, help="own cluster: mappers (default 3)")
    p.add_argument("--reducers", type=int, default=2, help="own cluster: reducers (default 2)")
    p.add_argument("--discovery", default="static", choices=["static", "mdns"], help="own cluster's discovery")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="own cluster: a setting for every actor (repeatable), e.g. --env MR_LOG_LEVEL=DEBUG")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    args = p.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.timeout <= 0:
        p.error("--rate, --duration and --timeout must be positive")
    if args.clients < 0 or args.clients > args.max_inflight or (args.clients and (args.ramp or args.soak)):
        p.error(f"--clients takes 1 to --max-inflight ({args.max_inflight}) clients, and no --ramp or --soak")
    if args.duration > MAX_DURATION or args.soak * 60 > MAX_DURATION * 4:
        p.error(f"bounded runs only: --duration at most {MAX_DURATION:g} s, "
                f"--soak at most {MAX_DURATION * 4 / 60:g} min")
    if args.url and not is_loopback(args.url):
        p.error(f"{args.url}: only loopback masters (127.0.0.0/8, ::1, localhost; use kubectl port-forward)")
    kinds = [k.strip() for k in args.mix.split(",") if k.strip()]
    if not kinds or set(kinds) - {"compute", "text"}:
        p.error("--mix takes compute and/or text")
    args.kinds = kinds
    if any("=" not in item or not item.startswith("MR_") for item in args.env):
        p.error("--env takes NAME=VALUE with NAME an MR_ setting")
    args.extra_env = dict(item.split("=", 1) for item in args.env)
    return args


async def run(args: argparse.Namespace) -> int:
    mode = "ramp" if args.ramp else "soak" if args.soak else "closed" if args.clients else "rate"
    report: dict[str, Any] = {"mode": mode, "phases": []}
    verdicts: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        pids: dict[str, int] = {}
        url = args.url
        if not url:
            try:
                from actors.local import LocalCluster
            except ImportError:
                sys.path.insert(0, str(REPO))
                from actors.local import LocalCluster
            extra = {**args.extra_env, **({"MR_API_TOKEN": args.token} if args.token else {})}
            started = time.perf_counter()
            cluster = await stack.enter_async_context(LocalCluster(
                mappers=args.mappers, reducers=args.reducers, discovery=args.discovery, extra_env=extra))
            report["cluster_ready_s"] = time.perf_counter() - started
            url = cluster.master_url
            pids = {a.name: a.pid for a in cluster.actors}
            print(f"loadtest: local cluster {args.mappers}+{args.reducers} ready in {report['cluster_ready_s']:.2f} s "
                  f"at {url}", file=sys.stderr, flush=True)
        connector = aiohttp.TCPConnector(limit=args.max_inflight, force_close=False)
        session = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
        load = Load(session, url, args.token, args.kinds, args.timeout, args.max_inflight)
        if not pids:
            pids = await actor_pids(session, url, load.headers)
        report["url"] = url
        if args.warmup > 0:
            await load.phase(min(args.rate, 50.0), args.warmup, args.max_requests, False, args.seed)
            await asyncio.sleep(0.5)  # let the warm-up's answers and clean-ups settle before measuring

        if args.ramp:
            rate, passed, steps = args.ramp_start, 0.0, []
            failed_at = None
            while rate <= args.ramp_max:
                summary = (await measured(pids, load.phase(rate, args.ramp_step, args.max_requests, args.poisson,
                                                           args.seed))).summary()
                ok = keeps_up(summary, args.ramp_p99_ms)
                summary["keeps_up"] = ok
                steps.append(summary)
                all_ = summary["kinds"]["all"]
                print(f"loadtest: ramp {rate:7.1f}/s -> {all_['jobs_per_s']:7.1f}/s, p99 {all_['p99_ms']:8.1f} ms, "
                      f"errors {sum(all_['errors'].values())}: {'keeps up' if ok else 'SATURATED'}",
                      file=sys.stderr, flush=True)
                if not ok:
                    failed_at = rate
                    break
                passed = rate
                rate *= args.ramp_factor
                await asyncio.sleep(1.0)  # let queues drain between steps
            if failed_at is not None and passed:
                mid = (passed + failed_at) / 2  # one refining step between the last pass and the failure
                await asyncio.sleep(1.0)
                summary = (await measured(pids, load.phase(mid, args.ramp_step, args.max_requests, args.poisson,
                                                           args.seed))).summary()
                summary["keeps_up"] = keeps_up(summary, args.ramp_p99_ms)
                steps.append(summary)
                if summary["keeps_up"]:
                    passed = mid
            report["phases"] = steps
            report["saturation_jobs_per_s"] = passed
            verdict = "target met" if passed >= TARGET_SUSTAINED else "TARGET MISSED"
            verdicts.append(f"{verdict}: sustained {passed:.0f} jobs/s ({'+'.join(args.kinds)}, no errors, p99 <= "
                            f"{args.ramp_p99_ms:g} ms) {'>=' if passed >= TARGET_SUSTAINED else '<'} "
                            f"{TARGET_SUSTAINED:g} jobs/s")
        else:
            duration = args.soak * 60 if args.soak else args.duration
            if args.soak:
                report["start"] = process_snapshot(pids)
            if args.clients:
                phase = load.closed(args.clients, duration, args.max_requests)
            else:
                phase = load.phase(args.rate, duration, args.max_requests, args.poisson, args.seed)
            summary = (await measured(pids, phase)).summary()
            if args.soak:
                await asyncio.sleep(1.0)
                report["end"] = process_snapshot(pids)
            report["phases"] = [summary]
            verdicts += phase_verdicts(summary)
        if "cluster_ready_s" in report:
            ready = report["cluster_ready_s"]
            verdicts.append(f"{'target met' if ready <= 2.0 else 'TARGET MISSED'}: cluster ready in {ready:.2f} s "
                            f"({'<=' if ready <= 2.0 else '>'} 2 s)")
    report["verdicts"] = verdicts
    errors = sum(p["kinds"]["all"]["errors"].get("wrong_result", 0) for p in report["phases"])
    answered = sum(p["kinds"]["all"]["ok"] for p in report["phases"])
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for i, phase in enumerate(report["phases"]):
            title = {"ramp": "ramp step", "soak": "soak", "closed": "closed loop", "rate": "load"}[mode]
            title += f" {i + 1}" if args.ramp else ""
            print_phase(title, phase)
        if args.ramp:
            print(f"\nsaturation: {report['saturation_jobs_per_s']:.1f} jobs/s")
        if "start" in report:
            print(f"\n{'actor':<11}{'pid':>8}{'RSS start MB':>14}{'RSS end MB':>12}{'peak MB':>9}"
                  f"{'fds start':>11}{'fds end':>9}")
            for name, first in report["start"].items():
                last = report["end"].get(name, {})
                print(f"{name:<11}{first['pid']:>8}{first['rss'] / 1e6:>14.1f}{last.get('rss', 0) / 1e6:>12.1f}"
                      f"{last.get('hwm', 0) / 1e6:>9.1f}{first['fds']:>11}{last.get('fds', -1):>9}")
        answered = sum(p["kinds"]["all"]["ok"] for p in report["phases"])
        sent = sum(p["kinds"]["all"]["sent"] for p in report["phases"])
        print(f"\nexact: {answered} of {sent} answers equal the expected counts; wrong results: {errors}")
        for line in verdicts:
            print(line)
    return 1 if errors or not answered else 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
