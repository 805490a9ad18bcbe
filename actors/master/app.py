"""The master actor: its routes, the lifetime of its job state, and the small job and cluster handlers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from aiohttp import web

from ..core.config import Settings
from ..core.logs import EventLog
from ..net.actor import DISCOVERY, DRAIN, JOBS, SETTINGS, base_app, discovery_context
from ..net.client import session_context
from ..net.metrics import METRICS, MasterMetrics
from ..tasks.pool import TaskPool
from .admit import job_links
from .body import UploadSlots
from .compute import compute
from .joblogs import job_logs
from .journal import Journal
from .keys import CLAIMS, JOURNAL, MASTER_METRICS, REGISTRY, RESULTS, SESSION, SLOTS, STORE, TASKS, UPLOADS
from .limits import count_param
from .openapi import openapi
from .outputs import OutputClaims
from .page import add_status_page
from .readiness import expected_reducers, readiness_context
from .record import FAILED, FINISHED, JobRecord
from .registry import JobRegistry
from .results import Results
from .results_http import result
from .splitview import parse_query
from .stepflow import remove_job_files
from .store import InputStore
from .submit import submit
from .workers import MapperSlots

RESTARTED = "the master restarted while this job was running; resubmit it (with the same Idempotency-Key it is safe)"

log = EventLog(__name__)


MASTER_TASKS = 2  # at most: a master runs only configure and order of user jobs there, seldom and briefly


async def _tasks_context(app: web.Application) -> AsyncIterator[None]:
    """The task processes that run user jobs' configure and order: as long as the app, killed with it."""
    settings = app[SETTINGS]
    app[TASKS] = TaskPool.of(settings.replace(task_workers=min(MASTER_TASKS, settings.task_pool)))
    try:
        yield
    finally:
        await app[TASKS].close()


def build_master(settings: Settings) -> web.Application:
    expected_reducers(settings)  # refuse to start without knowing how many reducers to wait for
    app = base_app(settings, client_max_size=settings.max_json)
    app[SLOTS] = MapperSlots(settings.mapper_slots)
    _add_metrics(app)
    app.cleanup_ctx.append(session_context(SESSION))
    app.cleanup_ctx.append(discovery_context)
    app.cleanup_ctx.append(readiness_context)
    app.cleanup_ctx.append(_tasks_context)  # before the jobs: running jobs end before their workers go
    app.cleanup_ctx.append(_jobs_context)
    app.router.add_get("/compute", compute)
    app.router.add_post("/v1/jobs", submit)
    app.router.add_get("/v1/jobs", list_jobs)
    app.router.add_get("/v1/jobs/kinds", job_kinds)  # before /v1/jobs/{id}
    app.router.add_get("/v1/jobs/{id}", status)
    app.router.add_get("/v1/jobs/{id}/result", result)
    app.router.add_get("/v1/jobs/{id}/logs", job_logs)
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
    claims = app[CLAIMS] = OutputClaims()

    def drop_inputs(record: JobRecord) -> None:
        for ref in record.input_list():  # a job of several uploads holds each of them
            store.drop(ref.served_id)

    def ended(record: JobRecord) -> None:
        drop_inputs(record)
        claims.end(record)  # a job whose output was never opened (cancelled while queued); else its fence lets go
        if not record.interactive:
            journal.ended(record)
        seconds = (record.finished or time.time()) - record.created
        app[MASTER_METRICS].job_finished(record.job_name, record.state, seconds)

    def forget(record: JobRecord) -> None:
        drop_inputs(record)
        results.forget(record.id)

    registry = JobRegistry(time.time, settings.job_ttl, settings.max_running_jobs, settings.max_queued_jobs,
                           on_end=ended, on_forget=forget)
    app[REGISTRY] = registry
    app[UPLOADS] = UploadSlots(settings.max_uploads)
    for record, key in await asyncio.to_thread(journal.interrupted):
        # A multi-step job's records between steps: nobody will read them now (a no-op for any other job).
        with contextlib.suppress(OSError):
            await asyncio.to_thread(remove_job_files, settings.work_root, record.id, record.epoch)
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


async def job_kinds(request: web.Request) -> web.Response:
    """GET /v1/jobs/kinds: the jobs this master can run, with their parameters and docstrings."""
    return web.json_response({"jobs": request.app[JOBS].describe()})

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
    return web.json_response({**record.status(listing), "links": job_links(record)})


async def cancel(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    record = registry.cancel(request.match_info["id"])
    await registry.wait_cancelled(record, request.app[SETTINGS].timeouts.request)
    return web.json_response({"id": record.id, "state": record.state, "error": record.error or None})


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
