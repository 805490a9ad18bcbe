"""The master actor: takes jobs over HTTP, serves their input ranges, and reports progress and results."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from ..core.config import Settings
from ..core.errors import BadRequest, Conflict, MapReduceError, Unavailable
from ..core.logs import EventLog
from ..inputs.ref import InputRef
from ..jobs import get_job
from ..net.actor import DISCOVERY, DRAIN, IDENTITY, SETTINGS, base_app, discovery_context
from ..net.client import PeerClient, session_context
from .coordinator import Coordinator, MapperSlots
from .journal import Journal
from .readiness import READY, expected_reducers, readiness_context
from .record import CANCELLED, DONE, FAILED, FINISHED, JobRecord
from .registry import JobRegistry
from .store import InputStore, parse_spec, upload_name

SESSION = web.AppKey("session", aiohttp.ClientSession)
STORE = web.AppKey("store", InputStore)
REGISTRY = web.AppKey("registry", JobRegistry)
SLOTS = web.AppKey("slots", MapperSlots)
JOURNAL = web.AppKey("journal", Journal)
MAX_WAIT = 600.0
RESTARTED = "the master restarted while this job was running; resubmit it (with the same Idempotency-Key it is safe)"

log = EventLog(__name__)


def build_master(settings: Settings) -> web.Application:
    expected_reducers(settings)  # refuse to start without knowing how many reducers to wait for
    app = base_app(settings, client_max_size=settings.max_json)
    app[SLOTS] = MapperSlots(settings.mapper_slots)
    app.cleanup_ctx.append(session_context(SESSION))
    app.cleanup_ctx.append(discovery_context)
    app.cleanup_ctx.append(readiness_context)
    app.cleanup_ctx.append(_jobs_context)
    app.router.add_get("/compute", compute)
    app.router.add_post("/v1/jobs", submit)
    app.router.add_get("/v1/jobs", list_jobs)
    app.router.add_get("/v1/jobs/{id}", status)
    app.router.add_get("/v1/jobs/{id}/result", result)
    app.router.add_delete("/v1/jobs/{id}", cancel)
    app.router.add_get("/v1/cluster", cluster)
    app.router.add_get("/internal/v1/inputs/{id}", serve_input)
    return app


async def _jobs_context(app: web.Application) -> AsyncIterator[None]:
    """The input store, journal and job registry live as long as the app; closing drains, then cancels, jobs."""
    settings = app[SETTINGS]
    store = InputStore(settings)
    app[STORE] = store
    registry = JobRegistry(time.time, settings.job_ttl, lambda r: store.drop(r.input.served_id))
    app[REGISTRY] = registry
    journal = Journal(settings.state_dir)
    app[JOURNAL] = journal
    for record, key in journal.interrupted():
        record.state, record.error, record.finished = FAILED, RESTARTED, time.time()
        record.done.set()
        registry.restore(record, key)
        log.warning("job_lost_in_restart", job=record.id, epoch=record.epoch)
    journal.compact()
    drain = app[DRAIN]
    drain.hooks.append(lambda d: registry.close(d.stop_at, d.cancel_by))  # SIGTERM: the jobs share one deadline
    try:
        yield
    finally:
        drain.begin(asyncio.get_running_loop().time())  # a clean-up without SIGTERM drains by the same rule
        await registry.close(drain.stop_at, drain.cancel_by)
        store.close()


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
                              time.monotonic)
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


async def _ready_for_jobs(app: web.Application) -> None:
    """Jobs start only on a ready master: draining refuses at once; not ready yet waits (bounded), then 503."""
    identity = app[IDENTITY]
    if not identity.draining:
        await app[READY].wait(app[SETTINGS].timeouts.peers)
    if identity.draining:  # also when SIGTERM came during the wait
        raise Unavailable("master is shutting down; submit again shortly")


def _links(record: JobRecord) -> dict[str, str]:
    return {"status": f"/v1/jobs/{record.id}", "result": f"/v1/jobs/{record.id}/result"}


async def submit(request: web.Request) -> web.Response:
    """POST /v1/jobs: a JSON spec ``{"job": ..., "input": {...}}``, or a raw body uploaded as the input."""
    app, settings = request.app, request.app[SETTINGS]
    await _ready_for_jobs(app)
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
        split_size = _positive(spec.get("split_size", settings.split_size), "split_size")
        unknown = sorted(set(spec) - {"job", "input", "split_size"})
        if unknown:
            raise BadRequest(f"unknown fields {unknown}; a job spec has job, input and split_size")
        ref = await parse_spec(spec["input"], settings, app[STORE], app[SESSION])
    else:
        job_name = request.query.get("job", "wordcount")
        get_job(job_name)
        split_size = _positive(request.query.get("split_size", settings.split_size), "split_size")
        ref = await app[STORE].add_upload(request.content, upload_name(request), settings.max_body)
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


def _positive(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be a positive integer") from None
    if isinstance(value, bool) or number <= 0:
        raise BadRequest(f"{name} must be a positive integer")
    return number


async def list_jobs(request: web.Request) -> web.Response:
    jobs = [
        {"id": r.id, "job": r.job_name, "state": r.state, "created": r.created, "error": r.error or None}
        for r in request.app[REGISTRY].jobs.values()
    ]
    return web.json_response({"jobs": jobs})


async def status(request: web.Request) -> web.Response:
    record = request.app[REGISTRY].get(request.match_info["id"])
    return web.json_response({**record.status(), "links": _links(record)})


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


async def result(request: web.Request) -> web.Response:
    """GET /v1/jobs/{id}/result[?top=N][&wait=S]: the job's result once it is done."""
    record = request.app[REGISTRY].get(request.match_info["id"])
    top = request.query.get("top")
    n = _positive(top, "top") if top is not None else None
    await _wait(record, request)
    if record.state != DONE or record.result is None:
        detail = f": {record.error}" if record.error else ""
        raise Conflict(f"job {record.id} is {record.state}, no result{detail}")
    body: dict[str, Any] = {"id": record.id, "job": record.job_name, "state": record.state,
                            "keys": len(record.result)}
    if n is not None:
        body["top"] = [[key, value] for key, value in get_job(record.job_name).top(record.result, n)]
    else:
        body["result"] = record.result
    return web.json_response(body)


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
    await _ready_for_jobs(app)
    ref = app[STORE].add_text(text.encode("utf-8", "surrogatepass"), "compute")
    record = start_job(app, "wordcount", ref, settings.split_size)
    try:
        async with asyncio.timeout(settings.timeouts.request):
            await record.done.wait()
    except TimeoutError:
        app[REGISTRY].cancel(record.id)
        raise MapReduceError(f"job {record.id} did not finish within {settings.timeouts.request:g} s") from None
    if record.state != DONE or record.result is None:
        raise MapReduceError(f"job {record.id} {record.state}: {record.error}")
    return web.json_response(record.result)


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
