#!/usr/bin/env python3
"""Micro-benchmark of the word-count kernel on one core: native and pure Python vs ``Counter(text.split())``.

Inputs are those of scripts/bench.py, made once into --data-dir and reused: the real text (the KJV, or
data/genesis-kjv.txt) replicated to about --real-mb, and a seeded Zipf text of --zipf-mb drawn from --zipf-words
words (the defaults give about 1 M distinct words). Each method runs --repeat times, interleaved, in this one
process; the table shows medians and the ratio to the Counter baseline measured in the same run.

- counter: ``Counter(data.decode("utf-8", "replace").split())`` over the whole file (the oracle);
- native / python: a kernel table fed the file in chunks of whole lines (--chunk-mb, as a mapper reads), then
  ``take()`` into --partitions dicts, as a mapper ships them (its share is shown apart: one Python str and dict
  entry per distinct key); "exact" compares the merged dicts with the oracle.

Usage: .venv/bin/python scripts/bench_kernel.py [--real-mb 40] [--zipf-mb 40] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import MB, real_input, zipf_input  # the inputs of scripts/bench.py, shared

from actors.jobs.engine import CountTable
from actors.jobs.wordcount.kernel import NativeCountTable, PythonCountTable, native_status

ROOT = Path(__file__).resolve().parent.parent


def line_chunks(data: bytes, size: int) -> list[memoryview]:
    """``data`` cut into chunks of whole lines of about ``size`` bytes (views: no copies)."""
    view, chunks, start = memoryview(data), [], 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + size) + 1 if start + size < len(data) else len(data)
        if end <= start:  # one line longer than size: take it whole
            nl = data.find(b"\n", start + size)
            end = len(data) if nl < 0 else nl + 1
        chunks.append(view[start:end])
        start = end
    return chunks


def run_counter(data: bytes) -> Counter[str]:
    return Counter(data.decode("utf-8", "replace").split())


def run_kernel(make: Callable[[int], CountTable], chunks: list[memoryview], partitions: int,
               take_seconds: list[float]) -> list[dict[str, int]]:
    table = make(partitions)
    for chunk in chunks:
        table.feed(chunk)
    started = time.perf_counter()
    parts = table.take()  # one Python str and dict entry per distinct key: the share the shuffle format decides
    take_seconds.append(time.perf_counter() - started)
    return parts


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    gc.collect()
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def bench(path: Path, args: argparse.Namespace) -> None:
    data = path.read_bytes()
    chunks = line_chunks(data, int(args.chunk_mb * (1 << 20)))
    methods: dict[str, Callable[[], object]] = {"counter": lambda: run_counter(data)}
    takes: dict[str, list[float]] = {"counter": [0.0], "native": [], "python": []}
    if NativeCountTable is not None:
        native = NativeCountTable
        methods["native"] = lambda: run_kernel(native, chunks, args.partitions, takes["native"])
    methods["python"] = lambda: run_kernel(PythonCountTable, chunks, args.partitions, takes["python"])
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    exact: dict[str, bool] = {}
    oracle: Counter[str] | None = None
    for _ in range(args.repeat):
        for name, fn in methods.items():
            took, result = timed(fn)
            seconds[name].append(took)
            if name == "counter":
                assert isinstance(result, Counter)
                oracle = result
            else:
                assert isinstance(result, list) and oracle is not None
                merged: dict[str, int] = {}
                for part in result:
                    merged.update(part)
                exact[name] = exact.get(name, True) and merged == oracle and sum(map(len, result)) == len(oracle)
            del result
    assert oracle is not None
    base = statistics.median(seconds["counter"])
    print(f"== {path.name}: {len(data) / MB:.1f} MB, {len(oracle):,} distinct words, {len(chunks)} chunks")
    print(f"{'method':<8} {'median s':>9} {'of which take()':>16} {'x Counter':>10} {'MB/s':>8}  exact")
    for name, runs in seconds.items():
        median = statistics.median(runs)
        ok = "yes" if name == "counter" or exact[name] else "NO"
        take = "-" if name == "counter" else f"{statistics.median(takes[name]):.3f}"
        print(f"{name:<8} {median:>9.3f} {take:>16} {base / median:>10.2f} {len(data) / MB / median:>8.1f}  {ok}")
    if not all(exact.values()):
        raise SystemExit(f"bench_kernel: a kernel disagreed with Counter on {path}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=ROOT / "bench-data", help="where inputs are made and reused")
    p.add_argument("--real-mb", type=int, default=40, help="size of the replicated real text (default 40)")
    p.add_argument("--zipf-mb", type=int, default=40, help="size of the Zipf text (default 40)")
    p.add_argument("--zipf-words", type=int, default=3_000_000,
                   help="Zipf vocabulary (default 3M: about 1M distinct words at 40 MB)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3, help="runs per method; medians are shown (default 3)")
    p.add_argument("--chunk-mb", type=float, default=4, help="chunk of whole lines fed at a time (default 4 MiB)")
    p.add_argument("--partitions", type=int, default=2, help="partitions take() groups by (default 2)")
    args = p.parse_args(argv)
    print(f"native kernel: {native_status()}")
    if args.real_mb > 0:
        bench(real_input(args.data_dir, args.real_mb * MB), args)
    if args.zipf_mb > 0:
        bench(zipf_input(args.data_dir, args.zipf_mb * MB, args.zipf_words, args.seed), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
