"""The actor base: an aiohttp application with its identity, probes, limits and middleware, before a role's routes."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler

from .. import __version__
from ..core import wire
from ..core.config import Settings
from ..core.errors import WireError
from ..discovery import Discovery, open_discovery
from ..jobs import Catalog, load_catalog
from .access import access_log
from .drain import Drain, drain_middleware
from .frames import read_body
from .metrics import METRICS, Metrics, serve_metrics
from .middleware import log as request_log
from .middleware import make_middlewares
from .origin import host_policy, origin_middleware


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
    """An application with the shared middleware, ``/healthz``, ``/readyz`` and ``/metrics``; its job catalog is
    loaded here, so a job module that cannot be imported stops the actor at startup with a ConfigError naming it."""
    catalog = load_catalog(settings.job_modules)
    identity = Identity(role=settings.role, name=settings.name, ordinal=settings.ordinal,
                        restarts=settings.restarts)
    drain = Drain(settings.timeouts.drain)
    app = web.Application(
        middlewares=[access_log, drain_middleware(drain),
                     *make_middlewares(settings.token, settings.api_token, identity.incarnation,
                                       origin_middleware(host_policy(settings), settings.api_token))],
        client_max_size=client_max_size,
    )
    app[SETTINGS] = settings
    app[IDENTITY] = identity
    app[DRAIN] = drain
    app[JOBS] = catalog
    app[METRICS] = Metrics(settings.role)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", serve_metrics)
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


_REQUEST_LINE = re.compile(rb"([A-Z]+ )?(/|https?:)")


class _JsonProtocolErrors(RequestHandler):
    """aiohttp's own protocol errors (a request line or header past MR_MAX_LINE, a malformed request, an unhandled
    exception) answered as JSON like every other error, instead of aiohttp's plain text; and a deadline for a
    request's head (MR_TIMEOUT_HEADERS), which aiohttp lacks.

    The head deadline: a connection must deliver a complete request line and headers within ``head_timeout`` of
    its opening, or of the first byte of its next request. Between requests an idle keep-alive connection is not
    timed by it (aiohttp's keepalive_timeout closes it); while a request is being handled, its body is timed by
    the body limits (MR_TIMEOUT_BODY_IDLE, MR_MIN_BODY_RATE, MR_TIMEOUT_BODY).
    """

    head_timeout = 0.0  # set per connection by _JsonErrorServer; 0: no deadline
    _head_started: float | None = None  # loop time the awaited head began (its first byte, or the connection)
    _head_bytes = False  # whether any byte of that head has arrived
    _head_timer: asyncio.TimerHandle | None = None
    _last_payload: Any = None  # the body of the newest request; a new head can only start once it is whole

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._await_head(with_bytes=False)

    def data_received(self, data: bytes) -> None:
        between = self._last_payload is None or self._last_payload.is_eof()
        if data and between and (self._head_started is None or not self._head_bytes):
            self._await_head(with_bytes=True)  # the first byte of the next request's head
        count = self._request_count
        super().data_received(data)
        if self._request_count != count and self._messages:  # a whole head parsed: its body has its own limits
            self._last_payload = self._messages[-1][1]
            self._head_started, self._head_bytes = None, False

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _await_head(self, with_bytes: bool) -> None:
        if self.head_timeout <= 0:
            return
        self._head_started, self._head_bytes = self._loop.time(), with_bytes
        if self._head_timer is None:
            self._head_timer = self._loop.call_at(self._head_started + self.head_timeout, self._head_overdue)

    def _head_overdue(self) -> None:
        self._head_timer = None
        started = self._head_started
        if started is None or self.transport is None or self._force_close:
            return  # the head arrived; the next one arms a new timer
        now, due = self._loop.time(), started + self.head_timeout
        if self._waiter is None:  # a request before this (pipelined) head is still being handled: look again later
            due = now + self.head_timeout
        if now < due:
            self._head_timer = self._loop.call_at(due, self._head_overdue)
            return
        if self._head_bytes:  # a client that started a request hears why it ends; a silent one is just closed
            request_log.warning("request_refused", status=408, error="request_timeout",
                                message="request head too slow (MR_TIMEOUT_HEADERS)")
            self.transport.write(_head_timeout_response(self.head_timeout))
        self.force_close()

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send an error")
        body = protocol_error(status, exc, self.max_line_size)
        if body["status"] >= 500:
            request_log.error("request_crashed", status=body["status"], error=body["error"], exc=exc is not None)
        else:
            request_log.warning("request_refused", status=body["status"], error=body["error"],
                                message=body["message"])
        status = int(body.pop("status"))
        response = web.json_response(body, status=status)
        response.force_close()
        return response


def protocol_error(status: int, exc: BaseException | None, max_line: int) -> dict[str, Any]:
    """The JSON error (with its status) for an error aiohttp raised before our middleware could see the request."""
    if isinstance(exc, LineTooLong):
        line = bytes(exc.args[0]) if exc.args and isinstance(exc.args[0], (bytes, bytearray)) else b""
        if _REQUEST_LINE.match(line):  # the parsers quote the URL, or the whole request line, or the header
            return {"status": 414, "error": "uri_too_long",
                    "message": f"request line longer than {max_line} bytes (MR_MAX_LINE): send a long text as a "
                               "POST /v1/jobs body instead of a query"}
        return {"status": 431, "error": "header_too_large",
                "message": f"a header field is longer than {max_line} bytes (MR_MAX_LINE)"}
    if isinstance(exc, BadHttpMessage) or 400 <= status < 500:
        return {"status": status if 400 <= status < 500 else 400, "error": "bad_http",
                "message": f"malformed HTTP request: {getattr(exc, 'message', '') or type(exc).__name__}"}
    return {"status": 500, "error": "internal", "message": "internal error; the request was not carried out"}


def _head_timeout_response(timeout: float) -> bytes:
    body = json.dumps({"error": "request_timeout", "message": f"the request line and headers did not arrive whole "
                       f"within {timeout:g} s (MR_TIMEOUT_HEADERS)"}).encode()
    return (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json; charset=utf-8\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


class _JsonErrorServer(web.Server):
    head_timeout = 0.0

    def __call__(self) -> RequestHandler:
        handler = _JsonProtocolErrors(self, loop=self._loop, **self._kwargs)
        handler.head_timeout = self.head_timeout
        return handler


class ActorRunner(web.AppRunner):
    """The runner every actor serves with: parser limits from the settings, protocol errors answered in JSON."""

    def __init__(self, app: web.Application, *, head_timeout: float = 0.0, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.head_timeout = head_timeout

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer  # the same server, building our request handler for each connection
        server.head_timeout = self.head_timeout  # type: ignore[attr-defined]
        return server


def make_runner(app: web.Application, **kwargs: Any) -> web.AppRunner:
    """An :class:`ActorRunner` for ``app``; MR_MAX_LINE bounds the request line and every header field."""
    settings = app[SETTINGS]
    # After an early answer (413, 429, 408) aiohttp reads and drops the rest of the body for a while: never longer
    # than a body may stay silent, so a slow sender cannot hold the connection past MR_TIMEOUT_BODY_IDLE.
    lingering = min(10.0, settings.timeouts.body_idle)
    # An idle keep-alive connection is closed after 75 s (aiohttp's default here is 3630 s, which lets idle clients
    # hold file descriptors for an hour); a started request head has MR_TIMEOUT_HEADERS.
    kwargs.setdefault("keepalive_timeout", 75.0)
    return ActorRunner(app, handle_signals=False, max_line_size=settings.max_line, max_field_size=settings.max_line,
                       lingering_time=lingering, head_timeout=settings.timeouts.headers, **kwargs)
