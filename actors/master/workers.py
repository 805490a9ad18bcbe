"""The map phase's workers: how an attempt went, the settings a mapper's worker follows, the slots mappers share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum

from ..core.config import Backoff, Settings


class Outcome(StrEnum):
    """How one attempt went, for the mapper's worker: only UNREACHABLE and FAULTY make it back off."""

    OK = "ok"  # the split is done (or another attempt of it won)
    REPORTED = "reported"  # the mapper reported the attempt failed, e.g. a reducer was down: not its fault
    UNREACHABLE = "unreachable"  # never started: handed back
    FAULTY = "faulty"  # the mapper crashed, stalled or answered nonsense


@dataclass(frozen=True)
class WorkerPolicy:
    """How the map phase feeds mappers: the few settings the worker loop and the split table read."""

    slots: int  # MR_MAPPER_SLOTS: workers per mapper
    max_attempts: int  # MR_MAX_ATTEMPTS
    backup_tasks: bool  # MR_BACKUP_TASKS
    backup_after: float  # MR_BACKUP_AFTER
    backoff: Backoff  # the settings' mapper_backoff: before a faulty mapper gets another split
    straggler_check: float  # MR_STRAGGLER_CHECK: the longest an idle worker sleeps without looking for stragglers
    lease: float  # MR_TIMEOUT_LEASE: a mapper silent this long on its assignment loses the split
    unreachable: float  # MR_TIMEOUT_PEERS: a mapper unreachable this long is retired from the job

    @classmethod
    def of(cls, settings: Settings) -> WorkerPolicy:
        return cls(settings.mapper_slots, settings.max_attempts, settings.backup_tasks, settings.backup_after,
                   settings.mapper_backoff, settings.straggler_check, settings.timeouts.lease,
                   settings.timeouts.peers)

    @property
    def tick(self) -> float:
        """How often idle workers look for stragglers: a short MR_BACKUP_AFTER (tests) makes a faster, still
        faithful, run."""
        return min(self.straggler_check, max(0.01, self.backup_after / 4))


class MapperSlots:
    """How many assignments each mapper runs at once, shared by every job on this master."""

    def __init__(self, per_mapper: int) -> None:
        self.per_mapper = per_mapper
        self._slots: dict[str, asyncio.Semaphore] = {}

    @asynccontextmanager
    async def hold(self, mapper: str) -> AsyncIterator[None]:
        slot = self._slots.setdefault(mapper, asyncio.Semaphore(self.per_mapper))
        async with slot:
            yield

