"""Metrics: each actor's Prometheus registry, the metric families of its role, and ``GET /metrics``.

Every app owns its own CollectorRegistry (never prometheus_client's process-wide default): tests and the local
launcher run several actors in one process. Labels stay low-cardinality: job NAMES (a registered set), route
patterns, status codes and fixed outcome words; never a job id, a URL or a peer name.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ..core.errors import DiscoveryError
from ..core.logs import EventLog
from ..discovery import Discovery, PeerRole

Reading = Callable[[], float]
Refresh = Callable[[], Awaitable[None]]

JOB_STATES = ("done", "failed", "cancelled")
# ok: the attempt's report counted; failed: it failed (its mapper's fault or not); backup: a backup attempt started
# for a straggler; stale: a frame or report of another attempt, dropped.
ATTEMPT_OUTCOMES = ("ok", "failed", "backup", "stale")
# committed: merged; duplicate: its split was already merged; cut: the sender stopped before a valid COMMIT;
# rejected: refused (malformed, too large, misrouted, stale epoch, no room to stage it).
STREAM_OUTCOMES = ("committed", "duplicate", "cut", "rejected")
PEER_ROLES: tuple[PeerRole, ...] = ("mapper", "reducer")
# Scrapes come every 15 to 30 s; /metrics is open, so a flood of them must not become a flood of DNS queries.
PEERS_FRESH = 5.0
# Jobs take from well under a second (a test's text) to hours (a large input): wide buckets, few of them.
DURATION_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0)

log = EventLog(__name__)


class Readings(Collector):
    """Values read at scrape time from state their owners keep anyway (a budget's counters, a ledger's size)."""

    def __init__(self) -> None:
        self._families: list[tuple[bool, str, str, Reading]] = []

    def gauge(self, name: str, documentation: str, read: Reading) -> None:
        self._families.append((False, name, documentation, read))

    def counter(self, name: str, documentation: str, read: Reading) -> None:
        """``read`` must never go down (a count kept since the process started)."""
        self._families.append((True, name, documentation, read))

    def collect(self) -> Iterable[Metric]:
        for is_counter, name, documentation, read in self._families:
            family = CounterMetricFamily if is_counter else GaugeMetricFamily
            yield family(name, documentation, value=read())


class Metrics:
    """One app's registry, its scrape-time readings, and the HTTP counter every actor has."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.readings = Readings()
        self.registry.register(self.readings)
        self.http_requests = Counter("mapreduce_http_requests", "HTTP requests answered, by route pattern and status",
                                     ["route", "status"], registry=self.registry)
        self.refreshers: list[Refresh] = []  # run before each scrape; each bounds its own time
        # Each (route, status) series, looked up once: labels() costs more than the increment, on every request.
        self._requests: dict[tuple[str, int], Counter] = {}

    def request(self, route: str, status: int) -> None:
        series = self._requests.get((route, status))
        if series is None:
            series = self._requests[(route, status)] = self.http_requests.labels(route, str(status))
        series.inc()

    async def exposition(self) -> bytes:
        for refresh in self.refreshers:
            await refresh()
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", Metrics)


async def serve_metrics(request: web.Request) -> web.Response:
    """GET /metrics: the Prometheus text format; open (no token), like the probes, and holding nothing secret."""
    body = await request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


class MasterMetrics:
    """Jobs, split attempts, reducer recoveries and the peers the master sees."""

    def __init__(self, metrics: Metrics | None = None, jobs: Iterable[str] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        registry = (metrics or Metrics()).registry  # none: a coordinator built alone (unit tests) counts privately
        self.clock = clock
        self._peers_counted: float | None = None
        self._counting = asyncio.Lock()
        self.jobs = Counter("mapreduce_jobs", "jobs finished, by job name and final state", ["job", "state"],
                            registry=registry)
        self.duration = Histogram("mapreduce_job_duration_seconds", "seconds from submission to the job's end",
                                  ["job"], buckets=DURATION_BUCKETS, registry=registry)
        self.attempts = Counter("mapreduce_split_attempts", "split attempts by outcome: ok, failed, backup (started), "
                                "stale (frames and reports of other attempts, dropped)", ["outcome"],
                                registry=registry)
        self.recoveries = Counter("mapreduce_reducer_recoveries",
                                  "partitions re-mapped because their reducer lost its state", registry=registry)
        self.peers = Gauge("mapreduce_peers_visible", "peers discovery shows the master, by role", ["role"],
                           registry=registry)
        for job in jobs:  # every known job's series exist from the start, at 0, so rate() sees the first one
            for state in JOB_STATES:
                self.jobs.labels(job, state)
            self.duration.labels(job)
        for outcome in ATTEMPT_OUTCOMES:
            self.attempts.labels(outcome)
        for role in PEER_ROLES:
            self.peers.labels(role)

    def job_finished(self, name: str, state: str, seconds: float) -> None:
        if state in JOB_STATES:
            self.jobs.labels(name, state).inc()
            self.duration.labels(name).observe(max(seconds, 0.0))

    def attempt(self, outcome: str) -> None:
        self.attempts.labels(outcome).inc()

    def recovered(self, partitions: int) -> None:
        self.recoveries.inc(partitions)

    async def count_peers(self, discovery: Discovery | None, timeout: float) -> None:
        """Set the peer gauges from discovery, within ``timeout``, at most once per PEERS_FRESH seconds (scrapes
        at once share one look-up); on failure they keep their last values."""
        if discovery is None:  # the app is still starting
            return
        async with self._counting:
            if self._peers_counted is not None and self.clock() - self._peers_counted < PEERS_FRESH:
                return
            try:
                async with asyncio.timeout(timeout):
                    for role in PEER_ROLES:
                        self.peers.labels(role).set(len(await discovery.peers(role)))
            except (TimeoutError, DiscoveryError) as error:
                log.debug("peers_not_counted", cause=type(error).__name__)
            self._peers_counted = self.clock()


class DiskBytes(Protocol):
    @property
    def disk_bytes(self) -> int: ...


class MapperMetrics:
    """What a mapper reads, finishes and sends; its spools' bytes on disk are summed at scrape time."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        metrics = metrics or Metrics()
        registry = metrics.registry
        self.bytes_read = Counter("mapreduce_mapper_bytes_read", "input bytes read by split attempts",
                                  registry=registry)
        self.splits_done = Counter("mapreduce_mapper_splits_done", "split attempts mapped and delivered",
                                   registry=registry)
        self.splits_failed = Counter("mapreduce_mapper_splits_failed", "split attempts reported failed",
                                     registry=registry)
        self.shuffle_bytes = Counter("mapreduce_shuffle_bytes_sent",
                                     "DATA frame bytes of partition streams reducers acknowledged", registry=registry)
        self.send_retries = Counter("mapreduce_shuffle_send_retries", "partition streams sent again after a failure",
                                    registry=registry)
        self.spools: set[DiskBytes] = set()  # the spools of running attempts
        metrics.readings.gauge("mapreduce_mapper_spool_disk_bytes", "bytes running attempts spooled to disk",
                               lambda: sum(spool.disk_bytes for spool in self.spools))


class ReducerMetrics:
    """Streams by outcome; the staging budget and the keys held are read at scrape time."""

    def __init__(self, metrics: Metrics, staged: Reading, waits: Reading, keys: Reading) -> None:
        self.streams = Counter("mapreduce_reducer_streams", "partition streams by outcome: committed, duplicate, "
                               "cut (ended before a valid COMMIT), rejected", ["outcome"], registry=metrics.registry)
        for outcome in STREAM_OUTCOMES:
            self.streams.labels(outcome)
        metrics.readings.gauge("mapreduce_reducer_staging_bytes", "bytes of the staging budget in use", staged)
        metrics.readings.counter("mapreduce_reducer_staging_waits", "streams that waited for staging room", waits)
        metrics.readings.gauge("mapreduce_reducer_keys_held", "keys held for jobs not yet released", keys)

    def stream(self, outcome: str) -> None:
        self.streams.labels(outcome).inc()
