"""How an actor serves a connection: aiohttp's request handler with JSON protocol errors and a request-head deadline.

Only aiohttp's public API is used: ``web.RequestHandler`` (its constructor, ``handle_error``, ``force_close`` and the
asyncio protocol methods), ``AppRunner.server`` as the handler's manager, a middleware and ``request.protocol``.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
import socket
from collections.abc import Coroutine
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.streams import StreamReader

from .middleware import Handler
from .middleware import log as request_log

_REQUEST_LINE = re.compile(rb"([A-Z]+ )?(/|https?:)")


class HeadDeadline:
    """A connection must deliver a complete request line and headers within ``timeout`` of its opening, or of the
    first byte of its next request (MR_TIMEOUT_HEADERS), which aiohttp lacks.

    Between requests an idle keep-alive connection is not timed by it (aiohttp's keepalive_timeout closes it); while
    a request is handled its body is timed by the body limits (MR_TIMEOUT_BODY_IDLE, MR_MIN_BODY_RATE,
    MR_TIMEOUT_BODY), and a pipelined head behind it is timed from the end of that request. A head counts as whole
    when its request reaches the application (the first middleware): aiohttp parsed it.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float, protocol: ActorProtocol) -> None:
        self.loop = loop
        self.timeout = timeout  # 0: no deadline
        self.protocol = protocol
        self.started: float | None = None  # loop time the awaited head began (its first byte, or the connection)
        self.with_bytes = False  # whether any byte of that head has arrived
        self.handling = False  # a request is in the application: a head behind it cannot be read yet
        self.payload: StreamReader | None = None  # the newest request's body: a new head starts once it is whole
        self.timer: asyncio.TimerHandle | None = None

    def opened(self) -> None:
        self._start(with_bytes=False)

    def received(self, data: bytes) -> None:
        between = self.payload is None or self.payload.is_eof()
        if data and between and (self.started is None or not self.with_bytes):
            self._start(with_bytes=True)  # the first byte of the next request's head

    def request_started(self, payload: StreamReader) -> None:
        self.started, self.with_bytes, self.handling, self.payload = None, False, True, payload

    def request_ended(self) -> None:
        self.handling = False
        if self.started is not None:  # a pipelined head began meanwhile: its time starts now
            self.started = max(self.started, self.loop.time())
            self._arm()

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _start(self, with_bytes: bool) -> None:
        if self.timeout <= 0:
            return
        self.started, self.with_bytes = self.loop.time(), with_bytes
        self._arm()

    def _arm(self) -> None:
        if self.timer is None and self.started is not None:
            self.timer = self.loop.call_at(self.started + self.timeout, self._overdue)

    def _overdue(self) -> None:
        self.timer = None
        if self.started is None or self.handling:
            return  # the head arrived (the next one arms a new timer), or request_ended re-arms this one
        if self.loop.time() < self.started + self.timeout:
            self._arm()  # the clock restarted since this timer was set
            return
        self.protocol.head_overdue(self.with_bytes)


class ActorProtocol(web.RequestHandler):
    """aiohttp's request handler, with its own protocol errors (a request line or header past MR_MAX_LINE, a
    malformed request, an unhandled exception) answered as JSON like every other error instead of plain text, and
    a :class:`HeadDeadline`."""

    def __init__(self, manager: web.Server, *, loop: asyncio.AbstractEventLoop, head_timeout: float,
                 **kwargs: Any) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self.head_deadline = HeadDeadline(loop, head_timeout, self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.head_deadline.opened()

    def data_received(self, data: bytes) -> None:
        self.head_deadline.received(data)
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.head_deadline.close()
        super().connection_lost(exc)

    def head_overdue(self, with_bytes: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if with_bytes:  # a client that started a request hears why it ends; a silent one is just closed
            request_log.warning("request_refused", status=408, error="request_timeout",
                                message="request head too slow (MR_TIMEOUT_HEADERS)")
            transport.write(_head_timeout_response(self.head_deadline.timeout))
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


@web.middleware
async def head_deadline_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The first middleware: a request reaching it has a whole head; the connection's next head waits until it ends."""
    protocol = request.protocol
    if not isinstance(protocol, ActorProtocol):  # served by a plain aiohttp server (a test client's)
        return await handler(request)
    protocol.head_deadline.request_started(request.content)
    try:
        return await handler(request)
    finally:
        protocol.head_deadline.request_ended()


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


class ActorRunner(web.AppRunner):
    """The runner every actor serves with: its listeners build an :class:`ActorProtocol` per connection, managed
    by the runner's own ``server`` (which tracks, drains and shuts down the connections as for any aiohttp site).

    ``handler_kwargs`` are aiohttp's ``RequestHandler`` parameters (parser limits, timeouts, access log)."""

    def __init__(self, app: web.Application, *, head_timeout: float = 0.0, shutdown_timeout: float = 60.0,
                 context: contextvars.Context | None = None, **handler_kwargs: Any) -> None:
        super().__init__(app, handle_signals=False, shutdown_timeout=shutdown_timeout, **handler_kwargs)
        self.head_timeout = head_timeout
        self.context = context  # setup and cleanup run in a copy of it (the caller's own, without one)
        self.handler_kwargs = handler_kwargs
        self.listeners: list[asyncio.Server] = []

    async def listen(self, sock: socket.socket) -> None:
        """Serve connections accepted on ``sock`` (bound and listening); after :meth:`setup`."""
        manager = self.server
        if manager is None:
            raise RuntimeError("ActorRunner.setup() must run before listen()")
        loop = asyncio.get_running_loop()

        def connection() -> ActorProtocol:
            return ActorProtocol(manager, loop=loop, head_timeout=self.head_timeout, **self.handler_kwargs)

        self.listeners.append(await loop.create_server(connection, sock=sock))

    def stop_listening(self) -> None:
        """Accept no new connection; the open ones are the server's to drain in :meth:`cleanup`."""
        for listener in self.listeners:
            listener.close()
        self.listeners.clear()

    async def setup(self) -> None:
        await self._in_context(super().setup())

    async def cleanup(self) -> None:
        self.stop_listening()
        await self._in_context(super().cleanup())

    async def _in_context(self, step: Coroutine[Any, Any, None]) -> None:
        if self.context is None:
            await step
            return
        # A task of its own: the context's values hold for the step and every task it starts, not for the caller.
        await asyncio.get_running_loop().create_task(step, context=self.context.copy())
