"""Local mode heals like Kubernetes: an actor process that dies is restarted by the local cluster's supervisor and
announced; a crash loop is given up after its bound; the status API counts restarts; no process outlives the
cluster; `mapreduce run` and `local` keep their logs when something went wrong. Real processes, real signals."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import pytest

from actors.core.errors import ConfigError, MapReduceError
from actors.local import LocalCluster
from actors.supervise import RestartBudget, RestartPolicy, exit_cause

from .conftest import HeldInputFactory
from .support import DRILL_ENV, alive, make_text_file
from .test_faults import HELD_ENV, client_of, hold_reads_of, reader_of, still_exact, struck_attempt, submit_held

REPO = Path(__file__).resolve().parent.parent


def oracle(data: bytes) -> dict[str, int]:
    return dict(Counter(data.decode().split()))


# ---------------------------------------------------------------- the pure part


def test_the_budget_backs_off_and_gives_up_past_its_bound_within_the_window() -> None:
    budget = RestartBudget(RestartPolicy(limit=3, window=10.0, backoff=0.5, backoff_max=1.5))
    pauses = []
    for now in (0.0, 1.0, 2.0):
        pauses.append(budget.pause(now))
        budget.spend(now)
    assert pauses == [0.5, 1.0, 1.5]  # doubled, then capped
    assert budget.pause(3.0) is None  # a fourth exit within 10 s: a crash loop
    assert budget.pause(10.5) == 1.5  # the first restart has left the window: one more is allowed
    assert budget.pause(30.0) == 0.5  # a quiet while: the backoff starts over
    assert RestartBudget(RestartPolicy(limit=0)).pause(0.0) is None


def test_exit_causes_read_as_a_person_reads_them() -> None:
    assert exit_cause(-signal.SIGKILL) == "signal 9"
    assert exit_cause(1) == "code 1"
    with pytest.raises(MapReduceError):
        RestartPolicy(backoff=2.0, backoff_max=1.0)


# ---------------------------------------------------------------- a supervised cluster


class Announced:
    """The cluster's announcements, and a bounded wait for one of them."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self.seen: Callable[[], None] = lambda: None

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        self.seen()
        self._changed.set()

    async def wait_for(self, pattern: str, timeout: float = 60.0) -> str:
        async with asyncio.timeout(timeout):
            while True:
                found = [line for line in self.lines if re.fullmatch(pattern, line)]
                if found:
                    return found[0]
                self._changed.clear()
                await self._changed.wait()


async def restarts_shown(cluster: LocalCluster) -> dict[str, int | None]:
    view = await cluster.get_json("/v1/cluster/actors")
    return {a["name"]: a["restarts"] for a in view["actors"]}


async def test_a_mapper_and_a_reducer_killed_mid_job_are_restarted_and_the_job_is_exact(
    tmp_path: Path, held_input: HeldInputFactory
) -> None:
    data = make_text_file(tmp_path / "book.txt", 4, seed=31)
    source = await held_input(data)
    announced = Announced()
    pids: set[int] = set()
    async with LocalCluster(mappers=3, reducers=2, discovery="static", data_root=str(tmp_path), extra_env=HELD_ENV,
                            log_dir=str(tmp_path / "logs"), announce=announced) as cluster:
        announced.seen = lambda: pids.update(a.pid for a in cluster.actors)  # restarted processes too
        pids.update(a.pid for a in cluster.actors)
        urls = {a.name: a.url for a in cluster.actors}
        assert set((await restarts_shown(cluster)).values()) == {0}
        async with client_of(cluster) as client:
            job_id, splits = await submit_held(client, source)
            first, last = splits[4], splits[-3]
            hold_reads_of(source, [first, last])
            source.release_all()
            # A mapper is certainly inside its split while its read is held: kill it there.
            read, victim, attempt = await reader_of(client, source, job_id, first)
            cluster.signal(victim, signal.SIGKILL)
            source.release(read)
            await announced.wait_for(rf"mapreduce: {victim} exited \(signal 9\); restarted \(restart 1\)")
            # The job cannot finish while the last read is held: the reducer dies before its report.
            read, _, _ = await reader_of(client, source, job_id, last)
            cluster.signal("reducer-1", signal.SIGKILL)
            await announced.wait_for(r"mapreduce: reducer-1 exited \(signal 9\); restarted \(restart 1\)")
            source.release(read)
            assert await client.result(job_id) == oracle(data)
            status = await client.status(job_id, splits=True)
            struck_attempt(status, first["split"], attempt, victim)
            assert {r["partition"] for r in status["recoveries"]} == {1}  # the new reducer's partition was redone
            await still_exact(client)
        assert len(announced.lines) == 2, announced.lines
        assert {a.name: a.url for a in cluster.actors} == urls  # a static list's addresses still hold
        shown = await restarts_shown(cluster)
        assert shown == {**dict.fromkeys(shown, 0), victim: 1, "reducer-1": 1}, shown
    assert not [pid for pid in pids if alive(pid)], "actor processes outlived the cluster"
    assert len(pids) == 6 + 2  # six actors, two of them restarted once


async def test_a_crash_loop_is_given_up_after_the_bound_and_a_needed_actor_breaks_the_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the cluster's own log directory goes here
    announced = Announced()
    broken: list[str] = []
    pids: set[int] = set()
    policy = RestartPolicy(limit=2, window=60.0, backoff=0.05)
    async with LocalCluster(mappers=2, reducers=1, discovery="static", extra_env=DRILL_ENV,
                            restarts=policy, announce=announced,
                            on_broken=lambda: broken.append("broken")) as cluster:
        announced.seen = lambda: pids.update(a.pid for a in cluster.actors)
        pids.update(a.pid for a in cluster.actors)
        # Only the restarted processes get a setting that stops them at once: every restart exits again.
        cluster.actor("mapper-1").env["MR_CHUNK_SIZE"] = "nonsense"
        cluster.signal("mapper-1", signal.SIGKILL)
        log = cluster.actor("mapper-1").log_path
        await announced.wait_for(r"mapreduce: mapper-1 exited .*gave up.*")
        expected = [
            r"mapreduce: mapper-1 exited \(signal 9\); restarted \(restart 1\)",
            r"mapreduce: mapper-1 exited \(code [12]\); restarted \(restart 2\)",  # a bad setting's exit status
            r"mapreduce: mapper-1 exited \(code [12]\); gave up after 2 restarts in 60 s \(its log: "
            + re.escape(str(log)) + r"\)",
        ]
        assert len(announced.lines) == 3 and all(map(re.fullmatch, expected, announced.lines)), announced.lines
        assert "MR_CHUNK_SIZE='nonsense' is not an integer" in log.read_text()
        assert cluster.given_up == ["mapper-1"] and cluster.broken() == "" and broken == []
        async with client_of(cluster) as client:
            await still_exact(client)  # one mapper is enough

        cluster.actor("reducer-0").env["MR_CHUNK_SIZE"] = "nonsense"
        cluster.signal("reducer-0", signal.SIGKILL)
        await announced.wait_for(r"mapreduce: reducer-0 exited .*gave up.*")
        assert broken == ["broken"]
        with pytest.raises(MapReduceError, match="reducer-0 kept exiting and was given up"):
            cluster.check()
        assert sum("gave up" in line for line in announced.lines) == 2  # said once per actor
        log_dir = cluster.log_dir
    assert not [pid for pid in pids if alive(pid)], "actor processes outlived the cluster"
    assert announced.lines[-1] == f"mapreduce: the actors' logs are kept in {log_dir}"
    assert (log_dir / "reducer-0.log").exists()


async def test_an_actor_restarted_by_hand_is_not_restarted_again_and_stop_leaves_nothing(tmp_path: Path) -> None:
    announced = Announced()
    pids: set[int] = set()
    async with LocalCluster(mappers=1, reducers=1, discovery="static", extra_env=DRILL_ENV,
                            log_dir=str(tmp_path / "logs"), announce=announced) as cluster:
        pids.update(a.pid for a in cluster.actors)
        cluster.signal("mapper-0", signal.SIGKILL)
        # By hand first: the supervisor's watcher, waking after it, finds a new process and only watches it.
        await cluster.restart("mapper-0")
        pids.add(cluster.actor("mapper-0").pid)
        assert cluster.actor("mapper-0").restarts == 1
        assert announced.lines == []
        assert (await restarts_shown(cluster))["mapper-0"] == 1
    assert not [pid for pid in pids if alive(pid)]
    assert (tmp_path / "logs").exists()  # a directory it was given is never removed


async def test_a_setting_to_fix_leaves_no_log_directory_behind(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    announced = Announced()
    with pytest.raises(ConfigError):
        async with LocalCluster(mappers=1, reducers=1, discovery="static",
                                announce=announced):
            raise ConfigError("MR_SOMETHING is wrong")  # its message names the fix: the logs add nothing
    assert announced.lines == [] and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- the commands


class Stderr:
    """A subprocess's stderr lines, read by a thread, so a test waits for one with a timeout."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(process.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream: TextIO) -> None:
        for line in stream:
            self._queue.put(line)

    def wait_for(self, pattern: str, timeout: float = 60.0) -> str:
        while True:
            line = self._queue.get(timeout=timeout).rstrip("\n")
            self.lines.append(line)
            if re.fullmatch(pattern, line):
                return line

    def rest(self) -> list[str]:
        self._thread.join(timeout=30)
        while not self._queue.empty():
            self.lines.append(self._queue.get().rstrip("\n"))
        return self.lines


def child_named(parent: int, name: str) -> int:
    """The pid of ``parent``'s child process whose MR_NAME is ``name`` (an actor of a `mapreduce` command)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    for pid in map(int, children):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"MR_NAME={name}".encode() in environ:
            return pid
    raise AssertionError(f"no child {name} of {parent}")


@pytest.mark.parametrize("discovery", ["static", "mdns"])
def test_mapreduce_local_restarts_a_killed_mapper_shows_it_and_keeps_its_logs(tmp_path: Path, discovery: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)}
    env.pop("MR_API_TOKEN", None)
    static = ["--static"] if discovery == "static" else []  # mDNS: the new process announces itself again
    process = subprocess.Popen(
        [sys.executable, "-m", "actors", "local", "--port", "0", *static, "--mappers", "2", "--reducers", "1",
         "--data-root", str(tmp_path)], env=env, stderr=subprocess.PIPE, text=True)
    stderr = Stderr(process)
    try:
        ready = stderr.wait_for(r"local cluster ready: .*")
        url = ready.split("master ", 1)[1].split(",", 1)[0]
        log_dir = Path(stderr.wait_for(r"logs: .*").split(": ", 1)[1])
        os.kill(child_named(process.pid, "mapper-1"), signal.SIGKILL)
        stderr.wait_for(r"mapreduce: mapper-1 exited \(signal 9\); restarted \(restart 1\)")
        deadline = time.monotonic() + 60
        while True:  # the new process is starting: its row turns ready, with its count (another process's state)
            with urllib.request.urlopen(f"{url}/v1/cluster/actors", timeout=30) as response:
                rows: dict[str, Any] = {a["name"]: a for a in json.load(response)["actors"]}
            if rows["mapper-1"]["ready"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert rows["mapper-1"]["ready"] and rows["mapper-1"]["restarts"] == 1, rows
        assert rows["mapper-0"]["restarts"] == 0 and rows["master-0"]["restarts"] == 0, rows
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    lines = stderr.rest()
    assert code == 0, lines
    assert f"mapreduce: the actors' logs are kept in {log_dir}" in lines, lines
    readies = [json.loads(line) for line in (log_dir / "mapper-1.log").read_text().splitlines()
               if '"actor_ready"' in line]
    assert len(readies) == 2  # the first process and the restarted one, in one log


def test_mapreduce_run_keeps_its_logs_when_the_job_fails_and_removes_them_when_it_succeeds(tmp_path: Path) -> None:
    logs = tmp_path / "tmp"
    logs.mkdir()
    words = tmp_path / "words.txt"
    words.write_text(" ".join(f"distinct{i}" for i in range(2000)))
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(logs)}
    command = [sys.executable, "-m", "actors", "run", str(words), "--static", "--mappers", "1", "--reducers", "1"]
    failed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False,
                            env={**env, "MR_RESULT_MAX": "1024"})
    assert failed.returncode == 1, failed.stderr
    assert "(MR_RESULT_MAX)" in failed.stderr
    kept = re.search(r"^mapreduce: the actors' logs are kept in (.+)$", failed.stderr, re.MULTILINE)
    assert kept is not None, failed.stderr
    assert Path(kept[1]).parent == logs and (Path(kept[1]) / "master.log").exists()

    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=env)
    assert done.returncode == 0, done.stderr
    assert "logs are kept" not in done.stderr
    assert list(logs.iterdir()) == [Path(kept[1])]  # the successful run's directory is gone
