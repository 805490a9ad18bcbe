"""Helpers the tests share: seeded text, a loopback server, whether a process runs, what a stage or report holds."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from actors.core.messages import Columns
from actors.jobs.wordcount.columns import unpack_columns
from actors.reducer.ledger import PartitionState
from actors.reducer.stage import Stage

# Settings for fault drills (tests/test_faults.py, tests/test_reducer_restart.py, scripts/soak_faults.py): small
# splits so a fault lands mid-job, short leases and timeouts so recovery is quick, room for the extra attempts that
# repeated kills cost. The launcher's own waits follow the same MR_TIMEOUT_* values.
DRILL_ENV: dict[str, str] = {
    "MR_SPLIT_SIZE": str(160 * 1024),
    "MR_CHUNK_SIZE": str(32 * 1024),
    "MR_KEY_BUDGET": "2000",
    "MR_MAX_ATTEMPTS": "10",
    "MR_TIMEOUT_LEASE": "2",
    "MR_TIMEOUT_STREAM_IDLE": "3",
    "MR_TIMEOUT_PEERS": "5",
    "MR_TIMEOUT_DRAIN": "3",
    "MR_TIMEOUT_STARTUP": "20",
    "MR_TIMEOUT_RECOVERY": "30",
    "MR_BACKUP_AFTER": "30",
}

# Many distinct words, plus unicode and case variants the native kernel must hand to str.split().
VOCABULARY = (*(f"w{i}" for i in range(3000)), "γάμμα", "日本語", "naïve", "The", "the")


def make_text(rng: random.Random, words: int, vocabulary: Sequence[str] = VOCABULARY,
              line_words: Sequence[int] = range(25), zipf: bool = False) -> bytes:
    """``words`` words from ``vocabulary`` (uniform, or Zipf: rank r weighs 1/r), in lines of
    ``rng.choice(line_words)`` words each (a 0 makes an empty line); seeded by ``rng``, no trailing newline."""
    weights = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(vocabulary)))) if zipf else None
    drawn = rng.choices(vocabulary, cum_weights=weights, k=words)
    lines, at = [], 0
    while at < len(drawn):
        step = rng.choice(line_words)
        lines.append(" ".join(drawn[at : at + step]))
        at += step
    return "\n".join(lines).encode()


def megabytes_of_words(megabytes: float) -> int:
    """About how many words of ``VOCABULARY`` make ``megabytes`` of text (5 bytes a word)."""
    return int(megabytes * 1024 * 1024 / 5)


def make_text_file(path: Path, megabytes: float, seed: int, vocabulary: Sequence[str] = VOCABULARY,
                   line_words: Sequence[int] = range(25)) -> bytes:
    """About ``megabytes`` of seeded text (see ``make_text``), written to ``path``; returns its bytes."""
    data = make_text(random.Random(seed), megabytes_of_words(megabytes), vocabulary, line_words)
    path.write_bytes(data)
    return data


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs. A zombie (exited, not yet reaped) answers kill(0) but is dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False  # reaped between the two looks
    state = next((line for line in status.splitlines() if line.startswith("State:")), "")
    return "zombie" not in state and "dead" not in state


@contextlib.asynccontextmanager
async def serve_app(app: web.Application, host: str = "127.0.0.1",
                    shutdown_timeout: float = 60.0) -> AsyncIterator[str]:
    """Serve ``app`` on ``host`` at a free port; yields its base URL (``http://host:port``), cleans up after."""
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, 0).start()
        port = runner.addresses[0][1]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def held_url(data: bytes) -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A URL input whose every read is held until the block ends: a job on it is certainly running.

    Yields the URL and an event set at the first read; on leaving, the held reads are let go, then the server ends.
    """
    reading, release = asyncio.Event(), asyncio.Event()

    async def serve(request: web.Request) -> web.StreamResponse:
        if request.method == "GET":
            reading.set()
            await release.wait()
        return web.Response(body=data, headers={"Accept-Ranges": "bytes"})

    app = web.Application()
    app.router.add_get("/book.txt", serve)
    async with serve_app(app, shutdown_timeout=0.1) as url:
        try:
            yield f"{url}/book.txt", reading
        finally:
            release.set()


def staged_items(stage: Stage) -> dict[str, Any]:
    """Everything a Stage holds, combined as a commit would merge it into empty totals (tests read this)."""
    merged: dict[str, Any] = {}
    for part in stage.parts:
        stage.job.combine(merged, unpack_columns(part) if isinstance(part, Columns) else part)
    return merged


def report_totals(report: dict[str, Any]) -> dict[str, Any]:
    """A raw Report's totals, whether they came as a map or (a packing engine's) as a COLUMNS run in top order."""
    payload = report["payload"]
    if payload["type"] == "columns":
        items = unpack_columns(Columns(payload["keys"], payload["ends"], payload["counts"]))
        assert list(items) == [key for key, _ in sorted(items.items(), key=lambda kv: (-kv[1], kv[0]))]
        return items
    assert payload["type"] == "mapresult", payload
    return dict(payload["totals"])


def commit(state: PartitionState, split: int, stage: Stage) -> str:
    """The reducer's own path for a staged stream: the commit rule, the merge in slices, then settled totals."""
    status = state.record(split, stage)
    while not state.merge_some(16 * 1024):
        pass
    state.settle()
    return status
