"""Serving one actor: bind, build the role's app, announce readiness, drain and exit on SIGTERM."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket

from aiohttp import web

from .core import logs
from .core.config import Settings
from .core.errors import ConfigError
from .core.logs import EventLog
from .net.actor import DRAIN, IDENTITY, make_runner
from .net.drain import Drain
from .net.protocol import ActorRunner

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


def listen(host: str, port: int, port_setting: str = "MR_PORT") -> socket.socket:
    """A listening socket on ``host:port``; a ConfigError naming the fix if the address cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as error:
        sock.close()
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        fix = {
            errno.EADDRINUSE: f"another process is listening there: stop it, or choose another port ({port_setting})",
            errno.EACCES: f"ports below 1024 need privileges: choose a port from 1024 up ({port_setting})",
            errno.EADDRNOTAVAIL: "no interface of this machine has that address: set MR_HOST to one of its own",
        }.get(error.errno or 0, f"check MR_HOST and {port_setting}")
        reason = os.strerror(error.errno).lower() if error.errno else str(error)
        raise ConfigError(f"cannot listen on {where}: {reason}; {fix}") from None
    except BaseException:
        sock.close()
        raise
    return sock


def check_data_root(settings: Settings) -> None:
    """The master and the mappers read path inputs under MR_DATA_ROOT: when it is set it must exist, so an actor
    that would refuse every path input over a missing volume refuses to start instead, naming the setting. (An
    output root may be missing: the first output creates it.)"""
    root = settings.data_root
    if settings.role in ("master", "mapper") and root and not os.path.isdir(root):
        raise ConfigError(f"MR_DATA_ROOT={root} is not a directory: create it or mount its volume there, or set "
                          "MR_DATA_ROOT to the directory path inputs are read from")


def bind(settings: Settings) -> tuple[socket.socket, Settings]:
    """Bind first, so an actor started on port 0 knows (and advertises) its real port."""
    sock = listen(settings.host, settings.port)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    if port != settings.port:
        advertise = settings.advertise_url.rsplit(":", 1)[0] + f":{port}"
        settings = settings.replace(port=port, advertise_url=advertise)
    return sock, settings


async def run_actor(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then drain under one deadline (MR_TIMEOUT_DRAIN, see net/drain.py) and exit."""
    check_data_root(settings)
    sock, settings = bind(settings)
    app = build_app(settings)
    drain = app[DRAIN]
    # Handlers are done or cancelled before the runner's clean-up starts, so its own waits are short on purpose.
    runner = make_runner(app, shutdown_timeout=drain.reserve / 4, access_log=None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await runner.setup()
    try:
        await runner.listen(sock)
        identity = app[IDENTITY]
        log.info("actor_ready", role=settings.role, name=settings.name, ordinal=settings.ordinal,
                 url=settings.advertise_url, incarnation=identity.incarnation, discovery=settings.discovery)
        if settings.ready_fd >= 0:
            # A launcher (the local cluster) waits on this pipe rather than reading our logs.
            os.write(settings.ready_fd, json.dumps({"url": settings.advertise_url}).encode() + b"\n")
            os.close(settings.ready_fd)
        await stop.wait()
        drain.begin(loop.time())
        identity.draining = True
        log.info("actor_draining", role=settings.role, name=settings.name, budget=drain.budget,
                 operations=drain.operations)
        await _finish_work(drain)
    finally:
        await _stop(runner, drain, settings)


async def _finish_work(drain: Drain) -> None:
    """Keep serving while operations in flight and the role's own work (hooks) finish, until ``stop_at``."""
    async def operations() -> None:
        try:
            async with asyncio.timeout_at(drain.stop_at):
                await drain.wait_for_operations()
        except TimeoutError:
            log.warning("drain_cut_short", operations=drain.operations, budget=drain.budget)

    # Each hook bounds itself by stop_at and cancel_by; a hook that fails must not stop the others or the exit.
    results = await asyncio.gather(operations(), *(hook(drain) for hook in drain.hooks), return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            log.error("drain_hook_failed", error=repr(result))


async def _stop(runner: ActorRunner, drain: Drain, settings: Settings) -> None:
    """Close the listener, cut what still runs, close the app's resources: all before the deadline."""
    loop = asyncio.get_running_loop()
    drain.begin(loop.time())  # also on a failed start, so the clean-up below is bounded the same way
    runner.stop_listening()
    cut = await drain.stop_handlers(drain.reserve / 4)
    try:
        async with asyncio.timeout_at(max(drain.deadline, loop.time() + drain.reserve / 4)):
            await runner.cleanup()
    except TimeoutError:
        log.error("actor_stop_overran", role=settings.role, name=settings.name, budget=drain.budget)
    log.info("actor_stopped", role=settings.role, name=settings.name, handlers_cut=cut,
             seconds=round(loop.time() - (drain.began or loop.time()), 3))


def serve(settings: Settings) -> None:
    """Entry point of ``mapreduce serve``: the process a pod runs."""
    logs.configure(settings.name or settings.role, settings.log_level)
    asyncio.run(run_actor(settings))
