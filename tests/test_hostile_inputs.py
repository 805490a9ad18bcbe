"""Hostile inputs against a real master: globs whose matches repeat or sprawl, symlink loops, over-long names, jobs
whose own set-up raises, and `mapreduce run` with its output in another tree.

Each refusal is a 4xx naming the problem (and the setting, for a limit); a job that runs runs over every file it
named, equal to the sequential oracle.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from actors import cli
from actors.inputs import paths
from actors.jobs import load_catalog
from actors.local import LocalCluster
from actors.master.keys import STORE
from actors.sequential import run_sequential_inputs

from .conftest import ClusterFactory, eventually


async def submit(cluster: Any, spec: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
    async with cluster.session.post(f"{cluster.url}/v1/jobs", json=spec) as response:
        return response.status, dict(response.headers), dict(await response.json())


def nested_logs(root: Path, depth: int, per_level: int) -> dict[str, bytes]:
    """``logs/d1/d2/...`` with ``per_level`` files at every level: ``logs/**/**/*.log`` matches a file at depth d
    (d directories below logs) d+1 times."""
    files: dict[str, bytes] = {}
    folder = Path("logs")
    for level in range(depth + 1):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(per_level):
            name = (folder / f"f{i}.log").as_posix()
            data = f"word{level} word{i} level{level}x{i} shared\n".encode()
            (root / name).write_bytes(data)
            files[name] = data
        folder = folder / f"d{level + 1}"
    return files


# ---- duplicate matches -------------------------------------------------------------------------------------------


async def test_a_repeated_double_star_glob_runs_over_every_distinct_file(make_cluster: ClusterFactory,
                                                                         data_root: Path) -> None:
    files = nested_logs(data_root, depth=3, per_level=6)  # 24 files, 60 matches of logs/**/**/*.log
    cluster = await make_cluster(mappers=2, reducers=2, max_inputs=30)
    status, _, body = await submit(cluster, {"job": "inverted_index", "input": {"paths": ["logs/**/**/*.log"]},
                                             "split_size": 4096})
    assert status == 202, body  # before: 202 too, but over the few files left once duplicate matches were cut
    result = await cluster.result(body["id"])
    assert result == run_sequential_inputs("inverted_index", sorted(files.items()))
    assert (await cluster.status(body["id"]))["progress"]["splits_total"] == len(files)


async def test_a_glob_of_a_thousand_double_stars_costs_what_one_does(make_cluster: ClusterFactory,
                                                                      data_root: Path) -> None:
    """``**/**/...`` 1,500 times: every state of the glob's automaton used to walk the whole run of ``**`` on every
    entry (quadratic in the pattern: 9 s of master CPU for 20 files, hours for a longer one). A run of ``**`` is
    the one it equals, and the job runs over every file."""
    files = nested_logs(data_root, depth=1, per_level=10)
    cluster = await make_cluster(mappers=1, reducers=2)
    started = time.monotonic()
    status, _, body = await submit(cluster, {"job": "inverted_index",
                                             "input": {"paths": ["logs/" + "**/" * 1500 + "*.log"]}})
    assert status == 202, body
    assert time.monotonic() - started < 5.0
    assert await cluster.result(body["id"]) == run_sequential_inputs("inverted_index", sorted(files.items()))


async def test_a_glob_over_more_distinct_files_than_max_inputs_is_refused(make_cluster: ClusterFactory,
                                                                          data_root: Path) -> None:
    nested_logs(data_root, depth=3, per_level=6)
    cluster = await make_cluster(mappers=1, reducers=1, max_inputs=20)
    status, _, body = await submit(cluster, {"job": "wordcount", "input": {"paths": ["logs/**/**/*.log"]}})
    assert status == 400, body  # before: 202, and `done` over 7 of the 24 files
    assert "more than 20 files" in body["message"] and "(MR_MAX_INPUTS)" in body["message"], body


async def test_a_glob_examining_more_entries_than_max_path_scan_is_refused_quickly(make_cluster: ClusterFactory,
                                                                                   data_root: Path) -> None:
    nested_logs(data_root, depth=40, per_level=25)  # 1,025 files; a repeated ** used to match them 10^4-10^5 times
    cluster = await make_cluster(mappers=1, reducers=1, max_path_scan=300)
    started = time.monotonic()
    status, _, body = await submit(cluster, {"job": "wordcount",
                                             "input": {"paths": ["logs/**/**/**/**/*.nomatch"]}})
    assert status == 400 and "(MR_MAX_PATH_SCAN)" in body["message"], body
    assert "more than 300 directory entries" in body["message"], body
    assert time.monotonic() - started < 5.0


async def test_expansions_past_max_expansions_get_429_and_a_slot_lasts_as_long_as_its_thread(
    make_cluster: ClusterFactory, data_root: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = nested_logs(data_root, depth=0, per_level=2)
    entered, release = threading.Event(), threading.Event()
    real = paths.expand_paths

    def held(*args: Any) -> list[str]:
        entered.set()
        release.wait(10.0)  # bounded: the test releases it
        return real(*args)

    monkeypatch.setattr(paths, "expand_paths", held)
    cluster = await make_cluster(mappers=1, reducers=1, max_expansions=1)
    inputs = cluster.master.app[STORE]
    spec = {"job": "wordcount", "input": {"paths": ["logs"]}}
    first = asyncio.ensure_future(inputs.expand(["logs"]))
    try:
        await asyncio.to_thread(entered.wait, 10.0)
        status, headers, body = await submit(cluster, spec)
        assert status == 429 and "(MR_MAX_EXPANSIONS)" in body["message"], body
        assert "Retry-After" in headers
        first.cancel()  # the request goes away; its walk goes on in its thread, and keeps the slot till it ends
        await asyncio.gather(first, return_exceptions=True)
        assert first.cancelled() and inputs.expanding == 1
    finally:
        release.set()
    await eventually(lambda: inputs.expanding == 0)
    status, _, body = await submit(cluster, spec)
    assert status == 202, body
    assert await cluster.result(body["id"]) == run_sequential_inputs("wordcount", sorted(files.items()))


# ---- client-caused 500s ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "message"), [
    ({"path": "loop"}, "'loop' cannot be used: it passes through a symlink loop"),
    ({"path": "docs/loop/a.txt"}, "passes through a symlink loop"),
    ({"paths": ["loop"]}, "'loop' cannot be used: it passes through a symlink loop"),
    ({"paths": ["docs/loop/a.txt"]}, "passes through a symlink loop"),
    ({"paths": ["*"]}, "'loop' cannot be used: it passes through a symlink loop"),
    ({"paths": ["docs"]}, "'docs/loop' cannot be used: it passes through a symlink loop"),
    ({"paths": ["docs/" + "n" * 300]}, "cannot be used: File name too long"),
    ({"paths": ["n" * 300 + "/a.txt"]}, "cannot be used: File name too long"),
    ({"paths": ["n" * 300 + "/*.txt"]}, "cannot be used: File name too long"),
    ({"path": "docs/" + "n" * 300}, "cannot be used: File name too long"),
])
async def test_symlink_loops_and_overlong_names_are_400s(make_cluster: ClusterFactory, data_root: Path,
                                                         given: dict[str, Any], message: str) -> None:
    (data_root / "docs").mkdir()
    (data_root / "docs" / "a.txt").write_text("a b\n")
    (data_root / "loop").symlink_to("loop")
    if given.get("paths") == ["docs"] or "docs/loop" in json.dumps(given):
        (data_root / "docs" / "loop").symlink_to("loop")
    cluster = await make_cluster(mappers=1, reducers=1)
    status, _, body = await submit(cluster, {"job": "wordcount", "input": given})
    assert status == 400, body  # before: 500 (RuntimeError from Path.resolve, OSError from Path.exists)
    assert message in body["message"], body
    assert await cluster.run_text("a a b") == {"a": 2, "b": 1}


BROKEN_JOBS = '''
from actors.sdk import MapReduceJob


class NeedsParam(MapReduceJob):
    """Reads a parameter it never checked for."""

    name = "needs_param"
    parameters = {"field": "which field"}

    def configure(self, params):
        self.field = int(params["field"])

    def mapper(self, line):
        yield line, 1

    def reducer(self, key, values):
        return sum(values)


class BadInit(MapReduceJob):
    """Fails while being built."""

    name = "bad_init"

    def __init__(self, params=None):
        super().__init__(params)
        raise AttributeError("no attribute 'setup' on this job")

    def mapper(self, line):
        yield line, 1

    def reducer(self, key, values):
        return sum(values)
'''


@pytest.fixture
def broken_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"brokenjobs_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "brokenpkg"
    root.mkdir()
    (root / f"{name}.py").write_text(BROKEN_JOBS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(root))
    yield name
    sys.modules.pop(name, None)
    load_catalog.cache_clear()


@pytest.mark.parametrize(("spec", "message"), [
    ({"job": "needs_param"}, "job 'needs_param': configure raised KeyError: 'field'"),
    ({"job": "needs_param", "params": {"field": "x"}}, "job 'needs_param': invalid literal for int()"),
    ({"job": "bad_init"}, "job 'bad_init': __init__ raised AttributeError: no attribute 'setup' on this job"),
])
async def test_a_job_whose_configure_or_init_raises_is_a_400(make_cluster: ClusterFactory, broken_jobs: str,
                                                            spec: dict[str, Any], message: str) -> None:
    cluster = await make_cluster(mappers=1, reducers=1, job_modules=(broken_jobs,))
    status, _, body = await submit(cluster, {**spec, "input": {"text": "a b"}})
    assert status == 400 and body["error"] == "bad_params", body  # before: 500
    assert message in body["message"], body
    status, _, body = await submit(cluster, {"job": "needs_param", "params": {"field": "1"}, "input": {"text": "a"}})
    assert status == 202 and await cluster.result(body["id"]) == {"a": 1}


# ---- mapreduce run --output elsewhere ----------------------------------------------------------------------------


def books(tmp_path: Path) -> tuple[Path, list[tuple[str, bytes]]]:
    shelf = tmp_path / "in" / "books"
    shelf.mkdir(parents=True)
    docs = [("a.txt", b"the cat sat\nthe end\n"), ("b.txt", b"a cat ran\nthe dog sat\n")]
    for name, data in docs:
        (shelf / name).write_bytes(data)
    return shelf, docs


def test_run_with_the_output_in_another_tree_keeps_the_data_root_and_the_names_and_needs_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    shelf, docs = books(tmp_path)
    (tmp_path / "secret.txt").write_text("root:x:0:0:secret\n")  # outside the inputs, inside their common parent
    output = tmp_path / "out" / "result"
    (tmp_path / "out").mkdir()
    clusters: list[LocalCluster] = []
    probes: dict[str, Any] = {}

    class Recorded(LocalCluster):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            clusters.append(self)

    follow = cli._follow

    async def probe_then_follow(session: aiohttp.ClientSession, job_id: str,
                                check: Callable[[], None]) -> dict[str, Any]:
        # Another local process, while the run's cluster serves: first without the token, then as if it had it.
        (cluster,) = clusters
        async with aiohttp.ClientSession() as other:
            spec = {"job": "wordcount", "input": {"path": "secret.txt"}}
            async with other.post(f"{cluster.master_url}/v1/jobs", json=spec) as response:
                probes["anonymous"] = response.status
            for given in ({"path": "secret.txt"}, {"paths": ["secret.txt"]}, {"path": "../secret.txt"}):
                async with other.post(f"{cluster.master_url}/v1/jobs", headers=cluster.api_headers,
                                      json={"job": "wordcount", "input": given}) as response:
                    probes[json.dumps(given)] = (response.status, await response.json())
        probes["data_root"] = cluster.data_root
        return await follow(session, job_id, check)

    monkeypatch.chdir(shelf)  # the inputs are named by their paths as given: a.txt, b.txt
    monkeypatch.setattr(cli, "LocalCluster", Recorded)
    monkeypatch.setattr(cli, "_follow", probe_then_follow)
    code = cli.main(["run", "--job", "inverted_index", "--static", "--mappers", "1", "--reducers", "2",
                     "a.txt", "b.txt", "--output", str(output)])
    assert code == 0, capsys.readouterr().err
    assert probes["anonymous"] == 401  # before: 202, the master had no API token
    assert probes["data_root"] == str(shelf)  # before: tmp_path, the inputs' and the output's common parent
    for key in ('{"path": "secret.txt"}', '{"paths": ["secret.txt"]}', '{"path": "../secret.txt"}'):
        status, body = probes[key]
        assert status == 400, (key, body)  # before: 202 for the first two, and the secret's words in the result

    # The inputs keep their names, as without --output (before: books/a.txt and books/b.txt).
    written: dict[str, Any] = {}
    for part in sorted(output.glob("part-*.jsonl")):
        for line in part.read_text().splitlines():
            key, value = json.loads(line)
            written[key] = value
    assert (output / "_SUCCESS").is_file()
    expected = run_sequential_inputs("inverted_index", docs)
    assert written == expected
    capsys.readouterr()
    monkeypatch.setattr(cli, "_follow", follow)
    clusters.clear()
    code = cli.main(["run", "--job", "inverted_index", "--json", "--static", "--mappers", "1", "--reducers", "2",
                     "a.txt", "b.txt"])
    assert code == 0
    assert json.loads(capsys.readouterr().out) == written


async def test_a_long_input_or_output_path_is_echoed_cut(make_cluster: ClusterFactory, data_root: Path) -> None:
    """A refusal names the path a client sent, cut to ECHO_LIMIT characters with its length: a glob matching
    nothing was sent back whole (40 kB for a 40 kB pattern), and so was an output path's."""
    nested_logs(data_root, depth=0, per_level=1)
    cluster = await make_cluster(mappers=1, reducers=1)
    pattern = "*" + "/q" * 20_000
    status, _, body = await submit(cluster, {"job": "wordcount", "input": {"paths": [pattern]}})
    assert status == 400 and len(body["message"]) < 300, body["message"][:300]
    assert f"... ({len(pattern)} characters) matches no file under the data root" in body["message"], body
    output = "/".join(["o" * 300] * 10)
    status, _, body = await submit(cluster, {"input": {"text": "a"}, "output": {"path": output}})
    assert status == 400 and len(body["message"]) < 300, body["message"][:300]
    assert f"... ({len(output)} characters) cannot be used: File name too long" in body["message"], body
