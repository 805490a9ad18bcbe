"""Access logs: one structured line per public request, naming its route pattern, never the raw path."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from ..core.logs import EventLog
from .metrics import METRICS
from .middleware import INTERNAL_PREFIX, Handler

# Probes and scrapes come every few seconds from the cluster itself: logged at DEBUG, like internal routes.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
CLIENT_GONE = 499  # the client went away before the answer was complete (nginx's convention)
UNMATCHED = "(no route)"
JOB_SHOWN = 64  # characters of a job id logged (real ids are about 20)

log = EventLog(__name__)


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost middleware: it sees the final status, after errors became JSON answers."""
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        status = CLIENT_GONE
        raise
    finally:
        _log(request, status, (time.perf_counter() - start) * 1000)


def _log(request: web.Request, status: int, ms: float) -> None:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else UNMATCHED
    metrics = request.app.get(METRICS)
    if metrics is not None:
        # Every request, probes and scrapes too: the route pattern, never the path.
        metrics.request(route, request.method, status, ms / 1000)
    quiet = request.path in QUIET_PATHS or request.path.startswith(INTERNAL_PREFIX)
    fields: dict[str, object] = {"method": request.method, "route": route, "status": status,
                                 "duration_ms": round(ms, 3)}
    job = request.match_info.get("id") if route.startswith("/v1/jobs/{id}") else None
    if job is not None:
        fields["job"] = job[:JOB_SHOWN]  # a client's id may be anything up to a request line long
    (log.debug if quiet else log.info)("http_request", **fields)
