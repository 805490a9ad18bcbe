"""The test tiers (tests/tiers.py): a test lands in ``process`` from what it reaches, and a test that starts a
process without that mark fails (tests/conftest.py), so the quick tier never silently pays for one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from .conftest import Cluster, ClusterFactory, Spawns
from .tiers import Classifier, task_jobs

# Samples of test code, classified below as if they were tests (their names do not start with ``test_``).


async def a_user_job_on_in_process_actors(make_cluster: ClusterFactory, user_module: str) -> None:
    cluster = await make_cluster(mappers=1, reducers=1, job_modules=(user_module,))
    await cluster.run_text("a b a\n")


async def a_built_in_without_an_engine(shared_cluster: Cluster) -> None:
    await shared_cluster.submit({"job": "grep", "params": {"pattern": "a"}, "input": {"text": "a b\n"}})


async def the_native_word_count(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=2, reducers=2)
    await cluster.run_text("a b a\n")


def a_user_job_without_actors(user_module: str) -> dict[str, Any]:
    from actors.sequential import run_sequential

    return run_sequential("longest", b"a bb\n", "input", modules=(user_module,))


def a_helper_of_tests_that_spawns() -> None:
    run_a_child()


def run_a_child() -> None:
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def tiers(sample: Any, *fixtures: str) -> set[str]:
    return Classifier().tiers_of(sys.modules[__name__], sample, fixtures)


def test_a_user_job_run_by_in_process_actors_is_a_process_test() -> None:
    # The actors run a user job's code in task processes (python -m actors.tasks.worker); nothing in the test's own
    # code starts one, so only the job it hands the actors tells.
    assert "process" in tiers(a_user_job_on_in_process_actors, "make_cluster")
    assert "process" in tiers(a_built_in_without_an_engine, "shared_cluster")


def test_in_process_actors_on_a_native_job_and_a_user_job_without_actors_are_quick() -> None:
    assert "process" not in tiers(the_native_word_count, "make_cluster")
    assert "process" not in tiers(a_user_job_without_actors)


def test_a_spawn_reached_through_helpers_of_tests_is_a_process_test() -> None:
    assert "process" in tiers(a_helper_of_tests_that_spawns)


def test_the_jobs_that_run_in_task_processes_are_the_catalogs_jobs_without_an_engine() -> None:
    names = task_jobs()
    assert names.search('"grep"') and names.search("median_length")
    assert not names.search('"wordcount"') and not names.search("inverted_index")


def test_a_spawn_is_seen_and_a_spawn_in_an_unmarked_test_fails(tmp_path: Path) -> None:
    spawns = Spawns()
    sys.addaudithook(spawns.hook)  # stays for the session: a Spawns only appends, and this one is dropped after
    run_a_child()
    assert spawns.seen and spawns.seen[0].startswith("subprocess.Popen")
    # A test that starts a process behind the classifier's back (here: through a name it cannot follow) fails,
    # naming the gap; the same test marked process passes.
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n"
                                           "markers =\n    process: starts processes\n")
    (tmp_path / "test_hidden.py").write_text(HIDDEN)
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
                          "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "2 passed, 1 error" in run.stdout, run.stdout + run.stderr  # the error: test_unmarked at its teardown
    assert "test_hidden.py::test_unmarked started processes but is not marked process" in run.stdout


ROOT = Path(__file__).resolve().parent.parent
HIDDEN = """
import subprocess
import sys

import pytest

spawn = getattr(subprocess, "run")  # as project code would: nothing of tests/ to follow, no spawning call


def test_unmarked() -> None:
    spawn([sys.executable, "-c", "pass"], check=True)


@pytest.mark.process
def test_marked() -> None:
    spawn([sys.executable, "-c", "pass"], check=True)
"""
