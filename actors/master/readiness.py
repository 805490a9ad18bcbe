"""Master readiness: it takes jobs once it has seen every reducer ordinal 0..R-1 and at least one mapper."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from ..core.config import Backoff, Settings
from ..core.errors import ConfigError, DiscoveryError, Unavailable
from ..core.logs import EventLog
from ..discovery import Discovery
from ..net.actor import DISCOVERY, READINESS, SETTINGS

COALESCE = 0.05  # probes closer together than this share one discovery look-up (many callers wait at once)
RETRY_AFTER = 2.0

log = EventLog(__name__)


def expected_reducers(settings: Settings) -> int:
    """R, the number of reducers (partitions) the master needs: MR_REDUCER_COUNT, or the static list's length."""
    if settings.reducer_count > 0 or settings.discovery == "static":
        return settings.reducer_count or len(settings.reducer_urls)
    raise ConfigError(
        f"MR_REDUCER_COUNT must be set to the number of reducers (the reducer StatefulSet's replicas) when "
        f"MR_DISCOVERY={settings.discovery}: the master cannot know how many reducers to wait for"
    )


class Readiness:
    """Whether the cluster the master needs is visible; latched once seen, so a reducer restarting later does not
    take the master out of its Service (the coordinator waits for a missing ordinal itself, bounded)."""

    def __init__(self, discovery: Discovery, reducers: int, probe_timeout: float,
                 clock: Callable[[], float], backoff: Backoff) -> None:
        self.discovery = discovery
        self.backoff = backoff  # between look-ups while a caller waits (the settings' discovery_backoff)
        self.reducers = reducers
        self.probe_timeout = probe_timeout
        self.clock = clock
        self.ready = False
        self._lock = asyncio.Lock()
        self._last: dict[str, object] | None = None
        self._checked = -float("inf")

    async def check(self) -> dict[str, object] | None:
        """None when ready, else what the master is waiting for (the JSON ``/readyz`` shows)."""
        if self.ready:
            return None
        async with self._lock:
            if self.ready:
                return None
            if self._last is None or self.clock() - self._checked >= COALESCE:
                self._last = await self._probe()
                self._checked = self.clock()
            return self._last

    async def _probe(self) -> dict[str, object] | None:
        try:
            async with asyncio.timeout(self.probe_timeout):
                mappers, reducers = await asyncio.gather(self.discovery.peers("mapper"),
                                                         self.discovery.peers("reducer"))
        except (DiscoveryError, TimeoutError) as error:
            cause = error.message if isinstance(error, DiscoveryError) else "timed out"
            return {"waiting_for": {"discovery": True}, "reducer_count": self.reducers,
                    "message": f"waiting for discovery to answer ({cause})"}
        seen = sorted({peer.ordinal for peer in reducers})
        missing = [ordinal for ordinal in range(self.reducers) if ordinal not in seen]
        if not missing and mappers:
            self.ready = True
            log.info("master_ready", reducers=self.reducers, mappers=len(mappers))
            return None
        wanted = []
        if missing:
            wanted.append(f"reducer ordinals {missing} (MR_REDUCER_COUNT={self.reducers})")
        if not mappers:
            wanted.append("at least one mapper")
        return {
            "waiting_for": {"reducer_ordinals": missing, "mappers": 0 if mappers else 1},
            "seen": {"reducer_ordinals": seen, "mappers": len(mappers)},
            "reducer_count": self.reducers,
            "message": "waiting for " + " and ".join(wanted),
        }

    async def wait(self, timeout: float) -> None:
        """Return once ready; after ``timeout`` seconds raise Unavailable (503 + Retry-After) saying what is missing."""
        waiting: dict[str, object] | None = None
        tries = 0
        try:
            async with asyncio.timeout(timeout):
                while (waiting := await self.check()) is not None:
                    tries += 1
                    # a backoff between discovery look-ups, not a wait for an event
                    await asyncio.sleep(self.backoff.pause(tries))
        except TimeoutError:
            message = waiting["message"] if waiting else "waiting for discovery to answer"
            raise Unavailable(f"the master is not ready yet ({message}) after {timeout:g} s; retry shortly",
                              retry_after=RETRY_AFTER) from None


READY = web.AppKey("ready", Readiness)


async def readiness_context(app: web.Application) -> AsyncIterator[None]:
    """A cleanup_ctx after discovery's: the master's readiness, which ``/readyz`` and job intake consult."""
    settings = app[SETTINGS]
    readiness = Readiness(app[DISCOVERY], expected_reducers(settings), settings.timeouts.discovery,
                          asyncio.get_running_loop().time, settings.discovery_backoff)
    app[READY] = readiness
    app[READINESS] = readiness.check
    yield
