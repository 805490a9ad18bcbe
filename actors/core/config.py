"""Settings: every knob and every timeout, read once from the environment into a frozen object."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

from .errors import ConfigError

Role = Literal["master", "mapper", "reducer"]
DiscoveryMode = Literal["static", "dns", "mdns"]

ROLES: tuple[Role, ...] = ("master", "mapper", "reducer")
DISCOVERY_MODES: tuple[DiscoveryMode, ...] = ("static", "dns", "mdns")
MiB = 1024 * 1024


@dataclass(frozen=True)
class Timeouts:
    """Every network wait in seconds; each field is read from ``MR_TIMEOUT_<NAME>``."""

    connect: float = 3.0  # opening a connection to a peer
    request: float = 30.0  # one small request/response between actors
    lease: float = 30.0  # a mapper silent this long on its assignment loses the split
    stream_idle: float = 30.0  # a shuffle stream or input read silent this long is dropped
    stage_wait: float = 10.0  # a reducer waits this long for staging budget, then answers 503
    finalize: float = 120.0  # a reducer's finalize answer (large totals take a while)
    discovery: float = 5.0  # one discovery look-up
    peers: float = 15.0  # how long a job waits for enough peers to appear
    drain: float = 20.0  # SIGTERM: time to finish in-flight work
    startup: float = 20.0  # local cluster: an actor process must be ready within this
    retry_deadline: float = 60.0  # total time one narrow retry loop may take
    recovery: float = 120.0  # how long a job waits for a lost reducer's ordinal to answer again


@dataclass(frozen=True)
class Settings:
    """One actor's configuration; build it with :meth:`from_env`."""

    role: Role = "master"
    host: str = "0.0.0.0"
    port: int = 8080
    name: str = ""  # pod or process name, e.g. "reducer-1"
    ordinal: int = 0  # this actor's index among its role (the reducer's partition)
    advertise_url: str = ""  # how peers reach this actor; master puts it in input references
    # discovery
    discovery: DiscoveryMode = "static"
    mapper_urls: tuple[str, ...] = ()
    reducer_urls: tuple[str, ...] = ()
    mapper_host: str = "mapper"  # the mappers' headless Service (original MAPPER_HOST)
    reducer_host: str = "reducer"  # the reducers' headless Service (original REDUCER_HOST)
    mapper_port: int = 8081
    reducer_port: int = 8082
    namespace: str = "default"
    cluster_domain: str = "cluster.local"
    port_name: str = "http"  # the named Service port whose SRV records list the pods
    dns_nameserver: str = ""  # empty: the system resolver's
    dns_port: int = 53
    mdns_cluster: str = "default"  # separates local clusters sharing one mDNS segment
    mdns_interface: str = "127.0.0.1"
    # data and sizes
    data_root: str = ""  # shared volume for {"path": ...} inputs; empty: path inputs refused
    spool_dir: str = ""  # uploads and mapper spools; empty: the system temp dir
    state_dir: str = ""  # the master's job journal; empty: a restarted master forgets its jobs silently
    # 64 MiB rather than the design's example 16: on 200 MB of Zipf text it ships 2x fewer (key, count) entries and
    # is 15% faster (measured, scripts/bench.py); a lost split costs a few seconds of one mapper to redo.
    split_size: int = 64 * MiB
    min_split_size: int = 64 * 1024  # below this per mapper, a job gets fewer splits than mappers
    chunk_size: int = 4 * MiB  # a mapper maps this many bytes at a time
    key_budget: int = 1_000_000  # a mapper flushes its combined partial values past this many keys
    max_body: int = 4096 * MiB  # largest upload or text input
    max_json: int = 64 * MiB  # largest JSON request body
    message_cap: int = 1 * MiB  # largest single CBOR message (assignments, finalize)
    frame_cap: int = 16 * MiB  # largest shuffle frame
    stage_budget: int = 256 * MiB  # bytes a reducer stages at once across streams
    result_cap: int = 1024 * MiB  # largest reducer report a master accepts
    max_attempts: int = 4
    mapper_slots: int = 1  # concurrent assignments per mapper
    backup_tasks: bool = True
    backup_after: float = 5.0  # an attempt running this long (and 2x the median) may get a backup
    job_ttl: float = 3600.0  # finished jobs' state is dropped after this
    # security
    token: str = ""  # shared token actors require from each other; empty: no check
    api_token: str = ""  # optional token for the public API
    allow_private_urls: bool = False
    log_level: str = "INFO"
    ready_fd: int = -1  # set by a launcher: write one line here once serving
    timeouts: Timeouts = field(default_factory=Timeouts)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from ``environ`` (default ``os.environ``); the only place that does."""
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        role = cast(Role, reader.choice("TYPE", ROLES, "master"))
        name = env.get("MR_NAME") or env.get("HOSTNAME") or socket.gethostname()
        mapper_port = reader.integer("MAPPER_PORT", 8081, low=1, high=65535)
        reducer_port = reader.integer("REDUCER_PORT", 8082, low=1, high=65535)
        default_port = {"master": 8080, "mapper": mapper_port, "reducer": reducer_port}[role]
        port = reader.integer("MR_PORT", default_port, low=0, high=65535)
        host = env.get("MR_HOST", "0.0.0.0")
        in_cluster = "KUBERNETES_SERVICE_HOST" in env
        mapper_urls = reader.urls("MR_MAPPERS")
        reducer_urls = reader.urls("MR_REDUCERS")
        default_discovery: DiscoveryMode = "dns" if in_cluster and not reducer_urls else "static"
        advertise_host = env.get("MR_ADVERTISE_HOST") or (host if host not in ("0.0.0.0", "::") else name)
        timeouts = Timeouts(
            **{
                f.name: reader.number(f"MR_TIMEOUT_{f.name.upper()}", getattr(Timeouts(), f.name), low=0.001)
                for f in dataclasses.fields(Timeouts)
            }
        )
        return cls(
            role=role,
            host=host,
            port=port,
            name=name,
            ordinal=reader.integer("MR_ORDINAL", _ordinal_of(name), low=0),
            advertise_url=env.get("MR_ADVERTISE_URL", "").rstrip("/") or f"http://{advertise_host}:{port}",
            discovery=cast(DiscoveryMode, reader.choice("MR_DISCOVERY", DISCOVERY_MODES, default_discovery)),
            mapper_urls=mapper_urls,
            reducer_urls=reducer_urls,
            mapper_host=env.get("MAPPER_HOST", "mapper"),
            reducer_host=env.get("REDUCER_HOST", "reducer"),
            mapper_port=mapper_port,
            reducer_port=reducer_port,
            namespace=env.get("MR_NAMESPACE", "default"),
            cluster_domain=env.get("MR_CLUSTER_DOMAIN", "cluster.local"),
            port_name=env.get("MR_PORT_NAME", "http"),
            dns_nameserver=env.get("MR_DNS_NAMESERVER", ""),
            dns_port=reader.integer("MR_DNS_PORT", 53, low=1, high=65535),
            mdns_cluster=env.get("MR_MDNS_CLUSTER", "default"),
            mdns_interface=env.get("MR_MDNS_INTERFACE", "127.0.0.1"),
            data_root=env.get("MR_DATA_ROOT", ""),
            spool_dir=env.get("MR_SPOOL_DIR", ""),
            state_dir=env.get("MR_STATE_DIR", ""),
            split_size=reader.integer("MR_SPLIT_SIZE", 64 * MiB, low=1),
            min_split_size=reader.integer("MR_MIN_SPLIT_SIZE", 64 * 1024, low=1),
            chunk_size=reader.integer("MR_CHUNK_SIZE", 4 * MiB, low=1024),
            key_budget=reader.integer("MR_KEY_BUDGET", 1_000_000, low=1),
            max_body=reader.integer("MR_MAX_BODY", 4096 * MiB, low=1),
            max_json=reader.integer("MR_MAX_JSON", 64 * MiB, low=1024),
            message_cap=reader.integer("MR_MESSAGE_CAP", 1 * MiB, low=1024),
            frame_cap=reader.integer("MR_FRAME_CAP", 16 * MiB, low=1024),
            stage_budget=reader.integer("MR_STAGE_BUDGET", 256 * MiB, low=1024),
            result_cap=reader.integer("MR_RESULT_CAP", 1024 * MiB, low=1024),
            max_attempts=reader.integer("MR_MAX_ATTEMPTS", 4, low=1),
            mapper_slots=reader.integer("MR_MAPPER_SLOTS", 1, low=1),
            backup_tasks=reader.boolean("MR_BACKUP_TASKS", True),
            backup_after=reader.number("MR_BACKUP_AFTER", 5.0, low=0.0),
            job_ttl=reader.number("MR_JOB_TTL", 3600.0, low=1.0),
            token=env.get("MR_TOKEN", ""),
            api_token=env.get("MR_API_TOKEN", ""),
            allow_private_urls=reader.boolean("MR_ALLOW_PRIVATE_URLS", False),
            log_level=env.get("MR_LOG_LEVEL", "INFO").upper(),
            ready_fd=reader.integer("MR_READY_FD", -1, low=-1),
            timeouts=timeouts,
        )

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _ordinal_of(name: str) -> int:
    """StatefulSet pods are named ``<set>-<ordinal>``; anything else is ordinal 0."""
    match = re.search(r"-(\d+)$", name)
    return int(match.group(1)) if match else 0


class _Reader:
    """Typed reads of environment variables with errors that name the variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def integer(self, key: str, default: int, low: int | None = None, high: int | None = None) -> int:
        raw = self.env.get(key)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{key}={raw!r} is not an integer") from None
        self._bounds(key, value, low, high)
        return value

    def number(self, key: str, default: float, low: float | None = None) -> float:
        raw = self.env.get(key)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{key}={raw!r} is not a number") from None
        if not math.isfinite(value):
            raise ConfigError(f"{key}={raw!r} is not a finite number")
        self._bounds(key, value, low, None)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        raw = self.env.get(key, "").strip().lower()
        if raw == "":
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}={raw!r} is not a boolean (use true or false)")

    def choice(self, key: str, options: tuple[str, ...], default: str) -> str:
        raw = self.env.get(key, "").strip().lower() or default
        if raw not in options:
            raise ConfigError(f"{key}={raw!r} must be one of {', '.join(options)}")
        return raw

    def urls(self, key: str) -> tuple[str, ...]:
        raw = self.env.get(key, "")
        urls = tuple(u.strip().rstrip("/") for u in raw.split(",") if u.strip())
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"{key}: {url!r} is not an http(s) URL")
        return urls

    @staticmethod
    def _bounds(key: str, value: float, low: float | None, high: float | None) -> None:
        if low is not None and value < low:
            raise ConfigError(f"{key}={value} is below its minimum {low}")
        if high is not None and value > high:
            raise ConfigError(f"{key}={value} is above its maximum {high}")

