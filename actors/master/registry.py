"""The job registry: the master's jobs by id, their idempotency keys, and the tasks that run them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from ..core.errors import NotFound
from ..core.logs import EventLog
from .record import FINISHED, JobRecord

SHUT_DOWN = "the master shut down before the job finished; submit it again"

log = EventLog(__name__)


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

    async def close(self, stop_at: float, cancel_by: float) -> None:
        """Let running jobs finish until ``stop_at``, then cancel what is left and wait for it until ``cancel_by``.

        Both are event-loop times (a drain's, see net/drain.py). A job still running at ``cancel_by`` (say, its
        clean-up waits on a stalled reducer) is cancelled again and left behind: the deadline is the deadline.
        """
        loop = asyncio.get_running_loop()
        running = {job_id: task for job_id, task in self._tasks.items() if not task.done()}
        if not running:
            return
        _, pending = await asyncio.wait(running.values(), timeout=max(stop_at - loop.time(), 0.0))
        if not pending:
            return
        for job_id, task in running.items():
            if task in pending:
                record = self.jobs.get(job_id)
                if record is not None and not record.error:
                    record.error = SHUT_DOWN
                task.cancel()
        log.warning("jobs_cancelled_at_shutdown", jobs=len(pending))
        _, stuck = await asyncio.wait(pending, timeout=max(cancel_by - loop.time(), 0.0))
        for task in stuck:
            task.cancel()  # a second cancel interrupts a shielded clean-up
        if stuck:
            log.error("jobs_stuck_at_shutdown", jobs=len(stuck))
