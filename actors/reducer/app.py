"""The reducer actor: stages shuffle streams, commits each split once, reports its partition's totals."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from aiohttp import web

from ..core import wire
from ..core.config import Settings
from ..core.counters import CounterMap
from ..core.density import container_bound, container_limit, count_containers
from ..core.errors import MapReduceError, PayloadTooLarge, RequestTimeout, TaskFailed, WireError
from ..core.logs import EventLog
from ..core.messages import (
    Columns,
    Commit,
    Data,
    Finalize,
    KeyPart,
    MapResult,
    Missing,
    PartFile,
    Records,
    Release,
    Report,
    StreamAck,
    StreamHeader,
    from_wire,
    to_wire,
)
from ..jobs.steps import output_key
from ..net.actor import IDENTITY, JOBS, SETTINGS, base_app, cbor_response, discovery_context, read_cbor_body
from ..net.frames import FrameReader, StreamCut
from ..net.metrics import METRICS, ReducerMetrics
from ..sdk import JobCodeError
from ..tasks.calls import decode_result, reduce_runs, user_spec
from ..tasks.places import attempt_dir
from ..tasks.pool import TaskPool
from .budget import Reservation, StagingBudget, reservation
from .ledger import DUPLICATE, Ledger, PartitionState, held_at
from .output import write_intermediate, write_output
from .stage import Stage
from .totals import SpillingTotals

LEDGER = web.AppKey("ledger", Ledger)
BUDGET = web.AppKey("budget", StagingBudget)
REDUCER_METRICS = web.AppKey("reducer_metrics", ReducerMetrics)
TASKS = web.AppKey("tasks", TaskPool)

log = EventLog(__name__)


def build_reducer(settings: Settings) -> web.Application:
    app = base_app(settings, client_max_size=settings.message_cap)
    app[LEDGER] = Ledger(partition=settings.ordinal, clock=time.monotonic, catalog=app[JOBS],
                         memory=settings.reduce_memory, spool=settings.spool_dir,
                         report_grace=settings.report_grace, report_budget=settings.report_budget, views=True,
                         max_partitions=settings.max_partitions)
    app[BUDGET] = StagingBudget(settings.stage_budget)
    ledger, budget = app[LEDGER], app[BUDGET]
    app[REDUCER_METRICS] = ReducerMetrics(app[METRICS], staged=lambda: budget.used, waits=lambda: budget.waited,
                                          keys=lambda: _keys_held(ledger), capacity=budget.capacity)
    app.cleanup_ctx.append(discovery_context)  # reducers are found by others: with mDNS this registers us
    app.cleanup_ctx.append(_janitor)
    app.cleanup_ctx.append(_spills)
    app.cleanup_ctx.append(_tasks)
    app.router.add_post("/internal/v1/shuffle", shuffle)
    app.router.add_post("/internal/v1/finalize", finalize)
    app.router.add_post("/internal/v1/release", release)
    app.router.add_get("/internal/v1/state", state)
    return app


def _keys_held(ledger: Ledger) -> int:
    """Entries held for every job: merged totals, plus committed values not merged yet (a key may be in both)."""
    return sum(s.keys_held for s in ledger.states())


async def _spills(app: web.Application) -> AsyncIterator[None]:
    """The ledger's spill thread and files live as long as the app."""
    yield
    await asyncio.to_thread(app[LEDGER].close)


async def _tasks(app: web.Application) -> AsyncIterator[None]:
    """The task processes that run user jobs' reducers: as long as the app, killed with it."""
    app[TASKS] = TaskPool.of(app[SETTINGS])
    try:
        yield
    finally:
        await app[TASKS].close()


async def _janitor(app: web.Application) -> AsyncIterator[None]:
    """A background loop owned by the app: drops jobs untouched for the TTL (finished, or their master is gone)."""
    settings, ledger = app[SETTINGS], app[LEDGER]
    stopping = asyncio.Event()

    async def sweep() -> None:
        while True:
            try:
                async with asyncio.timeout(max(1.0, settings.job_ttl / 10)):
                    await stopping.wait()
                    return
            except TimeoutError:
                for job in ledger.expire(settings.job_ttl):
                    log.info("job_expired", job=job)

    task = asyncio.get_running_loop().create_task(sweep(), name="reducer-janitor")
    try:
        yield
    finally:
        stopping.set()
        await task


async def shuffle(request: web.Request) -> web.Response:
    """One (job, epoch, split, attempt, partition) stream, whole within MR_TIMEOUT_STREAM.

    The idle timeout alone would let a sender that trickles a byte at a time hold its staging budget forever.
    """
    limit = request.app[SETTINGS].timeouts.stream
    metrics = request.app[REDUCER_METRICS]
    deadline = asyncio.timeout(limit)
    started = time.monotonic()
    try:
        async with deadline:
            return await _stream(request, started)
    except TimeoutError:
        if not deadline.expired():
            raise
        metrics.stream("cut", time.monotonic() - started)
        raise RequestTimeout(f"shuffle stream did not reach its COMMIT within {limit:g} s (MR_TIMEOUT_STREAM); "
                             "nothing merged") from None
    except (StreamCut, ConnectionError):
        metrics.stream("cut", time.monotonic() - started)
        raise
    except MapReduceError:
        metrics.stream("rejected", time.monotonic() - started)
        raise


async def _stream(request: web.Request, started: float) -> web.Response:
    """HEADER, DATA..., COMMIT: staged privately, merged once on a valid COMMIT."""
    settings = request.app[SETTINGS]
    ledger = request.app[LEDGER]
    reader = FrameReader(request.content, settings.frame_cap, settings.timeouts.stream_idle)
    first = await reader.next_raw(limit=HEADER_FRAME)
    if first is None:
        raise WireError("empty shuffle stream: expected a streamheader frame")
    header = from_wire(wire.decode(first, HEADER_FRAME), StreamHeader)
    fields = {"job": header.job, "epoch": header.epoch, "split": header.split, "attempt": header.attempt}
    if header.size > settings.stage_budget:
        raise PayloadTooLarge(
            f"stream of {header.size} bytes exceeds the staging budget of {settings.stage_budget} bytes "
            "(raise MR_STAGE_BUDGET on the reducers or lower MR_SPLIT_SIZE)"
        )
    # A job this reducer already reported had every split committed: the stream is checked whole, then a duplicate.
    state = ledger.receive(header)
    reported = state is None
    job_def = ledger.catalog.view(header.job_name, header.params) if state is None else state.job_def
    # Most streams decode to about DECODED_RATIO times their size, packed ones stay near it; one long key takes about
    # its size. Reserve the estimate (at most the whole budget) and let the staged frames grow it when they hold more.
    stage = Stage(job_def, settings.max_key)
    estimate = reservation(header.size, stage.packed, settings.stage_budget)
    async with request.app[BUDGET].reserve(estimate, settings.timeouts.stage_wait) as reserved:
        await _receive(reader, header, stage, reserved, settings)
        await reader.expect_end()
        # Re-read the state after the awaits above: a newer epoch may have replaced it, or a finalize reported it.
        if reported or ledger.is_past(header.job, header.epoch, header.step, header.partition):
            status = DUPLICATE
        else:
            partition = ledger.current(header.job, header.epoch, header.partition, header.step)
            status = partition.record(header.split, stage)  # no await between the check and the commit
            # Merge in slices, yielding between them, while this stream's reservation still covers its values.
            with user_code_logged(fields):  # a combiner runs here
                while True:
                    if partition.merge_some(settings.frame_keys):
                        break
                    await asyncio.sleep(0)  # a yield between slices of work, not a wait for a condition
    request.app[REDUCER_METRICS].stream(status, time.monotonic() - started)
    log.debug("stream_" + status, **fields, partition=header.partition, keys=stage.keys)
    ack = StreamAck(
        job=header.job, epoch=header.epoch, split=header.split, partition=header.partition, status=status,
        incarnation=request.app[IDENTITY].incarnation,
    )
    return cbor_response(to_wire(ack))


# How DATA and KEYPART frames begin as encoded by every mapper: a reducer reads a DATA frame's key count from the
# bytes after this prefix and refuses too many before decoding; any other frame must be small.
DATA_PREFIX = wire.encode(to_wire(Data({})))[:-1]
KEYPART_PREFIX = wire.encode(to_wire(KeyPart("")))[:-1]
# A COLUMNS frame is a map of three byte strings: decoded at copying speed whatever its size; its key count is
# checked (MR_FRAME_KEYS) before it is unpacked.
_COLUMNS = wire.encode(to_wire(Columns(b"", b"", b"")))
COLUMNS_PREFIX = _COLUMNS[: _COLUMNS.index(wire.encode("keys"))]
COLUMNS_FIELDS = ("keys", "ends", "counts")
SMALL_FRAME = 1024
HEADER_FRAME = 64 * 1024


def check_frame(body: bytes, frame_keys: int) -> None:
    """Bound the work of decoding ``body`` before it starts: cbor2's C decoder holds the GIL (measured: a thread
    does not keep the event loop running), so one frame of a million keys would stall the loop for seconds."""
    keys = wire.map_size_after(body, DATA_PREFIX)
    if keys is not None:
        if keys > frame_keys:
            raise PayloadTooLarge(f"a DATA frame of {keys} keys exceeds the {frame_keys} a frame may hold "
                                  "(MR_FRAME_KEYS)")
        return
    if body.startswith(KEYPART_PREFIX) and len(body) > len(KEYPART_PREFIX) and body[len(KEYPART_PREFIX)] >> 5 == 3:
        return  # one text string: decoded at copying speed, whatever its length
    if wire.only_byte_strings_after(body, COLUMNS_PREFIX, COLUMNS_FIELDS):
        return
    if len(body) > SMALL_FRAME:
        raise WireError(f"a frame of {len(body)} bytes that is neither a DATA nor a KEYPART frame")




async def check_density(body: bytes, frame_keys: int) -> None:
    """Refuse a frame holding more lists and maps than :func:`container_limit` before decoding it: each costs ten
    times a scalar to decode, so MR_FRAME_CAP alone would let a frame of empty lists stall the loop for seconds."""
    limit = container_limit(frame_keys)
    if container_bound(body) <= limit:
        return  # the common case, decided at C speed
    walk = count_containers(body, limit)
    while True:
        try:
            next(walk)
        except StopIteration as done:
            containers: int = done.value
            break
        await asyncio.sleep(0)  # a yield between slices of the walk, so probes and other streams run
    if containers > limit:
        raise PayloadTooLarge(f"a frame holding more than {limit} lists and maps (2 per key of "
                              f"MR_FRAME_KEYS={frame_keys})")


async def _next_frame(reader: FrameReader, limit: int) -> bytes | None:
    try:
        return await reader.next_raw(limit=limit)
    except PayloadTooLarge as exc:
        raise PayloadTooLarge(f"{exc} (MR_FRAME_CAP)") from None


async def _receive(reader: FrameReader, header: StreamHeader, stage: Stage, reserved: Reservation,
                   settings: Settings) -> None:
    """Stage the stream's frames up to its valid COMMIT; each frame's decoded size is charged to the budget."""
    received = 0
    while True:
        raw = await _next_frame(reader, max(header.size - received, SMALL_FRAME + wire.PREFIX))
        if raw is None:
            log.warning("stream_cut", job=header.job, epoch=header.epoch, split=header.split,
                        attempt=header.attempt, frames=stage.frames)
            raise StreamCut(f"stream for split {header.split} ended before its COMMIT frame; nothing merged")
        check_frame(raw, settings.frame_keys)
        await check_density(raw, settings.frame_keys)
        message = from_wire(wire.decode(raw, settings.frame_cap), Data, Columns, KeyPart, Commit)
        if isinstance(message, Columns) and len(message) > settings.frame_keys:
            raise PayloadTooLarge(f"a COLUMNS frame of {len(message)} keys exceeds the {settings.frame_keys} a frame "
                                  "may hold (MR_FRAME_KEYS)")
        if isinstance(message, Commit):
            stage.verify(message)
            return
        received += reader.last_size
        if received > header.size:
            raise WireError(f"stream sent more than the {header.size} bytes its header declared")
        if isinstance(message, KeyPart):
            stage.add_part(message)
        else:
            stage.add(message)
        reserved.cover(stage.held)
        # Frames already buffered are read without suspending: yield, so probes and other streams run between
        # frames rather than after a whole stream (a yield, not a wait for anything).
        await asyncio.sleep(0)


async def finalize(request: web.Request) -> web.Response:
    """The partition's report (or the splits it lacks); once reported, the job is forgotten here and the same
    answer, byte for byte, is kept for a master that asks again (MR_REPORT_GRACE, MR_REPORT_BUDGET)."""
    settings = request.app[SETTINGS]
    message = from_wire(await read_cbor_body(request, settings.message_cap), Finalize)
    ledger = request.app[LEDGER]
    ledger.check_owner(message.partition, message.partitions, message.reducers)
    if message.splits > settings.max_splits:  # the splits it lacks are listed: 10**10 of them would exhaust memory
        raise WireError(f"finalize of {message.splits} splits: no job has more than {settings.max_splits} "
                        "(MR_MAX_SPLITS)")
    number = message.partition
    kept = ledger.reported_answer(message.job, message.epoch, number, message.step)
    if kept is not None:
        log.info("report_repeated", job=message.job, epoch=message.epoch, partition=number, step=message.step)
        return _cbor_bytes(kept)
    incarnation = request.app[IDENTITY].incarnation
    partition = ledger.find(message.job, message.epoch, number, message.step)
    missing = partition.missing(message.splits) if partition is not None else list(range(message.splits))
    if partition is None or missing:
        # Not an error: the master redoes exactly these splits for this partition (e.g. after we restarted).
        log.warning("partition_incomplete", job=message.job, epoch=message.epoch, partition=number,
                    missing=len(missing))
        answer = Missing(job=message.job, epoch=message.epoch, partition=number, incarnation=incarnation,
                         splits=missing, step=message.step)
        return cbor_response(to_wire(answer))
    partition.merge_pending()  # a stream may still be merging (its split also committed by a backup attempt)
    ordered = None if message.output or message.work else partition.ordered_run()
    if ordered is not None:  # counts held in a packing engine's table: sorted there, no object made per key
        log.debug("partition_reported", job=message.job, epoch=message.epoch, partition=number,
                  keys=len(ordered), duplicates=partition.duplicates)
        report = Report(job=message.job, epoch=message.epoch, partition=number, incarnation=incarnation,
                        splits=message.splits, payload=ordered, step=message.step)
        return _reported(ledger, partition, report)
    partition.settle()
    spec = user_spec(partition.job_def, partition.params)
    counters: CounterMap = {}  # the reducer's, when the job's code runs (in a task process)
    with user_code_logged({"job": message.job, "epoch": message.epoch, "partition": number}):
        if spec is not None and isinstance(partition.merged, SpillingTotals):  # user code: in a task process
            totals, counters = await _reduce_in_task(request.app, partition.merged, spec, message)
        elif partition.spilled():  # merge the runs on the spill thread, after its writes
            totals = await asyncio.wrap_future(partition.finish_spilled())
        else:
            totals = partition.job_def.finish(partition.totals)
    if message.work:  # not the last step: the records, canonical keys kept, go to the next step's mappers
        part = await write_intermediate(settings, message, totals, incarnation)
        log.info("partition_intermediate", job=message.job, epoch=message.epoch, partition=number,
                 step=message.step, keys=part.keys, bytes=part.bytes, duplicates=partition.duplicates)
        report = Report(job=message.job, epoch=message.epoch, partition=number, incarnation=incarnation,
                        splits=message.splits, payload=PartFile(part.name, part.bytes, part.keys, part.sha256),
                        counters=counters, step=message.step)
        return _reported(ledger, partition, report)
    if isinstance(totals, list):  # records: [canonical key, value] from the job's reducer, keys made typed here
        totals = [[output_key(key), value] for key, value in totals]
    if message.output:
        part = await write_output(settings, message, totals, incarnation)
        log.info("partition_written", job=message.job, epoch=message.epoch, partition=number,
                 keys=part.keys, bytes=part.bytes, part=part.name, duplicates=partition.duplicates)
        report = Report(
            job=message.job, epoch=message.epoch, partition=number, incarnation=incarnation,
            splits=message.splits, payload=PartFile(part.name, part.bytes, part.keys, part.sha256), counters=counters,
            step=message.step,
        )
    else:
        log.debug("partition_reported", job=message.job, epoch=message.epoch, partition=number,
                  keys=len(totals), duplicates=partition.duplicates)
        payload: MapResult | Columns | Records
        if isinstance(totals, list):
            payload = Records(totals)
        else:
            run = partition.report_run(totals)  # a packing engine's: sorted here, not at the master
            payload = run if run is not None else MapResult(totals)
        report = Report(job=message.job, epoch=message.epoch, partition=number, incarnation=incarnation,
                        splits=message.splits, payload=payload, counters=counters, step=message.step)
    return _reported(ledger, partition, report)


@contextlib.contextmanager
def user_code_logged(fields: dict[str, Any]) -> Iterator[None]:
    """A job's own code failing here: its traceback goes to this actor's logs of the job (the error middleware
    answers the request, and logs it, without the job or the traceback)."""
    try:
        yield
    except JobCodeError as error:
        log.warning("user_code_failed", **fields, cause=error.message, traceback=error.traceback)
        raise


async def _reduce_in_task(app: web.Application, merged: SpillingTotals, spec: Any,
                          message: Finalize) -> tuple[dict[str, Any] | list[list[Any]], CounterMap]:
    """The job's reducer over the partition's runs in a task process (its working directory holding the job's side
    files), and the reduce's counters; a worker that dies or stalls is replaced and the reduce run again, up to
    MR_MAX_ATTEMPTS times (then it is the job's failure, not this actor's)."""
    settings = app[SETTINGS]
    paths = await asyncio.wrap_future(merged.hand_over())
    cause = ""
    for _ in range(settings.max_attempts):
        try:
            with attempt_dir(settings.spool_dir, settings.data_root, message.files, whole_input=False) as place:
                async with app[TASKS].worker(message.job) as process:
                    result, counters = await reduce_runs(process, spec, paths, settings.task_batch,
                                                         settings.timeouts.lease, settings.counter_limits, place.place)
        except TaskFailed as error:
            cause = error.message
            log.warning("reduce_task_failed", job=spec.name, cause=cause)
            continue
        # A large result decodes off the loop (cbor2 holds the GIL, but the loop still gets its turns).
        return await asyncio.to_thread(decode_result, result, settings.result_cap), counters
    raise JobCodeError(f"{cause} (on each of MR_MAX_ATTEMPTS={settings.max_attempts} attempts)")


def _reported(ledger: Ledger, partition: PartitionState, report: Report) -> web.Response:
    """Answer ``report`` and forget the job, keeping the answer; a finalize asked twice at once reports once (the
    answer kept first is the answer)."""
    kept = ledger.reported_answer(report.job, report.epoch, report.partition, report.step)
    if kept is None:
        kept = wire.encode(to_wire(report))
        ledger.forget_reported(partition, kept)
    return _cbor_bytes(kept)


def _cbor_bytes(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/cbor")


async def release(request: web.Request) -> web.Response:
    message = from_wire(await read_cbor_body(request, request.app[SETTINGS].message_cap), Release)
    dropped = request.app[LEDGER].release(message.job, message.epoch)
    if dropped:
        await asyncio.wrap_future(request.app[LEDGER].barrier())  # its spilled runs are gone when we answer
        log.info("job_released", job=message.job, epoch=message.epoch)
    return cbor_response({"released": dropped, "incarnation": request.app[IDENTITY].incarnation})


async def state(request: web.Request) -> web.Response:
    """What this reducer holds, for operators and tests."""
    ledger = request.app[LEDGER]
    jobs = {
        job: {"epoch": held_at(held)[0], "step": held_at(held)[1], "partitions": {
            str(p): {"committed": sorted(s.committed), "keys": s.keys_held, "duplicates": s.duplicates,
                     "spills": s.spills}
            for p, s in sorted(held.items())}}
        for job, held in ledger.jobs.items()
    }
    budget = request.app[BUDGET]
    return web.json_response({
        "incarnation": request.app[IDENTITY].incarnation, "partition": ledger.partition, "jobs": jobs,
        "reported": len(ledger.reported), "stale": ledger.stale, "stale_steps": ledger.stale_steps,
        "staged_bytes": budget.used, "waited": budget.waited,
        "refused": budget.refused,
    })
