"""GET /compute: the original trigger, a text counted as an interactive job and answered within the request."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..core.errors import BadRequest, Unavailable
from ..jobs import DEFAULT_JOB
from ..net.actor import SETTINGS
from .admit import ready_for_jobs, start_job
from .keys import REGISTRY, STORE
from .record import DONE


async def compute(request: web.Request) -> web.Response:
    """The original trigger: ``GET /compute?text=...`` answers the word counts as JSON."""
    text = request.query.get("text")
    if text is None:
        raise BadRequest("missing query parameter 'text'")
    app, settings = request.app, request.app[SETTINGS]
    await ready_for_jobs(app)
    app[REGISTRY].check_room(interactive=True)
    ref = app[STORE].add_text(text.encode("utf-8", "surrogatepass"), "compute")  # 429 past MR_TEXT_BUDGET
    # Interactive: it waits ahead of queued /v1 jobs, so a flood of submissions cannot starve it.
    record = start_job(app, DEFAULT_JOB, ref, settings.split_size, interactive=True)
    try:
        async with asyncio.timeout(settings.timeouts.request):
            await record.done.wait()
    except TimeoutError:
        app[REGISTRY].cancel(record.id)
        raise Unavailable(f"job {record.id} did not finish within {settings.timeouts.request:g} s "
                          "(MR_TIMEOUT_REQUEST): the cluster is busy", retry_after=5.0) from None
    if record.state != DONE:  # the job failed or was cancelled: the cluster could not serve it now, never a 500
        raise Unavailable(f"job {record.id} {record.state}: {record.error or 'no result'}", retry_after=5.0)
    # Answered here, so forgotten here: nobody else knows its id (a failed one stays, its id is in the 503).
    app[REGISTRY].forget(record)
    return web.Response(body=record.answer, content_type="application/json", charset="utf-8")
