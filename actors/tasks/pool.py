"""The task pool: an actor's fixed number of task processes, started when first needed and restarted after death."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from ..core.config import Settings
from ..core.errors import Unavailable
from .process import TaskProcess

RESULT_SLACK = 1024 * 1024  # bytes of a message besides its chunk, frames or result


class TaskPool:
    """``size`` slots, each holding at most one worker; a request takes a slot for its whole conversation.

    One lifetime, the actor's (its cleanup context calls :meth:`close`): no worker outlives it, and each worker
    also dies with the actor's process itself (actors.tasks.worker asks the kernel for that)."""

    def __init__(self, size: int, cap: int, memory: int, startup: float) -> None:
        self.size = size
        self.startup = startup  # MR_TIMEOUT_STARTUP: a new worker's first answer may take this long
        self.cap = cap
        self.memory = memory
        self.slots: asyncio.Queue[TaskProcess | None] = asyncio.Queue()
        for _ in range(size):
            self.slots.put_nowait(None)  # a slot with no worker yet: started on first use
        self.processes: set[TaskProcess] = set()
        self.started = 0  # workers started, restarts included (for tests and metrics)
        self.closed = False

    @classmethod
    def of(cls, settings: Settings) -> TaskPool:
        # The largest message either way: a chunk (with a line as long as MR_MAX_KEY), a block of frames, a result.
        cap = max(settings.chunk_size + settings.max_key, 2 * settings.frame_cap, settings.result_cap) + RESULT_SLACK
        return cls(settings.task_pool, cap, settings.task_memory, settings.timeouts.startup)

    @contextlib.asynccontextmanager
    async def worker(self, job: str = "") -> AsyncIterator[TaskProcess]:
        """A live worker for one conversation about ``job`` (its id: what the worker writes to stderr meanwhile is
        that job's log); a worker left spent (failed, stalled, cancelled) is killed after."""
        if self.closed:
            raise Unavailable("the actor is stopping: its task processes are gone")
        held = await self.slots.get()
        try:
            if held is None or not held.alive:
                if held is not None:
                    await self._retire(held)
                    held = None
                held = await TaskProcess.start(self.cap, self.memory, self.startup)
                self.processes.add(held)
                self.started += 1
            held.job = job
            yield held
        finally:
            if held is not None:
                held.job = ""
            if held is not None and not held.alive:
                await self._retire(held)
                held = None
            self.slots.put_nowait(held)

    async def _retire(self, process: TaskProcess) -> None:
        self.processes.discard(process)
        await process.kill()  # the signal goes at once; a cancelled wait leaves only the reaping to asyncio

    async def close(self) -> None:
        """Kill every worker and reap it."""
        self.closed = True
        await asyncio.gather(*(process.kill() for process in list(self.processes)), return_exceptions=True)
        self.processes.clear()

    @property
    def pids(self) -> list[int]:
        return sorted(process.pid for process in self.processes if process.proc.returncode is None)
