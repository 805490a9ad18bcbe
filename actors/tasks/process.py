"""A task process: one worker child of an actor, spoken to with actors.tasks.protocol over its pipes."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import sys
from collections.abc import Callable

from ..core.errors import InputError, KeyTooLarge, MapReduceError, TaskFailed, ValueTooLarge, WireError
from ..core.joblog import user_output
from ..sdk import JobCodeError, JobConfigError
from . import protocol
from .protocol import Failed, Frames, Message, Tick

#: A worker's deterministic failures, by code: raised again as themselves (the job fails, not retried).
DETERMINISTIC: dict[str, type[MapReduceError]] = {
    cls.code: cls for cls in (JobCodeError, JobConfigError, KeyTooLarge, ValueTooLarge, InputError)}
STDERR_LINE = 8192  # characters of one line a job writes to stderr kept in its logs (the rest is cut)
# Bytes the worker's answers are read in at once (a Frames block is about a MiB: one wake-up, not sixteen).
READ_LIMIT = 1024 * 1024
# Bytes the kernel holds of a request not read yet (Linux's default most an unprivileged process may ask): a 4 MiB
# chunk passes to a worker in four writes of the actor's loop, not sixty-four of the default 64 KiB.
PIPE_SIZE = 1024 * 1024


def exit_cause(returncode: int) -> str:
    """How a process ended, for a failure's cause: "exited with status 1", "was killed by signal 11 (SIGSEGV)"."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown"
        return f"was killed by signal {-returncode} ({name})"
    return f"exited with status {returncode}"


class TaskProcess:
    """One running worker; :meth:`call` makes one request. A process whose request did not end cleanly (it failed,
    stalled, or its caller was cancelled) is :attr:`spent`: its owner kills it and starts another."""

    def __init__(self, proc: asyncio.subprocess.Process, cap: int, startup: float) -> None:
        self.proc = proc
        self.cap = cap
        self.startup = startup  # the first answer may take this long: the worker imports Python and the jobs first
        self.answered = False
        self.spent = False
        #: The job whose conversation holds this worker (its id): what user code writes to stderr goes to its logs.
        self.job = ""
        # Owned here and ended by :meth:`kill` (it also ends by itself when the worker's stderr closes): the worker
        # must never block on a full stderr pipe.
        self._relay = asyncio.ensure_future(self._relay_stderr())

    @classmethod
    async def start(cls, cap: int, memory: int, startup: float) -> TaskProcess:
        env = dict(os.environ)
        # The actor's own import path, so the worker imports the same job modules (tests add theirs to sys.path).
        env["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "actors.tasks.worker", "--parent", str(os.getpid()), "--cap", str(cap),
            "--memory", str(memory), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, limit=READ_LIMIT)
        assert proc.stdin is not None
        _widen(proc.stdin.transport.get_extra_info("pipe"))
        return cls(proc, cap, startup)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and not self.spent

    async def call(self, message: Message, label: str, silence: float, *,
                   frames: Callable[[Frames], None] | None = None,
                   tick: Callable[[int], None] | None = None) -> Message:
        """Send ``message`` and return the worker's answer; ``label`` ("mapper of job 'x'") names the work in a
        failure's cause. Frames and ticks on the way go to their callbacks. TaskFailed if the worker dies or is
        silent for ``silence`` seconds (it is killed); a deterministic failure raises as its own error."""
        await self.send(message, label, silence)
        while True:
            reply = await self.receive(label, silence)
            if isinstance(reply, Tick):
                if tick is not None:
                    tick(reply.done)
                continue
            if isinstance(reply, Frames):
                if frames is None:
                    raise WireError(f"{label}: a task process sent frames unasked")
                frames(reply)
                continue
            if isinstance(reply, Failed):
                raise await self.failure(reply, owed=0)
            self.spent = False
            return reply

    async def send(self, message: Message, label: str, silence: float) -> None:
        """Write one request; the worker is :attr:`spent` until its owner has read the answer to every request it
        sent (a conversation may send the next before the last is answered: see actors.tasks.calls.MapTask)."""
        self.spent = True
        assert self.proc.stdin is not None
        if not self.answered:  # a new worker says hello once it has imported Python and this package
            hello = await self.receive(label, self.startup, "did not start within {:g} s (MR_TIMEOUT_STARTUP)")
            if not isinstance(hello, Tick):
                raise WireError(f"{label}: a task process began with {type(hello).__name__}")
        try:
            for part in protocol.encode_parts(message):  # a chunk's bytes as they are: no copy to frame them
                self.proc.stdin.write(part)
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise await self._died(label, silence) from None

    async def failure(self, reply: Failed, owed: int) -> MapReduceError:
        """The error a worker's Failed answer stands for; a fatal one kills the worker. ``owed``: answers the worker
        still owes for requests sent after the failed one (then it is left spent: they would come unread)."""
        if reply.fatal:
            await self.kill()
            return TaskFailed(reply.cause)
        self.spent = owed > 0
        cls = DETERMINISTIC.get(reply.code)
        failure = cls(reply.cause) if cls is not None else TaskFailed(reply.cause)
        if isinstance(failure, JobCodeError):
            failure.traceback = reply.traceback  # for this actor's logs of the job, never the answer
        return failure

    async def receive(self, label: str, silence: float,
                      stalled: str = "made no progress for {:g} s (MR_TIMEOUT_LEASE)") -> Message:
        """The worker's next message; TaskFailed if it dies or says nothing for ``silence`` seconds (killed)."""
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(silence):
                prefix = await self.proc.stdout.readexactly(protocol.PREFIX)
                body = await self.proc.stdout.readexactly(protocol.length(prefix, self.cap))
        except asyncio.IncompleteReadError:
            raise await self._died(label, silence) from None
        except TimeoutError:
            await self.kill()
            raise TaskFailed(f"{label} {stalled.format(silence)}; killed") from None
        self.answered = True
        return protocol.decode(body, self.cap)

    async def _died(self, label: str, silence: float) -> TaskFailed:
        """The cause of a worker that closed its pipe: how it exited (killed if it lingers past ``silence``)."""
        self.spent = True
        try:
            async with asyncio.timeout(silence):
                returncode = await self.proc.wait()
        except TimeoutError:
            await self.kill()
            return TaskFailed(f"{label} closed its pipe and made no progress for {silence:g} s; killed")
        return TaskFailed(f"{label} {exit_cause(returncode)}")

    async def kill(self) -> None:
        """Kill and reap the process (at once: its work is abandoned)."""
        self.spent = True
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self.proc.wait()
        try:  # the pipe closed with the process: the relay ends once it has passed on what was left
            async with asyncio.timeout(1.0):
                await asyncio.shield(self._relay)
        except TimeoutError:  # a grandchild the job started still holds the pipe open
            self._relay.cancel()
            await asyncio.gather(self._relay, return_exceptions=True)

    async def _relay_stderr(self) -> None:
        """Each line user code writes to stderr: a ``user_output`` line of the job's logs while a job holds this
        worker, else the actor's own stderr (as an inherited stderr would have shown it)."""
        assert self.proc.stderr is not None
        while True:
            try:
                raw = await self.proc.stderr.readuntil(b"\n")
            except asyncio.IncompleteReadError as end:
                raw = end.partial
                if not raw:
                    return
            except asyncio.LimitOverrunError as long:  # a line past the reader's buffer: pass on that much of it
                raw = await self.proc.stderr.read(long.consumed)
            text = raw.decode("utf-8", "replace").rstrip("\n")
            if self.job:
                user_output(self.job, "info", text[:STDERR_LINE])
            else:
                sys.stderr.write(text + "\n")


def _widen(pipe: object) -> None:
    """Ask the kernel for a :data:`PIPE_SIZE` buffer on a pipe to a worker (Linux; elsewhere, or refused, the
    default stays: only the number of writes changes)."""
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)
    fileno = getattr(pipe, "fileno", None)
    if setsize is None or fileno is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(fileno(), setsize, PIPE_SIZE)
