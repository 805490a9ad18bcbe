"""A split mapped in a task process: a user job's code, fed the owned chunks (or the whole input) of a split."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

from ..core.messages import Progress
from ..tasks.calls import MapTask
from ..tasks.places import AttemptDir, attempt_dir
from ..tasks.protocol import JobSpec, MapStart
from .attempt import MapAttempt
from .spool import Spool
from .whole import WholeInput


class TaskMapping(MapAttempt):
    """How an attempt maps its split in a task process while it heartbeats its master."""

    async def _map_in_task(self, spool: Spool, spec: JobSpec) -> AsyncGenerator[Progress, None]:
        """Map in a task process: the chunks go to it, its encoded frames come back into the spool, and this loop
        stays free (heartbeats go on) while user code works. The next chunk is read and sent while the worker maps
        the one before (MapTask's window). The task's working directory holds the job's side files
        (actors.tasks.places)."""
        assert self.tasks is not None
        s = self.settings
        with attempt_dir(s.spool_dir, s.data_root, self.a.files, whole_input=False) as place:
            async with self._task(spool, spec, place) as task:
                async for progress in self._meanwhile(task.open()):
                    yield progress
                async with contextlib.aclosing(self._owned_pieces()) as reading:
                    async for pieces in reading:
                        for offset, piece in pieces:
                            async for progress in self._meanwhile(task.feed(piece, offset)):
                                yield progress
                        yield self._progress()
                async for progress in self._finish(task, spool):
                    yield progress

    async def _map_whole_in_task(self, spool: Spool, spec: JobSpec) -> AsyncGenerator[Progress, None]:
        """Map the split's whole input file with the job's ``mapper_raw`` in a task process: a path input is the file
        itself, any other input is copied (pinned and checked as it is read) into the attempt's directory first,
        within MR_MAX_RAW_INPUT bytes; the copy goes with the directory when the attempt ends."""
        assert self.tasks is not None
        s = self.settings
        with attempt_dir(s.spool_dir, s.data_root, self.a.files, whole_input=True) as place:
            async with self._task(spool, spec, place) as task:
                async for progress in self._meanwhile(task.open()):
                    yield progress
                whole = WholeInput(self.a, s, self._source, place.input_dir)
                async with contextlib.aclosing(whole.fetch()) as fetching:
                    async for read in fetching:
                        self.bytes_read = read
                        yield self._progress()
                self.metrics.bytes_read.inc(self.bytes_read)
                async for progress in self._meanwhile(task.feed_raw(whole.path)):
                    yield progress
                await whole.check_unchanged()
                async for progress in self._finish(task, spool):
                    yield progress

    @contextlib.asynccontextmanager
    async def _task(self, spool: Spool, spec: JobSpec, place: AttemptDir) -> AsyncIterator[MapTask]:
        """A task process for this split's map request in ``place`` (opening it puts the side files there)."""
        assert self.tasks is not None
        s = self.settings
        start = MapStart(spec, self.a.input_name, spool.partitions, s.key_budget, s.frame_cap, s.frame_keys,
                         s.max_key, s.task_batch, s.max_counters, s.max_counter_name, self.a.max_bad_records,
                         place.place, self.a.format, self.a.direct, cuts=[] if self.a.direct else self.a.cuts)
        async with self.tasks.worker(self.a.job) as process, \
                MapTask(process, start, s.timeouts.lease, spool.absorb, self._mapped) as task:
            yield task

    async def _finish(self, task: MapTask, spool: Spool) -> AsyncGenerator[Progress, None]:
        finishing = asyncio.ensure_future(task.finish())
        async for progress in self._meanwhile(finishing):
            yield progress
        self.done = finishing.result()
        spool.settle(self.done)
        self.keys = spool.total_keys
        yield self._progress()

    def _mapped(self, lines: int) -> None:
        self.lines = lines
