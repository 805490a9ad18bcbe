"""Metrics: each actor's Prometheus registry, the metric families of its role, and ``GET /metrics``.

Every app owns its own CollectorRegistry (never prometheus_client's process-wide default): tests and the local
launcher run several actors in one process. Labels stay low-cardinality: job NAMES (a registered set), route
patterns, methods, status codes and fixed outcome words; never a job id, a URL or a peer name.

``_created`` samples are off: prometheus-client only switches them process-wide (``disable_created_metrics()``,
or PROMETHEUS_DISABLE_CREATED_SERIES before import), so each Metrics switches them off when it is made. Every
registry in an actor's process is an actor's, and all of them want it the same way.
"""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .. import __version__
from ..core.errors import DiscoveryError
from ..core.logs import EventLog
from ..discovery import Discovery, PeerRole

Reading = Callable[[], float]
Refresh = Callable[[], Awaitable[None]]

JOB_STATES = ("done", "failed", "cancelled")
# ok: the attempt's report counted; failed: it failed (its mapper's fault or not); backup: a backup attempt started
# for a straggler; stale: a frame or report of another attempt, dropped.
ATTEMPT_OUTCOMES = ("ok", "failed", "unreachable", "backup", "stale")
# committed: merged; duplicate: its split was already merged; cut: the sender stopped before a valid COMMIT;
# rejected: refused (malformed, too large, misrouted, stale epoch, no room to stage it).
STREAM_OUTCOMES = ("committed", "duplicate", "cut", "rejected")
PEER_ROLES: tuple[PeerRole, ...] = ("mapper", "reducer")
# Scrapes come every 15 to 30 s; /metrics is open, so a flood of them must not become a flood of DNS queries.
PEERS_FRESH = 5.0
# Jobs take from well under a second (a test's text) to hours (a large input): wide buckets, few of them.
DURATION_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0)
# A split attempt: milliseconds (a test's text) to the lease-bounded minutes of a large split on a slow source.
SPLIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# A partition stream or a request: a millisecond (loopback, a probe) to minutes (a long-poll, a big upload).
REQUEST_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# How a split attempt the master listened to ended; one it never started (mapper unreachable) or that was cut by
# the job's end is not timed. superseded: another attempt of the split won (or this one's report came late).
# How an attempt the master listened to ended: the words of its status (actors/master/attempts.py).
SPLIT_ENDS = ("ok", "failed", "lease_expired", "superseded", "unreachable")
# Request methods as a label: what the routes take; anything else a client sends is "other" (no label per word).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})

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
    """One app's registry, its scrape-time readings, the process's own metrics (CPU, memory, file descriptors,
    Python), the build it runs, and the HTTP counter and latency histogram every actor has."""

    def __init__(self, role: str = "") -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # process-wide (module docstring); idempotent
        self.registry = CollectorRegistry()
        self.readings = Readings()
        self.registry.register(self.readings)
        ProcessCollector(registry=self.registry)  # process_*: read from /proc at scrape time (nothing elsewhere)
        PlatformCollector(registry=self.registry)  # python_info
        Info("mapreduce_build", "the version this actor runs, its role and its Python", registry=self.registry).info(
            {"version": __version__, "role": role, "python": platform.python_version()})
        self.http_requests = Counter("mapreduce_http_requests", "HTTP requests answered, by route pattern and status",
                                     ["route", "status"], registry=self.registry)
        self.http_duration = Histogram("mapreduce_http_request_duration_seconds", "seconds from a request's arrival "
                                       "to its answer (streamed answers: to their end), by route pattern and method",
                                       ["route", "method"], buckets=REQUEST_BUCKETS, registry=self.registry)
        self.refreshers: list[Refresh] = []  # run before each scrape; each bounds its own time
        # Each series, looked up once: labels() costs more than the increment, on every request.
        self._requests: dict[tuple[str, int], Counter] = {}
        self._durations: dict[tuple[str, str], Histogram] = {}

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        series = self._requests.get((route, status))
        if series is None:
            series = self._requests[(route, status)] = self.http_requests.labels(route, str(status))
        series.inc()
        method = method if method in METHODS else "other"
        duration = self._durations.get((route, method))
        if duration is None:
            duration = self._durations[(route, method)] = self.http_duration.labels(route, method)
        duration.observe(max(seconds, 0.0))

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
        self.attempts = Counter("mapreduce_split_attempts", "split attempts by outcome: ok, failed, unreachable (its "
                                "mapper could not be reached), backup (started), stale (frames and reports of other "
                                "attempts, dropped)", ["outcome"],
                                registry=registry)
        self.split_duration = Histogram("mapreduce_split_attempt_duration_seconds",
                                        "seconds from a split attempt's assignment to its end, by how it ended: ok, "
                                        "failed, lease_expired, superseded (another attempt won), unreachable",
                                        ["outcome"],
                                        buckets=SPLIT_BUCKETS, registry=registry)
        self.leases_expired = Counter("mapreduce_split_leases_expired", "split attempts failed because their mapper "
                                      "was silent for MR_TIMEOUT_LEASE (stalled)", registry=registry)
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
        for end in SPLIT_ENDS:
            self.split_duration.labels(end)
        for role in PEER_ROLES:
            self.peers.labels(role)

    def job_finished(self, name: str, state: str, seconds: float) -> None:
        if state in JOB_STATES:
            self.jobs.labels(name, state).inc()
            self.duration.labels(name).observe(max(seconds, 0.0))

    def attempt(self, outcome: str) -> None:
        self.attempts.labels(outcome).inc()

    def attempt_ended(self, end: str, seconds: float, stalled: bool = False) -> None:
        """A split attempt the master listened to ended (``end`` in SPLIT_ENDS); ``stalled``: its lease expired."""
        self.split_duration.labels(end).observe(max(seconds, 0.0))
        if stalled:
            self.leases_expired.inc()

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
        self.send_duration = Histogram("mapreduce_shuffle_send_duration_seconds", "seconds to send one partition "
                                       "stream a reducer acknowledged (its last try), from request to answer",
                                       buckets=REQUEST_BUCKETS, registry=registry)
        self.spools: set[DiskBytes] = set()  # the spools of running attempts
        metrics.readings.gauge("mapreduce_mapper_spool_disk_bytes", "bytes running attempts spooled to disk",
                               lambda: sum(spool.disk_bytes for spool in self.spools))


class ReducerMetrics:
    """Streams by outcome and how long each took; the staging budget and the keys held are read at scrape time."""

    def __init__(self, metrics: Metrics, staged: Reading, waits: Reading, keys: Reading, capacity: int) -> None:
        self.streams = Counter("mapreduce_reducer_streams", "partition streams by outcome: committed, duplicate, "
                               "cut (ended before a valid COMMIT), rejected", ["outcome"], registry=metrics.registry)
        self.durations = Histogram("mapreduce_reducer_stream_duration_seconds", "seconds from a partition stream's "
                                   "arrival to its outcome (staging waits included), by outcome", ["outcome"],
                                   buckets=REQUEST_BUCKETS, registry=metrics.registry)
        for outcome in STREAM_OUTCOMES:
            self.streams.labels(outcome)
            self.durations.labels(outcome)
        metrics.readings.gauge("mapreduce_reducer_staging_bytes", "bytes of the staging budget in use", staged)
        metrics.readings.gauge("mapreduce_reducer_staging_capacity_bytes", "bytes of the staging budget "
                               "(MR_STAGE_BUDGET)", lambda: float(capacity))
        metrics.readings.counter("mapreduce_reducer_staging_waits", "streams that waited for staging room", waits)
        metrics.readings.gauge("mapreduce_reducer_keys_held", "keys held for jobs not yet released", keys)

    def stream(self, outcome: str, seconds: float) -> None:
        self.streams.labels(outcome).inc()
        self.durations.labels(outcome).observe(max(seconds, 0.0))
