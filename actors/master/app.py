"""The master actor: takes jobs over HTTP, serves their input ranges, and reports progress and results."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import aiohttp
from aiohttp import web

from ..core.config import Settings
from ..core.errors import (
    BadRequest,
    Conflict,
    JobFailed,
    PayloadTooLarge,
    TooManyRequests,
    Unavailable,
)
from ..core.logs import EventLog
from ..inputs.outdir import SUCCESS, prepare_output_dir, resolve_output_dir
from ..inputs.ref import SERVED, InputRef
from ..jobs import DEFAULT_JOB
from ..jobs.result import Result, as_mapping
from ..net.actor import DISCOVERY, DRAIN, IDENTITY, JOBS, SETTINGS, base_app, discovery_context
from ..net.client import PeerClient, session_context
from ..net.metrics import METRICS, MasterMetrics
from ..net.transport import HttpTransport
from .coordinator import Coordinator, MapperSlots
from .jobcheck import check_job_everywhere
from .journal import Journal
from .limits import (
    check_inputs_plan,
    check_plan,
    count_param,
    idempotency_key,
    json_split_size,
    parse_cost,
    positive_decimal,
    query_split_size,
    wait_seconds,
)
from .openapi import openapi
from .page import add_status_page
from .readiness import READY, expected_reducers, readiness_context
from .record import DONE, FAILED, FINISHED, JobRecord, many_inputs
from .registry import JobRegistry
from .results import HeldResult, Results, check_result_size
from .splitview import parse_query
from .store import (
    UPLOAD_BLOCK,
    InputStore,
    Reservation,
    body_pace,
    clip_name,
    parse_inputs,
    read_block,
    upload_name,
)

SESSION = web.AppKey("session", aiohttp.ClientSession)
STORE = web.AppKey("store", InputStore)
REGISTRY = web.AppKey("registry", JobRegistry)
SLOTS = web.AppKey("slots", MapperSlots)
JOURNAL = web.AppKey("journal", Journal)
RESULTS = web.AppKey("results", Results)
MASTER_METRICS = web.AppKey("master_metrics", MasterMetrics)
TOP_BATCH = 4096  # ?top=N entries written at a time
JSON_SLOT_SIZE = 64 * 1024  # a JSON body larger than this (or of unknown length) holds an MR_MAX_UPLOADS slot
RESTARTED = "the master restarted while this job was running; resubmit it (with the same Idempotency-Key it is safe)"

log = EventLog(__name__)


def build_master(settings: Settings) -> web.Application:
    expected_reducers(settings)  # refuse to start without knowing how many reducers to wait for
    app = base_app(settings, client_max_size=settings.max_json)
    app[SLOTS] = MapperSlots(settings.mapper_slots)
    _add_metrics(app)
    app.cleanup_ctx.append(session_context(SESSION))
    app.cleanup_ctx.append(discovery_context)
    app.cleanup_ctx.append(readiness_context)
    app.cleanup_ctx.append(_jobs_context)
    app.router.add_get("/compute", compute)
    app.router.add_post("/v1/jobs", submit)
    app.router.add_get("/v1/jobs", list_jobs)
    app.router.add_get("/v1/jobs/kinds", job_kinds)  # before /v1/jobs/{id}
    app.router.add_get("/v1/jobs/{id}", status)
    app.router.add_get("/v1/jobs/{id}/result", result)
    app.router.add_delete("/v1/jobs/{id}", cancel)
    app.router.add_get("/v1/cluster", cluster)
    app.router.add_get("/v1/openapi.json", openapi)
    app.router.add_get("/internal/v1/inputs/{id}", serve_input)
    add_status_page(app, SESSION)
    return app


def _add_metrics(app: web.Application) -> None:
    """The master's metric families; jobs and peers are read at scrape time (peers within the discovery timeout)."""
    metrics, timeout = app[METRICS], app[SETTINGS].timeouts.discovery
    app[MASTER_METRICS] = master = MasterMetrics(metrics, app[JOBS].names())
    metrics.readings.gauge("mapreduce_jobs_running", "jobs running now",
                           lambda: app[REGISTRY].running if REGISTRY in app else 0)
    metrics.readings.gauge("mapreduce_jobs_queued", "jobs admitted and waiting to run",
                           lambda: app[REGISTRY].queued if REGISTRY in app else 0)
    metrics.refreshers.append(lambda: master.count_peers(app.get(DISCOVERY), timeout))


async def _jobs_context(app: web.Application) -> AsyncIterator[None]:
    """The input store, results, journal and job registry live as long as the app; closing drains, then cancels."""
    settings = app[SETTINGS]
    store = InputStore(settings)
    app[STORE] = store
    results = Results(settings.result_max, settings.results_budget, time.time)
    app[RESULTS] = results
    journal = Journal(settings.state_dir)
    app[JOURNAL] = journal

    def ended(record: JobRecord) -> None:
        store.drop(record.input.served_id)
        if not record.interactive:
            journal.ended(record)
        seconds = (record.finished or time.time()) - record.created
        app[MASTER_METRICS].job_finished(record.job_name, record.state, seconds)

    def forget(record: JobRecord) -> None:
        store.drop(record.input.served_id)
        results.forget(record.id)

    registry = JobRegistry(time.time, settings.job_ttl, settings.max_running_jobs, settings.max_queued_jobs,
                           on_end=ended, on_forget=forget)
    app[REGISTRY] = registry
    app[UPLOADS] = UploadSlots(settings.max_uploads)
    for record, key in await asyncio.to_thread(journal.interrupted):
        record.transition(FAILED)
        record.error, record.finished = RESTARTED, time.time()
        record.done.set()
        registry.restore(record, key)
        log.warning("job_lost_in_restart", job=record.id, epoch=record.epoch)
    await asyncio.to_thread(journal.compact)
    drain = app[DRAIN]
    drain.hooks.append(lambda d: registry.close(d.stop_at, d.cancel_by))  # SIGTERM: the jobs share one deadline
    try:
        yield
    finally:
        drain.begin(asyncio.get_running_loop().time())  # a clean-up without SIGTERM drains by the same rule
        await registry.close(drain.stop_at, drain.cancel_by)
        store.close()
        results.clear()
        await asyncio.to_thread(journal.close)


def _job_id(key: str) -> str:
    # A resubmission under the same key reuses the id, so reducers drop the old epoch's state.
    return "k" + hashlib.blake2b(key.encode(), digest_size=8).hexdigest() if key else uuid.uuid4().hex[:20]


def _epoch(previous: JobRecord | None) -> int:
    # Milliseconds, and always past the previous epoch of the same id (a quick resubmission under one key).
    now = time.time_ns() // 1_000_000
    return max(now, previous.epoch + 1) if previous is not None else now


def start_job(app: web.Application, job_name: str, ref: InputRef, split_size: int, key: str = "",
              interactive: bool = False, params: dict[str, str] | None = None,
              inputs: list[InputRef] | None = None, output: str = "") -> JobRecord:
    """Admit a job (running or queued; 429 when full, its input dropped); the registry owns its task from here.

    ``inputs``: a job's several inputs, which ``ref`` then summarises (record.many_inputs); ``output``: the output
    directory under the data root, or empty for a result the master holds."""
    settings, registry = app[SETTINGS], app[REGISTRY]
    job_id = _job_id(key)
    record = JobRecord(id=job_id, epoch=_epoch(registry.jobs.get(job_id)), job_name=job_name, input=ref,
                       created=time.time(), split_size=split_size, params=dict(params or {}),
                       inputs=list(inputs or []), output=output, interactive=interactive)
    # An interactive job's answer stays on its record for the request that waits on it; the held results are for
    # jobs whose result is asked for later.
    keep = _answerer(app, record) if interactive else _keeper(app, record)
    coordinator = Coordinator(record, settings, HttpTransport(PeerClient(app[SESSION], settings)), app[DISCOVERY],
                              app[SLOTS], time.monotonic, keep=keep, metrics=app[MASTER_METRICS],
                              inline=_inline(app, ref) if not inputs else b"")
    try:
        registry.start(record, coordinator.run, key, interactive)
    except BaseException:
        app[STORE].drop(ref.served_id)
        raise
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


class UploadSlots:
    """How many uploads (and JSON bodies over 64 KiB) this master receives at once (MR_MAX_UPLOADS)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        if self.active >= self.limit:
            raise TooManyRequests(f"{self.active} uploads and large JSON bodies are already being received, the "
                                  "limit (MR_MAX_UPLOADS); retry later", retry_after=5.0)
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


UPLOADS = web.AppKey("uploads", UploadSlots)


async def _ready_for_jobs(app: web.Application) -> None:
    """Jobs start only on a ready master: draining refuses at once; not ready yet waits (bounded), then 503."""
    identity, ready = app[IDENTITY], app[READY]
    if not identity.draining and not ready.ready:  # latched: once ready, a job pays nothing here
        await ready.wait(app[SETTINGS].timeouts.peers)
    if identity.draining:  # also when SIGTERM came during the wait
        raise Unavailable("master is shutting down; submit again shortly")


def _links(record: JobRecord) -> dict[str, str]:
    return {"status": f"/v1/jobs/{record.id}", "result": f"/v1/jobs/{record.id}/result"}


async def submit(request: web.Request) -> web.Response:
    """POST /v1/jobs: a JSON spec ``{"job": ..., "input": {...}}``, or a raw body uploaded as the input.

    With an ``Idempotency-Key``, the request's fingerprint is the hash of its canonical form (a JSON spec re-encoded
    with sorted keys; an upload's bytes with its sorted query): the same key and fingerprint answer the same job
    (200), the same key with another fingerprint is refused (422).
    """
    app, settings = request.app, request.app[SETTINGS]
    await _ready_for_jobs(app)
    registry = app[REGISTRY]
    key = idempotency_key(request.headers.get("Idempotency-Key", ""))
    if key not in registry.keys:  # a known key may be answered with its job even when the master is full
        registry.check_room()  # refuse a flood before reading its bodies
    deadline = asyncio.get_running_loop().time() + settings.timeouts.body
    digest = hashlib.blake2b(digest_size=16)
    reservation = Reservation(app[STORE].text_budget)  # released when this request ends, whatever its outcome
    encoded = None
    if request.content_type == "application/json":
        try:
            spec = await _json_body(request, deadline, reservation)
            encoded = _fingerprint(spec, digest)
        except BaseException:
            reservation.release()
            raise
        upload = None
    else:
        spec = {}
        digest.update(json.dumps(sorted(request.query.items())).encode("utf-8", "surrogatepass"))
        split_size = query_split_size(request.query.get("split_size"), settings)
        name = upload_name(request, settings.max_name)
        if request.content_length is not None:
            check_plan(request.content_length, split_size, settings)  # refuse before spooling a byte
        with app[UPLOADS].hold():
            upload = await app[STORE].add_upload(request.content, name, settings.max_body, request.content_length,
                                                 deadline=deadline, digest=digest)
    held = False  # whether this request holds the key's claim, so it alone may release it
    try:
        existing = await registry.claim(key, digest.hexdigest(), settings.timeouts.request) if key else None
        held = bool(key) and existing is None
        if existing is not None:
            if upload is not None:
                app[STORE].drop(upload.served_id)
            return web.json_response({**existing.status(), "links": _links(existing)}, status=200)
        job_name, refs, split_size, output = await _job_of(request, spec, upload, reservation, encoded)
        ref = refs[0] if len(refs) == 1 else many_inputs(refs)
        record = start_job(app, job_name, ref, split_size, key, params=spec.get("params"),
                           inputs=refs if len(refs) > 1 else None, output=output)
    except BaseException:
        if upload is not None:
            app[STORE].drop(upload.served_id)
        raise
    finally:
        reservation.release()
        if held:
            registry.release(key)  # a no-op once start_job bound the key to the job
    return web.json_response({**record.status(), "links": _links(record)}, status=202)


async def _job_of(request: web.Request, spec: dict[str, Any], upload: InputRef | None,
                  reservation: Reservation | None = None,
                  encoded: bytes | None = None) -> tuple[str, list[InputRef], int, str]:
    """The job name, inputs, split size and output directory a submission asks for, its plan checked against
    MR_MAX_SPLITS."""
    app, settings = request.app, request.app[SETTINGS]
    if upload is not None:
        job_name = request.query.get("job", DEFAULT_JOB)
        await check_job(app, job_name, {})
        split_size = query_split_size(request.query.get("split_size"), settings)
        check_plan(upload.size, split_size, settings)  # an upload without a Content-Length is checked once spooled
        return job_name, [upload], split_size, ""
    job_name = spec.get("job", DEFAULT_JOB)
    if not isinstance(job_name, str):
        raise BadRequest('"job" must be a job name string')
    await check_job(app, job_name, spec.setdefault("params", {}))
    if "input" not in spec:
        raise BadRequest('missing "input": give {"text": ...}, {"path": ...} or {"url": ...}')
    split_size = json_split_size(spec, settings)
    unknown = sorted(set(spec) - {"job", "input", "split_size", "params", "output"})
    if unknown:
        raise BadRequest(f"unknown fields {unknown}; a job spec has job, params, input, output and split_size")
    output = await _output_of(app, spec.get("output")) if "output" in spec else ""
    refs = await parse_inputs(spec["input"], settings, app[STORE], reservation, encoded)
    refs = [clip_name(ref, settings.max_name) for ref in refs]
    _admit_plan(app, refs, split_size)
    return job_name, refs, split_size, output


async def _output_of(app: web.Application, spec: Any) -> str:
    """The output directory ``{"path": DIR}`` asks for, under the data root, created if need be: 400 for a bad or
    escaping path, 409 when it holds another job's output or a running job of this master writes there."""
    if not isinstance(spec, dict) or set(spec) != {"path"} or not isinstance(spec["path"], str):
        raise BadRequest('"output" must be {"path": DIR}, DIR a directory under the data root')
    relative, root = spec["path"], app[SETTINGS].data_root
    target = await asyncio.to_thread(prepare_output_dir, root, relative)
    for other in app[REGISTRY].jobs.values():
        busy = other.output and other.state not in FINISHED
        if busy and await asyncio.to_thread(resolve_output_dir, root, other.output) == target:
            raise Conflict(f"output directory {relative!r} is the output of job {other.id}, still {other.state}")
    return relative


async def check_job(app: web.Application, name: str, params: Any) -> None:
    """400 unless the job is known here, takes ``params`` (its configure hook), and every visible actor has it in
    this version (jobcheck.py)."""
    if not isinstance(params, dict):
        raise BadRequest('"params" must be an object of string values')
    catalog = app[JOBS]
    catalog.sdk(name, params)
    await check_job_everywhere(app[SESSION], app[DISCOVERY], name, catalog.fingerprints[name],
                               app[SETTINGS].timeouts.connect)


async def job_kinds(request: web.Request) -> web.Response:
    """GET /v1/jobs/kinds: the jobs this master can run, with their parameters and docstrings."""
    return web.json_response({"jobs": request.app[JOBS].describe()})


def _finite(text: str) -> float:
    """A JSON number that is finite: NaN, Infinity and overflowing literals are refused."""
    value = float(text)
    if not math.isfinite(value):
        raise BadRequest(f"JSON number {text[:40]!r} is not finite")
    return value


def _no_constant(name: str) -> Any:
    raise BadRequest(f"JSON has {name}, which is not a JSON number")


def _fingerprint(spec: dict[str, Any], digest: hashlib.blake2b) -> bytes | None:
    """Feed ``digest`` a JSON spec's canonical form; return its text input's UTF-8 bytes, if it has one.

    A text enters the canonical form as the hash of its bytes: re-encoding it as escaped JSON took 6x its size
    for 4-byte characters. The bytes are returned so the text is encoded once.
    """
    source, canonical, data = spec.get("input"), spec, None
    if isinstance(source, dict) and isinstance(source.get("text"), str):
        data = source["text"].encode("utf-8", "surrogatepass")
        text_hash = hashlib.blake2b(data, digest_size=16).hexdigest()
        canonical = {**spec, "input": {**source, "text": {"blake2b": text_hash}}}
    digest.update(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    return data


async def _json_body(request: web.Request, deadline: float, reservation: Reservation) -> dict[str, Any]:
    """Read and parse a JSON body, its memory reserved in MR_TEXT_BUDGET before it is held (see parse_cost)."""
    app, settings = request.app, request.app[SETTINGS]
    cap, length = settings.max_json, request.content_length
    if length is not None and length > cap:
        raise PayloadTooLarge(f"JSON body too large: {length} bytes exceed the cap of {cap} bytes (MR_MAX_JSON)")
    what = f"a JSON body of {length} bytes" if length is not None else "a JSON body"
    if length is not None:
        reservation.grow_to(parse_cost(b"", length), what)  # before a byte is read: the least it can cost
    large = length is None or length > JSON_SLOT_SIZE
    with app[UPLOADS].hold() if large else nullcontext():
        parts: list[bytes] = []
        size, pace = 0, body_pace(settings)
        while block := await read_block(request.content, UPLOAD_BLOCK, settings.timeouts.body_idle, deadline, pace):
            size += len(block)
            if size > cap:
                raise PayloadTooLarge(f"JSON body too large: it exceeds the cap of {cap} bytes (MR_MAX_JSON)")
            parts.append(block)
            reservation.grow_to(parse_cost(b"", size), what)
    body = b"".join(parts)
    del parts  # only the joined body from here on, as parse_cost counts
    reservation.grow_to(parse_cost(body, size), what)  # its characters known: what parsing it will hold
    try:
        spec = json.loads(body, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise BadRequest("JSON body is nested too deeply") from None
    except ValueError as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from None
    if not isinstance(spec, dict):
        raise BadRequest("the JSON body must be an object")
    return spec


def _admit_plan(app: web.Application, refs: list[InputRef], split_size: int) -> None:
    """Check the plan the inputs' known sizes give; a refused job's served input is let go at once."""
    try:
        check_inputs_plan(refs, split_size, app[SETTINGS])
    except BadRequest:
        for ref in refs:
            app[STORE].drop(ref.served_id)
        raise


async def list_jobs(request: web.Request) -> web.Response:
    jobs = [
        {"id": r.id, "job": r.job_name, "state": r.state, "created": r.created, "error": r.error or None}
        for r in request.app[REGISTRY].jobs.values()
    ]
    return web.json_response({"jobs": jobs})


async def status(request: web.Request) -> web.Response:
    """GET /v1/jobs/{id}[?splits=all|failed|running&offset=N&limit=N]: state, progress, a summary or page of splits."""
    record = request.app[REGISTRY].get(request.match_info["id"])
    listing = parse_query(request.query)
    return web.json_response({**record.status(listing), "links": _links(record)})


async def _wait(record: JobRecord, request: web.Request) -> None:
    wait = request.query.get("wait")
    if wait is None:
        return
    seconds = min(wait_seconds(wait), request.app[SETTINGS].max_wait)  # MR_MAX_WAIT: longer asks are cut
    try:
        async with asyncio.timeout(max(seconds, 0.0)):
            await record.done.wait()
    except TimeoutError:
        pass


async def result(request: web.Request) -> web.StreamResponse:
    """GET /v1/jobs/{id}/result[?top=N][&wait=S]: the job's result once it is done."""
    record = request.app[REGISTRY].get(request.match_info["id"])
    top = request.query.get("top")
    n = positive_decimal(top, "top") if top is not None else None
    form = request.query.get("format", "json")
    if form not in ("json", "ndjson"):
        raise BadRequest("format must be json or ndjson")
    await _wait(record, request)
    if record.output and record.state == DONE:
        return _output_pointer(record, n is not None or form != "json")
    held = held_result(request.app, record)
    if held is None:
        detail = f": {record.error}" if record.error else ""
        raise Conflict(f"job {record.id} is {record.state}, no result{detail}")
    head: dict[str, Any] = {"id": record.id, "job": record.job_name, "state": record.state, "keys": held.keys}
    if form == "ndjson":
        return await _stream_ndjson(request, held, held.keys if n is None else n)
    if n is not None:
        return await _stream_top(request, head, held, n)
    return await _stream_result(request, head, held)


def _output_pointer(record: JobRecord, partial: bool) -> web.Response:
    """A done job with an output: where its result went, never the data (the master never held it)."""
    written = record.written or {}
    if partial:
        raise Conflict(f"job {record.id} wrote its result to {record.output!r}: read its part files there "
                       "(top and format=ndjson are for results the master holds)")
    output = {"path": record.output, "success": SUCCESS, "parts": written.get("parts", []),
              "bytes": written.get("bytes", 0), "keys": written.get("keys", 0)}
    return web.json_response({"id": record.id, "job": record.job_name, "state": record.state,
                              "keys": written.get("keys", 0), "output": output})


def held_result(app: web.Application, record: JobRecord) -> HeldResult | None:
    """A done job's held result; None if the job is not done; Gone (410) if it was dropped for the budget."""
    if record.state != DONE:
        return None
    return app[RESULTS].get(record.id)


def _keeper(app: web.Application, record: JobRecord) -> Callable[[Result], HeldResult | None]:
    """What the coordinator calls with a finished result: encode it once and hold it within the results budget
    (a job with an output has its result in its directory: nothing to hold)."""

    def keep(result: Result) -> HeldResult | None:
        if record.output:
            return None
        try:
            held = app[RESULTS].hold(record.id, result, app[JOBS].get(record.job_name, record.params).encode)
        except (TypeError, ValueError) as error:  # values JSON cannot carry: a job's bug, but fail just the job
            raise JobFailed(f"internal error: the result cannot be encoded as JSON: {error}") from None
        log.debug("result_held", job=record.id, epoch=record.epoch, bytes=held.size, held_bytes=app[RESULTS].held_bytes)
        return held

    return keep


def _answerer(app: web.Application, record: JobRecord) -> Callable[[Result], None]:
    """What the coordinator calls with an interactive (``/compute``) job's result: its answer, encoded once, kept on
    the record for the request waiting on it. Entries in the job's top order and in json.dumps' own spacing, as the
    original answered; small by construction (the text came in one request line, at most MR_MAX_LINE bytes)."""

    def keep(result: Result) -> None:
        entries = as_mapping(result)
        ordered = dict(app[JOBS].get(record.job_name, record.params).top(entries, len(entries)))
        try:
            answer = json.dumps(ordered).encode("ascii")
        except (TypeError, ValueError) as error:
            raise JobFailed(f"internal error: the result cannot be encoded as JSON: {error}") from None
        check_result_size(len(answer), app[SETTINGS].result_max)
        record.answer = answer

    return keep


async def _stream_result(request: web.Request, head: dict[str, Any], held: HeldResult) -> web.StreamResponse:
    """The held bytes in slices, each awaited: a slow reader costs one slice of memory, not a copy of the result."""
    prefix = json.dumps(head)[:-1].encode() + b', "result": '
    response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
    response.content_length = len(prefix) + held.size + 1
    await response.prepare(request)
    await response.write(prefix)
    for chunk in held.chunks():
        await response.write(chunk)
    await response.write(b"}")
    await response.write_eof()
    return response


async def _stream_top(request: web.Request, head: dict[str, Any], held: HeldResult, n: int) -> web.StreamResponse:
    """The first ``n`` entries, decoded and written a batch at a time: even ?top=<everything> holds one batch."""
    response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
    await response.prepare(request)
    await response.write(json.dumps(head)[:-1].encode() + b', "top": [')
    batch: list[str] = []
    first = True
    for entry in held.entries(n):
        batch.append(json.dumps(entry))
        if len(batch) == TOP_BATCH:
            await response.write(("" if first else ", ").encode() + ", ".join(batch).encode())
            batch, first = [], False
    if batch:
        await response.write(("" if first else ", ").encode() + ", ".join(batch).encode())
    await response.write(b"]}")
    await response.write_eof()
    return response


async def _stream_ndjson(request: web.Request, held: HeldResult, n: int) -> web.StreamResponse:
    """The first ``n`` entries as NDJSON, one ``[key, value]`` a line, a batch at a time: a result of millions of
    keys never has to fit in one JSON document, on either side."""
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson; charset=utf-8"})
    await response.prepare(request)
    batch: list[str] = []
    for entry in held.entries(n):
        batch.append(json.dumps(entry))
        if len(batch) == TOP_BATCH:
            await response.write(("\n".join(batch) + "\n").encode())
            batch = []
    if batch:
        await response.write(("\n".join(batch) + "\n").encode())
    await response.write_eof()
    return response


async def cancel(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    record = registry.cancel(request.match_info["id"])
    await registry.wait_cancelled(record, request.app[SETTINGS].timeouts.request)
    return web.json_response({"id": record.id, "state": record.state, "error": record.error or None})


async def compute(request: web.Request) -> web.Response:
    """The original trigger: ``GET /compute?text=...`` answers the word counts as JSON."""
    text = request.query.get("text")
    if text is None:
        raise BadRequest("missing query parameter 'text'")
    app, settings = request.app, request.app[SETTINGS]
    await _ready_for_jobs(app)
    app[REGISTRY].check_room(interactive=True)
    ref = app[STORE].add_text(text.encode("utf-8", "surrogatepass"), "compute")  # 429 past MR_TEXT_BUDGET
    # Interactive: it waits ahead of queued /v1 jobs, so a flood of submissions cannot starve it.
    record = start_job(app, DEFAULT_JOB, ref, settings.split_size, interactive=True)
    try:
        async with asyncio.timeout(settings.timeouts.request):
            await record.done.wait()
    except TimeoutError:
        app[REGISTRY].cancel(record.id)
        raise Unavailable(f"job {record.id} did not finish within {settings.timeouts.request:g} s "
                          "(MR_TIMEOUT_REQUEST): the cluster is busy", retry_after=5.0) from None
    if record.state != DONE:  # the job failed or was cancelled: the cluster could not serve it now, never a 500
        raise Unavailable(f"job {record.id} {record.state}: {record.error or 'no result'}", retry_after=5.0)
    # Answered here, so forgotten here: nobody else knows its id (a failed one stays, its id is in the 503).
    app[REGISTRY].forget(record)
    return web.Response(body=record.answer, content_type="application/json", charset="utf-8")


async def cluster(request: web.Request) -> web.Response:
    """The peers this master sees; ``?wait_mappers=M&wait_reducers=R`` waits (bounded) until it sees that many."""
    discovery = request.app[DISCOVERY]
    timeout = request.app[SETTINGS].timeouts.peers
    want_mappers = count_param(request.query.get("wait_mappers", "0"), "wait_mappers")
    want_reducers = count_param(request.query.get("wait_reducers", "0"), "wait_reducers")
    mappers, reducers = await asyncio.gather(
        discovery.wait_for("mapper", want_mappers, timeout) if want_mappers else discovery.peers("mapper"),
        discovery.wait_for("reducer", want_reducers, timeout) if want_reducers else discovery.peers("reducer"),
    )
    registry = request.app[REGISTRY]
    return web.json_response({
        "mappers": [{"name": p.name, "ordinal": p.ordinal, "url": p.url} for p in mappers],
        "reducers": [{"name": p.name, "ordinal": p.ordinal, "url": p.url} for p in reducers],
        "jobs_running": registry.running,
        "jobs_queued": registry.queued,
        "jobs_known": len(registry.jobs),
        "finished": sum(1 for r in registry.jobs.values() if r.state in FINISHED),
    })


async def serve_input(request: web.Request) -> web.StreamResponse:
    return request.app[STORE].response(request.match_info["id"], request)
