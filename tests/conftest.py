"""Shared fixtures: real actors on loopback (one event loop, one real server each) and leak checks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from actors.core.config import Settings, Timeouts
from actors.net.actor import make_runner
from actors.net.protocol import ActorRunner
from actors.serve import bind, build_app

from .heldinput import HeldInput
from .support import serve_app

TOKEN = "test-token"
FAST = Timeouts(connect=2.0, request=20.0, lease=5.0, stream_idle=5.0, stage_wait=2.0, finalize=20.0,
                discovery=2.0, peers=3.0, drain=2.0, startup=20.0)


@dataclass
class Actor:
    """One running actor: its app, its runner and the URL peers use."""

    settings: Settings
    app: web.Application
    runner: ActorRunner

    @property
    def url(self) -> str:
        return self.settings.advertise_url


async def start_actor(settings: Settings) -> Actor:
    sock, settings = bind(settings)
    app = build_app(settings)
    runner = make_runner(app, shutdown_timeout=settings.timeouts.drain)
    await runner.setup()
    await runner.listen(sock)
    return Actor(settings, app, runner)


@dataclass
class Cluster:
    """A master, mappers and reducers in this process, each a real aiohttp server on 127.0.0.1."""

    master: Actor
    mappers: list[Actor]
    reducers: list[Actor]
    session: aiohttp.ClientSession
    auth: dict[str, str] = field(default_factory=lambda: {"Authorization": f"Bearer {TOKEN}"})

    @property
    def url(self) -> str:
        return self.master.url

    async def submit(self, spec: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        async with self.session.post(f"{self.url}/v1/jobs", json=spec, **kwargs) as response:
            body = await response.json()
            assert response.status == 202, body
            return dict(body)

    async def result(self, job_id: str, wait: float = 30.0) -> dict[str, Any]:
        async with self.session.get(f"{self.url}/v1/jobs/{job_id}/result", params={"wait": str(wait)}) as response:
            body = await response.json()
            assert response.status == 200, body
            return dict(body["result"])

    async def status(self, job_id: str) -> dict[str, Any]:
        async with self.session.get(f"{self.url}/v1/jobs/{job_id}") as response:
            assert response.status == 200
            return dict(await response.json())

    async def run_text(self, text: str, **spec: Any) -> dict[str, Any]:
        job = await self.submit({"job": "wordcount", "input": {"text": text}, **spec})
        return await self.result(job["id"])


def actor_settings(role: str, ordinal: int, data_root: Path, **overrides: Any) -> Settings:
    base = Settings(
        role=role,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=0,
        name=f"{role}-{ordinal}",
        ordinal=ordinal,
        advertise_url="http://127.0.0.1:0",
        discovery="static",
        data_root=str(data_root),
        token=TOKEN,
        split_size=64 * 1024,
        split_size_floor=512,  # tests ask for tiny splits to get many of them from small inputs
        chunk_size=16 * 1024,
        key_budget=500,
        timeouts=FAST,
    )
    return base.replace(**overrides)


ClusterFactory = Callable[..., Awaitable[Cluster]]


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


class Clusters:
    """Builds clusters in this process and owns them: :meth:`close` stops every actor and session it made."""

    def __init__(self, data_root: Path) -> None:
        self.data_root = data_root
        self.actors: list[Actor] = []
        self.sessions: list[aiohttp.ClientSession] = []

    async def make(self, mappers: int = 2, reducers: int = 2, **overrides: Any) -> Cluster:
        data_root = self.data_root
        reducer_actors = [await start_actor(actor_settings("reducer", i, data_root, **overrides))
                          for i in range(reducers)]
        reducer_urls = tuple(a.url for a in reducer_actors)
        mapper_actors = [
            await start_actor(actor_settings("mapper", i, data_root, reducer_urls=reducer_urls, **overrides))
            for i in range(mappers)
        ]
        master = await start_actor(actor_settings(
            "master", 0, data_root, reducer_urls=reducer_urls, mapper_urls=tuple(a.url for a in mapper_actors),
            **overrides,
        ))
        self.actors.extend([*reducer_actors, *mapper_actors, master])
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        self.sessions.append(session)
        return Cluster(master, mapper_actors, reducer_actors, session)

    async def close(self) -> None:
        """Stop everything, then check that no task was left running and no resource left unclosed."""
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            for session in self.sessions:
                await session.close()
            for actor in reversed(self.actors):
                await actor.runner.cleanup()
            await assert_no_leaked_tasks()
            gc.collect()


@pytest.fixture
async def make_cluster(data_root: Path) -> AsyncIterator[ClusterFactory]:
    """Build clusters on demand; every actor and session is closed and checked for leaks at the end."""
    clusters = Clusters(data_root)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        yield clusters.make
        await clusters.close()


# A test that neither kills nor reconfigures an actor may use ``shared_cluster``: one default cluster for its whole
# module. Such a test runs in the module's event loop, where the cluster lives: mark it ``@SHARED``.
SHARED = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """2 mappers and 2 reducers (``actor_settings`` defaults) for a module; closed and leak-checked at its end."""
    root = tmp_path_factory.mktemp("shared") / "data"
    root.mkdir()
    clusters = Clusters(root)
    try:
        yield await clusters.make()
    finally:
        await clusters.close()


async def assert_no_leaked_tasks() -> None:
    """After cleanup only the test's own task may remain: every actor task had an owner that ended it."""
    current = asyncio.current_task()
    for _ in range(3):
        await asyncio.sleep(0)  # let cancelled tasks finish unwinding (not a wait for a condition)
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leaked, f"tasks left running: {leaked}"


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``check()`` holds, for state another actor changes and offers no event for (bounded)."""
    async with asyncio.timeout(timeout):
        while True:
            if check():
                return
            await asyncio.sleep(0.005)


HeldInputFactory = Callable[[bytes], Awaitable[HeldInput]]


@pytest.fixture
async def held_input() -> AsyncIterator[HeldInputFactory]:
    """Serve bytes as ``HeldInput`` on 127.0.0.1; every held read is released and the server closed at the end."""
    servers = contextlib.AsyncExitStack()

    async def serve(data: bytes) -> HeldInput:
        held = HeldInput(data)
        app = web.Application()
        app.router.add_route("*", "/{name}", held.handle)
        url = await servers.enter_async_context(serve_app(app, shutdown_timeout=1.0))
        servers.callback(held.release_all)  # runs before its server's cleanup: no held read outlives the test
        held.url = f"{url}/input.txt"
        return held

    yield serve
    await servers.aclose()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collection made (modules, items, parameters: live for the whole session) out of the collector's
    reach: the ``gc.collect()`` each cluster's leak check makes then scans only what tests made since, so it stays
    cheap in a session of 2000 tests (measured: 0.3 s per cluster teardown late in a session, 0.06 s early)."""
    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tiers (process, browser, k8s, native: see tests/tiers.py) from the code it reaches."""
    from .tiers import mark

    mark(items)


SPAWNED = pytest.StashKey["Spawns"]()


class Spawns:
    """The processes the running test started, from the interpreter's audit events (every way Python starts one)."""

    EVENTS = frozenset({"subprocess.Popen", "os.posix_spawn", "os.fork", "os.forkpty", "os.system", "os.spawn"})

    def __init__(self) -> None:
        self.seen: list[str] = []

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event in self.EVENTS:
            self.seen.append(f"{event} {args[:2]!r}"[:200])


def pytest_configure(config: pytest.Config) -> None:
    spawns = config.stash[SPAWNED] = Spawns()
    sys.addaudithook(spawns.hook)  # for the session's life (an audit hook cannot be removed); it only appends


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    item.config.stash[SPAWNED].seen.clear()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """A test that started a process without the ``process`` mark fails: the tiers in tests/tiers.py missed what it
    reaches, and the quick tier would silently pay for it."""
    report = yield
    seen = item.config.stash[SPAWNED].seen
    if call.when == "teardown" and seen and item.get_closest_marker("process") is None and report.passed:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} started processes but is not marked process (tests/tiers.py missed what "
                           f"it reaches): {seen[0]}" + (f" and {len(seen) - 1} more" if len(seen) > 1 else ""))
    return report
