"""Request middleware every actor shares: shared-token checks and JSON errors for every failure."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from ..core.errors import MapReduceError, PayloadTooLarge, Unauthorized, Unavailable
from ..core.logs import EventLog

INTERNAL_PREFIX = "/internal/"
# "/": the status page, which holds no data of its own; /v1/openapi.json: public documentation; /metrics: what
# Prometheus scrapes (counts only, nothing secret).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/", "/v1/openapi.json"})
OPEN_PREFIXES = ("/static/",)  # the status page's script and stylesheet
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = EventLog(__name__)


def error_response(error: MapReduceError) -> web.Response:
    response = web.json_response(error.to_json(), status=error.status)
    if isinstance(error, Unavailable):
        response.headers["Retry-After"] = str(max(1, round(error.retry_after)))
    return response


def authorized(request: web.Request, token: str) -> bool:
    """``Authorization: Bearer <token>``; the scheme is case-insensitive (RFC 7235), the token is not."""
    scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
    # Header bytes that are not UTF-8 arrive as surrogate escapes: encode them back, never fail on them.
    given_bytes = given.strip().encode("utf-8", "surrogatepass")
    return scheme.lower() == "bearer" and hmac.compare_digest(given_bytes, token.encode())


def make_middlewares(token: str, api_token: str, incarnation: str,
                     *guards: Middleware) -> list[Middleware]:
    """Errors become JSON with the right status, logged once here; internal routes need ``token``; ``guards`` run
    first inside the error handling (the Host and cross-site rules of :mod:`.origin`)."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except MapReduceError as error:
            level = log.warning if error.status < 500 else log.error
            level("request_refused", method=request.method, path=request.path, status=error.status,
                  error=error.code, message=error.message)
            response = error_response(error)
        except web.HTTPRequestEntityTooLarge as exc:
            response = error_response(PayloadTooLarge(f"request body too large: {exc.text}"))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = web.json_response(
                {"error": exc.reason.lower().replace(" ", "_"), "message": f"{exc.reason}: {request.path}"},
                status=exc.status,
            )
        if not response.prepared:
            response.headers["X-Incarnation"] = incarnation
        return response

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return await handler(request)
        required = token if path.startswith(INTERNAL_PREFIX) else api_token
        if required and not authorized(request, required):
            raise Unauthorized(f"{path} requires the {'cluster' if required == token else 'API'} token")
        return await handler(request)

    return [errors, *guards, auth]
