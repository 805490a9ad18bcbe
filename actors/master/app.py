"""The master actor: takes jobs over HTTP, serves their input ranges, and reports progress and results."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from aiohttp import web

from ..core.config import Settings
from ..core.errors import BadRequest, Conflict, JobFailed, MapReduceError, Unavailable
from ..core.logs import EventLog
from ..inputs.ref import InputRef
from ..jobs import get_job
from ..net.actor import DISCOVERY, IDENTITY, SETTINGS, base_app, discovery_context
from ..net.client import PeerClient, session_context
from .coordinator import Coordinator, MapperSlots
from .journal import Journal
from .limits import check_plan, json_split_size, positive_decimal, query_split_size
from .openapi import openapi
from .record import CANCELLED, DONE, FAILED, FINISHED, JobRecord
from .registry import JobRegistry
from .results import HeldResult, Results
from .splitview import parse_query
from .store import InputStore, clip_name, parse_spec, upload_name

SESSION = web.AppKey("session", aiohttp.ClientSession)
STORE = web.AppKey("store", InputStore)
REGISTRY = web.AppKey("registry", JobRegistry)
SLOTS = web.AppKey("slots", MapperSlots)
JOURNAL = web.AppKey("journal", Journal)
RESULTS = web.AppKey("results", Results)
MAX_WAIT = 600.0
TOP_BATCH = 4096  # ?top=N entries written at a time
RESTARTED = "the master restarted while this job was running; resubmit it (with the same Idempotency-Key it is safe)"

log = EventLog(__name__)


def build_master(settings: Settings) -> web.Application:
    app = base_app(settings, client_max_size=settings.max_json)
    app[SLOTS] = MapperSlots(settings.mapper_slots)
    app.cleanup_ctx.append(session_context(SESSION))
    app.cleanup_ctx.append(discovery_context)
    app.cleanup_ctx.append(_jobs_context)
    app.router.add_get("/compute", compute)
    app.router.add_post("/v1/jobs", submit)
    app.router.add_get("/v1/jobs", list_jobs)
    app.router.add_get("/v1/jobs/{id}", status)
    app.router.add_get("/v1/jobs/{id}/result", result)
    app.router.add_delete("/v1/jobs/{id}", cancel)
    app.router.add_get("/v1/cluster", cluster)
    app.router.add_get("/v1/openapi.json", openapi)
    app.router.add_get("/internal/v1/inputs/{id}", serve_input)
    return app


async def _jobs_context(app: web.Application) -> AsyncIterator[None]:
    """The input store, results, journal and job registry live as long as the app; closing drains, then cancels."""
    settings = app[SETTINGS]
    store = InputStore(settings)
    app[STORE] = store
    results = Results(settings.result_max, settings.results_budget, time.time)
    app[RESULTS] = results

    def forget(record: JobRecord) -> None:
        store.drop(record.input.served_id)
        results.forget(record.id)

    registry = JobRegistry(time.time, settings.job_ttl, forget)
    app[REGISTRY] = registry
    journal = Journal(settings.state_dir)
    app[JOURNAL] = journal
    for record, key in journal.interrupted():
        record.transition(FAILED)
        record.error, record.finished = RESTARTED, time.time()
        record.done.set()
        registry.restore(record, key)
        log.warning("job_lost_in_restart", job=record.id, epoch=record.epoch)
    journal.compact()
    try:
        yield
    finally:
        await registry.close(settings.timeouts.drain)
        store.close()
        results.clear()


def _job_id(key: str) -> str:
    # A resubmission under the same key reuses the id, so reducers drop the old epoch's state.
    return "k" + hashlib.blake2b(key.encode(), digest_size=8).hexdigest() if key else uuid.uuid4().hex[:20]


def _epoch() -> int:
    return time.time_ns() // 1_000_000


def start_job(app: web.Application, job_name: str, ref: InputRef, split_size: int, key: str = "") -> JobRecord:
    settings = app[SETTINGS]
    record = JobRecord(id=_job_id(key), epoch=_epoch(), job_name=job_name, input=ref, created=time.time(),
                       split_size=split_size)
    coordinator = Coordinator(record, settings, PeerClient(app[SESSION], settings), app[DISCOVERY], app[SLOTS],
                              time.monotonic, keep=_keeper(app, record))
    store, journal = app[STORE], app[JOURNAL]
    journal.started(record, key)

    async def run() -> None:
        try:
            await coordinator.run()
        finally:
            store.drop(ref.served_id)
            journal.ended(record)

    app[REGISTRY].start(record, run(), key)
    log.info("job_submitted", job=record.id, epoch=record.epoch, name=job_name, input=ref.kind, bytes=ref.size)
    return record


def _links(record: JobRecord) -> dict[str, str]:
    return {"status": f"/v1/jobs/{record.id}", "result": f"/v1/jobs/{record.id}/result"}


async def submit(request: web.Request) -> web.Response:
    """POST /v1/jobs: a JSON spec ``{"job": ..., "input": {...}}``, or a raw body uploaded as the input."""
    app, settings = request.app, request.app[SETTINGS]
    if app[IDENTITY].draining:
        raise Unavailable("master is shutting down; submit again shortly")
    key = request.headers.get("Idempotency-Key", "")
    existing = app[REGISTRY].by_key(key) if key else None
    if existing is not None and existing.state not in (FAILED, CANCELLED):
        return web.json_response({**existing.status(), "links": _links(existing)}, status=200)
    if request.content_type == "application/json":
        spec = await _json_body(request)
        job_name = spec.get("job", "wordcount")
        if not isinstance(job_name, str):
            raise BadRequest('"job" must be a job name string')
        get_job(job_name)
        if "input" not in spec:
            raise BadRequest('missing "input": give {"text": ...}, {"path": ...} or {"url": ...}')
        split_size = json_split_size(spec, settings)
        unknown = sorted(set(spec) - {"job", "input", "split_size"})
        if unknown:
            raise BadRequest(f"unknown fields {unknown}; a job spec has job, input and split_size")
        ref = clip_name(await parse_spec(spec["input"], settings, app[STORE]), settings.max_name)
    else:
        job_name = request.query.get("job", "wordcount")
        get_job(job_name)
        split_size = query_split_size(request.query.get("split_size"), settings)
        name = upload_name(request, settings.max_name)
        if request.content_length is not None:
            check_plan(request.content_length, split_size, settings)  # refuse before spooling a byte
        ref = await app[STORE].add_upload(request.content, name, settings.max_body, request.content_length)
    _admit_plan(app, ref, split_size)
    record = start_job(app, job_name, ref, split_size, key)
    return web.json_response({**record.status(), "links": _links(record)}, status=202)


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        spec = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from None
    if not isinstance(spec, dict):
        raise BadRequest("the JSON body must be an object")
    return spec


def _admit_plan(app: web.Application, ref: InputRef, split_size: int) -> None:
    """Check the plan the input's known size gives; a refused job's served input is let go at once."""
    try:
        check_plan(ref.size, split_size, app[SETTINGS])
    except BadRequest:
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
    try:
        seconds = min(float(wait), MAX_WAIT)
    except ValueError:
        raise BadRequest("wait must be a number of seconds") from None
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
    await _wait(record, request)
    held = held_result(request.app, record)
    if held is None:
        detail = f": {record.error}" if record.error else ""
        raise Conflict(f"job {record.id} is {record.state}, no result{detail}")
    head: dict[str, Any] = {"id": record.id, "job": record.job_name, "state": record.state, "keys": held.keys}
    if n is not None:
        return await _stream_top(request, head, held, n)
    return await _stream_result(request, head, held)


def held_result(app: web.Application, record: JobRecord) -> HeldResult | None:
    """A done job's held result; None if the job is not done; Gone (410) if it was dropped for the budget."""
    if record.state != DONE:
        return None
    return app[RESULTS].get(record.id)


def _keeper(app: web.Application, record: JobRecord) -> Callable[[dict[str, Any]], HeldResult]:
    """What the coordinator calls with a finished result: encode it once and hold it within the results budget."""

    def keep(result: dict[str, Any]) -> HeldResult:
        try:
            held = app[RESULTS].hold(record.id, result, get_job(record.job_name).top)
        except (TypeError, ValueError) as error:  # values JSON cannot carry: a job's bug, but fail just the job
            raise JobFailed(f"internal error: the result cannot be encoded as JSON: {error}") from None
        log.info("result_held", job=record.id, epoch=record.epoch, bytes=held.size, held_bytes=app[RESULTS].held_bytes)
        return held

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


async def cancel(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    record = registry.cancel(request.match_info["id"])
    await registry.wait_cancelled(record.id, request.app[SETTINGS].timeouts.request)
    return web.json_response({"id": record.id, "state": record.state, "error": record.error or None})


async def compute(request: web.Request) -> web.Response:
    """The original trigger: ``GET /compute?text=...`` answers the word counts as JSON."""
    text = request.query.get("text")
    if text is None:
        raise BadRequest("missing query parameter 'text'")
    app, settings = request.app, request.app[SETTINGS]
    ref = app[STORE].add_text(text.encode("utf-8", "surrogatepass"), "compute")
    record = start_job(app, "wordcount", ref, settings.split_size)
    try:
        async with asyncio.timeout(settings.timeouts.request):
            await record.done.wait()
    except TimeoutError:
        app[REGISTRY].cancel(record.id)
        raise MapReduceError(f"job {record.id} did not finish within {settings.timeouts.request:g} s") from None
    held = held_result(app, record)
    if held is None:
        raise MapReduceError(f"job {record.id} {record.state}: {record.error}")
    return web.Response(body=held.payload, content_type="application/json")


async def cluster(request: web.Request) -> web.Response:
    """The peers this master sees; ``?wait_mappers=M&wait_reducers=R`` waits (bounded) until it sees that many."""
    discovery = request.app[DISCOVERY]
    timeout = request.app[SETTINGS].timeouts.peers
    want_mappers = _count(request.query.get("wait_mappers", "0"), "wait_mappers")
    want_reducers = _count(request.query.get("wait_reducers", "0"), "wait_reducers")
    mappers, reducers = await asyncio.gather(
        discovery.wait_for("mapper", want_mappers, timeout) if want_mappers else discovery.peers("mapper"),
        discovery.wait_for("reducer", want_reducers, timeout) if want_reducers else discovery.peers("reducer"),
    )
    registry = request.app[REGISTRY]
    return web.json_response({
        "mappers": [{"name": p.name, "ordinal": p.ordinal, "url": p.url} for p in mappers],
        "reducers": [{"name": p.name, "ordinal": p.ordinal, "url": p.url} for p in reducers],
        "jobs_running": registry.running,
        "jobs_known": len(registry.jobs),
        "finished": sum(1 for r in registry.jobs.values() if r.state in FINISHED),
    })


def _count(value: str, name: str) -> int:
    if not value.isdigit():
        raise BadRequest(f"{name} must be a non-negative integer")
    return int(value)


async def serve_input(request: web.Request) -> web.StreamResponse:
    return request.app[STORE].response(request.match_info["id"], request)
