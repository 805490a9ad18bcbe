"""The actor base: an aiohttp application with its identity, probes, limits and middleware, before a role's routes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from ..core import wire
from ..core.config import Settings
from ..core.errors import WireError
from ..discovery import Discovery, open_discovery
from .access import access_log
from .frames import read_body
from .middleware import make_middlewares


@dataclass
class Identity:
    """Who this actor is; ``incarnation`` is new at every process start, so peers can tell a restart."""

    role: str
    name: str
    ordinal: int
    incarnation: str = field(default_factory=lambda: uuid.uuid4().hex)
    draining: bool = False


SETTINGS = web.AppKey("settings", Settings)
IDENTITY = web.AppKey("identity", Identity)
DISCOVERY = web.AppKey("discovery", Discovery)


async def discovery_context(app: web.Application) -> AsyncIterator[None]:
    """A cleanup_ctx: discovery (and for mDNS this actor's registration) lives exactly as long as the app."""
    async with open_discovery(app[SETTINGS]) as discovery:
        app[DISCOVERY] = discovery
        yield


def base_app(settings: Settings, client_max_size: int) -> web.Application:
    """An application with the shared middleware, ``/healthz`` and ``/readyz``."""
    identity = Identity(role=settings.role, name=settings.name, ordinal=settings.ordinal)
    app = web.Application(
        middlewares=[access_log, *make_middlewares(settings.token, settings.api_token, identity.incarnation)],
        client_max_size=client_max_size,
    )
    app[SETTINGS] = settings
    app[IDENTITY] = identity
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.on_shutdown.append(_start_draining)
    return app


async def _start_draining(app: web.Application) -> None:
    app[IDENTITY].draining = True


def _identity_json(identity: Identity) -> dict[str, object]:
    return {"role": identity.role, "name": identity.name, "ordinal": identity.ordinal,
            "incarnation": identity.incarnation}


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", **_identity_json(request.app[IDENTITY])})


async def readyz(request: web.Request) -> web.Response:
    identity = request.app[IDENTITY]
    if identity.draining:
        return web.json_response({"status": "draining", **_identity_json(identity)}, status=503)
    return web.json_response({"status": "ready", **_identity_json(identity)})


async def read_cbor_body(request: web.Request, cap: int) -> object:
    """A request's CBOR body, refused past ``cap`` bytes before it is decoded."""
    body = await read_body(request.content, cap, request.content_length)
    if not body:
        raise WireError("empty CBOR body")
    return wire.decode(body, cap)


def cbor_response(item: object, status: int = 200) -> web.Response:
    return web.Response(body=wire.encode(item), status=status, content_type="application/cbor")
