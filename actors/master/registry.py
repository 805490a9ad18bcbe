"""The job registry: the master's jobs by id, their idempotency keys, admission, and the tasks that run them."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..core.errors import Conflict, NotFound, TooManyRequests, Unprocessable
from ..core.logs import EventLog
from .record import CANCELLED, FAILED, FINISHED, QUEUED, JobRecord

Slot = tuple[str, int]  # (job id, epoch): a resubmission under one key reuses the id, never the epoch
Run = Callable[[], Awaitable[None]]


@dataclass
class _Claim:
    """An idempotency key held by a request that is still building its job (reading its body, probing a URL)."""

    fingerprint: str
    settled: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class _Key:
    job_id: str
    fingerprint: str  # empty: unknown (a job restored from the journal), so any body may resubmit it

SHUT_DOWN = "the master shut down before the job finished; submit it again"

log = EventLog(__name__)


class JobRegistry:
    """Owns every job task: started at admission, cancelled and awaited in :meth:`close`.

    At most ``max_running`` jobs run; up to ``max_queued`` more wait in each of two lanes (interactive ``/compute``
    jobs are served first, then submitted jobs, each in arrival order); beyond that admission is refused with 429.
    A queued job's task exists from admission and waits on its own future, which a finishing job resolves.
    """

    def __init__(self, clock: Callable[[], float], ttl: float, max_running: int, max_queued: int,
                 on_end: Callable[[JobRecord], None], on_forget: Callable[[JobRecord], None]) -> None:
        self.clock = clock
        self.ttl = ttl
        self.max_running = max_running
        self.max_queued = max_queued
        self.on_end = on_end  # every admitted job, when its task ends (also if cancelled while queued)
        self.on_forget = on_forget  # every finished job, when the TTL drops it
        self.jobs: dict[str, JobRecord] = {}
        self.keys: dict[str, _Key] = {}
        self._claims: dict[str, _Claim] = {}
        self._tasks: dict[Slot, asyncio.Task[None]] = {}
        self._running: set[Slot] = set()
        # Two FIFO lanes of waiting jobs (dicts keep insertion order and remove in O(1)).
        self._lanes: tuple[dict[Slot, asyncio.Future[None]], dict[Slot, asyncio.Future[None]]] = ({}, {})
        self._finishes: deque[float] = deque(maxlen=64)  # when recent jobs ended, for Retry-After
        # Jobs whose tasks ended (or restored finished), in about the order they finished: expire() looks only at the
        # oldest, so admitting a job costs the same with a million finished jobs held as with none.
        self._ended: deque[JobRecord] = deque()
        self._keys_of: dict[str, list[str]] = {}  # job id -> its idempotency keys, to drop them with the job

    # ------------------------------------------------------------------------------------------ idempotency keys

    async def claim(self, key: str, fingerprint: str, timeout: float) -> JobRecord | None:
        """The live job already submitted under ``key`` for this body, or None once this request holds ``key``.

        Holding a key, the caller must end with :meth:`start` (which binds the key to the job) or :meth:`release`.
        A key reused for another body is refused (422); a request racing another with the same key and body waits
        (up to ``timeout``) for the first one's outcome, so both answer the same job.
        """
        try:
            async with asyncio.timeout(timeout):
                while (pending := self._claims.get(key)) is not None:
                    self._check_fingerprint(key, pending.fingerprint, fingerprint)
                    await pending.settled.wait()
        except TimeoutError:
            raise Conflict(f"another request with Idempotency-Key {key!r} is still being admitted; "
                           "retry shortly") from None
        # No await from here on: the check and the claim are one step.
        self.expire()  # a key whose job passed its TTL is free now, not only after the next admission
        entry = self.keys.get(key)
        if entry is not None:
            self._check_fingerprint(key, entry.fingerprint, fingerprint)
            record = self.jobs.get(entry.job_id)
            if record is not None and record.state not in (FAILED, CANCELLED):
                return record
        self._claims[key] = _Claim(fingerprint)
        return None

    @staticmethod
    def _check_fingerprint(key: str, held: str, given: str) -> None:
        if held and held != given:
            raise Unprocessable(f"Idempotency-Key {key!r} was used for a different request body; use a new key "
                                "for a different job")

    def release(self, key: str) -> None:
        """Give up a claim whose request failed before its job started (no-op once :meth:`start` bound it)."""
        claim = self._claims.pop(key, None)
        if claim is not None:
            claim.settled.set()

    # ------------------------------------------------------------------------------------------ admission

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def queued(self) -> int:
        return sum(len(lane) for lane in self._lanes)

    def check_room(self, interactive: bool = False) -> None:
        """Refuse early (429) when a job could not be admitted now; :meth:`start` checks again."""
        if len(self._running) < self.max_running:
            return
        lane = self._lanes[0 if interactive else 1]
        if len(lane) >= self.max_queued:
            what = "/compute requests" if interactive else "jobs"
            raise TooManyRequests(
                f"the master is full: {len(self._running)} jobs running (MR_MAX_RUNNING_JOBS) and {len(lane)} "
                f"{what} queued (MR_MAX_QUEUED_JOBS); retry later", retry_after=self._retry_after())

    def _retry_after(self) -> float:
        """Seconds until the queue has likely drained, from the recent rate of finishing jobs (1 to 60)."""
        if len(self._finishes) < 2:
            return 1.0
        span = self._finishes[-1] - self._finishes[0]
        rate = (len(self._finishes) - 1) / span if span > 0 else float("inf")
        return min(60.0, max(1.0, self.queued / rate))

    def start(self, record: JobRecord, run: Run, key: str = "", interactive: bool = False) -> None:
        """Admit ``record``: run it now, or queue it; raise 429 when both are full. ``run`` is called once admitted.

        With ``key``, the caller's claim on it becomes the key's binding to this job (and its new epoch).
        """
        self.expire()
        self.check_room(interactive)
        slot = (record.id, record.epoch)
        previous = self.jobs.get(record.id)
        if previous is not None and previous.epoch >= record.epoch:
            raise Conflict(f"job {record.id} epoch {record.epoch} is not newer than epoch {previous.epoch}")
        turn: asyncio.Future[None] | None = None
        if len(self._running) < self.max_running:
            self._running.add(slot)
        else:
            turn = asyncio.get_running_loop().create_future()
            self._lanes[0 if interactive else 1][slot] = turn
        self.jobs[record.id] = record
        if key:
            claim = self._claims.pop(key, None)
            self._bind(key, _Key(record.id, claim.fingerprint if claim else ""))
            if claim is not None:
                claim.settled.set()
        task = asyncio.get_running_loop().create_task(self._lifetime(record, slot, run, turn),
                                                      name=f"job-{record.id}-{record.epoch}")
        self._tasks[slot] = task
        task.add_done_callback(lambda _: self._tasks.pop(slot, None))

    async def _lifetime(self, record: JobRecord, slot: Slot, run: Run, turn: asyncio.Future[None] | None) -> None:
        try:
            if turn is not None:
                await turn  # resolved by a finishing job, in lane order
            await run()
        except asyncio.CancelledError:
            if record.state == QUEUED:  # never ran: nobody else will finish its record
                record.transition(CANCELLED)
                record.error, record.finished = "cancelled while queued", self.clock()
                record.done.set()
            raise
        finally:
            for lane in self._lanes:
                lane.pop(slot, None)
            if slot in self._running:
                self._running.discard(slot)
                self._finishes.append(self.clock())
                self._admit_next()
            self._ended.append(record)
            self.on_end(record)

    def _admit_next(self) -> None:
        """Hand freed running slots to the oldest waiting jobs, interactive ones first."""
        for lane in self._lanes:
            while lane and len(self._running) < self.max_running:
                slot = next(iter(lane))
                turn = lane.pop(slot)
                if not turn.done():  # a cancelled waiter gives its place up
                    self._running.add(slot)
                    turn.set_result(None)

    # ------------------------------------------------------------------------------------------ jobs

    def restore(self, record: JobRecord, key: str) -> None:
        """Re-enter a finished job (from the journal) so its id and idempotency key still answer."""
        self.jobs[record.id] = record
        self._ended.append(record)
        if key:
            self._bind(key, _Key(record.id, ""))

    def _bind(self, key: str, entry: _Key) -> None:
        self.keys[key] = entry
        self._keys_of.setdefault(entry.job_id, []).append(key)

    def forget(self, record: JobRecord) -> None:
        """Forget a finished job now, before its TTL: a ``/compute`` job once answered (its id was never given
        out, and its caller has the result)."""
        if self.jobs.get(record.id) is record and record.state in FINISHED:
            del self.jobs[record.id]
            self._drop_keys(record.id)
            self.on_forget(record)

    def _drop_keys(self, job_id: str) -> None:
        for key in self._keys_of.pop(job_id, []):
            entry = self.keys.get(key)
            if entry is not None and entry.job_id == job_id:
                del self.keys[key]

    def get(self, job_id: str) -> JobRecord:
        record = self.jobs.get(job_id)
        if record is None:
            raise NotFound(f"unknown job id {job_id!r}")
        return record

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel the job's current epoch, running or queued; a finished job stays as it is."""
        record = self.get(job_id)
        task = self._tasks.get((record.id, record.epoch))
        if task is not None:
            task.cancel()
        return record

    async def wait_cancelled(self, record: JobRecord, timeout: float) -> None:
        task = self._tasks.get((record.id, record.epoch))
        if task is not None:
            await asyncio.wait({task}, timeout=timeout)

    def expire(self) -> None:
        """Forget finished jobs older than the TTL, with their served inputs: only the oldest ended jobs are looked
        at, so this costs what it drops, not what is held."""
        cutoff = self.clock() - self.ttl
        while self._ended:
            record = self._ended[0]
            if record.finished is not None and record.finished >= cutoff:
                return
            self._ended.popleft()
            if record.finished is None or record.state not in FINISHED or self.jobs.get(record.id) is not record:
                continue  # never finished, already forgotten, or replaced by a newer epoch (which ends later)
            del self.jobs[record.id]
            self._drop_keys(record.id)
            self.on_forget(record)

    async def close(self, stop_at: float, cancel_by: float) -> None:
        """Cancel queued jobs; let running ones run until ``stop_at``, then cancel the rest, waiting to ``cancel_by``.

        Both are event-loop times (a drain's, see net/drain.py). A job still running at ``cancel_by`` (say, its
        clean-up waits on a stalled reducer) is cancelled again and left behind: the deadline is the deadline.
        """
        loop = asyncio.get_running_loop()
        self.max_running = 0  # a draining master starts nothing more: queued jobs end now, never started
        for slot, task in self._tasks.items():
            if slot not in self._running:
                task.cancel()
        running = {slot: task for slot, task in self._tasks.items() if not task.done()}
        if not running:
            return
        _, pending = await asyncio.wait(running.values(), timeout=max(stop_at - loop.time(), 0.0))
        if not pending:
            return
        for (job_id, epoch), task in running.items():
            if task in pending:
                record = self.jobs.get(job_id)
                if record is not None and record.epoch == epoch and not record.error:
                    record.error = SHUT_DOWN
                task.cancel()
        log.warning("jobs_cancelled_at_shutdown", jobs=len(pending))
        _, stuck = await asyncio.wait(pending, timeout=max(cancel_by - loop.time(), 0.0))
        for task in stuck:
            task.cancel()  # a second cancel interrupts a shielded clean-up
        if stuck:
            log.error("jobs_stuck_at_shutdown", jobs=len(stuck))
