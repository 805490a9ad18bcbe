"""The local cluster: one master, M mappers and R reducers as separate processes on this machine's loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from .core.config import DiscoveryMode, Role, Settings, Timeouts
from .core.errors import ConfigError, MapReduceError
from .localproc import EXIT_MARGIN, ActorProcess, kill_group, reap, spawn
from .supervise import RestartPolicy, Supervised, Supervisor


def _worth_logs(error: BaseException) -> bool:
    """Whether the actors' logs may explain ``error``: not for a setting to fix, which names its fix itself, nor for
    an interrupt (Ctrl-C: the user stopped it, nothing went wrong)."""
    return not isinstance(error, (ConfigError, asyncio.CancelledError, KeyboardInterrupt))


def _stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class LocalCluster:
    """Start with ``async with LocalCluster(...) as cluster``; every process is stopped on exit.

    While it runs, an actor process that exits on its own is restarted under ``restarts`` (a :class:`RestartPolicy`;
    None: never, as the fault drills want) and ``announce`` is told so, one line each (default: stderr). A log
    directory of its own (``log_dir`` None) is removed on a clean exit and kept, and announced, when an actor exited
    on its own or the block ends with an error (but a ConfigError: a setting to fix names the fix itself).
    ``on_broken`` is called once when an actor the cluster cannot work without (the master, any reducer, the last
    mapper) is given up."""

    def __init__(
        self,
        mappers: int = 3,
        reducers: int = 2,
        discovery: DiscoveryMode = "mdns",
        host: str = "127.0.0.1",
        master_port: int = 0,
        data_root: str = "",
        output_root: str = "",
        log_dir: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        restarts: RestartPolicy | None = RestartPolicy(),  # noqa: B008 (frozen: one shared default is safe)
        announce: Callable[[str], None] = _stderr_line,
        on_broken: Callable[[], None] | None = None,
    ) -> None:
        if mappers < 1 or reducers < 1:
            raise MapReduceError("a local cluster needs at least one mapper and one reducer")
        self.mappers = mappers
        self.reducers = reducers
        self.discovery = discovery
        self.host = host
        self.master_port = master_port
        self.data_root = data_root
        self.output_root = output_root
        self.token = secrets.token_hex(16)
        self.cluster_id = uuid.uuid4().hex[:12]
        # mkdtemp, not TemporaryDirectory: a kept directory must outlive this process (no finalizer removes it).
        self._own_log_dir = log_dir is None
        self.log_dir = Path(log_dir if log_dir is not None else tempfile.mkdtemp(prefix="mr-local-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.extra_env = dict(extra_env or {})
        # Spools (uploads, mapper and reducer spill files) go under the cluster's own directory unless the user
        # placed them: an actor killed mid-job cannot remove its own, and stop() removes this one.
        self._spool = None if "MR_SPOOL_DIR" in {**os.environ, **self.extra_env} else self.log_dir / "spool"
        # Multi-step jobs' intermediate files: a directory every actor shares, the cluster's own unless given.
        self._work = None if "MR_WORK_DIR" in {**os.environ, **self.extra_env} else self.log_dir / "work"
        # The launcher waits as long as its actors do: they read the same environment (MR_TIMEOUT_STARTUP, _PEERS,
        # _DRAIN), from this process or from extra_env.
        self.timeouts = Timeouts.from_env({**os.environ, **self.extra_env})
        self.actors: list[ActorProcess] = []
        self.restart_policy = restarts
        self.announce = announce
        self.on_broken = on_broken
        self.given_up: list[str] = []
        self._supervision: asyncio.Task[None] | None = None
        self._stop_by: float | None = None  # set by hurry(): the loop time every actor must be gone by

    @property
    def master(self) -> ActorProcess:
        return next(a for a in self.actors if a.role == "master")

    @property
    def master_url(self) -> str:
        return self.master.url

    @property
    def api_headers(self) -> dict[str, str]:
        """What a client of this cluster's public API sends: the API token the master was started with, if any
        (``MR_API_TOKEN``, inherited from this process's environment or set in ``extra_env``)."""
        token = self.master.env.get("MR_API_TOKEN", "")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def actor(self, name: str) -> ActorProcess:
        return next(a for a in self.actors if a.name == name)

    def _env(self, role: Role, ordinal: int, port: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "TYPE": role,
            "MR_NAME": f"{role}-{ordinal}",
            "MR_ORDINAL": str(ordinal),
            "MR_HOST": self.host,
            "MR_PORT": str(port),
            "MR_ADVERTISE_HOST": self.host,
            "MR_TOKEN": self.token,
            "MR_DISCOVERY": self.discovery,
            "MR_MDNS_CLUSTER": self.cluster_id,
            "MR_REDUCER_COUNT": str(self.reducers),
            "MR_DATA_ROOT": self.data_root,
            "MR_OUTPUT_ROOT": self.output_root,  # never inherited: "" confines outputs to the data root
            "MR_STATE_DIR": str(self.log_dir / "state"),
            **({"MR_SPOOL_DIR": str(self._spool)} if self._spool is not None else {}),
            **({"MR_WORK_DIR": str(self._work)} if self._work is not None else {}),
            "PYTHONUNBUFFERED": "1",
        })
        env.pop("KUBERNETES_SERVICE_HOST", None)
        env.update(self.extra_env)
        return env

    async def __aenter__(self) -> LocalCluster:
        try:
            await self.start()
        except BaseException as error:
            await self.stop(keep_logs=_worth_logs(error))
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop(keep_logs=error is not None and _worth_logs(error))

    async def start(self) -> None:
        if self._spool is not None:
            self._spool.mkdir(exist_ok=True)
        if self._work is not None:
            self._work.mkdir(exist_ok=True)
        workers = [ActorProcess("reducer", i, self._env("reducer", i, 0), self.log_dir / f"reducer-{i}.log")
                   for i in range(self.reducers)]
        workers += [ActorProcess("mapper", i, self._env("mapper", i, 0), self.log_dir / f"mapper-{i}.log")
                    for i in range(self.mappers)]
        master = ActorProcess("master", 0, self._env("master", 0, self.master_port), self.log_dir / "master.log")
        self.actors = [*workers, master]
        for actor in self.actors:
            Settings.from_env(actor.env)  # a malformed setting is one ConfigError here, before any process starts
        if self.discovery == "static":
            # A static list must name its peers before they start: reducers, then mappers, then the master.
            reducers = [a for a in workers if a.role == "reducer"]
            mappers = [a for a in workers if a.role == "mapper"]
            await self._launch(reducers)
            self.extra_env["MR_REDUCERS"] = ",".join(a.url for a in reducers)
            for actor in [*mappers, master]:
                actor.env.update(self.extra_env)
            await self._launch(mappers)
            self.extra_env["MR_MAPPERS"] = ",".join(a.url for a in mappers)
            master.env.update(self.extra_env)
            await self._launch([master])
        else:
            await self._launch([*workers, master])
        await self.wait_for_peers()
        if self.restart_policy is not None:
            supervisor = Supervisor(self.restart_policy, self._respawn, self.announce, self._given_up,
                                    self.timeouts.startup)
            self._supervision = asyncio.get_running_loop().create_task(supervisor.run(self.actors),
                                                                       name="local-supervisor")

    async def _launch(self, actors: list[ActorProcess]) -> None:
        for actor in actors:
            await spawn(actor)
        try:
            async with asyncio.timeout(self.timeouts.startup):
                await asyncio.gather(*(a.ready for a in actors))
        except TimeoutError:
            late = [a.name for a in actors if not a.ready.done()]
            raise MapReduceError(f"actors {late} were not ready within {self.timeouts.startup:g} s") from None

    async def wait_for_peers(self) -> None:
        """Ready means the master's /readyz says so, and it sees every mapper (mDNS needs a moment to announce)."""
        await self.wait_master_ready()
        query = {"wait_mappers": str(self.mappers), "wait_reducers": str(self.reducers)}
        seen = await self.get_json("/v1/cluster", params=query, timeout=self.timeouts.peers + 5)
        if len(seen["mappers"]) < self.mappers or len(seen["reducers"]) < self.reducers:
            raise MapReduceError(f"the master sees only {seen}")

    async def wait_master_ready(self) -> None:
        """Poll the master's /readyz (what a readiness probe sees) until 200, bounded by the peers timeout."""
        timeout = self.timeouts.peers + 5
        pause, last = 0.02, "no answer"
        try:
            async with asyncio.timeout(timeout), aiohttp.ClientSession() as session:
                while True:
                    with contextlib.suppress(aiohttp.ClientError):
                        async with session.get(self.master_url + "/readyz") as response:
                            if response.status == 200:
                                return
                            last = await response.text()
                    await asyncio.sleep(pause)  # backoff between probes of another process's state
                    pause = min(pause * 2, 0.5)
        except TimeoutError:
            raise MapReduceError(f"the master was not ready within {timeout:g} s: {last}") from None

    async def get_json(self, path: str, params: Mapping[str, str] | None = None, timeout: float = 30.0) -> Any:
        async with aiohttp.ClientSession(headers=self.api_headers) as session, session.get(
            self.master_url + path, params=params, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            body = await response.json()
            if response.status >= 400:
                raise MapReduceError(f"{path}: {response.status} {body}")
            return body

    def signal(self, name: str, signum: int) -> None:
        """Send a real signal to one actor (fault tests: SIGKILL, SIGSTOP, SIGCONT, SIGTERM)."""
        actor = self.actor(name)
        assert actor.process is not None
        actor.process.send_signal(signum)

    async def restart(self, name: str) -> None:
        """Start a fresh process for an actor that died, under the same name and ordinal (a replaced pod); if the
        supervisor has already replaced the process this call found, wait for that one instead."""
        actor = self.actor(name)
        found = actor.process
        async with actor.lock:
            if actor.process is found:
                await self._respawn(actor)
            async with asyncio.timeout(self.timeouts.startup):
                await actor.ready

    async def _respawn(self, actor: Supervised) -> None:
        """A fresh process for ``actor`` (the old one has exited), counted in its MR_RESTARTS."""
        assert isinstance(actor, ActorProcess)
        await reap(actor, self.grace)  # already exited; this collects its readiness reader
        if actor.url and (self.discovery == "static" or actor.role == "master"):
            # Same address: a static list names it, and the master's URL is what clients and peers hold.
            actor.env["MR_PORT"] = actor.url.rsplit(":", 1)[1]
        actor.restarts += 1
        actor.env["MR_RESTARTS"] = str(actor.restarts)
        await spawn(actor)

    def _given_up(self, name: str) -> None:
        self.given_up.append(name)
        if self.broken() and self.on_broken is not None:
            self.on_broken()

    def broken(self) -> str:
        """Why the cluster cannot run jobs any more ("" while it can): an actor it needs was given up."""
        lost = [a for a in self.actors if a.name in self.given_up]
        mappers = [a for a in self.actors if a.role == "mapper"]
        needed = [a.name for a in lost if a.role != "mapper"]
        if not needed and mappers and all(a in lost for a in mappers):
            needed = [a.name for a in mappers]
        return f"{', '.join(needed)} kept exiting and {'was' if len(needed) == 1 else 'were'} given up" if needed \
            else ""

    def check(self) -> None:
        """Raise MapReduceError if the cluster is broken (see :meth:`broken`)."""
        if reason := self.broken():
            raise MapReduceError(f"the local cluster cannot go on: {reason}")

    @property
    def grace(self) -> float:
        """How long an actor may take from SIGTERM to exit: its drain budget plus the margin a process needs to end
        (what a pod's terminationGracePeriodSeconds must also cover)."""
        return self.timeouts.drain + EXIT_MARGIN

    def hurry(self, budget: float) -> None:
        """Be gone within ``budget`` seconds from now (an interrupted launcher): the stop under way, or the next
        one, SIGTERMs every actor at once and SIGKILLs what is still alive when the budget is spent."""
        self._stop_by = asyncio.get_running_loop().time() + budget

    def kill(self) -> None:
        """SIGKILL every actor and whatever it started, now (a second Ctrl-C); safe from a signal handler. The stop
        under way, if any, then finds them gone."""
        for actor in self.actors:
            kill_group(actor)

    async def stop(self, keep_logs: bool = False) -> dict[str, int | None]:
        """SIGTERM every actor (the master first, so no new work starts), SIGKILL after the drain time. A log
        directory of the cluster's own is removed unless an actor ran and ``keep_logs`` or an actor exited on its
        own."""
        failure: BaseException | None = None
        if self._supervision is not None:
            # First, so the exits the SIGTERMs below cause are not taken for crashes.
            supervision, self._supervision = self._supervision, None
            supervision.cancel()
            await asyncio.wait([supervision])
            failure = None if supervision.cancelled() else supervision.exception()
        codes: dict[str, int | None] = {}
        masters = [a for a in self.actors if a.role == "master"]
        # Hurried: every actor at once, under what is left of the budget; else the master first, so no new work
        # starts, each with its whole drain time.
        groups = [self.actors] if self._stop_by is not None else [masters, [a for a in self.actors
                                                                              if a.role != "master"]]
        for group in groups:
            results = await asyncio.gather(*(reap(a, self._grace_now()) for a in group))
            codes.update({a.name: code for a, code in zip(group, results, strict=True)})
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)  # every actor is gone: what is left there is litter
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
        if self._own_log_dir:
            self._own_log_dir = False
            started = any(a.process is not None for a in self.actors)
            if started and (keep_logs or self.given_up or any(a.restarts for a in self.actors)):
                self.announce(f"mapreduce: the actors' logs are kept in {self.log_dir}")
            else:
                shutil.rmtree(self.log_dir, ignore_errors=True)
        if failure is not None:
            raise failure  # a fault of the supervisor itself, raised once every process is gone
        return codes

    def _grace_now(self) -> float:
        if self._stop_by is None:
            return self.grace
        return max(0.0, self._stop_by - asyncio.get_running_loop().time())

    def logs(self) -> str:
        """Every actor's log, for a failing test's report."""
        return "\n".join(
            f"--- {a.name}\n{a.log_path.read_text(errors='replace')[-4000:]}"
            for a in self.actors
            if a.log_path.exists()
        )
