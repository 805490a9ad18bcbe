"""Settings: every knob and every timeout, declared once with its variable, default, bounds and meaning."""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import tempfile
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .counters import MAX_COUNTER_NAME, MAX_COUNTERS, CounterLimits
from .envvars import declared, env_name, read_all

Role = Literal["master", "mapper", "reducer"]
DiscoveryMode = Literal["static", "dns", "mdns"]

ROLES: tuple[Role, ...] = typing.get_args(Role)
DISCOVERY_MODES: tuple[DiscoveryMode, ...] = typing.get_args(DiscoveryMode)
MiB = 1024 * 1024
DERIVED = "derived"  # a default computed from other settings; the doc says how


def setting(env: str, default: Any, doc: str, *, low: float | None = None, high: float | None = None,
            count: bool = False) -> Any:
    """Declare one setting: its environment variable, default, bounds and one line for docs/settings.md.

    ``count``: the number counts things, not bytes, so docs/settings.md shows 65536, not 64 KiB.
    """
    return field(default=default, metadata={"env": env, "doc": doc, "low": low, "high": high, "count": count})


def _timeout(default: float, doc: str) -> Any:
    # The variable name is derived from the field name (MR_TIMEOUT_<NAME>), filled in by ``envvars.env_name``.
    return field(default=default, metadata={"env": "", "doc": doc, "low": 0.001, "high": None})


@dataclass(frozen=True)
class Timeouts:
    """Every network wait in seconds; each field is read from ``MR_TIMEOUT_<NAME>``."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Timeouts:
        return cls(**read_all(environ, cls))

    connect: float = _timeout(3.0, "opening a connection to a peer")
    request: float = _timeout(30.0, "one small request/response between actors")
    lease: float = _timeout(30.0, "a mapper silent this long on its assignment loses the split; a task process with "
                            "no progress this long is killed")
    stream_idle: float = _timeout(30.0, "a shuffle stream or input read silent this long is dropped")
    stage_wait: float = _timeout(10.0, "a reducer waits this long for staging budget, then answers 503")
    finalize: float = _timeout(120.0, "a reducer's finalize answer (large totals take a while)")
    discovery: float = _timeout(5.0, "one discovery look-up")
    peers: float = _timeout(15.0, "how long a job waits for enough peers to appear")
    drain: float = _timeout(20.0, "SIGTERM: the whole budget to exit (finish work, then cancel it); keep it below "
                            "terminationGracePeriodSeconds minus the preStop sleep")
    startup: float = _timeout(20.0, "local cluster: an actor process must be ready within this; a new task "
                              "process too")
    recovery: float = _timeout(120.0, "how long a job waits for a lost reducer's ordinal to answer again")
    body_idle: float = _timeout(30.0, "a request body (upload or JSON) silent this long is cut off with 408")
    body: float = _timeout(3600.0, "a request body must arrive whole within this, however steadily it trickles")
    stream: float = _timeout(600.0, "a shuffle stream must reach its COMMIT within this, however steadily it trickles")
    headers: float = _timeout(15.0, "a request's line and headers must arrive whole within this of their first byte "
                              "(or of the connection opening), else 408 and the connection is closed")


@dataclass(frozen=True)
class Settings:
    """One actor's configuration; build it with :meth:`from_env`. Declared once: field metadata drives it all."""

    role: Role = setting("TYPE", "master", "the actor's role: master, mapper or reducer (original TYPE)")
    host: str = setting("MR_HOST", "0.0.0.0", "address to listen on")
    port: int = setting("MR_PORT", 8080, f"port to listen on; {DERIVED}: 8080, MAPPER_PORT or REDUCER_PORT by role",
                        low=0, high=65535)
    name: str = setting("MR_NAME", "", f"pod or process name, e.g. reducer-1; {DERIVED}: HOSTNAME, else the host name")
    ordinal: int = setting("MR_ORDINAL", 0, f"index among the role (a reducer's partition); {DERIVED}: from the name's "
                           "-<n> suffix", low=0)
    advertise_url: str = setting("MR_ADVERTISE_URL", "", f"how peers reach this actor; {DERIVED}: "
                                 "http://<MR_ADVERTISE_HOST, else host or name>:<port>")
    advertise_host: str = setting("MR_ADVERTISE_HOST", "", "host part of the derived advertise URL")
    # discovery
    discovery: DiscoveryMode = setting("MR_DISCOVERY", "static", f"static, dns or mdns; {DERIVED}: dns inside "
                                       "Kubernetes unless MR_REDUCERS is set, else static")
    mapper_urls: tuple[str, ...] = setting("MR_MAPPERS", (), "static discovery: mapper URLs, comma-separated; order "
                                           "is the ordinal")
    reducer_urls: tuple[str, ...] = setting("MR_REDUCERS", (), "static discovery: reducer URLs, comma-separated; "
                                            "order is the ordinal")
    reducer_count: int = setting("MR_REDUCER_COUNT", 0, "how many reducers, so partitions, a job has (the reducer "
                                 f"StatefulSet's replicas); {DERIVED}: the number of MR_REDUCERS", low=0)
    mapper_host: str = setting("MAPPER_HOST", "mapper", "the mappers' headless Service (original MAPPER_HOST)")
    reducer_host: str = setting("REDUCER_HOST", "reducer", "the reducers' headless Service (original REDUCER_HOST)")
    mapper_port: int = setting("MAPPER_PORT", 8081, "mappers' port (original MAPPER_PORT)", low=1, high=65535)
    reducer_port: int = setting("REDUCER_PORT", 8082, "reducers' port (original REDUCER_PORT)", low=1, high=65535)
    namespace: str = setting("MR_NAMESPACE", "default", "Kubernetes namespace of the headless Services")
    cluster_domain: str = setting("MR_CLUSTER_DOMAIN", "", "Kubernetes cluster DNS domain; empty: the svc.<domain> "
                                  "entry of the pod's /etc/resolv.conf search list, else cluster.local")
    port_name: str = setting("MR_PORT_NAME", "http", "the named Service port whose SRV records list the pods")
    dns_nameserver: str = setting("MR_DNS_NAMESERVER", "", "DNS server for dns discovery; empty: the system's")
    dns_port: int = setting("MR_DNS_PORT", 53, "port of MR_DNS_NAMESERVER", low=1, high=65535)
    mdns_cluster: str = setting("MR_MDNS_CLUSTER", "default", "separates local clusters sharing one mDNS segment")
    mdns_interface: str = setting("MR_MDNS_INTERFACE", "127.0.0.1", "interface address mDNS binds to")
    # data and sizes
    data_root: str = setting("MR_DATA_ROOT", "", "shared volume for path inputs; empty: path inputs refused")
    # Its own root, so that a writable place for outputs never widens what path inputs may read (`mapreduce run`
    # with an output outside the inputs' tree sets it to the output's parent).
    output_root: str = setting("MR_OUTPUT_ROOT", "", "directory output paths are confined to; empty: MR_DATA_ROOT")
    spool_dir: str = setting("MR_SPOOL_DIR", "", "uploads and mapper spools; empty: the system temp dir")
    # A multi-step job's records between steps: written by one step's reducers, read by the next step's mappers, so
    # on Kubernetes a volume every mapper, reducer and the master mount (the master removes a job's files).
    work_dir: str = setting("MR_WORK_DIR", "", "shared directory for multi-step jobs' intermediate files; empty: "
                            ".mapreduce-work under the output root, else mapreduce-work under the spool")
    state_dir: str = setting("MR_STATE_DIR", "", "the master's job journal; empty: a restarted master forgets jobs")
    # 128 MiB (Hadoop's default block size) rather than the design's example 16: every split ships each distinct
    # key it saw, so on 200 MB of Zipf text (1 M distinct words) 2 splits ship 1.9 M (key, count) entries where 4
    # ship 3.3 M; measured 25% faster than 64 MiB, which was 15% faster than 16 MiB (scripts/bench.py). A mapper's
    # memory does not grow with it (MR_KEY_BUDGET bounds it); a lost split costs one mapper a few seconds to redo.
    split_size: int = setting("MR_SPLIT_SIZE", 128 * MiB, "default split size in bytes", low=1)
    min_split_size: int = setting("MR_MIN_SPLIT_SIZE", 64 * 1024, "below this per mapper, a job gets fewer splits "
                                  "than mappers", low=1)
    chunk_size: int = setting("MR_CHUNK_SIZE", 4 * MiB, "a mapper maps this many bytes at a time", low=1024)
    key_budget: int = setting("MR_KEY_BUDGET", 1_000_000, "a mapper flushes its combined partial values past this "
                              "many keys (values, for a job without a combiner)", low=1)
    max_body: int = setting("MR_MAX_BODY", 4096 * MiB, "largest upload or text input in bytes", low=1)
    # 16 MiB: parsing a JSON body of 4-byte characters holds up to 10x its size (MR_TEXT_BUDGET); upload bigger texts.
    max_json: int = setting("MR_MAX_JSON", 16 * MiB, "largest JSON request body in bytes", low=1024)
    message_cap: int = setting("MR_MESSAGE_CAP", 1 * MiB, "largest single CBOR message between actors", low=1024)
    # A reducer decodes a frame in one go on its event loop, at up to ~150 ns per byte for the densest scalars
    # (measured with cbor2 on 2 busy cores: 1 MiB of small ints, nulls or empty strings took 55-150 ms; 16 MB took
    # 2.3 s). Lists and maps, which cost more, are bounded per key (2 x MR_FRAME_KEYS). A frame of 16 Ki ordinary
    # words is 165-340 KiB (CJK 200 KiB, inverted index 480 KiB); a key longer than a frame travels as KEYPART pieces.
    frame_cap: int = setting("MR_FRAME_CAP", 1 * MiB, "largest shuffle frame in bytes (bounds one decode on a "
                             "reducer's event loop)", low=1024)
    stage_budget: int = setting("MR_STAGE_BUDGET", 256 * MiB, "bytes a reducer stages at once across streams",
                                low=1024)
    result_cap: int = setting("MR_RESULT_CAP", 1024 * MiB, "largest reducer report a master accepts, in bytes",
                              low=1024)
    max_attempts: int = setting("MR_MAX_ATTEMPTS", 4, "attempts per split before the job fails", low=1)
    mapper_slots: int = setting("MR_MAPPER_SLOTS", 1, "concurrent assignments per mapper", low=1)
    backup_tasks: bool = setting("MR_BACKUP_TASKS", True, "start backup attempts for stragglers")
    backup_after: float = setting("MR_BACKUP_AFTER", 5.0, "an attempt running this long (and 2x the median) may get "
                                  "a backup", low=0.0)
    job_ttl: float = setting("MR_JOB_TTL", 3600.0, "finished jobs' state is dropped after this many seconds", low=1.0)
    # The master's own bounds: one request must not be able to plan, hold or spool without limit.
    max_splits: int = setting("MR_MAX_SPLITS", 65536, "most splits one job may plan (4 TiB at 64 MiB); a bigger "
                              "plan is refused at submit", low=1, count=True)
    split_size_floor: int = setting("MR_SPLIT_SIZE_FLOOR", 4096, "smallest split_size a request may ask for",
                                    low=1)
    max_partitions: int = setting("MR_MAX_PARTITIONS", 1024, "most partitions (part files) one job may ask for "
                                  "with \"partitions\" (default: MR_REDUCER_COUNT); each reducer holds every R-th",
                                  low=1, high=99999, count=True)
    sample_size: int = setting("MR_SAMPLE_SIZE", 10000, "records a total-order job samples from its input before "
                               "its map phase, to pick its key ranges", low=1, count=True)
    sample_places: int = setting("MR_SAMPLE_PLACES", 10, "evenly spread places (byte ranges of the input) a "
                                 "total-order job's sample reads, MR_SAMPLE_SIZE / places records at each",
                                 low=1, count=True)
    max_name: int = setting("MR_MAX_NAME", 255, "longest input name (input.name, ?name=) in UTF-8 bytes", low=1)
    # Bounded well below Python's recursion limit: creating a directory (Path.mkdir) recurses once per level.
    max_output_depth: int = setting("MR_MAX_OUTPUT_DEPTH", 32, "most directory levels an output path may have "
                                    "(out/a/b is 3); a deeper one is refused at submit", low=1, high=200, count=True)
    result_max: int = setting("MR_RESULT_MAX", 32 * MiB, "largest result one job may hold on the master (its "
                              "encoded JSON); a bigger one fails the job", low=1024)
    results_budget: int = setting("MR_RESULTS_BUDGET", 256 * MiB, "bytes of finished results the master holds at "
                                  "once; past it the oldest are dropped (410 Gone)", low=1024)
    upload_budget: int = setting("MR_UPLOAD_BUDGET", 5 * 1024 * MiB, "bytes of uploads the master spools at once; "
                                 "an upload past it gets 507", low=1024)
    # 32 Ki keys decode in about 20 ms (measured: a 1 M-key frame took 0.65 s idle, 2.5 s on busy cores, and
    # cbor2's C decoder holds the GIL, so a thread does not help): a reducer's loop never stalls on one frame.
    frame_keys: int = setting("MR_FRAME_KEYS", 16 * 1024, "most keys in one shuffle DATA frame (mappers cut frames "
                              "there; reducers refuse more before decoding)", low=1, count=True)
    max_key: int = setting("MR_MAX_KEY", 64 * MiB, "longest key (a word) in UTF-8 bytes; a longer one fails the job "
                           "at once", low=1)
    # A user job's record is one whole line (a JSON line may hold spaces anywhere): its mapper reads chunks cut at
    # newlines only, so one line is held whole, up to this.
    max_record: int = setting("MR_MAX_RECORD", 64 * MiB, "longest input line a user job's mapper takes whole (a "
                              "record), in bytes; a longer one fails the job at once", low=1)
    job_modules: tuple[str, ...] = setting("MR_JOB_MODULES", (), "modules of user jobs (MapReduceJob classes), "
                                           "comma-separated, importable on every actor and imported at startup")
    task_workers: int = setting("MR_TASK_WORKERS", 0, "task processes per mapper and reducer that run user jobs' "
                                f"code (never the actor's event loop); {DERIVED}: the cores this actor may use",
                                low=0, count=True)
    task_memory: int = setting("MR_TASK_MEMORY", 4096 * MiB, "address space one task process may use (RLIMIT_AS); "
                               "past it the attempt fails and is retried; 0: no limit", low=0)
    task_batch: int = setting("MR_TASK_BATCH", 64, "lines (or keys, reducing) a task process runs between two "
                              "progress reports, to begin with (a mapper's batches then follow the job's speed: "
                              "doubled while quick, halved while slow); one batch must finish within "
                              "MR_TIMEOUT_LEASE", low=1, count=True)
    native_kernel: bool = setting("MR_NATIVE_KERNEL", True, "mappers count word-count chunks with the native kernel "
                                  "when it is built; false: the pure-Python path (for comparison)")
    reduce_memory: int = setting("MR_REDUCE_MEMORY", 256 * MiB, "bytes of a general job's values (no combiner) a "
                                 "reducer holds per job before spilling a sorted run under MR_SPOOL_DIR", low=1)
    max_counters: int = setting("MR_MAX_COUNTERS", MAX_COUNTERS, "distinct counters (group and name) one job may "
                                "have, summed over its tasks; one more fails the job naming this setting", low=1,
                                high=100_000, count=True)
    max_counter_name: int = setting("MR_MAX_COUNTER_NAME", MAX_COUNTER_NAME, "characters of a counter's group or "
                                    "name; a longer one fails the job naming this setting", low=1, high=65536,
                                    count=True)
    max_inputs: int = setting("MR_MAX_INPUTS", 10000, "most inputs (distinct files after walking directories and "
                              "globs, or URLs) one job may have; more are refused at submit", low=1, count=True)
    # Listing one directory entry costs a few microseconds: 200 k bound one submission's walks to well under a second.
    max_path_scan: int = setting("MR_MAX_PATH_SCAN", 200_000, "most directory entries one submission's directories "
                                 "and globs may examine; more are refused at submit", low=1, count=True)
    max_expansions: int = setting("MR_MAX_EXPANSIONS", 2, "submissions whose directories and globs a master expands "
                                  "at once; beyond, 429", low=1, count=True)
    # A reducer forgets a job once it has reported it; a master that lost the answer and asks again gets the same
    # bytes while they are kept, else every split named missing (it re-maps them: slower, still exact).
    report_grace: float = setting("MR_REPORT_GRACE", 300.0, "seconds a reducer keeps each report it answered, for "
                                  "a master that asks again after losing the answer; 0: none kept", low=0.0)
    report_budget: int = setting("MR_REPORT_BUDGET", 64 * MiB, "bytes of reports a reducer keeps within "
                                 "MR_REPORT_GRACE; past it the oldest go first", low=1024)
    inline_input: int = setting("MR_INLINE_INPUT", 64 * 1024, "a text input the master holds of at most this many "
                                "bytes travels inside each assignment, saving the mapper a request back for it; "
                                "0: never", low=0, high=512 * 1024)
    # Every task attempt copies the side files into its working directory and hashes the copy (the pin check).
    max_side_files: int = setting("MR_MAX_SIDE_FILES", 64 * MiB, "most bytes of side files one job may declare (all "
                                  "of them; each task attempt copies them); more are refused at submit", low=0)
    max_raw_input: int = setting("MR_MAX_RAW_INPUT", 1024 * MiB, "largest input (upload, text, URL or s3 object) a "
                                 "whole-file mapper (mapper_raw) copies to its spool to read; bigger is refused at "
                                 "submit, or fails the job if its size was unknown (path inputs are read in place)",
                                 low=1)
    # security
    token: str = setting("MR_TOKEN", "", "shared token actors require from each other; empty: no check")
    api_token: str = setting("MR_API_TOKEN", "", "optional token for the public API")
    allowed_hosts: tuple[str, ...] = setting("MR_ALLOWED_HOSTS", (), "more Host names the public API and page answer "
                                             "(comma-separated; .example.com: any name under it; *: any) besides "
                                             "IP addresses, localhost, dotless names, the actor's own names and "
                                             "Kubernetes Service names; others get 421 (DNS rebinding)")
    allow_private_urls: bool = setting("MR_ALLOW_PRIVATE_URLS", False, "allow URL inputs on loopback, private and "
                                       "link-local addresses")
    # object storage (the s3 extra); credentials are never settings: the library reads AWS_ACCESS_KEY_ID,
    # AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION and web identity (IRSA) from the environment itself
    s3_endpoint: str = setting("AWS_ENDPOINT_URL", "", "the S3-compatible endpoint for s3:// inputs and outputs "
                               "(MinIO, Ceph RGW, a local server); trusted configuration, exempt from the URL "
                               "address policy; empty: AWS itself, by region")
    s3_read_part: int = setting("MR_S3_READ_PART", 8 * MiB, "bytes of each ranged GET a mapper makes of an s3:// "
                                "object", low=64 * 1024, high=256 * MiB)
    s3_read_ahead: int = setting("MR_S3_READ_AHEAD", 4, "ranged GETs a mapper keeps in flight ahead of what it "
                                 "maps, per split (memory: this many times MR_S3_READ_PART)", low=1, high=64,
                                 count=True)
    max_running_jobs: int = setting("MR_MAX_RUNNING_JOBS", 16, "jobs a master runs at once; more wait in its queue",
                                    low=1)
    max_queued_jobs: int = setting("MR_MAX_QUEUED_JOBS", 256, "jobs waiting to run; beyond, submissions get 429 "
                                   "(/compute has its own queue of this size, served first)", low=0)
    max_uploads: int = setting("MR_MAX_UPLOADS", 16, "uploads (and JSON bodies over 64 KiB) a master receives at "
                                "once; beyond, 429", low=1)
    max_line: int = setting("MR_MAX_LINE", 8190, "longest request line (so URL) or header field in bytes; longer "
                            "gets 414 or 431", low=1024, high=1 * MiB)
    log_level: str = setting("MR_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR")
    job_log_lines: int = setting("MR_JOB_LOG_LINES", 1000, "log lines an actor keeps per job for `mapreduce logs` "
                                 "(GET /v1/jobs/{id}/logs); past it the oldest go", low=1, count=True)
    job_log_jobs: int = setting("MR_JOB_LOG_JOBS", 100, "jobs whose log lines an actor keeps; past it the least "
                                "recently logged job's go", low=1, count=True)
    job_log_bytes: int = setting("MR_JOB_LOG_BYTES", 16 * MiB, "bytes of job log lines an actor keeps in all; past "
                                 "it the oldest lines of the least recently logged job go", low=64 * 1024)
    job_log_text: int = setting("MR_JOB_LOG_TEXT", 8192, "characters of one text in a job log line (a traceback, "
                                "an error); a longer one keeps its head and tail", low=256, high=64 * 1024,
                                count=True)
    job_log_poll: float = setting("MR_JOB_LOG_POLL", 1.0, "seconds between gathers of a followed job's logs "
                                  "(?follow=1) while it runs", low=0.05)
    ready_fd: int = setting("MR_READY_FD", -1, "set by a launcher: write one line here once serving", low=-1)
    restarts: int = setting("MR_RESTARTS", 0, "set by a launcher: how many times it has restarted this actor (the "
                            "status page shows it)", low=0)
    send_attempts: int = setting("MR_SEND_ATTEMPTS", 6, "tries a mapper gives a reducer that answers a stream with "
                                 "an error (one that is down is waited for, up to MR_TIMEOUT_RECOVERY)", low=1,
                                 count=True)
    straggler_check: float = setting("MR_STRAGGLER_CHECK", 1.0, "idle mapper slots look for stragglers to back up "
                                     "at least this often, in s (more often when MR_BACKUP_AFTER is short)", low=0.01)
    max_wait: float = setting("MR_MAX_WAIT", 600.0, "longest long-poll (s) a client may ask for with ?wait=; longer "
                              "asks are cut to it", low=0.0)
    text_budget: int = setting("MR_TEXT_BUDGET", 256 * MiB, "bytes of memory the master gives text inputs and the "
                               "JSON bodies being read and parsed (4-10x their size); past it 429, or 413", low=1024)
    min_body_rate: int = setting("MR_MIN_BODY_RATE", 1024, "a request body slower than this many bytes/s on average "
                                 "(after MR_TIMEOUT_BODY_IDLE) is cut off with 408; 0: no minimum", low=0)
    timeouts: Timeouts = field(default_factory=Timeouts)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from ``environ`` (default ``os.environ``); the only place that does."""
        env = os.environ if environ is None else environ
        values = read_all(env, cls)
        role = values.get("role", "master")
        name = values.get("name") or env.get("HOSTNAME") or socket.gethostname()
        values["name"] = name
        mapper_port = values.get("mapper_port", 8081)
        reducer_port = values.get("reducer_port", 8082)
        values.setdefault("port", {"master": 8080, "mapper": mapper_port, "reducer": reducer_port}[role])
        values.setdefault("ordinal", _ordinal_of(name))
        if "discovery" not in values:
            in_cluster = "KUBERNETES_SERVICE_HOST" in env
            values["discovery"] = "dns" if in_cluster and not values.get("reducer_urls") else "static"
        values.setdefault("reducer_count", len(values.get("reducer_urls", ())))
        host = values.get("host", "0.0.0.0")
        advertise_host = values.get("advertise_host") or (host if host not in ("0.0.0.0", "::") else name)
        if ":" in advertise_host and not advertise_host.startswith("["):
            advertise_host = f"[{advertise_host}]"  # an IPv6 pod IP (status.podIP) goes in brackets in a URL
        values["advertise_url"] = (values.get("advertise_url", "").rstrip("/")
                                   or f"http://{advertise_host}:{values['port']}")
        if "log_level" in values:
            values["log_level"] = values["log_level"].upper()
        values["timeouts"] = Timeouts.from_env(env)
        return cls(**values)

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    # Retry pauses are policies, not settings: each loop is bounded by a timeout or an attempt cap that is a
    # setting (MR_TIMEOUT_RECOVERY, MR_TIMEOUT_PEERS, MR_SEND_ATTEMPTS, MR_MAX_ATTEMPTS); the pauses only keep a
    # waiting caller from spinning, and short first pauses keep a quick recovery quick.

    @property
    def output_base(self) -> str:
        """The root output directories are confined to: MR_OUTPUT_ROOT, else the data root."""
        return self.output_root or self.data_root

    @property
    def work_root(self) -> str:
        """Where intermediate files live: MR_WORK_DIR, else under the output root, else under the spool (or the
        system temp dir: one machine only)."""
        if self.work_dir:
            return self.work_dir
        if self.output_base:
            return os.path.join(self.output_base, ".mapreduce-work")
        return os.path.join(self.spool_dir or tempfile.gettempdir(), "mapreduce-work")

    @property
    def task_pool(self) -> int:
        """Task processes per actor: MR_TASK_WORKERS, else the cores this process may run on (at least 1)."""
        if self.task_workers:
            return self.task_workers
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, cores or 1)

    @property
    def counter_limits(self) -> CounterLimits:
        return CounterLimits(self.max_counters, self.max_counter_name)

    @property
    def peer_backoff(self) -> Backoff:
        """Between retries of a peer call (finalize, a reducer coming back)."""
        return Backoff(0.05, 2.0)

    @property
    def discovery_backoff(self) -> Backoff:
        """Between discovery look-ups while peers that are not visible yet are waited for."""
        return Backoff(0.05, 1.0)

    @property
    def send_backoff(self) -> Backoff:
        """Between a mapper's sends of one partition to a reducer that answered with an error."""
        return Backoff(0.05, 1.0)

    @property
    def mapper_backoff(self) -> Backoff:
        """Before a mapper that stalled or crashed on a split gets another."""
        return Backoff(0.05, 2.0)


@dataclass(frozen=True)
class Backoff:
    """Pauses between the tries of one retry loop: ``first``, doubled per try up to ``most``, then jittered."""

    first: float
    most: float

    def pause(self, tries: int, jitter: float = 1.0) -> float:
        """The pause after ``tries`` failed tries (1 or more); ``jitter`` in [0.5, 1.5) spreads retrying callers."""
        return min(self.most, self.first * 2.0 ** min(max(tries, 1) - 1, 30)) * jitter


def _ordinal_of(name: str) -> int:
    """StatefulSet pods are named ``<set>-<ordinal>``; anything else is ordinal 0."""
    match = re.search(r"-(\d+)$", name)
    return int(match.group(1)) if match else 0


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value) or "(empty)"
    if isinstance(value, int) and value >= MiB and value % MiB == 0:
        return f"{value // MiB} MiB"
    if isinstance(value, int) and value >= 1024 and value % 1024 == 0:
        return f"{value // 1024} KiB"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if value != "" else "(empty)"


def settings_table() -> str:
    """docs/settings.md's table, generated from the declarations (tests/test_config.py keeps the page equal to it)."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for cls in (Settings, Timeouts):
        for f in declared(cls):
            unit = " s" if cls is Timeouts else ""
            shown = str(f.default) if f.metadata.get("count") else _shown(f.default)
            rows.append(f"| `{env_name(f)}` | {shown}{unit} | {f.metadata['doc']} |")
    return "\n".join(rows)
