#!/usr/bin/env python3
"""Micro-benchmark of the master's split table: a whole simulated map phase per size, and the status it shows.

For each split count (default 20,000 and 100,000) it plans the splits, then runs a map phase through one
``SplitTable`` on a fake clock: ``--mappers`` x ``--slots`` workers ask ``next_for`` whenever they are idle, every
attempt reports progress and then succeeds, fails (``--fail-rate``) or is handed back (``--abandon-rate``), and a
few stragglers (``--straggler-rate``, 20x the usual time) draw backup attempts. Then it times the job's JSON
status (the default summary) and one page of ``MAX_PAGE`` splits from the middle.

Printed per size: wall time of the phase, the cost per split (every table call the phase made, plus the
simulation's own small overhead), attempts, retries, backups, late reports, and the status sizes and times; then
the ratio of the per-split cost at the largest size to that at the smallest (about 1 when the table's calls do
not grow with the number of splits). Issue 11's target, < 1 ms per split at 20,000 splits, is printed as met or
missed; nothing here is asserted (timings are noisy on shared machines). ``--json`` prints one JSON object.

    python scripts/bench_splittable.py
    python scripts/bench_splittable.py --splits 500 --json     # a smoke run
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from actors.core.splits import plan
from actors.inputs.ref import InputRef
from actors.master.record import JobRecord
from actors.master.splittable import SplitTable, Ticket
from actors.master.splitview import MAX_PAGE, SplitFilter, SplitQuery

SPLIT_BYTES = 1_000
TARGET_MS = 1.0  # issue 11: under 1 ms per split at 20,000 splits
TARGET_SPLITS = 20_000


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Worker:
    mapper: str
    slot: int


def simulate(splits: int, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    clock = Clock()
    started = time.perf_counter()
    planned = plan(splits * SPLIT_BYTES, SPLIT_BYTES, args.mappers)
    planned_at = time.perf_counter()
    table = SplitTable(planned, args.max_attempts, clock, backups=True, backup_after=5.0)
    idle: deque[Worker] = deque(Worker(f"mapper-{m}", s) for m in range(args.mappers) for s in range(args.slots))
    running: list[tuple[float, int, Worker, Ticket, str]] = []
    sequence = 0
    asks = 0
    while not table.all_done:
        waiting: list[Worker] = []
        while idle:
            worker = idle.popleft()
            asks += 1
            ticket = table.next_for(worker.mapper)
            if ticket is None:
                waiting.append(worker)
                continue
            draw = rng.random()
            outcome = "failed" if draw < args.fail_rate else (
                "abandoned" if draw < args.fail_rate + args.abandon_rate else "succeeded")
            duration = rng.uniform(0.8, 1.2) * (20 if rng.random() < args.straggler_rate else 1)
            sequence += 1
            heapq.heappush(running, (clock.now + duration, sequence, worker, ticket, outcome))
        idle.extend(waiting)
        if not running:
            raise SystemExit(f"stuck: {table.total - table.done_count} splits left and nothing running")
        due, _, worker, ticket, outcome = heapq.heappop(running)
        clock.now = due
        split, attempt = ticket.split.index, ticket.attempt
        size = ticket.split.end - ticket.split.start
        table.progress(split, attempt, size // 2)
        if outcome == "succeeded":
            table.succeeded(split, attempt, size)
        elif outcome == "failed":
            table.failed(split, attempt, "simulated crash")
        else:
            table.abandoned(split, attempt, "simulated hand-back")
        idle.append(worker)
    for worker in idle:
        table.retire(worker.mapper)
    finished = time.perf_counter()
    record = JobRecord(id="bench", epoch=1, job_name="wordcount",
                       input=InputRef("http", "http://master/x", "bench.txt", splits * SPLIT_BYTES),
                       created=0.0, split_size=SPLIT_BYTES)
    record.table = table
    summary_s, summary = timed(lambda: json.dumps(record.status()))
    query = SplitQuery(SplitFilter.ALL, offset=splits // 2, limit=MAX_PAGE)
    page_s, page = timed(lambda: json.dumps(record.status(query)))
    phase = finished - planned_at
    return {
        "splits": splits,
        "plan_seconds": planned_at - started,
        "phase_seconds": phase,
        "ms_per_split": 1000 * phase / splits,
        "next_for_calls": asks,
        "attempts": table.attempts_started(),
        "retries": table.retries,
        "backups": sum(1 for s in map(table.split_at, range(table.total)) for a in s.attempts if a.backup),
        "late_reports": table.late_reports,
        "status_bytes": len(summary),
        "status_ms": 1000 * summary_s,
        "page_bytes": len(page),
        "page_ms": 1000 * page_s,
    }


def timed(action: Any) -> tuple[float, str]:
    start = time.perf_counter()
    text: str = action()
    return time.perf_counter() - start, text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--splits", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--mappers", type=int, default=4)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--max-attempts", type=int, default=4)
    parser.add_argument("--fail-rate", type=float, default=0.01)
    parser.add_argument("--abandon-rate", type=float, default=0.005)
    parser.add_argument("--straggler-rate", type=float, default=0.002)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    rows = [simulate(n, args) for n in args.splits]
    ratio = rows[-1]["ms_per_split"] / rows[0]["ms_per_split"] if rows[0]["ms_per_split"] else 0.0
    verdicts = []
    for row in rows:
        if row["splits"] == TARGET_SPLITS:
            met = row["ms_per_split"] < TARGET_MS
            verdicts.append(f"{'TARGET MET' if met else 'TARGET MISSED'}: {row['ms_per_split']:.4f} ms per split at "
                            f"{TARGET_SPLITS} splits (target < {TARGET_MS:g} ms)")
    if args.json:
        print(json.dumps({"rows": rows, "ratio_largest_to_smallest": ratio, "verdicts": verdicts}))
        return 0
    header = (f"{'splits':>8} {'plan s':>7} {'phase s':>8} {'ms/split':>9} {'asks':>8} {'attempts':>8} "
              f"{'retries':>7} {'backups':>7} {'late':>5} {'status B':>9} {'status ms':>9} {'page B':>8} "
              f"{'page ms':>8}")
    print(header)
    for r in rows:
        print(f"{r['splits']:>8} {r['plan_seconds']:>7.3f} {r['phase_seconds']:>8.3f} {r['ms_per_split']:>9.4f} "
              f"{r['next_for_calls']:>8} {r['attempts']:>8} {r['retries']:>7} {r['backups']:>7} "
              f"{r['late_reports']:>5} {r['status_bytes']:>9} {r['status_ms']:>9.3f} {r['page_bytes']:>8} "
              f"{r['page_ms']:>8.3f}")
    if len(rows) > 1:
        print(f"per-split cost, {rows[-1]['splits']} vs {rows[0]['splits']} splits: {ratio:.2f}x")
    for line in verdicts:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
