"""Reading an answer's body on the client: a capped read, and NDJSON lines (a streamed result, a job's logs)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import aiohttp

from ..core.errors import PeerError
from .errors import server_error

MiB = 1024 * 1024
# One result line is a key (at most MR_MAX_KEY, 64 MiB by default) and its value: a longer line is not a result.
DEFAULT_MAX_LINE = 80 * MiB
NDJSON = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})


async def read_capped(stream: aiohttp.StreamReader, cap: int) -> bytes:
    """At most ``cap`` bytes of a body (``read(n)`` alone may stop at the first chunk)."""
    data = bytearray()
    while len(data) < cap and (chunk := await stream.read(cap - len(data))):
        data += chunk
    return bytes(data)


async def ndjson_batches(chunks: AsyncIterable[bytes], path: str,
                         max_line: int = DEFAULT_MAX_LINE) -> AsyncIterator[list[tuple[Any, Any]]]:
    """The ``[key, value]`` lines of a streamed result body, a chunk's worth at a time (see :func:`ndjson_lines`)."""
    async for lines in ndjson_lines(chunks, path, max_line):
        yield [_entry(line, path) for line in lines]


async def ndjson_lines(chunks: AsyncIterable[bytes], path: str, max_line: int = DEFAULT_MAX_LINE,
                       what: str = "a result line") -> AsyncIterator[list[bytes]]:
    """The non-blank lines of a streamed body, a chunk's worth at a time; a line past ``max_line`` bytes is refused
    once that much of it has come, so a body that never ends a line costs ``max_line`` bytes at most (a line's
    start is kept in a bytearray and joined once, never re-copied per chunk)."""
    pending = bytearray()  # the unfinished last line
    async for chunk in chunks:
        end = chunk.rfind(b"\n")
        if end < 0:
            pending += chunk
            _check_line(len(pending), max_line, path, what)
            continue
        lines = (bytes(pending) + chunk[:end]).split(b"\n")
        pending = bytearray(chunk[end + 1:])
        _check_line(max(map(len, lines)), max_line, path, what)
        _check_line(len(pending), max_line, path, what)
        batch = [line for line in lines if line.strip()]
        if batch:
            yield batch
    if pending.strip():
        yield [bytes(pending)]


def _check_line(size: int, max_line: int, path: str, what: str) -> None:
    if size > max_line:
        raise PeerError(f"GET {path}: {what} is longer than the client's max_line of {max_line} bytes")


def _entry(line: bytes, path: str) -> tuple[Any, Any]:
    try:
        item = json.loads(line)
    except ValueError:
        raise PeerError(f"GET {path}: a result line is not JSON: {line[:100]!r}") from None
    if isinstance(item, dict) and isinstance(item.get("error"), str):
        raise server_error(None, line, {}, f"GET {path}")  # the server failed after it began to answer
    # Any JSON value as the key: a str, an int or a list (a tuple key) for most jobs, and anything for a job whose
    # output keys are actors.sdk.OutputKey (an mrjob job's: None, a float, a dict, ...).
    if not (isinstance(item, list) and len(item) == 2):
        raise PeerError(f"GET {path}: a result line is not a [key, value] entry: {line[:100]!r}")
    return item[0], item[1]
