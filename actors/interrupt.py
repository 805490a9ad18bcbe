"""Ctrl-C of a launcher: the first stops its local cluster within a short budget and says so, the second kills it."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

STOP_BUDGET = 1.0  # seconds from the first Ctrl-C until any actor still alive is killed; the launcher is gone
# within 2 s: the rest is for the kill, and for the interpreter to exit
STOPPING = "mapreduce: stopping (Ctrl-C again to kill)"
EXIT_INTERRUPTED = 128 + signal.SIGINT  # what a shell reports for a command ended by Ctrl-C


class Stoppable(Protocol):
    """What an interrupt needs of a local cluster (``actors.local.LocalCluster``)."""

    def hurry(self, budget: float) -> None: ...

    def kill(self) -> None: ...


class Interrupts:
    """While entered, SIGINT (and SIGTERM) no longer raise KeyboardInterrupt wherever the loop happens to be: the
    first one says :data:`STOPPING`, hurries ``cluster`` to stop within :data:`STOP_BUDGET` and cancels ``task``
    (whose ``async with`` of the cluster then stops it); any later one kills every actor at once. ``count`` tells
    the task, once cancelled, that it was interrupted (exit :data:`EXIT_INTERRUPTED`) rather than cancelled."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, cluster: Stoppable, task: asyncio.Task[object], say: Callable[[str], None]) -> None:
        self.cluster = cluster
        self.task = task
        self.say = say
        self.count = 0

    def __enter__(self) -> Interrupts:
        loop = asyncio.get_running_loop()
        for signum in self.SIGNALS:
            loop.add_signal_handler(signum, self.interrupt)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        loop = asyncio.get_running_loop()
        for signum in self.SIGNALS:
            loop.remove_signal_handler(signum)

    def interrupt(self) -> None:
        self.count += 1
        if self.count == 1:
            self.say(STOPPING)
            self.cluster.hurry(STOP_BUDGET)
            self.task.cancel()
        else:
            self.cluster.kill()
