"""Ctrl-C of a real `mapreduce run` while user code burns CPU: one stops it within 2 s and says so in one line, a
second kills at once. Before, run went silent for 14-30 s (the master, then every actor, drained in turn)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.interrupt import EXIT_INTERRUPTED, STOP_BUDGET, STOPPING

REPO = Path(__file__).resolve().parent.parent
PROMISE = 2.0  # seconds from the first Ctrl-C to the launcher's exit (the word)
BURN_JOB = '''
from actors.sdk import MapReduceJob


class Burn(MapReduceJob):
    """Counts words after burning CPU on every line: user code that keeps its process busy."""

    name = "burn_cpu"

    def mapper(self, line):
        total = 0
        for i in range(300_000):
            total += i * i
        for word in line.split():
            yield word, 1

    def reducer(self, key, values):
        return sum(values)
'''


class Run:
    """`mapreduce run` of the CPU-burning job in a session of its own (so SIGINT is not ignored, as it is for a
    shell's background job), its stderr read line by line on a thread."""

    def __init__(self, tmp_path: Path) -> None:
        jobs = tmp_path / "jobs"
        jobs.mkdir()
        (jobs / "burn_cpu_job.py").write_text(BURN_JOB, encoding="utf-8")
        words = tmp_path / "words.txt"
        words.write_text("".join(f"alpha beta gamma {i % 7} delta\n" for i in range(3000)))
        self.logs = tmp_path / "tmp"
        self.logs.mkdir()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(jobs), str(REPO)]), "TMPDIR": str(self.logs),
               "MR_JOB_MODULES": "burn_cpu_job"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "actors", "run", str(words), "--job", "burn_cpu", "--static", "--mappers", "2",
             "--reducers", "1", "--split-size", "4096"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for_line(self, prefix: str, timeout: float = 90.0) -> list[str]:
        """Every line up to the first starting with ``prefix`` (bounded)."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            assert line is not None, f"exited ({self.process.wait()}) before {prefix!r}: {seen}"
            seen.append(line)
            if line.startswith(prefix):
                return seen

    def rest(self) -> list[str]:
        """The lines up to the end of stderr (bounded: the process has exited)."""
        lines = []
        while (line := self.lines.get(timeout=10)) is not None:
            lines.append(line)
        return lines

    def children(self) -> list[int]:
        """The actor processes: every process whose parent is the launcher."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    found.append(int(entry.name))
        return found


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    started = Run(tmp_path)
    yield started
    if started.process.poll() is None:
        os.killpg(started.process.pid, signal.SIGKILL)
        started.process.wait()


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_stops_run_within_two_seconds_and_a_second_kills_at_once(run: Run, presses: int) -> None:
    run.wait_for_line("running: ")  # planned and mapping: the mappers are deep in the user's CPU-bound code
    actors = run.children()
    assert len(actors) == 4, actors  # a master, two mappers, a reducer
    pressed = time.monotonic()
    run.process.send_signal(signal.SIGINT)
    if presses == 2:
        run.wait_for_line(STOPPING, timeout=PROMISE)
        pressed = time.monotonic()
        run.process.send_signal(signal.SIGINT)
    code = run.process.wait(timeout=30)
    took = time.monotonic() - pressed
    after = run.rest()
    assert code == EXIT_INTERRUPTED, after
    if presses == 1:
        assert took < PROMISE, f"{took:.2f} s from Ctrl-C to exit"
        assert [line for line in after if not line.startswith("running: ")] == [STOPPING], after
    else:
        # Killed, not stopped: well within the budget the first press gave the actors to exit on their own.
        assert took < STOP_BUDGET, f"{took:.2f} s from the second Ctrl-C to exit"
        assert not [line for line in after if not line.startswith("running: ")], after
    assert not [pid for pid in actors if Path(f"/proc/{pid}").exists()]  # every actor gone, and reaped
    assert list(run.logs.iterdir()) == []  # an interrupt is no error: the actors' logs are not kept
