"""The job check: a job runs only if every visible mapper and reducer has it, in the master's version.

Code never travels, so mismatched images must be caught before a job starts, not half-way through it. Each actor
advertises its jobs' fingerprints in ``/healthz``; the master asks every peer discovery sees, in parallel, each
within MR_TIMEOUT_CONNECT. A peer that does not answer is left to the coordinator (it cannot take work either).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from ..core.errors import BadRequest, describe
from ..core.logs import EventLog
from ..discovery import Discovery, Peer

HEALTHZ_CAP = 1024 * 1024  # an actor's /healthz with its job list: a few KiB even with hundreds of jobs
UNREACHABLE = object()

log = EventLog(__name__)


async def check_job_everywhere(session: aiohttp.ClientSession, discovery: Discovery, name: str, fingerprint: str,
                               timeout: float) -> None:
    """400 naming the actors that lack job ``name`` or have it with another fingerprint."""
    mappers, reducers = await asyncio.gather(discovery.peers("mapper"), discovery.peers("reducer"))
    peers = [*mappers, *reducers]
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    answers = await asyncio.gather(*(advertised_jobs(session, peer, client_timeout) for peer in peers))
    lacking, differing = [], []
    for peer, jobs in zip(peers, answers, strict=True):
        if jobs is UNREACHABLE:
            continue
        assert isinstance(jobs, dict)
        if name not in jobs:
            lacking.append(peer.name)
        elif jobs[name] != fingerprint:
            differing.append(peer.name)
    if lacking or differing:
        problems = []
        if lacking:
            problems.append(f"not installed on {', '.join(lacking)}")
        if differing:
            problems.append(f"a different version on {', '.join(differing)}")
        log.warning("job_refused_mismatch", name=name, lacking=lacking, differing=differing)
        raise BadRequest(f"job {name!r} is {' and '.join(problems)}: install the same job code on every actor "
                         "(MR_JOB_MODULES or the mapreduce_actors.jobs entry points)")


async def advertised_jobs(session: aiohttp.ClientSession, peer: Peer, timeout: aiohttp.ClientTimeout) -> Any:
    """The ``{name: fingerprint}`` a peer advertises ({} when it advertises none), or UNREACHABLE."""
    try:
        async with session.get(f"{peer.url}/healthz", timeout=timeout) as response:
            raw = await response.content.read(HEALTHZ_CAP)
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        log.info("job_check_unreachable", peer=peer.name, reason=describe(exc))
        return UNREACHABLE
    if status != 200:
        return UNREACHABLE
    try:
        answer = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    jobs = answer.get("jobs") if isinstance(answer, dict) else None
    if not isinstance(jobs, dict):
        return {}  # an actor too old to advertise jobs has none of the new ones
    return {key: value for key, value in jobs.items() if isinstance(value, str)}
