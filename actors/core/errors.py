"""The error tree: every failure a user or a peer can cause, with its HTTP status."""

from __future__ import annotations

import reprlib
from collections.abc import Iterable


class MapReduceError(Exception):
    """Root of every error this package raises on purpose."""

    status = 500
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


class ConfigError(MapReduceError):
    """A setting is missing or malformed."""

    code = "config"


class BadRequest(MapReduceError):
    """The request is malformed: bad JSON, bad spec, bad parameter."""

    status = 400
    code = "bad_request"


class WireError(BadRequest):
    """A CBOR body or frame is malformed, oversized, tagged or of the wrong type."""

    code = "bad_wire"


class InputError(BadRequest):
    """An input reference cannot be used: outside the data root, unreadable, forbidden address."""

    code = "bad_input"


class Unauthorized(MapReduceError):
    """The request lacks the shared token."""

    status = 401
    code = "unauthorized"


class Forbidden(MapReduceError):
    """A request a web page could have made without the user's intent (cross-site, or a browser's simple POST)."""

    status = 403
    code = "forbidden"


class MisdirectedRequest(MapReduceError):
    """The request's Host is a name this actor does not answer (a DNS rebinding page); see MR_ALLOWED_HOSTS."""

    status = 421
    code = "misdirected_request"


class NotFound(MapReduceError):
    """An unknown job, input or route."""

    status = 404
    code = "not_found"


class Conflict(MapReduceError):
    """The request is valid but stale or out of order: an old epoch, a misrouted partition."""

    status = 409
    code = "conflict"


class PayloadTooLarge(MapReduceError):
    """A body or frame exceeds its cap."""

    status = 413
    code = "too_large"


class Gone(MapReduceError):
    """The thing existed but is no longer held (a finished job's result dropped to stay within its budget)."""

    status = 410
    code = "gone"


class InsufficientStorage(MapReduceError):
    """The disk (or its budget, MR_UPLOAD_BUDGET) cannot take this upload now."""

    status = 507
    code = "insufficient_storage"


class KeyTooLarge(PayloadTooLarge):
    """One key (a word) is longer than MR_MAX_KEY: no retry of the split can help, so the job fails at once."""

    code = "key_too_large"


class ValueTooLarge(PayloadTooLarge):
    """One value a job made does not fit a shuffle frame (MR_FRAME_CAP): the same split makes it again on any
    mapper, so the job fails at once instead of after MR_MAX_ATTEMPTS."""

    code = "value_too_large"


class Unavailable(MapReduceError):
    """The actor cannot take the work now (no budget, draining, no peers); retry later."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RequestTimeout(MapReduceError):
    """A client sent its request body too slowly (a stalled or trickled upload); the message names the setting."""

    status = 408
    code = "request_timeout"


class Unprocessable(MapReduceError):
    """The request is well-formed but contradicts an earlier one (an Idempotency-Key reused for another body)."""

    status = 422
    code = "unprocessable"


class TooManyRequests(Unavailable):
    """An admission limit is reached (running or queued jobs, concurrent uploads); retry after a while."""

    status = 429
    code = "too_many_requests"


class PeerError(MapReduceError):
    """A peer actor failed, answered an error, or could not be reached."""

    status = 502
    code = "peer"


class DiscoveryError(PeerError):
    """Peers could not be found through the configured discovery."""

    code = "discovery"


class JobFailed(MapReduceError):
    """A job cannot finish; the message names the split or partition and the cause."""

    code = "job_failed"


class TaskFailed(MapReduceError):
    """A task process running a job's code exited, was killed, stalled or ran out of memory: its attempt fails and
    is retried (the message names the job, the function and what happened)."""

    code = "task_failed"

def describe(exc: BaseException) -> str:
    """A short text for an exception from the network or the OS, for error messages."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first of a task group's errors that this package raised on purpose, else the group itself."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            error = first_error(error)
        if isinstance(error, MapReduceError):
            return error
    return group


ECHO_LIMIT = 100  # characters of a client's string an error message echoes (a 4 MB name is not sent back or logged)


def shown(value: object, limit: int = ECHO_LIMIT, quote: bool = True) -> str:
    """``repr(value)`` (a str as it is, without ``quote``) for an error message, cut to about ``limit`` characters
    with an ellipsis (a long string says how long it was); never builds the repr of a huge value whole."""
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value) if quote else value
        return (repr(value[:limit]) if quote else value[:limit]) + f"... ({len(value)} characters)"
    bounded = reprlib.Repr()
    bounded.maxstring = bounded.maxother = limit
    text = bounded.repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def shown_all(values: Iterable[object], limit: int = ECHO_LIMIT, most: int = 10, quote: bool = True) -> str:
    """Up to ``most`` values, each :func:`shown`, then how many more there are: a list an error message echoes."""
    values = list(values)
    text = ", ".join(shown(v, limit, quote) for v in values[:most])
    return text + (f" and {len(values) - most} more" if len(values) > most else "")
