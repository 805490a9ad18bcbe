"""The actor base: an aiohttp application with its identity, probes, limits and middleware, before a role's routes."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .. import __version__
from ..core import wire
from ..core.config import Settings
from ..core.errors import WireError
from ..core.joblog import ACTOR
from ..discovery import Discovery, open_discovery
from ..jobs import Catalog, load_catalog
from .access import access_log
from .drain import Drain, drain_middleware
from .frames import read_body
from .joblog import JOB_LOG, actor_middleware, make_ring, ring_context, ring_route
from .metrics import METRICS, Metrics, serve_metrics
from .middleware import make_middlewares
from .origin import host_policy, origin_middleware
from .protocol import ActorRunner, head_deadline_middleware


@dataclass
class Identity:
    """Who this actor is; ``incarnation`` is new at every process start, so peers can tell a restart."""

    role: str
    name: str
    ordinal: int
    incarnation: str = field(default_factory=lambda: uuid.uuid4().hex)
    restarts: int = 0  # how many times a launcher restarted this actor before this process (MR_RESTARTS)
    draining: bool = False


# What a role's readiness waits for beyond the process itself: None when ready, else what is missing (JSON).
ReadinessCheck = Callable[[], Awaitable[dict[str, object] | None]]

SETTINGS = web.AppKey("settings", Settings)
IDENTITY = web.AppKey("identity", Identity)
DISCOVERY = web.AppKey("discovery", Discovery)
DRAIN = web.AppKey("drain", Drain)
READINESS = web.AppKey[ReadinessCheck]("readiness")
JOBS = web.AppKey("jobs", Catalog)


async def discovery_context(app: web.Application) -> AsyncIterator[None]:
    """A cleanup_ctx: discovery (and for mDNS this actor's registration) lives exactly as long as the app."""
    async with open_discovery(app[SETTINGS]) as discovery:
        app[DISCOVERY] = discovery
        yield


def base_app(settings: Settings, client_max_size: int) -> web.Application:
    """An application with the shared middleware, ``/healthz``, ``/readyz``, ``/metrics`` and its job log ring;
    its job catalog is loaded here, so a job module that cannot be imported stops the actor at startup with a
    ConfigError naming it."""
    catalog = load_catalog(settings.job_modules)
    identity = Identity(role=settings.role, name=settings.name, ordinal=settings.ordinal,
                        restarts=settings.restarts)
    drain = Drain(settings.timeouts.drain)
    app = web.Application(
        middlewares=[actor_middleware(identity.incarnation), head_deadline_middleware, access_log,
                     drain_middleware(drain),
                     *make_middlewares(settings.token, settings.api_token, identity.incarnation,
                                       origin_middleware(host_policy(settings), settings.api_token))],
        client_max_size=client_max_size,
    )
    app[SETTINGS] = settings
    app[IDENTITY] = identity
    app[DRAIN] = drain
    app[JOBS] = catalog
    app[METRICS] = Metrics(settings.role)
    app[JOB_LOG] = make_ring(settings, identity.incarnation)
    app.cleanup_ctx.append(ring_context)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", serve_metrics)
    app.router.add_get("/internal/v1/logs/{job}", ring_route(settings.message_cap // 2))
    app.on_shutdown.append(_start_draining)
    return app


async def _start_draining(app: web.Application) -> None:
    app[IDENTITY].draining = True


def _identity_json(identity: Identity) -> dict[str, object]:
    return {"role": identity.role, "name": identity.name, "ordinal": identity.ordinal,
            "incarnation": identity.incarnation, "restarts": identity.restarts, "version": __version__}


async def healthz(request: web.Request) -> web.Response:
    """Alive, who, and the jobs this actor can run with their fingerprints (the master's job check reads them)."""
    return web.json_response({"status": "ok", **_identity_json(request.app[IDENTITY]),
                              "jobs": request.app[JOBS].fingerprints})


async def readyz(request: web.Request) -> web.Response:
    """200 once the actor can take work: not draining, and whatever its role waits for (the master: its peers)."""
    identity = request.app[IDENTITY]
    if identity.draining:
        return web.json_response({"status": "draining", **_identity_json(identity)}, status=503)
    check = request.app.get(READINESS)
    waiting = await check() if check is not None else None
    if waiting is not None:
        return web.json_response({"status": "waiting", **waiting, **_identity_json(identity)}, status=503)
    return web.json_response({"status": "ready", **_identity_json(identity)})


async def read_cbor_body(request: web.Request, cap: int) -> object:
    """A request's CBOR body, refused past ``cap`` bytes before it is decoded."""
    body = await read_body(request.content, cap, request.content_length)
    if not body:
        raise WireError("empty CBOR body")
    return wire.decode(body, cap)


def cbor_response(item: object, status: int = 200) -> web.Response:
    return web.Response(body=wire.encode(item), status=status, content_type="application/cbor")


def make_runner(app: web.Application, **kwargs: Any) -> ActorRunner:
    """An :class:`ActorRunner` for ``app``; MR_MAX_LINE bounds the request line and every header field."""
    settings = app[SETTINGS]
    # After an early answer (413, 429, 408) aiohttp reads and drops the rest of the body for a while: never longer
    # than a body may stay silent, so a slow sender cannot hold the connection past MR_TIMEOUT_BODY_IDLE.
    lingering = min(10.0, settings.timeouts.body_idle)
    # An idle keep-alive connection is closed after 75 s (aiohttp's default here is 3630 s, which lets idle clients
    # hold file descriptors for an hour); a started request head has MR_TIMEOUT_HEADERS.
    kwargs.setdefault("keepalive_timeout", 75.0)
    # The app starts and stops in its actor's context, so what its start-up starts (and its clean-up logs) is
    # attributed to this actor's job log ring, also when several actors share a process.
    context = contextvars.copy_context()
    context.run(ACTOR.set, app[IDENTITY].incarnation)
    return ActorRunner(app, context=context, max_line_size=settings.max_line, max_field_size=settings.max_line,
                       lingering_time=lingering, head_timeout=settings.timeouts.headers, **kwargs)
