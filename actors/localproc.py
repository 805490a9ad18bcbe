"""A local actor process: spawned in a process group of its own, its readiness pipe, reaped or killed."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .core.config import Role
from .core.errors import ConfigError, MapReduceError

PR_SET_PDEATHSIG = 1
ERROR_PREFIX = "mapreduce: "  # how `mapreduce serve` says why it stopped (actors/cli.py), one line on stderr
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
    restarts: int = 0  # processes started after the first, by the supervisor or by hand (MR_RESTARTS)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one restart at a time: supervisor or by hand

    @property
    def name(self) -> str:
        return f"{self.role}-{self.ordinal}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


def kill_group(actor: ActorProcess) -> None:
    """SIGKILL an actor's process group (its own, see spawn), unless the actor has been reaped: then its pid, and
    so its group id, may already name another process."""
    process = actor.process
    if process is not None and process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


async def spawn(actor: ActorProcess) -> None:
    """Start ``actor``'s process (``mapreduce serve`` with its env); ``actor.ready`` resolves with its URL."""
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
                # A group of its own: a terminal's Ctrl-C reaches the launcher only, which decides how the
                # actors stop (LocalCluster's stop, hurry, kill), and killing the group takes whatever the actor
                # started.
                preexec_fn=_die_with_parent, process_group=0,
            )
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    actor.pump = asyncio.get_running_loop().create_task(_await_ready(actor, read_end), name=f"ready-{actor.name}")


async def _await_ready(actor: ActorProcess, read_end: int) -> None:
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
        actor.ready.set_exception(await _exit_error(actor))


async def _exit_error(actor: ActorProcess) -> MapReduceError:
    """Why an actor exited before it was ready: its own one-line error (``mapreduce: ...``, exit status 2 for a
    setting to fix) when it gave one, else the tail of its log (a crash)."""
    tail = actor.log_path.read_text(errors="replace")[-2000:] if actor.log_path.exists() else ""
    said = [line for line in tail.splitlines() if line.startswith(ERROR_PREFIX)]
    if not said:
        return MapReduceError(f"{actor.name} exited before it was ready:\n{tail}")
    code = None
    if actor.process is not None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(EXIT_MARGIN):  # it closed its readiness pipe: it is exiting
                code = await actor.process.wait()
    kind = ConfigError if code == 2 else MapReduceError
    return kind(f"{actor.name}: {said[-1].removeprefix(ERROR_PREFIX)}")


async def reap(actor: ActorProcess, grace: float) -> int | None:
    """SIGTERM ``actor`` (SIGCONT first: it may be stopped), SIGKILL its group after ``grace`` s; its exit code."""
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
            kill_group(actor)
            await process.wait()
    if actor.pump is not None:
        await asyncio.gather(actor.pump, return_exceptions=True)
    return process.returncode
