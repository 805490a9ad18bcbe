"""Outputs on the master's side (a directory, or an ``s3://`` prefix): claimed at submission, staged while the job
runs, then committed or fenced; the claim is let go only after the fence."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..core.config import Settings
from ..core.errors import Conflict, JobFailed, MapReduceError
from ..core.logs import EventLog
from ..inputs.outdir import (
    PartInfo,
    check_output_free,
    commit_staged,
    discard_staging,
    open_staging,
    resolve_output_dir,
    staging_name,
)
from ..inputs.s3 import is_s3
from ..inputs.s3out import S3Commit, check_free, output_uri
from .record import FINISHED, JobRecord

log = EventLog(__name__)


class OutputClaim:
    """One output directory held by a submission being admitted, then by its job until the job's task ends."""

    def __init__(self, claims: OutputClaims, target: Path | str, relative: str) -> None:
        self.claims = claims
        self.target = target
        self.relative = relative
        self.job: JobRecord | None = None
        self.output: JobOutput | None = None

    def bind(self, record: JobRecord, output: JobOutput | None = None) -> None:
        """The admitted job holds the claim from now on; :meth:`OutputClaims.end` lets it go."""
        self.job, self.output = record, output
        self.claims.by_job[(record.id, record.epoch)] = self

    def release(self) -> None:
        """Let go a claim whose submission was refused (no-op once bound to a job)."""
        if self.job is None and self.claims.held.get(self.target) is self:
            del self.claims.held[self.target]


class OutputClaims:
    """The output directories this master's jobs (and submissions being admitted) hold, by real path.

    :meth:`take` checks and claims with no ``await`` between them, so two submissions racing for one directory
    (the first still resolving its inputs) cannot both be admitted.
    """

    def __init__(self) -> None:
        self.held: dict[Path | str, OutputClaim] = {}  # a directory's real path, or an s3:// prefix
        self.by_job: dict[tuple[str, int], OutputClaim] = {}

    def take(self, target: Path | str, relative: str) -> OutputClaim:
        holder = self.held.get(target)
        if holder is not None:
            if holder.job is None:
                raise Conflict(f"output directory {relative!r} is claimed by another submission being admitted")
            job = holder.job
            if job.state in FINISHED:  # its task is still ending: a moment until its writers are fenced
                raise Conflict(f"output directory {relative!r} is still held by job {job.id} ({job.state}) until "
                               "its writers are fenced; retry shortly")
            raise Conflict(f"output directory {relative!r} is the output of job {job.id}, still {job.state}")
        claim = OutputClaim(self, target, relative)
        self.held[target] = claim
        return claim

    def end(self, record: JobRecord, settled: bool = False) -> None:
        """``record``'s task has ended: its directory is free for another job once its output has settled (fenced or
        committed, ``settled``: :class:`JobOutput` says so from its thread) or was never opened. A task cancelled
        twice ends while its commit or fence is still under way in a thread: the claim is let go after that."""
        claim = self.by_job.get((record.id, record.epoch))
        if claim is None or (not settled and claim.output is not None and claim.output.opened):
            return
        del self.by_job[(record.id, record.epoch)]
        if self.held.get(claim.target) is claim:
            del self.held[claim.target]


async def claim_output(settings: Settings, claims: OutputClaims, relative: str) -> OutputClaim:
    """Resolve ``relative`` (400s name the problem), claim it (409 if held), then check it holds no job's output
    (409); nothing is created. The caller releases the claim if its submission is refused later. An ``s3://``
    prefix is claimed by bucket and prefix in the same table."""
    if is_s3(relative):
        uri = output_uri(relative)
        claim = claims.take(str(uri), relative)
        try:
            await check_free(settings, uri)
        except BaseException:
            claim.release()
            raise
        return claim
    target = await asyncio.to_thread(resolve_output_dir, settings.output_base, relative, settings.max_output_depth)
    claim = claims.take(target, relative)  # no await between resolving's result and the claim's check
    try:
        await asyncio.to_thread(check_output_free, target, relative)
    except BaseException:
        claim.release()
        raise
    return claim


class JobOutput:
    """One job's output directory, from the master's side: opened when the job starts, committed once every part
    is staged, or fenced when the job ends any other way. Commit and fence exclude each other (a lock held in
    their threads), so a cancel that lands during a commit waits for it and never leaves half a fence."""

    def __init__(self, record: JobRecord, settings: Settings, fenced: Callable[[], None] | None = None) -> None:
        self.record = record
        self.settings = settings
        self.fenced = fenced  # called on the loop once the job's writers are fenced (or its output committed)
        self.opened = False  # open() was called: from then on only the fence's end lets the claim go
        self.staging: Path | None = None
        self._lock = threading.Lock()
        self._committed = False
        self._fenced = False
        # An s3:// prefix: its commit and fence are awaits, excluded from each other by an asyncio lock instead.
        self.s3 = S3Commit(settings, record.output, record.id, record.epoch) if is_s3(record.output) else None
        self._s3_lock = asyncio.Lock()

    async def open(self) -> None:
        """Create the output directory and the job's staging directory (a refusal fails the job by name); for an
        s3:// prefix, check once more that no job's output landed there since the submission."""
        self.opened = True  # before the thread: a cancel from here on leaves the claim to the fence
        try:
            if self.s3 is not None:
                await check_free(self.settings, self.s3.uri)
                return
            await asyncio.to_thread(self._open)
        except MapReduceError as error:
            raise JobFailed(f"output {self.record.output!r}: {error.message}") from None

    def _open(self) -> None:
        s, record = self.settings, self.record
        with self._lock:
            if self._fenced:
                raise Conflict("the job ended before its output directory was opened")
            self.staging = open_staging(s.output_base, record.output, s.max_output_depth, record.id, record.epoch)

    async def commit(self, parts: list[PartInfo], incarnations: Mapping[str, str] | None = None,
                     sources: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Move the staged parts into the output directory and write ``_SUCCESS``; what it says. ``incarnations``:
        the reducer incarnation each part's report came from (an s3:// attempt object is named by it; a map-only
        job's by its counted attempt, outdir.attempt_token); ``sources``: a part's staged file when it is not named
        as the part (a map-only job's counted attempt file, outdir.attempt_name)."""
        try:
            if self.s3 is not None:
                async with self._s3_lock:
                    if self._fenced:
                        raise Conflict("the job's writers were fenced before its output was committed")
                    doc = await self.s3.commit(parts, incarnations or {}, self._tally())
                    self._committed = True
                    return doc
            return await asyncio.to_thread(self._commit, parts, sources)
        except MapReduceError as error:
            raise JobFailed(f"output {self.record.output!r}: {error.message}") from None

    def _commit(self, parts: list[PartInfo], sources: Mapping[str, str] | None) -> dict[str, Any]:
        with self._lock:
            if self._fenced or self.staging is None:
                raise Conflict("the job's writers were fenced before its output was committed")
            doc = commit_staged(self.staging.parent, self.staging, self.record.id, self.record.epoch, parts,
                                self._tally(), sources)
            self._committed = True
            return doc

    def _tally(self) -> dict[str, Any]:
        """What ``_SUCCESS`` says of the job's counters and bad records (summed over counted attempts)."""
        tally = self.record.tally
        return {"counters": tally.counters_json(),
                "bad_records": {"allowed": tally.max_bad_records, "count": tally.bad_count}}

    async def fence(self) -> None:
        """Unless committed: remove the staging directory so no writer of this job can publish (never raises).

        ``fenced`` runs once the thread is done (the commit it waited for included), even if this await is
        cancelled first (a second cancel interrupts the shield around it): never while a commit still publishes.
        For an s3:// prefix: delete the job's attempt objects and any part it copied; no ``_SUCCESS`` was written."""
        if self.s3 is not None:
            await self._fence_s3(self.s3)
            if self.fenced is not None:
                self.fenced()
            return
        loop = asyncio.get_running_loop()

        def fence_then_tell() -> None:
            try:
                self._fence()
            except OSError as error:  # the rename failed: the directory is gone or unusable, nothing lands there
                log.warning("output_fence_failed", job=self.record.id, epoch=self.record.epoch, error=str(error))
            finally:
                if self.fenced is not None:
                    with contextlib.suppress(RuntimeError):  # the loop closed: its claims went with it
                        loop.call_soon_threadsafe(self.fenced)

        await asyncio.to_thread(fence_then_tell)

    async def _fence_s3(self, s3: S3Commit) -> None:
        async with self._s3_lock:  # a commit under way finishes first: then there is nothing to fence
            if self._committed:
                return
            self._fenced = True
            try:
                await s3.discard()
            except MapReduceError as error:
                log.warning("output_fence_failed", job=self.record.id, epoch=self.record.epoch, error=error.message)
                return
            log.info("output_fenced", job=self.record.id, epoch=self.record.epoch, output=str(s3.uri))

    def _fence(self) -> None:
        with self._lock:
            if self._committed:
                return
            self._fenced = True
            staging = self.staging
            if staging is None:  # never opened: and now it never will be
                return
            discard_staging(staging)
            log.info("output_fenced", job=self.record.id, epoch=self.record.epoch,
                     staging=staging_name(self.record.id, self.record.epoch))
