"""mrjob jobs run unchanged: mrjob's own examples, as its package ships them, on a real local cluster, against what
mrjob's own inline runner prints for the same input (docs/mrjob.md)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import posixpath
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from actors.api import AsyncClient
from actors.jobs import load_catalog

from .conftest import Cluster, ClusterFactory

mrjob = pytest.importorskip("mrjob")  # the `mrjob` extra (the `test` extra installs it)
from mrjob.examples import mr_most_used_word  # noqa: E402
from mrjob.job import MRJob  # noqa: E402

EXAMPLES = Path(mr_most_used_word.__file__).parent
MODULES = ("mr_word_freq_count", "mr_wc", "mr_most_used_word", "mr_next_word_stats", "mr_count_lines_by_file",
           "mr_text_classifier", "mr_boom", "mr_grep")
JOB_MODULES = tuple(f"mrjob.examples.{name}" for name in MODULES)
DATA = Path(__file__).resolve().parent.parent / "data"
BOOK = (DATA / "genesis-kjv.txt").read_text(encoding="utf-8").splitlines(keepends=True)


@pytest.fixture
def inputs(data_root: Path) -> dict[str, list[str]]:
    """Each job's inputs under the data root: two books, and the documents mr_text_classifier ships."""
    (data_root / "books").mkdir()
    (data_root / "books" / "one.txt").write_text("".join(BOOK[:300]), encoding="utf-8")
    (data_root / "books" / "two.txt").write_text("".join(BOOK[300:420]), encoding="utf-8")
    shutil.copytree(EXAMPLES / "docs-to-classify", data_root / "docs-to-classify")
    books = ["books/one.txt", "books/two.txt"]
    docs = sorted(f"docs-to-classify/{name}" for name in os.listdir(data_root / "docs-to-classify"))
    return {"mr_word_freq_count": books, "mr_wc": books, "mr_most_used_word": books, "mr_next_word_stats": books,
            "mr_count_lines_by_file": books, "mr_text_classifier": docs}


def job_class(name: str) -> type[MRJob]:
    module = sys.modules[f"mrjob.examples.{name}"]
    [cls] = [value for value in vars(module).values()
             if isinstance(value, type) and issubclass(value, MRJob) and value.__module__ == module.__name__]
    return cls


def inline(name: str, paths: list[str], cwd: Path) -> list[list[Any]]:
    """What mrjob's own inline runner prints for the job, read back by the job's OUTPUT_PROTOCOL."""
    run = subprocess.run([sys.executable, "-m", f"mrjob.examples.{name}", "-r", "inline", "--no-conf", *paths],
                         cwd=cwd, capture_output=True, timeout=120, check=True)
    protocol = job_class(name)(args=[]).output_protocol()
    return [list(protocol.read(line)) for line in run.stdout.splitlines()]


async def run_job(cluster: Cluster, name: str, paths: list[str]) -> list[list[Any]]:
    body = await cluster.submit({"job": name, "input": {"paths": paths}, "split_size": 4096})
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{body['id']}/result", params={"wait": "120"}) as response:
        answer = await response.json()
    assert response.status == 200 and isinstance(answer["result"], list), (answer, await cluster.status(body["id"]))
    return list(answer["result"])


def multiset(records: list[list[Any]]) -> list[str]:
    return sorted(json.dumps(record, sort_keys=True) for record in json.loads(json.dumps(records)))


def close(ours: Any, theirs: Any) -> bool:
    """Equal, floats within 1e-9 relative (a float summed in another order: see the classifier's test)."""
    if isinstance(ours, float) or isinstance(theirs, float):
        return math.isclose(ours, theirs, rel_tol=1e-9)
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(map(close, ours, theirs))
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(close(ours[key], theirs[key]) for key in ours)
    return bool(ours == theirs)


@pytest.fixture
def registered() -> Any:
    yield
    load_catalog.cache_clear()


def test_each_example_is_a_job_named_after_its_module(registered: None) -> None:
    catalog = load_catalog(JOB_MODULES)
    assert set(MODULES) <= set(catalog.names())
    classifier = catalog.classes["mr_text_classifier"]
    assert classifier.has_steps() and not classifier.has_mapper_raw()  # its first step's mapper_raw: Step.mapper_raw
    assert set(classifier.parameters) == {"min-df", "max-df", "max-ngram-size", "stop-words", "short-doc-threshold",
                                          "no-test-set"}
    assert catalog.classes["mr_most_used_word"].files == {"stop_words.txt": "package:stop_words.txt"}
    assert catalog.classes["mr_next_word_stats"].sort_values
    assert not catalog.classes["mr_word_freq_count"].has_mapper_raw()


def test_the_catalog_imports_mrjob_only_for_a_module_that_did() -> None:
    code = ("import sys; from actors.jobs import load_catalog; load_catalog(()); "
            "print('mrjob' in sys.modules, 'actors.jobs.mrjobs' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["False", "False"]


async def test_mrjob_examples_equal_mrjobs_inline_runner(make_cluster: ClusterFactory, inputs: dict[str, list[str]],
                                                        data_root: Path, registered: None) -> None:
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=JOB_MODULES)
    for name, paths in inputs.items():
        ours = await run_job(cluster, name, paths)
        theirs = inline(name, paths, data_root)
        if name == "mr_count_lines_by_file":  # mrjob names an input by its URI, we by its path as given
            theirs = [[posixpath.basename(key), value] for key, value in theirs]
            ours = [[posixpath.basename(key), value] for key, value in ours]
        assert theirs, name
        if name == "mr_text_classifier":
            # Each document's score sums its n-grams' float scores in the order its reducer receives them, which
            # MapReduce leaves open (mrjob's inline runner: its map output's order; here: the partitions'): the
            # sums may differ in their last bits. Everything else in the records is exact.
            assert len(ours) == len(theirs)
            pairs = zip(sorted(ours, key=json.dumps), sorted(theirs, key=json.dumps), strict=True)
            for mine, other in pairs:
                assert mine[0] == other[0] and close(mine[1], other[1]), (mine, other)
        else:
            assert multiset(ours) == multiset(theirs), name


async def test_mr_boom_fails_naming_its_exception_and_mapper_cmd_is_refused(make_cluster: ClusterFactory,
                                                                             inputs: dict[str, list[str]],
                                                                             registered: None) -> None:
    cluster = await make_cluster(mappers=1, reducers=1, job_modules=JOB_MODULES)
    body = await cluster.submit({"job": "mr_boom", "input": {"paths": ["books/one.txt"]}})
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{body['id']}/result", params={"wait": "60"},
                                   headers=cluster.auth):
        pass
    status = await cluster.status(body["id"])
    assert status["state"] == "failed", status
    assert "mapper_init (input 'books/one.txt') raised Exception: BOOM" in status["error"], status
    spec = {"job": "mr_grep", "params": {"expression": "God"}, "input": {"paths": ["books/one.txt"]}}
    async with cluster.session.post(f"{cluster.url}/v1/jobs", json=spec, headers=cluster.auth) as response:
        answer = await response.json()
    assert response.status == 400, answer
    assert "mapper_cmd" in answer["message"], answer
    spec = {"job": "mr_grep", "params": {"no-such-option": "1"}, "input": {"paths": ["books/one.txt"]}}
    async with cluster.session.post(f"{cluster.url}/v1/jobs", json=spec, headers=cluster.auth) as response:
        answer = await response.json()
    assert response.status == 400 and "no-such-option" in answer["message"], answer


async def test_an_add_file_arg_file_is_a_side_file_copied_into_every_task(make_cluster: ClusterFactory,
                                                                          inputs: dict[str, list[str]],
                                                                          data_root: Path, registered: None) -> None:
    """mr_most_used_word's ``--stop-words-file`` (an ``add_file_arg``): a file under the data root, pinned at submit,
    copied into each task as its base name, which is the option's value as the job sees it; the answer equals mrjob's
    inline runner's with the same file. A missing or escaping file is a 400 naming the option."""
    (data_root / "lists").mkdir()
    stop = (data_root / "lists" / "my_stops.txt")
    stop.write_text("the\nand\nof\nunto\nhe\n", encoding="utf-8")
    catalog = load_catalog(JOB_MODULES)
    assert catalog.classes["mr_most_used_word"].file_params == {"stop-words-file"}
    cluster = await make_cluster(mappers=2, reducers=2, job_modules=JOB_MODULES)
    paths = inputs["mr_most_used_word"]
    spec = {"job": "mr_most_used_word", "params": {"stop-words-file": "lists/my_stops.txt"},
            "input": {"paths": paths}, "split_size": 4096}
    body = await cluster.submit(spec)
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{body['id']}/result", params={"wait": "120"}) as response:
        answer = await response.json()
    assert response.status == 200, (answer, await cluster.status(body["id"]))
    run = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "mrjob.examples.mr_most_used_word", "-r", "inline", "--no-conf",
                         "--stop-words-file", str(stop), *paths], cwd=data_root, capture_output=True, timeout=120,
        check=True)
    theirs = [[None, json.loads(line)] for line in run.stdout.splitlines()]
    assert answer["result"] == theirs and theirs != [[None, "the"]], (answer, theirs)
    async with AsyncClient(cluster.url, timeout=20.0) as api:  # the NDJSON client takes a null key (an OutputKey)
        assert [[key, value] async for key, value in api.job(body["id"]).iter_result()] == theirs
    default = await run_job(cluster, "mr_most_used_word", paths)  # its own FILES stop list: another answer
    assert default != theirs
    for path, words in (("lists/missing.txt", "is missing"), ("../outside.txt", "without '..'"),
                        ("/etc/passwd", "relative to the data root"),
                        ("package:stop_words.txt", "under the data root")):
        spec["params"] = {"stop-words-file": path}
        async with cluster.session.post(f"{cluster.url}/v1/jobs", json=spec, headers=cluster.auth) as response:
            refused = await response.json()
        assert response.status == 400, refused
        assert "parameter 'stop-words-file'" in refused["message"] and words in refused["message"], refused
