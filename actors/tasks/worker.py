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
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from ..core import wire
from ..core.errors import KeyTooLarge, MapReduceError, ValueTooLarge
from ..jobs import Catalog, Job
from ..jobs.adapter import SdkJob, user_traceback
from ..jobs.result import as_mapping
from ..sdk import JobCodeError, JobConfigError, MapReduceJob
from . import protocol
from .encoder import FrameEncoder
from .protocol import (
    ChunkDone,
    Configure,
    Done,
    Encoded,
    EncodeResult,
    Failed,
    Frames,
    JobSpec,
    MapChunk,
    MapDone,
    MapEnd,
    MapStart,
    Message,
    Reduced,
    ReduceRuns,
    Tick,
)
from .runs import grouped, merge_records, read_run

TICK_GAP = 0.2  # seconds: the most often a busy worker says it is alive (the actor's watchdog waits a lease)
OUT_BLOCK = 1024 * 1024  # bytes of one partition's frames sent back at once
# A batch of lines mapped faster than FAST_BATCH seconds doubles the next one, up to MAX_BATCH lines; one slower than
# SLOW_BATCH (a tick's gap) halves it: the batch follows the job's speed, so ticks stay about TICK_GAP apart.
FAST_BATCH = 0.05
SLOW_BATCH = TICK_GAP
MAX_BATCH = 1 << 20
PR_SET_PDEATHSIG = 1
#: Errors whose cause is the job's code or its data: the same input fails the same way anywhere (not retried).
DETERMINISTIC: tuple[type[MapReduceError], ...] = (JobCodeError, JobConfigError, KeyTooLarge, ValueTooLarge)


class Outbox(FrameEncoder):
    """The encoder of a worker's map request: frames go back to the actor in blocks of about :data:`OUT_BLOCK`."""

    def __init__(self, send: Callable[[Message], None], job: Job, start: MapStart) -> None:
        super().__init__(job, start.partitions, start.key_budget, start.frame_cap, frame_keys=start.frame_keys,
                         max_key=start.max_key, native=False, cuts=start.cuts)
        self.send = send
        self.pending = [bytearray() for _ in range(start.partitions)]
        self.counts = [0] * start.partitions

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
        self.what = "task"  # the user function running now, for a failure's cause
        self.job_name = ""

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
                code = error.code if isinstance(error, DETERMINISTIC) else ""
                self.mapping = None
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
            self.mapping = (Outbox(self.send, self.job(message.job), message), message)
            self.batch = message.batch
            return ChunkDone()
        if isinstance(message, MapChunk):
            return self.map_chunk(message.data)
        if isinstance(message, MapEnd):
            outbox, _ = self.ongoing()
            outbox.flush()
            outbox.ship_all()
            self.mapping = None
            return MapDone(outbox.frames, outbox.keys, outbox.checksums, outbox.sizes)
        if isinstance(message, ReduceRuns):
            self.what, self.job_name = "reducer", message.job.name
            return self.reduce(message)
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

    def job(self, spec: JobSpec) -> Job:
        """The configured job: its class imported by name, checked and configured as on the actor."""
        catalog = self.classes.get((spec.module, spec.qualname))
        if catalog is None:
            found: Any = importlib.import_module(spec.module)
            for part in spec.qualname.split("."):
                found = getattr(found, part)
            if not (isinstance(found, type) and issubclass(found, MapReduceJob)) or found.name != spec.name:
                raise MapReduceError(f"{spec.module}.{spec.qualname} is not the job {spec.name!r}")
            catalog = self.classes[(spec.module, spec.qualname)] = Catalog([(found, "task")])
        return catalog.get(spec.name, spec.params)

    def map_chunk(self, data: bytes) -> Message:
        """Map a chunk a batch of lines at a time, ticking between batches (a slow mapper is seen working). The first
        batch has MR_TASK_BATCH lines; one mapped quickly is followed by one twice as large, a slow one by one half as
        large: a fast job maps whole chunks in a few calls (a call per batch has a cost: the partials are folded and
        their keys checked per call), a slow one still ticks well within its lease."""
        outbox, start = self.ongoing()
        text = data.decode("utf-8", "replace")
        pos, size, done = 0, len(text), 0
        while pos < size:
            end, lines = pos, 0
            while lines < self.batch and end < size:
                found = text.find("\n", end)
                end = size if found < 0 else found + 1
                lines += 1
            began = time.monotonic()
            outbox.map(text[pos:end], start.source)
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
        job = self.job(request.job)
        if not isinstance(job, SdkJob):
            raise MapReduceError(f"job {request.job.name!r} has a native engine: its reducer is not user code")
        groups = grouped(merge_records([read_run(path) for path in map(Path, request.paths)]))
        result = job.reduce_groups(self._counted(groups, request.batch))
        return Reduced(wire.encode(result))

    def _counted(self, groups: Iterable[tuple[str, Iterator[Any]]], batch: int) -> Iterator[tuple[str, Iterator[Any]]]:
        for done, group in enumerate(groups, 1):
            if done % batch == 0:
                self.tick(done)
            yield group


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
