"""The drain: an actor's shutdown under ONE deadline, from SIGTERM to exit, and the in-flight work it lets finish.

``MR_TIMEOUT_DRAIN`` is the whole budget B. On SIGTERM at t0 the actor must have exited by ``deadline`` = t0 + B:

- until ``stop_at`` (B minus a reserve R) it keeps serving, refuses new work (503, ``/readyz`` 503) and waits for
  the work in flight: operations (requests other than reads) and what each role adds (the master: its jobs);
- at ``stop_at`` roles cancel what is left (the master's jobs, which answers their long-polls) by ``cancel_by``;
- then the listener closes, handlers still running (long-polls, stragglers) get R/4 to answer and are cancelled,
  and the app's resources are closed with what remains of R.

aiohttp's own shutdown waits twice per connection (``shutdown_timeout``, then again after cancelling) and runs
the app's clean-up only after that, so its waits are not a budget; by the time it runs here nothing is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

READS = frozenset({"GET", "HEAD", "OPTIONS"})  # waiting on these (long-polls) never holds a drain
PROBES = frozenset({"/healthz", "/readyz"})

DrainHook = Callable[["Drain"], Awaitable[None]]


def reserve(budget: float) -> float:
    """The tail of the budget kept for stopping: a fifth, at least half a second (or half a tiny budget), at most 5."""
    return min(max(budget * 0.2, min(0.5, budget / 2)), 5.0)


class Drain:
    """One actor's shutdown: its deadline, the handlers in flight, and the hooks roles add for their own work."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.reserve = reserve(budget)
        self.began: float | None = None  # event-loop time of SIGTERM (or of the clean-up, without one)
        self.hooks: list[DrainHook] = []  # each lets its work finish until stop_at and cancels it by cancel_by
        self._handlers: dict[asyncio.Task[Any], bool] = {}  # in-flight handler -> is it an operation (not a read)?

    def begin(self, now: float) -> None:
        if self.began is None:
            self.began = now

    @property
    def deadline(self) -> float:
        """Event-loop time by which the actor has exited."""
        assert self.began is not None, "the drain has not begun"
        return self.began + self.budget

    @property
    def stop_at(self) -> float:
        """Event-loop time at which waiting for work ends and what is left is cancelled."""
        return self.deadline - self.reserve

    @property
    def cancel_by(self) -> float:
        """Event-loop time by which cancelled work must have ended."""
        return self.stop_at + self.reserve / 4

    @property
    def operations(self) -> int:
        return sum(1 for is_operation in self._handlers.values() if is_operation)

    @contextlib.contextmanager
    def tracking(self, task: asyncio.Task[Any], operation: bool) -> Iterator[None]:
        self._handlers[task] = operation
        try:
            yield
        finally:
            self._handlers.pop(task, None)

    async def wait_for_operations(self) -> None:
        """Until no operation is in flight (new ones may start meanwhile: wait for those too)."""
        while running := [t for t, operation in self._handlers.items() if operation]:
            await asyncio.wait(running)

    async def stop_handlers(self, grace: float) -> int:
        """Give every handler still running ``grace`` seconds to answer, then cancel it; answer how many were cut."""
        running = list(self._handlers)
        if not running:
            return 0
        _, pending = await asyncio.wait(running, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=grace)
        return len(pending)


def drain_middleware(drain: Drain) -> Middleware:
    """Track every handler but the probes, so the drain can wait for operations and cancel what is left."""

    @web.middleware
    async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
        task = asyncio.current_task()
        if task is None or request.path in PROBES:
            return await handler(request)
        with drain.tracking(task, request.method not in READS):
            return await handler(request)

    return track
