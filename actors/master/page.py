"""The status page: a static page at ``/`` (HTML, one script, one stylesheet) and the cluster view it reads."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from .. import __version__
from ..core.errors import NotFound, describe
from ..discovery import Peer
from ..net.actor import DISCOVERY, IDENTITY, SETTINGS

READYZ_CAP = 4096  # a /readyz answer is a few dozen bytes; read no more than this of it
STATIC = Path(__file__).with_name("static")
# The only files served: a fixed table, so no request path ever reaches the file system unchecked.
FILES = {
    "page.js": "text/javascript",
    "timeline.js": "text/javascript",
    "page.css": "text/css",
}
# The page loads nothing from elsewhere and runs no inline script: injected markup could not run even if the
# script's escaping failed.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def add_status_page(app: web.Application, session: web.AppKey[aiohttp.ClientSession]) -> None:
    """Serve the page at ``/`` and ``/static/<file>``, and ``GET /v1/cluster/actors`` (probes with ``session``)."""

    async def actors(request: web.Request) -> web.Response:
        """Every actor by role: name, ordinal, URL, ready or not (its /readyz, probed now), version, and how many
        times its launcher has restarted it (``mapreduce run``/``local``; Kubernetes counts a pod's restarts itself)."""
        app, settings = request.app, request.app[SETTINGS]
        discovery = app[DISCOVERY]
        mappers, reducers = await asyncio.gather(discovery.peers("mapper"), discovery.peers("reducer"))
        timeout = aiohttp.ClientTimeout(total=settings.timeouts.connect)
        probed = await asyncio.gather(*(probe(app[session], peer, timeout) for peer in [*mappers, *reducers]))
        identity = app[IDENTITY]
        master = {"role": "master", "name": identity.name, "ordinal": identity.ordinal, "url": settings.advertise_url,
                  "ready": not identity.draining, "status": "draining" if identity.draining else "ready",
                  "version": __version__, "incarnation": identity.incarnation, "restarts": identity.restarts}
        return web.json_response({"version": __version__, "actors": [master, *probed]})

    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/v1/cluster/actors", actors)


async def probe(session: aiohttp.ClientSession, peer: Peer, timeout: aiohttp.ClientTimeout) -> dict[str, Any]:
    """One peer as the page shows it; an unreachable or draining peer is "not ready", with the reason."""
    row: dict[str, Any] = {"role": peer.role, "name": peer.name, "ordinal": peer.ordinal, "url": peer.url,
                           "ready": False, "status": "", "version": None, "incarnation": None, "restarts": None}
    try:
        async with session.get(f"{peer.url}/readyz", timeout=timeout) as response:
            raw = await response.content.read(READYZ_CAP)
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        row["status"] = f"unreachable: {describe(exc)}"
        return row
    try:
        answer = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the decoder goes
        answer = None
    if not isinstance(answer, dict):
        row["status"] = f"HTTP {status}, not an actor's /readyz answer"
        return row
    row["ready"] = status == 200 and answer.get("status") == "ready"
    row["status"] = _text(answer.get("status")) or f"HTTP {status}"
    row["version"] = _text(answer.get("version"))
    row["incarnation"] = _text(answer.get("incarnation"))
    restarts = answer.get("restarts")
    row["restarts"] = restarts if type(restarts) is int and restarts >= 0 else None  # a bool is not a count
    return row


def _text(value: object) -> str | None:
    return value[:200] if isinstance(value, str) else None


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={**HEADERS, "Content-Type": "text/html; charset=utf-8"})


async def static(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    kind = FILES.get(name)
    if kind is None:
        raise NotFound(f"no static file {name[:60]!r}")
    return web.FileResponse(STATIC / name, headers={**HEADERS, "Content-Type": f"{kind}; charset=utf-8"})
