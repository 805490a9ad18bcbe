"""Every actor's job log ring in the app: fed while the app lives, attributed to it, and served to the master."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Middleware

from ..core import wire
from ..core.config import Settings
from ..core.errors import BadRequest
from ..core.joblog import ACTOR, JobLogRing, RingHandler, RingLimits, level_number
from .access import log as access_log
from .middleware import Handler

JOB_LOG = web.AppKey("job_log", JobLogRing)
LOGGER = "actors"  # every EventLog of the package is below it; other libraries' records never carry a job


def make_ring(settings: Settings, incarnation: str) -> JobLogRing:
    limits = RingLimits(lines=settings.job_log_lines, jobs=settings.job_log_jobs, budget=settings.job_log_bytes,
                        text=settings.job_log_text)
    return JobLogRing(settings.name or settings.role, incarnation, limits)


async def ring_context(app: web.Application) -> AsyncIterator[None]:
    """A cleanup_ctx: the ring hears the package's log records exactly as long as the app lives."""
    # A request about a job (its status, result, logs) is not an event of the job, and a client polling its
    # status would push the job's own lines out of the ring: access lines go to stdout only.
    handler = RingHandler(app[JOB_LOG], skip=frozenset({access_log.name}))
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def actor_middleware(incarnation: str) -> Middleware:
    """Marks each request's work (and every task it starts) as this actor's, for the rings to tell actors apart."""

    @web.middleware
    async def actor(request: web.Request, handler: Handler) -> web.StreamResponse:
        token = ACTOR.set(incarnation)
        try:
            return await handler(request)
        finally:
            ACTOR.reset(token)

    return actor


def since_param(text: str) -> int:
    if not text.isdigit() or len(text) > 19:
        raise BadRequest(f"since must be a sequence number (digits), not {text[:40]!r}")
    return int(text)


def ring_route(page: int) -> Handler:
    """GET /internal/v1/logs/{job}?since=SEQ&incarnation=I&level=L: this actor's lines of a job after ``since``
    (every line when ``incarnation`` is not this process's: a restarted actor numbers afresh), as CBOR; a page
    of about ``page`` bytes (at least one line), ``more`` when the asker should ask again from its last ``seq``."""

    async def serve_ring(request: web.Request) -> web.StreamResponse:
        ring = request.app[JOB_LOG]
        query = request.query
        since = since_param(query.get("since", "0"))
        if query.get("incarnation", "") != ring.incarnation:
            since = 0
        level = level_number(query.get("level", "debug"))
        entries, more = ring.read(request.match_info["job"], since, level, page)
        answer = {"actor": ring.actor, "incarnation": ring.incarnation, "entries": entries, "more": more}
        return web.Response(body=wire.encode(answer), content_type="application/cbor")

    return serve_ring
