"""Fakes at the world's edge for unit tests: a clock, a discovery the test shows and hides peers in, and a
transport that runs a real in-memory map/reduce (the job's own map, the reducer's own ledger and commit rule)
with the faults a seeded random source or the test script picks."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from actors.core import wire
from actors.core.errors import DiscoveryError, PeerError, Unavailable
from actors.core.messages import (
    Assignment,
    Columns,
    Commit,
    Data,
    Finalize,
    KeyPart,
    MapResult,
    Missing,
    Progress,
    Release,
    Report,
    SplitDone,
    SplitFailed,
    StreamAck,
    StreamHeader,
    from_wire,
    to_wire,
)
from actors.core.partition import owner, split_by_partition
from actors.core.splits import OwnedLines, read_from
from actors.discovery import Peer, PeerRole
from actors.jobs import get_job
from actors.net.transport import MapperMessage, PeerUnreachable
from actors.reducer.ledger import COMMITTED, DUPLICATE, Ledger
from actors.reducer.stage import Stage

CAP = 16 * 1024 * 1024

MAX_KEY = 64 * 1024 * 1024  # a reducer's MR_MAX_KEY default


class FakeClock:
    """The coordinator's injected clock; it moves only when the test says (or by ``tick`` on every read)."""

    def __init__(self, start: float = 1000.0, tick: float = 0.0) -> None:
        self.now = start
        self.tick = tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeDiscovery:
    """Peers by role and ordinal that the test shows and hides; ``wait_for`` wakes when they change."""

    def __init__(self, mappers: int, reducers: int, hidden: Iterable[str] = ()) -> None:
        self.all: dict[str, Peer] = {}
        for role, count in (("mapper", mappers), ("reducer", reducers)):
            for i in range(count):
                peer = Peer(ordinal=i, role=role, name=f"{role}-{i}", url=f"fake://{role}-{i}")  # type: ignore[arg-type]
                self.all[peer.name] = peer
        self.visible = set(self.all) - set(hidden)
        self.changed = asyncio.Condition()
        self.waits = 0  # wait_for calls that found too few peers and had to wait
        self.waiting = asyncio.Event()  # set once anyone had to wait

    async def peers(self, role: PeerRole) -> list[Peer]:
        return sorted(p for name, p in self.all.items() if p.role == role and name in self.visible)

    async def wait_for(self, role: PeerRole, count: int, timeout: float) -> list[Peer]:
        async with self.changed:
            try:
                async with asyncio.timeout(timeout):
                    while len(peers := await self.peers(role)) < count:
                        self.waits += 1
                        self.waiting.set()
                        await self.changed.wait()
            except TimeoutError:
                raise DiscoveryError(f"only {len(peers)} of {count} {role}(s) within {timeout:g} s") from None
        return peers

    async def show(self, name: str) -> None:
        async with self.changed:
            self.visible.add(name)
            self.changed.notify_all()

    async def hide(self, name: str) -> None:
        async with self.changed:
            self.visible.discard(name)
            self.changed.notify_all()


class FakeReducer:
    """One reducer: the real ledger and commit rule in memory; ``restart`` loses its state like a killed pod."""

    def __init__(self, ordinal: int) -> None:
        self.ordinal = ordinal
        self.incarnation = uuid.uuid4().hex[:8]
        self.ledger = Ledger(partition=ordinal, clock=lambda: 0.0)
        self.up = True
        self.back = asyncio.Event()
        self.back.set()

    def down(self) -> None:
        self.up = False
        self.back.clear()

    def resume(self) -> None:
        """Back with its state (a network blip, not a restart)."""
        self.up = True
        self.back.set()

    def restart(self) -> None:
        """A new incarnation with empty state, up again."""
        self.incarnation = uuid.uuid4().hex[:8]
        self.ledger = Ledger(partition=self.ordinal, clock=lambda: 0.0)
        self.up = True
        self.back.set()

    def commit(self, header: StreamHeader, frames: list[Any], commit: Commit) -> StreamAck:
        """What the reducer's shuffle handler does with a whole stream: stage privately, verify, commit once."""
        state = self.ledger.receive(header)
        job = state.job_def if state is not None else get_job(header.job_name)
        stage = Stage(job, MAX_KEY)
        for raw in frames:
            message = from_wire(raw, Data, Columns, KeyPart)
            if isinstance(message, KeyPart):
                stage.add_part(message)
            else:
                stage.add(message)
        stage.verify(commit)
        if state is None:  # reported already: every split is committed
            status = DUPLICATE
        else:
            partition = self.ledger.current(header.job, header.epoch, header.partition)
            status = partition.record(header.split, stage)
            partition.merge_pending()
        return StreamAck(header.job, header.epoch, header.split, header.partition, status, self.incarnation)

    def finalize(self, message: Finalize) -> Report | Missing:
        """As the reducer's handler: a kept answer is answered again; a report forgets the job, keeping it."""
        kept = self.ledger.reported_answer(message.job, message.epoch, message.partition)
        if kept is not None:
            return from_wire(wire.decode(kept, CAP), Report, Missing)
        state = self.ledger.find(message.job, message.epoch, message.partition)
        missing = state.missing(message.splits) if state is not None else list(range(message.splits))
        if state is None or missing:
            return Missing(message.job, message.epoch, message.partition, self.incarnation, missing)
        state.settle()
        report = Report(message.job, message.epoch, message.partition, self.incarnation, message.splits,
                        MapResult(state.job_def.finish(state.totals)), counters={"reduce": {"reports": 1}})
        self.ledger.forget_reported(state, wire.encode(to_wire(report)))
        return report


@dataclass
class Faults:
    """How often the fake loses or repeats things, drawn from one seeded random source."""

    drop_stream: float = 0.0  # a partition stream is cut before its COMMIT: nothing merged, the attempt fails
    drop_ack: float = 0.0  # the stream commits but its ack is lost: the attempt fails, a retry is a duplicate
    drop_report: float = 0.0  # every partition committed, then the assignment stream is cut before SPLITDONE
    duplicate_stream: float = 0.0  # a partition stream is sent twice (the second answers "duplicate")
    stale_message: float = 0.0  # a message of another attempt shows up on the assignment stream
    delay: float = 0.0  # up to this many seconds of delay before each message
    drop_answer: float = 0.0  # a reducer reports (and forgets the job), then its finalize answer is lost


Script = Callable[[str, Assignment], str | None]


@dataclass
class FakeTransport:
    """Mappers and reducers in memory. A mapper's mode: ok; dead (unreachable); silent (stops talking: the lease
    expires); hang (heartbeats, never finishes); slow (a straggler: ``slow_beats`` heartbeats first); gated
    (heartbeats until ``gate`` is set); fail (reports a retriable failure); eof (ends its stream with no report);
    cut (commits every partition, then loses the stream before its report). ``script(mapper, assignment)`` may
    pick the mode per assignment."""

    inputs: dict[str, bytes]
    reducers: dict[int, FakeReducer]
    faults: Faults = field(default_factory=Faults)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    heartbeat: float = 0.01
    modes: dict[str, str] = field(default_factory=dict)
    script: Script | None = None
    before_finalize: Callable[[int], None] | None = None
    assignments: list[tuple[str, Assignment]] = field(default_factory=list)
    commits: Counter[tuple[str, int, int, str, int]] = field(default_factory=Counter)  # (job, epoch, part, inc, split)
    closed_early: int = 0  # assignment streams the master stopped listening to
    finalized: list[tuple[str, int]] = field(default_factory=list)
    finalizing: int = 0  # finalize calls in flight now, and at most (the master keeps it to one per reducer)
    finalizing_peak: int = 0
    answers: list[tuple[str, int, Report | Missing]] = field(default_factory=list)  # (job, partition, answer)
    lose_answers: int = 0  # the first this many finalize answers are lost after the reducer gave them
    lost_answers: int = 0
    released: list[tuple[str, str]] = field(default_factory=list)
    sent: list[tuple[int, StreamHeader]] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    slow_beats: int = 10

    @classmethod
    def with_reducers(cls, inputs: dict[str, bytes], reducers: int, **kwargs: Any) -> FakeTransport:
        return cls(inputs, {i: FakeReducer(i) for i in range(reducers)}, **kwargs)

    async def _pause(self) -> None:
        # Always yield to the loop, as a real network call would: other workers get their turn.
        await asyncio.sleep(self.rng.uniform(0, self.faults.delay) if self.faults.delay else 0)

    def _chance(self, p: float) -> bool:
        return p > 0 and self.rng.random() < p

    async def assign(self, mapper: Peer, assignment: Assignment) -> AsyncGenerator[MapperMessage, None]:
        self.assignments.append((mapper.name, assignment))
        self.started.set()
        mode = (self.script(mapper.name, assignment) if self.script else None) or self.modes.get(mapper.name, "ok")
        if mode == "dead":
            raise PeerUnreachable(f"{mapper.url}: connection refused (simulated)")
        finished = False
        try:
            async for message in self._run(mode, assignment):
                finished = isinstance(message, SplitDone | SplitFailed)  # the master may stop reading after it
                yield message
        finally:
            if not finished:
                self.closed_early += 1

    async def _run(self, mode: str, a: Assignment) -> AsyncGenerator[MapperMessage, None]:
        await self._pause()
        data = self.inputs[a.input_location]
        owned = OwnedLines(a.start, a.end).feed(data[read_from(a.start):])
        yield Progress(a.job, a.epoch, a.split, a.attempt, len(owned) // 2)
        if self._chance(self.faults.stale_message):
            yield Progress(a.job, a.epoch, a.split, a.attempt + 1, 0)
            yield SplitDone(a.job, a.epoch - 1, a.split, a.attempt, 0, 0, 0)
        if mode == "silent":
            await asyncio.Event().wait()  # never set: only the master's lease ends this
        if mode == "slow":  # a straggler: heartbeats for a while, then does its work
            for _ in range(self.slow_beats):
                await asyncio.sleep(self.heartbeat)
                yield Progress(a.job, a.epoch, a.split, a.attempt, len(owned) // 2)
        if mode == "hang":
            while True:
                await asyncio.sleep(self.heartbeat)
                yield Progress(a.job, a.epoch, a.split, a.attempt, len(owned) // 2)
        while mode == "gated" and not self.gate.is_set():  # held (heartbeating) until the test opens the gate
            yield Progress(a.job, a.epoch, a.split, a.attempt, 0)
            try:
                async with asyncio.timeout(self.heartbeat):
                    await self.gate.wait()
            except TimeoutError:
                pass
        if mode == "eof":
            return  # the stream ends cleanly, with no report
        if mode == "fail":
            yield SplitFailed(a.job, a.epoch, a.split, a.attempt, "reducer 0 refused (simulated)", retriable=True)
            return
        job = get_job(a.job_name)
        parts = split_by_partition(job.map(owned.decode("utf-8", "replace"), a.input_name), a.partitions)
        acks: dict[int, StreamAck] = {}
        for p in a.only_partitions or range(a.partitions):
            reducer = self.reducers[owner(p, a.reducers or a.partitions)]
            while not reducer.up:  # the mapper waits for a down reducer, heartbeating meanwhile
                yield Progress(a.job, a.epoch, a.split, a.attempt, len(owned))
                try:
                    async with asyncio.timeout(self.heartbeat):
                        await reducer.back.wait()
                except TimeoutError:
                    pass
            header = StreamHeader(a.job, a.epoch, a.split, a.attempt, p, a.partitions, a.job_name, 0,
                                  reducers=a.reducers)
            frames = [wire.decode(wire.encode(to_wire(Data(parts[p]))), CAP)] if parts[p] else []
            commit = Commit(len(frames), len(parts[p]), job.checksum(parts[p]) if parts[p] else 0)
            await self._pause()
            if self._chance(self.faults.drop_stream):
                raise PeerError(f"stream of split {a.split} to reducer {p} cut (simulated)")
            for _ in range(2 if self._chance(self.faults.duplicate_stream) else 1):
                acks[p] = self._commit(reducer, header, frames, commit)
            if self._chance(self.faults.drop_ack):
                raise PeerError(f"ack of split {a.split} from reducer {p} lost (simulated)")
            yield Progress(a.job, a.epoch, a.split, a.attempt, len(owned))
        if mode == "cut" or self._chance(self.faults.drop_report):
            raise PeerError(f"assignment stream of split {a.split} cut before its report (simulated)")
        duplicates = sum(1 for ack in acks.values() if ack.status != COMMITTED)
        # Counts as a task process sends them: the master must add each split's once, whatever the faults.
        yield SplitDone(a.job, a.epoch, a.split, a.attempt, len(owned), 0, duplicates,
                        counters={"map": {"splits": 1, "bytes": len(owned)}})

    def _commit(self, reducer: FakeReducer, header: StreamHeader, frames: list[Any], commit: Commit) -> StreamAck:
        ack = reducer.commit(header, frames, commit)
        if ack.status == COMMITTED:
            self.commits[(header.job, header.epoch, header.partition, reducer.incarnation, header.split)] += 1
        return ack

    async def send_partition(
        self, reducer: Peer, header: StreamHeader, blocks: Iterable[bytes], commit: Commit
    ) -> StreamAck:
        self.sent.append((reducer.ordinal, header))
        target = self.reducers[reducer.ordinal]
        await self._pause()
        if not target.up:
            raise PeerUnreachable(f"{reducer.url}: connection refused (simulated)")
        body = b"".join(blocks)
        frames, at = [], 0
        while at < len(body):
            length = wire.frame_length(body[at : at + wire.PREFIX], CAP)
            frames.append(wire.decode(body[at + wire.PREFIX : at + wire.PREFIX + length], CAP))
            at += wire.PREFIX + length
        if self._chance(self.faults.drop_stream):
            raise PeerError(f"stream to reducer {reducer.ordinal} cut (simulated)")
        return self._commit(target, header, frames, commit)

    async def finalize(self, reducer: Peer, message: Finalize) -> Report | Missing:
        self.finalized.append((message.job, message.partition))
        if self.before_finalize is not None:
            self.before_finalize(message.partition)
        target = self.reducers[reducer.ordinal]
        self.finalizing += 1
        self.finalizing_peak = max(self.finalizing_peak, self.finalizing)
        try:
            await self._pause()
        finally:
            self.finalizing -= 1
        if not target.up:
            raise PeerUnreachable(f"{reducer.url}: connection refused (simulated)")
        answer = target.finalize(message)
        self.answers.append((message.job, message.partition, answer))
        if self.lost_answers < self.lose_answers or self._chance(self.faults.drop_answer):
            self.lost_answers += 1
            raise PeerError(f"finalize answer of reducer {reducer.ordinal} lost (simulated)")
        return answer

    async def release(self, peer: Peer, message: Release) -> None:
        self.released.append((message.job, peer.name))
        target = self.reducers.get(peer.ordinal)
        if target is None or not target.up:
            raise Unavailable(f"{peer.url} is down (simulated)")
        target.ledger.release(message.job, message.epoch)
