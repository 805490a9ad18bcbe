"""The local cluster: one master, M mappers and R reducers as separate processes on this machine's loopback."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import secrets
import signal
import sys
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from .core.config import DiscoveryMode, Role, Timeouts
from .core.errors import MapReduceError

PR_SET_PDEATHSIG = 1
EXIT_MARGIN = 2.0  # seconds past MR_TIMEOUT_DRAIN a SIGTERMed actor may take to exit before it is killed


def _die_with_parent() -> None:
    """Linux: a child is killed when its launcher dies, even by SIGKILL, so no actor outlives its cluster."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class ActorProcess:
    """One actor process and what its launcher knows of it."""

    role: Role
    ordinal: int
    env: dict[str, str]
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    url: str = ""
    ready: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    pump: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return f"{self.role}-{self.ordinal}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


class LocalCluster:
    """Start with ``async with LocalCluster(...) as cluster``; every process is stopped on exit."""

    def __init__(
        self,
        mappers: int = 3,
        reducers: int = 2,
        discovery: DiscoveryMode = "mdns",
        host: str = "127.0.0.1",
        master_port: int = 0,
        data_root: str = "",
        log_dir: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        if mappers < 1 or reducers < 1:
            raise MapReduceError("a local cluster needs at least one mapper and one reducer")
        self.mappers = mappers
        self.reducers = reducers
        self.discovery = discovery
        self.host = host
        self.master_port = master_port
        self.data_root = data_root
        self.token = secrets.token_hex(16)
        self.cluster_id = uuid.uuid4().hex[:12]
        self._own_log_dir = tempfile.TemporaryDirectory(prefix="mr-local-") if log_dir is None else None
        self.log_dir = Path(log_dir or self._own_log_dir.name)  # type: ignore[union-attr]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.extra_env = dict(extra_env or {})
        # The launcher waits as long as its actors do: they read the same environment (MR_TIMEOUT_STARTUP, _PEERS,
        # _DRAIN), from this process or from extra_env.
        self.timeouts = Timeouts.from_env({**os.environ, **self.extra_env})
        self.actors: list[ActorProcess] = []

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
            "MR_STATE_DIR": str(self.log_dir / "state"),
            "PYTHONUNBUFFERED": "1",
        })
        env.pop("KUBERNETES_SERVICE_HOST", None)
        env.update(self.extra_env)
        return env

    async def __aenter__(self) -> LocalCluster:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        workers = [ActorProcess("reducer", i, self._env("reducer", i, 0), self.log_dir / f"reducer-{i}.log")
                   for i in range(self.reducers)]
        workers += [ActorProcess("mapper", i, self._env("mapper", i, 0), self.log_dir / f"mapper-{i}.log")
                    for i in range(self.mappers)]
        master = ActorProcess("master", 0, self._env("master", 0, self.master_port), self.log_dir / "master.log")
        self.actors = [*workers, master]
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

    async def _launch(self, actors: list[ActorProcess]) -> None:
        for actor in actors:
            await self._spawn(actor)
        try:
            async with asyncio.timeout(self.timeouts.startup):
                await asyncio.gather(*(a.ready for a in actors))
        except TimeoutError:
            late = [a.name for a in actors if not a.ready.done()]
            raise MapReduceError(f"actors {late} were not ready within {self.timeouts.startup:g} s") from None

    async def _spawn(self, actor: ActorProcess) -> None:
        if actor.ready.done():
            actor.ready = asyncio.get_running_loop().create_future()
        # Logs go straight to the actor's file; only the readiness line comes back, on a pipe of its own, so the
        # launcher does no per-line work however much the actors log.
        read_end, write_end = os.pipe()
        try:
            with open(actor.log_path, "ab") as log_file:
                actor.process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "actors", "serve",
                    env={**actor.env, "MR_READY_FD": str(write_end)}, stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file, stderr=asyncio.subprocess.STDOUT, pass_fds=(write_end,),
                    preexec_fn=_die_with_parent,
                )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        actor.pump = asyncio.get_running_loop().create_task(self._await_ready(actor, read_end),
                                                            name=f"ready-{actor.name}")

    async def _await_ready(self, actor: ActorProcess, read_end: int) -> None:
        """Resolve ``actor.ready`` with the URL the actor announces, or fail it if the actor exits first."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                    os.fdopen(read_end, "rb"))
        try:
            line = await reader.readline()
        finally:
            transport.close()
        if actor.ready.done():
            return
        try:
            actor.url = str(json.loads(line)["url"])
            actor.ready.set_result(actor.url)
        except (ValueError, KeyError, TypeError):
            tail = actor.log_path.read_text(errors="replace")[-2000:] if actor.log_path.exists() else ""
            actor.ready.set_exception(MapReduceError(f"{actor.name} exited before it was ready:\n{tail}"))

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
        """Start a fresh process for an actor that died, under the same name and ordinal (a replaced pod)."""
        actor = self.actor(name)
        await self._reap(actor, self.grace)
        if self.discovery == "static" and actor.url:
            actor.env["MR_PORT"] = actor.url.rsplit(":", 1)[1]  # same address, as a static list expects
        await self._spawn(actor)
        async with asyncio.timeout(self.timeouts.startup):
            await actor.ready

    @property
    def grace(self) -> float:
        """How long an actor may take from SIGTERM to exit: its drain budget plus the margin a process needs to end
        (what a pod's terminationGracePeriodSeconds must also cover)."""
        return self.timeouts.drain + EXIT_MARGIN

    async def _reap(self, actor: ActorProcess, grace: float) -> int | None:
        process = actor.process
        if process is None:
            return None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGCONT)
                process.terminate()
            try:
                async with asyncio.timeout(grace):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if actor.pump is not None:
            await asyncio.gather(actor.pump, return_exceptions=True)
        return process.returncode

    async def stop(self) -> dict[str, int | None]:
        """SIGTERM every actor (the master first, so no new work starts), SIGKILL after the drain time."""
        codes: dict[str, int | None] = {}
        masters = [a for a in self.actors if a.role == "master"]
        for group in (masters, [a for a in self.actors if a.role != "master"]):
            results = await asyncio.gather(*(self._reap(a, self.grace) for a in group))
            codes.update({a.name: code for a, code in zip(group, results, strict=True)})
        if self._own_log_dir is not None:
            self._own_log_dir.cleanup()
            self._own_log_dir = None
        return codes

    def logs(self) -> str:
        """Every actor's log, for a failing test's report."""
        return "\n".join(
            f"--- {a.name}\n{a.log_path.read_text(errors='replace')[-4000:]}"
            for a in self.actors
            if a.log_path.exists()
        )
