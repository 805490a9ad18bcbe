"""The local cluster's supervisor: an actor process that exits while its cluster runs is started again, as a
StatefulSet's pod would be, after a growing pause and at most so many times in a window (then it is given up)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .core.errors import MapReduceError
from .core.logs import EventLog

log = EventLog(__name__)


@dataclass(frozen=True)
class RestartPolicy:
    """How a local cluster restarts an actor that exits on its own: after ``backoff`` seconds, doubled for every
    restart of that actor within the last ``window`` seconds (at most ``backoff_max``); once it has been restarted
    ``limit`` times within ``window``, its next exit is a crash loop and the actor is given up."""

    limit: int = 5
    window: float = 60.0
    backoff: float = 0.25
    backoff_max: float = 8.0

    def __post_init__(self) -> None:
        if self.limit < 0 or self.window <= 0 or self.backoff < 0 or self.backoff_max < self.backoff:
            raise MapReduceError(f"not a restart policy: {self}")


class RestartBudget:
    """One actor's recent restarts: the pause before the next one, or None once the policy's bound is reached."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self._times: deque[float] = deque()

    def pause(self, now: float) -> float | None:
        while self._times and now - self._times[0] >= self.policy.window:
            self._times.popleft()
        if len(self._times) >= self.policy.limit:
            return None
        return min(self.policy.backoff * 2.0 ** len(self._times), self.policy.backoff_max)

    def spend(self, now: float) -> None:
        self._times.append(now)


def exit_cause(code: int) -> str:
    """How a process ended, as a person reads it: ``signal 9`` (SIGKILL) or ``code 1``."""
    return f"signal {-code}" if code < 0 else f"code {code}"


class Supervised(Protocol):
    """What the supervisor needs of an actor process (``actors.local.ActorProcess``)."""

    process: asyncio.subprocess.Process | None
    ready: asyncio.Future[str]
    restarts: int
    log_path: Path

    @property
    def name(self) -> str: ...

    @property
    def lock(self) -> asyncio.Lock: ...


class Supervisor:
    """Watches every actor of one cluster; run it as one task, cancelled when the cluster stops (its own SIGTERMs
    are then not mistaken for crashes). ``respawn`` starts a fresh process for an actor (same name, ordinal and,
    where the address matters, port) and counts the restart; the supervisor waits for it to be ready."""

    def __init__(self, policy: RestartPolicy, respawn: Callable[[Supervised], Awaitable[None]],
                 announce: Callable[[str], None], on_give_up: Callable[[str], None], startup: float) -> None:
        self.policy = policy
        self.respawn = respawn
        self.announce = announce
        self.on_give_up = on_give_up
        self.startup = startup

    async def run(self, actors: Sequence[Supervised]) -> None:
        async with asyncio.TaskGroup() as group:
            for actor in actors:
                group.create_task(self._watch(actor), name=f"supervise-{actor.name}")

    async def _watch(self, actor: Supervised) -> None:
        budget = RestartBudget(self.policy)
        clock = asyncio.get_running_loop().time
        while True:
            process = actor.process
            assert process is not None
            code = await process.wait()
            async with actor.lock:
                if actor.process is not process:
                    continue  # restarted by hand meanwhile (LocalCluster.restart): watch the new process
                cause = exit_cause(code)
                pause = budget.pause(clock())
                if pause is None:
                    self._give_up(actor, cause)
                    return
                log.info("actor_exited", actor=actor.name, pid=process.pid, code=code, restart_in=pause)
                await asyncio.sleep(pause)  # the backoff itself, not a wait for a condition
                budget.spend(clock())
                await self.respawn(actor)
                assert actor.process is not None
                log.info("actor_restarted", actor=actor.name, pid=actor.process.pid, restarts=actor.restarts,
                         cause=cause)
                self.announce(f"mapreduce: {actor.name} exited ({cause}); restarted (restart {actor.restarts})")
                await self._await_ready(actor)

    async def _await_ready(self, actor: Supervised) -> None:
        """Wait for the new process to be ready; one that exits first or hangs is simply the next exit to handle."""
        try:
            async with asyncio.timeout(self.startup):
                await actor.ready
        except MapReduceError:
            pass  # it exited before it was ready: its exit is seen at the top of the loop
        except TimeoutError:
            assert actor.process is not None
            log.info("actor_not_ready", actor=actor.name, pid=actor.process.pid, within=self.startup)
            with contextlib.suppress(ProcessLookupError):
                actor.process.kill()

    def _give_up(self, actor: Supervised, cause: str) -> None:
        window = f"{self.policy.window:g} s"
        log.info("actor_given_up", actor=actor.name, cause=cause, restarts=actor.restarts, limit=self.policy.limit,
                 window=self.policy.window)
        self.announce(f"mapreduce: {actor.name} exited ({cause}); gave up after {self.policy.limit} restarts in "
                      f"{window} (its log: {actor.log_path})")
        self.on_give_up(actor.name)
