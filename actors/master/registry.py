"""The job registry: the master's jobs by id, their idempotency keys, and the tasks that run them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from ..core.errors import NotFound
from .record import FINISHED, JobRecord


class JobRegistry:
    """Owns every job task: started here, cancelled and awaited in :meth:`close`."""

    def __init__(self, clock: Callable[[], float], ttl: float, on_forget: Callable[[JobRecord], None]) -> None:
        self.clock = clock
        self.ttl = ttl
        self.on_forget = on_forget
        self.jobs: dict[str, JobRecord] = {}
        self.keys: dict[str, str] = {}  # idempotency key -> job id
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def by_key(self, key: str) -> JobRecord | None:
        job_id = self.keys.get(key)
        return self.jobs.get(job_id) if job_id else None

    def start(self, record: JobRecord, run: Coroutine[Any, Any, None], key: str = "") -> None:
        self.expire()
        self.jobs[record.id] = record
        if key:
            self.keys[key] = record.id
        task = asyncio.get_running_loop().create_task(run, name=f"job-{record.id}")
        self._tasks[record.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(record.id, None))

    def restore(self, record: JobRecord, key: str) -> None:
        """Re-enter a finished job (from the journal) so its id and idempotency key still answer."""
        self.jobs[record.id] = record
        if key:
            self.keys[key] = record.id

    def get(self, job_id: str) -> JobRecord:
        record = self.jobs.get(job_id)
        if record is None:
            raise NotFound(f"unknown job id {job_id!r}")
        return record

    def cancel(self, job_id: str) -> JobRecord:
        record = self.get(job_id)
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()
        return record

    async def wait_cancelled(self, job_id: str, timeout: float) -> None:
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.wait({task}, timeout=timeout)

    @property
    def running(self) -> int:
        return len(self._tasks)

    def expire(self) -> None:
        """Forget finished jobs older than the TTL, with their served inputs."""
        cutoff = self.clock() - self.ttl
        for job_id, record in list(self.jobs.items()):
            if record.state in FINISHED and record.finished is not None and record.finished < cutoff:
                del self.jobs[job_id]
                self.keys = {k: v for k, v in self.keys.items() if v != job_id}
                self.on_forget(record)

    async def close(self, grace: float) -> None:
        """Let running jobs finish for up to ``grace`` seconds (a drain), then cancel what is left."""
        tasks = list(self._tasks.values())
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
