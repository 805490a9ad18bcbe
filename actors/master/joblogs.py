"""GET /v1/jobs/{id}/logs: every actor's lines of a job, gathered from their rings, merged by time, as NDJSON."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from ..core.config import Settings
from ..core.errors import BadRequest, DiscoveryError, MapReduceError, NotFound, PeerError, describe
from ..core.joblog import LEVELS, JobLogRing, level_number
from ..discovery import Discovery, Peer, PeerRole
from ..net.actor import DISCOVERY, SETTINGS
from ..net.client import PeerClient, read_cbor
from ..net.joblog import JOB_LOG
from .keys import REGISTRY, SESSION

NDJSON = "application/x-ndjson"
ROLES: tuple[PeerRole, ...] = ("mapper", "reducer")
FLAGS = {"": False, "0": False, "false": False, "1": True, "true": True}


@dataclass
class Source:
    """One actor asked for its lines, and where the last answer left off."""

    name: str
    url: str  # "": this master's own ring
    incarnation: str = ""
    since: int = 0
    failing: bool = False  # its failure was noted already: noted again only once it answered in between


class Gatherer:
    """Every actor's new lines of one job at each :meth:`gather`, in time order; an actor that cannot answer is a
    line saying so, never a failure of the whole answer."""

    def __init__(self, app: web.Application, job: str, level: int, only: str | None) -> None:
        self.job = job
        self.level = level
        self.only = only
        self.settings: Settings = app[SETTINGS]
        self.ring: JobLogRing = app[JOB_LOG]
        self.discovery: Discovery = app[DISCOVERY]
        self.client = PeerClient(app[SESSION], self.settings)
        self.sources: dict[tuple[str, str], Source] = {}
        self.notes: list[dict[str, Any]] = []

    async def refresh(self) -> list[Source]:
        """The actors to ask now: this master and every peer discovery sees (only ``only``, when given)."""
        found = [Source(self.ring.actor, "")]
        looked = await asyncio.gather(*(self._peers(role) for role in ROLES), return_exceptions=True)
        for role, peers in zip(ROLES, looked, strict=True):
            if isinstance(peers, BaseException):
                if not isinstance(peers, (DiscoveryError, TimeoutError)):
                    raise peers
                self.notes.append(self._note(self.ring.actor, f"cannot list the {role}s: {describe(peers)}"))
                continue
            found.extend(Source(p.name, p.url) for p in peers)
        chosen = [s for s in found if self.only is None or s.name == self.only]
        return [self.sources.setdefault((s.name, s.url), s) for s in chosen]

    async def _peers(self, role: PeerRole) -> list[Peer]:
        async with asyncio.timeout(self.settings.timeouts.discovery):
            return await self.discovery.peers(role)

    async def gather(self) -> list[dict[str, Any]]:
        sources = await self.refresh()
        answers = await asyncio.gather(*(self._read(source) for source in sources))
        lines = [line for answer in answers for line in answer] + self.notes
        self.notes = []
        lines.sort(key=lambda line: line["time"])  # stable: one actor's lines keep their order
        return lines

    async def _read(self, source: Source) -> list[dict[str, Any]]:
        """The source's lines after its ``since``, a page at a time; at most MR_JOB_LOG_LINES per gather (what a
        ring can hold of one job), so an actor that claims ever more cannot keep the master here."""
        lines: list[dict[str, Any]] = []
        more = True
        try:
            while more and len(lines) < self.settings.job_log_lines:
                page, more = await self._page(source)
                if not page:
                    break
                lines.extend(page)
        except MapReduceError as error:
            if not source.failing:
                source.failing = True
                lines.append(self._note(source.name, error.message))
            return lines
        source.failing = False
        return lines

    async def _page(self, source: Source) -> tuple[list[dict[str, Any]], bool]:
        if not source.url:
            entries, more = self.ring.read(self.job, source.since, self.level, self.settings.message_cap // 2)
            return self._take(source, entries, self.ring.incarnation), more
        url = f"{source.url}/internal/v1/logs/{quote(self.job, safe='')}"
        params = {"since": str(source.since), "incarnation": source.incarnation,
                  "level": logging.getLevelName(self.level).lower()}
        try:
            async with self.client.session.get(url, params=params, headers=self.client.headers,
                                               timeout=self.client.timeout(total=self.settings.timeouts.request)
                                               ) as response:
                answer = await read_cbor(response, self.settings.message_cap, url)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise PeerError(f"{source.name} did not answer for its logs: {describe(exc)}") from None
        if not (isinstance(answer, dict) and isinstance(answer.get("entries"), list)
                and isinstance(answer.get("incarnation"), str) and isinstance(answer.get("more"), bool)):
            raise PeerError(f"{source.name} answered its logs in an unknown shape")
        return self._take(source, answer["entries"], answer["incarnation"]), answer["more"]

    def _take(self, source: Source, entries: list[Any], incarnation: str) -> list[dict[str, Any]]:
        """The well-formed entries past ``since``, as the public API shows them; ``since`` moves past them."""
        if incarnation != source.incarnation:
            source.incarnation, source.since = incarnation, 0
        taken = []
        for entry in entries:
            if not _well_formed(entry) or entry["seq"] <= source.since:
                raise PeerError(f"{source.name} answered a malformed or repeated log line")
            source.since = entry["seq"]
            taken.append({key: entry[key] for key in ("time", "actor", "level", "event", "fields")})
        return taken

    def _note(self, actor: str, message: str) -> dict[str, Any]:
        return {"time": time.time(), "actor": actor, "level": "warning", "event": "logs_unavailable",
                "fields": {"error": message}}


def _well_formed(entry: Any) -> bool:
    return (isinstance(entry, dict) and type(entry.get("seq")) is int
            and type(entry.get("time")) in (int, float) and isinstance(entry.get("actor"), str)
            and entry.get("level") in LEVELS and isinstance(entry.get("event"), str)
            and isinstance(entry.get("fields"), dict))


def _flag(text: str, name: str) -> bool:
    value = FLAGS.get(text.lower())
    if value is None:
        raise BadRequest(f"{name} must be 1, true, 0 or false, not {text[:40]!r}")
    return value


def _lines(entries: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries).encode()


async def job_logs(request: web.Request) -> web.StreamResponse:
    """GET /v1/jobs/{id}/logs[?follow=1&actor=NAME&level=L]: the job's lines from every actor, in time order, as
    NDJSON; with ``follow``, new lines every MR_JOB_LOG_POLL seconds (an empty line when there are none, so a
    quiet job does not look like a dead connection) until the job ends, then the last of them."""
    record = request.app[REGISTRY].get(request.match_info["id"])
    query = request.query
    level = level_number(query.get("level", "debug"))
    follow = _flag(query.get("follow", ""), "follow")
    only = query.get("actor") or None
    gatherer = Gatherer(request.app, record.id, level, only)
    if only is not None and not await gatherer.refresh():
        raise NotFound(f"no actor named {only[:100]!r} among the master and the peers it sees")
    poll = request.app[SETTINGS].job_log_poll
    response = web.StreamResponse(headers={"Content-Type": NDJSON, "Cache-Control": "no-store"})
    await response.prepare(request)
    while True:
        ended = record.done.is_set()  # read before the gather: the lines of its end are in this gather or after
        lines = await gatherer.gather()
        if lines or follow:
            await response.write(_lines(lines) if lines else b"\n")
        if not follow or ended:
            break
        try:
            async with asyncio.timeout(poll):
                await record.done.wait()
        except TimeoutError:
            pass
    await response.write_eof()
    return response
