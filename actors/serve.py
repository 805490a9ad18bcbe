"""Serving one actor: bind, build the role's app, announce readiness, drain and exit on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket

from aiohttp import web

from .core import logs
from .core.config import Settings
from .core.logs import EventLog
from .net.actor import IDENTITY, make_runner

log = EventLog(__name__)


def build_app(settings: Settings) -> web.Application:
    """The application for ``settings.role``."""
    if settings.role == "master":
        from .master.app import build_master

        return build_master(settings)
    if settings.role == "mapper":
        from .mapper.app import build_mapper

        return build_mapper(settings)
    from .reducer.app import build_reducer

    return build_reducer(settings)


def bind(settings: Settings) -> tuple[socket.socket, Settings]:
    """Bind first, so an actor started on port 0 knows (and advertises) its real port."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(1024)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    if port != settings.port:
        advertise = settings.advertise_url.rsplit(":", 1)[0] + f":{port}"
        settings = settings.replace(port=port, advertise_url=advertise)
    return sock, settings


async def run_actor(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then stop taking work, drain in-flight requests and clean up."""
    sock, settings = bind(settings)
    app = build_app(settings)
    runner = make_runner(app, shutdown_timeout=settings.timeouts.drain, access_log=None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        identity = app[IDENTITY]
        log.info("actor_ready", role=settings.role, name=settings.name, ordinal=settings.ordinal,
                 url=settings.advertise_url, incarnation=identity.incarnation, discovery=settings.discovery)
        if settings.ready_fd >= 0:
            # A launcher (the local cluster) waits on this pipe rather than reading our logs.
            os.write(settings.ready_fd, json.dumps({"url": settings.advertise_url}).encode() + b"\n")
            os.close(settings.ready_fd)
        await stop.wait()
        log.info("actor_draining", role=settings.role, name=settings.name)
    finally:
        await runner.cleanup()
        log.info("actor_stopped", role=settings.role, name=settings.name)


def serve(settings: Settings) -> None:
    """Entry point of ``mapreduce serve``: the process a pod runs."""
    logs.configure(settings.name or settings.role, settings.log_level)
    asyncio.run(run_actor(settings))
