"""GET /v1/jobs/{id}/result: a held result streamed as JSON, its top entries or NDJSON, or where its output went."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from ..core.errors import BadRequest, Conflict
from ..inputs.outdir import SUCCESS
from ..net.actor import SETTINGS
from .keys import REGISTRY, RESULTS
from .limits import positive_decimal, wait_seconds
from .record import DONE, JobRecord
from .results import HeldResult

TOP_BATCH = 4096  # ?top=N entries written at a time


async def _wait(record: JobRecord, request: web.Request) -> None:
    wait = request.query.get("wait")
    if wait is None:
        return
    seconds = min(wait_seconds(wait), request.app[SETTINGS].max_wait)  # MR_MAX_WAIT: longer asks are cut
    try:
        async with asyncio.timeout(max(seconds, 0.0)):
            await record.done.wait()
    except TimeoutError:
        pass


async def result(request: web.Request) -> web.StreamResponse:
    """GET /v1/jobs/{id}/result[?top=N][&wait=S]: the job's result once it is done."""
    record = request.app[REGISTRY].get(request.match_info["id"])
    top = request.query.get("top")
    n = positive_decimal(top, "top") if top is not None else None
    form = request.query.get("format", "json")
    if form not in ("json", "ndjson"):
        raise BadRequest("format must be json or ndjson")
    await _wait(record, request)
    if record.output and record.state == DONE:
        return _output_pointer(record, n is not None or form != "json")
    held = held_result(request.app, record)
    if held is None:
        detail = f": {record.error}" if record.error else ""
        raise Conflict(f"job {record.id} is {record.state}, no result{detail}")
    head: dict[str, Any] = {"id": record.id, "job": record.job_name, "state": record.state, "keys": held.keys,
                            "key_encoding": held.key_encoding}
    if form == "ndjson":
        return await _stream_ndjson(request, held, held.keys if n is None else n)
    if n is not None:
        return await _stream_top(request, head, held, n)
    return await _stream_result(request, head, held)


def _output_pointer(record: JobRecord, partial: bool) -> web.Response:
    """A done job with an output: where its result went, never the data (the master never held it)."""
    written = record.written or {}
    if partial:
        raise Conflict(f"job {record.id} wrote its result to {record.output!r}: read its part files there "
                       "(top and format=ndjson are for results the master holds)")
    output = {"path": record.output, "success": SUCCESS, "parts": written.get("parts", []),
              "bytes": written.get("bytes", 0), "keys": written.get("keys", 0)}
    return web.json_response({"id": record.id, "job": record.job_name, "state": record.state,
                              "keys": written.get("keys", 0), "output": output})


def held_result(app: web.Application, record: JobRecord) -> HeldResult | None:
    """A done job's held result; None if the job is not done; Gone (410) if it was dropped for the budget."""
    if record.state != DONE:
        return None
    return app[RESULTS].get(record.id)


async def _stream_result(request: web.Request, head: dict[str, Any], held: HeldResult) -> web.StreamResponse:
    """The held bytes in slices, each awaited: a slow reader costs one slice of memory, not a copy of the result."""
    prefix = json.dumps(head)[:-1].encode() + b', "result": '
    response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
    response.content_length = len(prefix) + held.size + 1
    await response.prepare(request)
    await response.write(prefix)
    for chunk in held.chunks():
        await response.write(chunk)
    await response.write(b"}")
    await response.write_eof()
    return response


async def _stream_top(request: web.Request, head: dict[str, Any], held: HeldResult, n: int) -> web.StreamResponse:
    """The first ``n`` entries, decoded and written a batch at a time: even ?top=<everything> holds one batch."""
    response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
    await response.prepare(request)
    await response.write(json.dumps(head)[:-1].encode() + b', "top": [')
    batch: list[str] = []
    first = True
    for entry in held.entries(n):
        batch.append(json.dumps(entry))
        if len(batch) == TOP_BATCH:
            await response.write(("" if first else ", ").encode() + ", ".join(batch).encode())
            batch, first = [], False
    if batch:
        await response.write(("" if first else ", ").encode() + ", ".join(batch).encode())
    await response.write(b"]}")
    await response.write_eof()
    return response


async def _stream_ndjson(request: web.Request, held: HeldResult, n: int) -> web.StreamResponse:
    """The first ``n`` entries as NDJSON, one ``[key, value]`` a line, a batch at a time: a result of millions of
    keys never has to fit in one JSON document, on either side."""
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson; charset=utf-8"})
    await response.prepare(request)
    batch: list[str] = []
    for entry in held.entries(n):
        batch.append(json.dumps(entry))
        if len(batch) == TOP_BATCH:
            await response.write(("\n".join(batch) + "\n").encode())
            batch = []
    if batch:
        await response.write(("\n".join(batch) + "\n").encode())
    await response.write_eof()
    return response

