"""The task worker: a child process that runs a job's user code for its actor, one request at a time.

Started by actors.tasks.pool as ``python -m actors.tasks.worker``; speaks actors.tasks.protocol on its stdin and
stdout, which it moves to private descriptors first, so a job that prints or reads cannot corrupt the protocol.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import os
import resource
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from ..core import wire
from ..core.counters import BadRecords, CounterLimit, CounterLimits, Counters
from ..core.errors import InputError, KeyTooLarge, MapReduceError, ValueTooLarge
from ..jobs import Catalog, Job
from ..jobs.adapter import SdkJob, user_traceback
from ..jobs.catalog import job_class
from ..jobs.result import as_mapping
from ..jobs.sidefiles import declared, materialize
from ..jobs.skipping import map_batch
from ..jobs.steps import VALUES, output_shape, step_count, whole_input
from ..sdk import JobCodeError, JobConfigError, MapReduceJob, count_into
from . import protocol
from .encoder import FrameEncoder
from .protocol import (
    ChunkDone,
    Configure,
    Describe,
    Described,
    Done,
    Encoded,
    EncodeResult,
    Failed,
    Frames,
    JobSpec,
    MapChunk,
    MapDone,
    MapEnd,
    MapRaw,
    MapStart,
    Message,
    Reduced,
    ReduceRuns,
    TaskPlace,
    Tick,
)
from .runs import Record, grouped, merge_records, read_run

TICK_GAP = 0.2  # seconds: the most often a busy worker says it is alive (the actor's watchdog waits a lease)
OUT_BLOCK = 1024 * 1024  # bytes of one partition's frames sent back at once
# A batch of lines mapped faster than FAST_BATCH seconds doubles the next one, up to MAX_BATCH lines; one slower than
# SLOW_BATCH (a tick's gap) halves it: the batch follows the job's speed, so ticks stay about TICK_GAP apart.
FAST_BATCH = 0.05
SLOW_BATCH = TICK_GAP
MAX_BATCH = 1 << 20
TICK_RECORDS = 16  # records of a run (each up to RECORD_VALUES values) read between two looks at the clock
PR_SET_PDEATHSIG = 1
#: Errors whose cause is the job's code or its data: the same input fails the same way anywhere (not retried).
DETERMINISTIC: tuple[type[MapReduceError], ...] = (JobCodeError, JobConfigError, KeyTooLarge, ValueTooLarge,
                                                   InputError)


class Outbox(FrameEncoder):
    """The encoder of a worker's map request: frames go back to the actor in blocks of about :data:`OUT_BLOCK`."""

    def __init__(self, send: Callable[[Message], None], job: Job, start: MapStart) -> None:
        super().__init__(job, start.partitions, start.key_budget, start.frame_cap, frame_keys=start.frame_keys,
                         max_key=start.max_key, native=False, fmt=start.format, cuts=start.cuts)
        self.send = send
        self.pending = [bytearray() for _ in range(start.partitions)]
        self.counts = [0] * start.partitions
        self.sdk = job if isinstance(job, SdkJob) else None
        limits = CounterLimits(start.max_counters, start.max_counter_name)
        self.counters = count_into(job.job, limits) if isinstance(job, SdkJob) else Counters(limits)
        self.bad = BadRecords(start.max_bad_records)

    def map_lines(self, data: bytes, offset: int, source: str) -> None:
        """Map whole lines starting at byte ``offset`` of the input, skipping bad records (actors.jobs.skipping)."""
        if self.sdk is None:
            self.map(data.decode("utf-8", "replace"), source)
            return
        map_batch(self.sdk, self._acc, data, offset, source, self.counters, self.bad, self.fmt)
        if self.sdk.weight(self._acc) >= self.key_budget:
            self.flush()

    def _store(self, partition: int, encoded: bytes) -> None:
        self.pending[partition] += encoded
        self.counts[partition] += 1
        if len(self.pending[partition]) >= OUT_BLOCK:
            self.ship(partition)

    def ship(self, partition: int) -> None:
        if self.counts[partition]:
            self.send(Frames(partition, bytes(self.pending[partition]), self.counts[partition]))
            self.pending[partition], self.counts[partition] = bytearray(), 0

    def ship_all(self) -> None:
        for partition in range(self.partitions):
            self.ship(partition)


class Worker:
    """Serves requests from its actor until the actor closes the pipe."""

    def __init__(self, inp: BinaryIO, out: BinaryIO, cap: int, memory: int) -> None:
        self.inp = inp
        self.out = out
        self.cap = cap
        self.memory = memory
        self.classes: dict[tuple[str, str], Catalog] = {}
        self.mapping: tuple[Outbox, MapStart] | None = None
        self.batch = 1  # lines in the next batch of a map request (adapted to how fast the job maps them)
        self.last_tick = 0.0
        self.reduced = 0  # keys handed to the reducer so far (what a tick during a reduce says)
        self.what = "task"  # the user function running now, for a failure's cause
        self.job_name = ""
        self.home = os.getcwd()  # the working directory between tasks (a task's own is its side files')
        # The bytes of a record line a chunk of a later step's input ended inside (its rest is in the next chunk).
        self.carry = b""

    def send(self, message: Message) -> None:
        self.out.write(protocol.encode(message))
        self.out.flush()

    def tick(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last_tick >= TICK_GAP:
            self.send(Tick(done))
            self.last_tick = now

    def serve(self) -> int:
        while (message := protocol.read_blocking(self.inp, self.cap)) is not None:
            self.last_tick = time.monotonic()
            try:
                self.send(self.handle(message))
            except MapReduceError as error:
                if isinstance(error.__context__, MemoryError):  # the job's MemoryError, named as its failure
                    return self.out_of_memory()
                if isinstance(error, CounterLimit):  # broken, then caught by the job's code: still its failure
                    error = JobCodeError(f"job {self.job_name!r}: {error.message}")
                code = error.code if isinstance(error, DETERMINISTIC) else ""
                self.mapping = None
                self.leave()
                trace = error.traceback if isinstance(error, JobCodeError) else ""
                self.send(Failed(error.message, code, fatal=False, traceback=trace))
            except MemoryError:
                return self.out_of_memory()
            except BaseException as error:  # SystemExit, KeyboardInterrupt: this process's state is not trusted
                self.send(Failed(f"{self.where} raised {type(error).__name__}: {error}", "", fatal=True,
                                 traceback=user_traceback(error)))
                return 3
        return 0

    def out_of_memory(self) -> int:
        """A MemoryError (the job's, or past RLIMIT_AS): not the input's fault, retried; this process ends."""
        limit = f" past MR_TASK_MEMORY={self.memory} bytes" if self.memory else ""
        self.send(Failed(f"{self.where} ran out of memory{limit}", "", fatal=True, traceback=""))
        return 3

    @property
    def where(self) -> str:
        return f"{self.what} of job {self.job_name!r}"

    def handle(self, message: Message) -> Message:
        if isinstance(message, MapStart):
            self.what, self.job_name = "mapper", message.job.name
            job = self.job(message.job, message.place)
            if message.direct and isinstance(job, SdkJob):
                job.direct = True  # a map-only task: records in the order mapped, no combiner
            outbox = Outbox(self.send, job, message)
            self.mapping = (outbox, message)
            self.batch = message.batch
            self.carry = b""
            outbox.hook("mapper_init", message.source)  # once per map task: this attempt of the split
            return ChunkDone()
        if isinstance(message, MapChunk):
            return self.map_chunk(message.data, message.offset)
        if isinstance(message, MapRaw):
            outbox, start = self.ongoing()
            outbox.map_raw(message.path, start.source, self.tick)
            outbox.ship_all()
            return ChunkDone()
        if isinstance(message, MapEnd):
            outbox, start = self.ongoing()
            if self.carry:  # the input's last record, with no newline after it
                outbox.map(self.carry.decode("utf-8", "replace"), start.source)
                self.carry = b""
            outbox.hook("mapper_final", start.source)
            outbox.flush()
            outbox.ship_all()
            self.mapping = None
            self.leave()
            outbox.counters.check()  # a limit the job's code broke and then caught
            return MapDone(outbox.frames, outbox.keys, outbox.checksums, outbox.sizes, outbox.counters.to_wire(),
                           outbox.bad.count, outbox.bad.first)
        if isinstance(message, ReduceRuns):
            self.what, self.job_name = "reducer", message.job.name
            try:
                return self.reduce(message)
            finally:
                self.leave()
        if isinstance(message, Describe):
            self.what, self.job_name = "steps", message.job.name
            job = self.job(message.job)
            if not isinstance(job, SdkJob):
                return Described(1, VALUES, False)
            return Described(step_count(job.job), output_shape(job.job), whole_input(job.job))
        if isinstance(message, Configure):
            self.what, self.job_name = "configure", message.job.name
            self.job(message.job)
            return Done()
        if isinstance(message, EncodeResult):
            self.what, self.job_name = "order", message.job.name
            result = wire.decode(message.result, self.cap)
            return Encoded(self.job(message.job).encode(as_mapping(result)))
        raise MapReduceError(f"a task worker takes no {type(message).__name__} message")

    def ongoing(self) -> tuple[Outbox, MapStart]:
        if self.mapping is None:
            raise MapReduceError("a map chunk came before its map request")
        return self.mapping

    def job(self, spec: JobSpec, place: TaskPlace | None = None) -> Job:
        """The configured job: its class imported by name, checked and configured as on the actor; given a task's
        ``place``, made in its working directory, which holds the job's side files from then on."""
        catalog = self._catalog(spec)
        if place is not None:
            self.enter(catalog.classes[spec.name], place, spec.params)
        job = catalog.get(spec.name, spec.params)
        if spec.step and isinstance(job, SdkJob):  # a later step of the job: its own view
            job = SdkJob(job.job, spec.step)
        if place is not None and place.workdir and isinstance(job, SdkJob):
            job.job.files_dir = place.workdir
        return job

    def enter(self, cls: type[MapReduceJob], place: TaskPlace, params: Mapping[str, str]) -> None:
        """Copy the job's side files into the task's working directory (each checked against its pin) and move
        there: ``open(name)`` opens one."""
        if not place.workdir:
            if declared(cls, params):
                raise MapReduceError(f"job {cls.name!r} has side files, but its task was given no directory")
            return
        materialize(cls, place.files, place.data_root, place.workdir, params)
        os.chdir(place.workdir)

    def leave(self) -> None:
        """Back to the worker's own directory (the actor removes the task's once the attempt ends)."""
        if os.getcwd() != self.home:
            os.chdir(self.home)

    def _catalog(self, spec: JobSpec) -> Catalog:
        catalog = self.classes.get((spec.module, spec.qualname))
        if catalog is None:
            found: Any = importlib.import_module(spec.module)
            for part in spec.qualname.split("."):
                found = getattr(found, part)
            found = job_class(found)  # an mrjob job: its adapter, as the catalog made it
            if found is None or found.name != spec.name:
                raise MapReduceError(f"{spec.module}.{spec.qualname} is not the job {spec.name!r}")
            catalog = self.classes[(spec.module, spec.qualname)] = Catalog([(found, "task")])
        return catalog

    def map_chunk(self, data: bytes, offset: int) -> Message:
        """Map a chunk a batch of lines at a time, ticking between batches (a slow mapper is seen working). The first
        batch has MR_TASK_BATCH lines; one mapped quickly is followed by one twice as large, a slow one by one half as
        large: a fast job maps whole chunks in a few calls (a call per batch has a cost: the partials are folded and
        their keys checked per call), a slow one still ticks well within its lease."""
        outbox, start = self.ongoing()
        if start.job.step:  # records: a chunk may end inside a line (cut at a space); its rest comes next
            offset -= len(self.carry)
            data = self.carry + data
            cut = data.rfind(b"\n") + 1  # whole lines only, cut as bytes: never inside a character either
            data, self.carry = data[:cut], data[cut:]
        # Batches are cut from the bytes (a newline is the same byte in UTF-8 and in its decoding), so each knows its
        # offset in the input: a record that does not parse, or that its mapper fails on, is named by its own.
        pos, size, done = 0, len(data), 0
        while pos < size:
            end, lines = pos, 0
            while lines < self.batch and end < size:
                found = data.find(b"\n", end)
                end = size if found < 0 else found + 1
                lines += 1
            began = time.monotonic()
            outbox.map_lines(data[pos:end], offset + pos, start.source)
            took = time.monotonic() - began
            done += lines
            pos = end
            self.tick(done)
            if took < FAST_BATCH:
                self.batch = min(self.batch * 2, MAX_BATCH)
            elif took > SLOW_BATCH:
                self.batch = max(self.batch // 2, 1)
        outbox.ship_all()
        return ChunkDone()

    def reduce(self, request: ReduceRuns) -> Message:
        job = self.job(request.job, request.place)
        if not isinstance(job, SdkJob):
            raise MapReduceError(f"job {request.job.name!r} has a native engine: its reducer is not user code")
        counters = count_into(job.job, CounterLimits(request.max_counters, request.max_counter_name))
        runs = [read_run(path) for path in map(Path, request.paths)]
        records = merge_records(runs, job.job.sort_values)  # runs of a sort_values job are (key, value) sorted
        self.reduced = 0
        result = job.reduce_groups(self._counted(grouped(self._ticking(records)), request.batch))
        counters.check()  # a limit the job's code broke and then caught
        return Reduced(wire.encode(result), counters.to_wire())

    def _counted(self, groups: Iterable[tuple[str, Iterator[Any]]], batch: int) -> Iterator[tuple[str, Iterator[Any]]]:
        for done, group in enumerate(groups, 1):
            self.reduced = done
            if done % batch == 0:
                self.tick(done)
            yield group

    def _ticking(self, records: Iterable[Record]) -> Iterator[Record]:
        """The records, ticking as the reducer reads them: one key of millions of values (read, and merged by
        value for a sort_values job, for longer than a lease) is work going on, not a silent worker."""
        for number, record in enumerate(records, 1):
            if number % TICK_RECORDS == 0:
                self.tick(self.reduced)
            yield record


def _die_with(parent: int) -> None:
    """Never outlive the actor: the kernel kills this process when its parent dies (Linux), and a parent gone
    already (before the request took effect) ends it here."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m actors.tasks.worker")
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--cap", type=int, required=True)
    parser.add_argument("--memory", type=int, default=0)
    args = parser.parse_args(argv)
    _die_with(args.parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches the actor, which stops its workers
    if args.memory:
        resource.setrlimit(resource.RLIMIT_AS, (args.memory, args.memory))
    # The protocol on private descriptors: the job's prints go to stderr, its reads of stdin see an empty file.
    inp = os.fdopen(os.dup(0), "rb")
    out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)
    worker = Worker(inp, out, args.cap, args.memory)
    worker.send(Tick(0))  # ready: the actor's startup bound ends here, each request's own bound starts
    return worker.serve()


if __name__ == "__main__":
    sys.exit(main())
