"""Admitting a job: its id and epoch, its coordinator and what keeps its result, handed to the registry."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..core.counters import JobTally
from ..core.errors import JobFailed, TaskFailed, Unavailable
from ..core.logs import EventLog
from ..inputs.ref import SERVED, InputRef
from ..jobs.result import Result, as_mapping, key_encoding, records_json, shown
from ..jobs.steps import VALUES
from ..net.actor import DISCOVERY, IDENTITY, JOBS, SETTINGS
from ..net.client import PeerClient
from ..net.transport import HttpTransport
from ..tasks.calls import class_spec, encode_result
from .coordinator import Coordinator
from .keys import CLAIMS, JOURNAL, MASTER_METRICS, REGISTRY, RESULTS, SESSION, SLOTS, STORE, TASKS
from .outputs import JobOutput, OutputClaim
from .readiness import READY
from .record import JobRecord
from .results import HeldResult, check_result_size

log = EventLog(__name__)


def _job_id(key: str) -> str:
    # A resubmission under the same key reuses the id, so reducers drop the old epoch's state.
    return "k" + hashlib.blake2b(key.encode(), digest_size=8).hexdigest() if key else uuid.uuid4().hex[:20]


def _epoch(previous: JobRecord | None) -> int:
    # Milliseconds, and always past the previous epoch of the same id (a quick resubmission under one key).
    now = time.time_ns() // 1_000_000
    return max(now, previous.epoch + 1) if previous is not None else now


def start_job(app: web.Application, job_name: str, ref: InputRef, split_size: int, key: str = "",
              interactive: bool = False, params: dict[str, str] | None = None,
              inputs: list[InputRef] | None = None, output: OutputClaim | None = None,
              files: dict[str, str] | None = None, whole: bool = False, fmt: str = "lines",
              max_bad_records: int = 0, steps: int = 1, shape: str = VALUES, partitions: int = 0) -> JobRecord:
    """Admit a job (running or queued; 429 when full, its input dropped); the registry owns its task from here.

    ``inputs``: a job's several inputs, which ``ref`` then summarises (record.many_inputs); ``output``: the claim
    on its output directory under the data root (bound to the job once admitted; the caller releases it if this
    raises), or None for a result the master holds; ``files``: its side files as pinned (jobfiles.py); ``whole``: it
    maps each input whole; ``fmt``: its inputs' record format (checked by the caller); ``steps``: how many steps the
    job has (its ``steps()``); ``shape``: its output's (actors.jobs.steps: a map-only job writes one part per split);
    ``partitions``: the job's N (0: MR_REDUCER_COUNT)."""
    settings, registry = app[SETTINGS], app[REGISTRY]
    job_id = _job_id(key)
    record = JobRecord(id=job_id, epoch=_epoch(registry.jobs.get(job_id)), job_name=job_name, input=ref,
                       created=time.time(), split_size=split_size, params=dict(params or {}),
                       inputs=list(inputs or []), output=output.relative if output else "",
                       interactive=interactive, files=dict(files or {}), whole=whole, format=fmt,
                       tally=JobTally(settings.counter_limits, max_bad_records), steps=steps, partitions=partitions,
                       partitioner=app[JOBS].classes[job_name].partitioner if job_name in app[JOBS].classes
                       else "hash", shape=shape)
    # An interactive job's answer stays on its record for the request that waits on it; the held results are for
    # jobs whose result is asked for later.
    keep = _answerer(app, record) if interactive else _keeper(app, record)
    writer = JobOutput(record, settings, lambda: app[CLAIMS].end(record, settled=True)) if output else None
    coordinator = Coordinator(record, settings, HttpTransport(PeerClient(app[SESSION], settings)), app[DISCOVERY],
                              app[SLOTS], time.monotonic, keep=keep, metrics=app[MASTER_METRICS],
                              inline=_inline(app, ref) if not inputs else b"", output=writer)
    try:
        registry.start(record, coordinator.run, key, interactive)
    except BaseException:
        for each in inputs or [ref]:
            app[STORE].drop(each.served_id)
        raise
    if output is not None:
        output.bind(record, writer)  # before the job's task first runs: held until its writers are fenced
    if not interactive:
        # A /compute job is not journaled: its id is never handed out and its caller's connection ends with the
        # master, which is all a restarted master could have said about it (and a journal write per job costs
        # the master a thread hand-off per job, measured).
        app[JOURNAL].started(record, key)
    log.debug("job_submitted", job=record.id, epoch=record.epoch, name=job_name, input=ref.kind, bytes=ref.size,
              running=registry.running, queued=registry.queued)
    return record


def _inline(app: web.Application, ref: InputRef) -> bytes:
    """A small text input's bytes, to send inside its assignments (MR_INLINE_INPUT): the mapper then needs no
    request back to the master for them. Uploads (on disk), paths and URLs are read by reference."""
    if ref.kind != SERVED or ref.compression or not 0 < ref.size <= app[SETTINGS].inline_input:
        return b""
    return app[STORE].text(ref.served_id) or b""


async def ready_for_jobs(app: web.Application) -> None:
    """Jobs start only on a ready master: draining refuses at once; not ready yet waits (bounded), then 503."""
    identity, ready = app[IDENTITY], app[READY]
    if not identity.draining and not ready.ready:  # latched: once ready, a job pays nothing here
        await ready.wait(app[SETTINGS].timeouts.peers)
    if identity.draining:  # also when SIGTERM came during the wait
        raise Unavailable("master is shutting down; submit again shortly")


def job_links(record: JobRecord) -> dict[str, str]:
    """Where a job's status and result are: every answer that names a job links them."""
    return {"status": f"/v1/jobs/{record.id}", "result": f"/v1/jobs/{record.id}/result"}


def _keeper(app: web.Application, record: JobRecord) -> Callable[[Result], Awaitable[HeldResult | None]]:
    """What the coordinator calls with a finished result: encode it once and hold it within the results budget
    (a job with an output has its result in its directory: nothing to hold). A user job's result is encoded in a
    task process (its ``order`` is user code): the payload is made first, then held."""

    async def keep(result: Result) -> HeldResult | None:
        if record.output:
            return None
        catalog = app[JOBS]
        encode: Callable[[Result], bytes]
        if isinstance(result, list):  # records: kept in the reducers' order, so no code of the job runs here
            encode = _records_encoder
        elif catalog.trusted(record.job_name):
            encode = catalog.get(record.job_name, record.params).encode
        else:
            encode = (await _encoded_in_task(app, record, result)).get
        try:
            held = app[RESULTS].hold(record.id, result, encode)
        except (TypeError, ValueError) as error:  # values JSON cannot carry: a job's bug, but fail just the job
            raise JobFailed(f"internal error: the result cannot be encoded as JSON: {error}") from None
        log.debug("result_held", job=record.id, epoch=record.epoch, bytes=held.size, held_bytes=app[RESULTS].held_bytes)
        return held

    return keep


def _records_encoder(result: Result) -> bytes:
    assert isinstance(result, list)
    return records_json(result)


class _Encoded:
    """A result a task process encoded: what :meth:`Results.hold` asks its encoder for."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def get(self, result: Result) -> bytes:
        return self.payload


async def _encoded_in_task(app: web.Application, record: JobRecord, result: Result) -> _Encoded:
    spec = class_spec(app[JOBS].classes[record.job_name], record.params)
    try:
        return _Encoded(await encode_result(app[TASKS], spec, as_mapping(result), app[SETTINGS].timeouts.finalize))
    except TaskFailed as error:  # it exited, crashed or hung: this job fails, the master carries on
        raise JobFailed(error.message) from None


def _answerer(app: web.Application, record: JobRecord) -> Callable[[Result], Awaitable[None]]:
    """What the coordinator calls with an interactive (``/compute``) job's result: its answer, encoded once, kept on
    the record for the request waiting on it. Entries in the job's top order and in json.dumps' own spacing, as the
    original answered; small by construction (the text came in one request line, at most MR_MAX_LINE bytes)."""

    async def keep(result: Result) -> None:
        ordered: Any
        if isinstance(result, list):  # records, in the order the reducers made them
            ordered = result
        else:
            entries = as_mapping(result)
            top = app[JOBS].get(record.job_name, record.params).top(entries, len(entries))
            ordered = shown(top, key_encoding(entries))
        try:
            answer = json.dumps(ordered).encode("ascii")
        except (TypeError, ValueError) as error:
            raise JobFailed(f"internal error: the result cannot be encoded as JSON: {error}") from None
        check_result_size(len(answer), app[SETTINGS].result_max)
        record.answer = answer

    return keep
