"""The server's JSON errors turned back into the project's error classes, with the server's own message."""

from __future__ import annotations

import json
from collections.abc import Mapping

from ..core.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    InsufficientStorage,
    MapReduceError,
    MisdirectedRequest,
    NotFound,
    PayloadTooLarge,
    PeerError,
    Unauthorized,
    Unavailable,
    describe,
)

# The class for a status when the body names no code we know (a proxy's page, an older or newer server).
BY_STATUS: dict[int, type[MapReduceError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    413: PayloadTooLarge,
    421: MisdirectedRequest,
    429: Unavailable,
    502: PeerError,
    503: Unavailable,
    507: InsufficientStorage,
}
BODY_SHOWN = 300  # characters of a non-JSON error body quoted in the message


def _by_code() -> dict[str, type[MapReduceError]]:
    """Every error class by its ``code``, walked from the tree so classes added later are found too."""
    found: dict[str, type[MapReduceError]] = {}
    pending: list[type[MapReduceError]] = [MapReduceError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


def retry_after(headers: Mapping[str, str]) -> float:
    """Retry-After in seconds; an HTTP-date or a malformed value counts as one second."""
    try:
        return max(0.0, float(headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


def _parse(body: bytes) -> tuple[str, str] | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str) and isinstance(doc.get("message"), str):
        return doc["error"], doc["message"]
    return None


def server_error(status: int | None, body: bytes, headers: Mapping[str, str], what: str) -> MapReduceError:
    """The error for a 4xx/5xx answer to ``what`` (e.g. ``"POST /v1/jobs"``); ``status`` None: an error line
    met inside a streamed 200 answer.

    The class is the one whose ``code`` the body names when its status agrees, else the one for the status
    (429 and 503 are :class:`Unavailable` with ``retry_after``), else :class:`MapReduceError`. The error's
    ``status`` is the status the server answered.
    """
    parsed = _parse(body)
    if parsed is not None:
        code, message = parsed
    else:
        code, message = "", f"{what} answered HTTP {status}: {body[:BODY_SHOWN].decode('utf-8', 'replace')}"
    cls = _by_code().get(code)
    if cls is None or (status is not None and cls.status != status):
        cls = BY_STATUS.get(status, MapReduceError) if status is not None else MapReduceError
    try:
        error = cls(message, retry_after(headers)) if issubclass(cls, Unavailable) else cls(message)
    except TypeError:  # a class with its own constructor: keep the message and status anyway
        error = MapReduceError(message)
    if status is not None:
        error.status = status
    if code:
        error.code = code
    return error


def unreachable(what: str, exc: BaseException) -> PeerError:
    """The error for a request that got no answer: refused, reset, timed out or cut short."""
    return PeerError(f"{what}: no answer from the master ({describe(exc)})")
