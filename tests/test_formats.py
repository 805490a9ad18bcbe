"""Record formats (lines, jsonl, csv: CRLF and a BOM stripped, bad records named by input and byte offset) on real
actors against the sequential oracle, and input names as given on `mapreduce run`'s command line."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors import cli
from actors.jobs import load_catalog
from actors.jobs.records import input_records, lines_of, parse
from actors.sdk import RecordError
from actors.sequential import run_sequential_inputs

from .conftest import Cluster, ClusterFactory
from .test_cli import REPO, mapreduce

BOM = b"\xef\xbb\xbf"

JOBS = '''
import json
from collections import Counter
from actors.sdk import MapReduceJob


class RecordShapes(MapReduceJob):
    """Counts each record by its canonical JSON text, per input."""

    name = "record_shapes"
    combiner = MapReduceJob.SUM
    reducer = MapReduceJob.SUM

    def mapper(self, record):
        yield json.dumps([self.input_name, record], sort_keys=True), 1


class RecordKinds(MapReduceJob):
    """Counts records by their Python type, a batch at a time."""

    name = "record_kinds"
    reducer = MapReduceJob.SUM

    def mapper_batch(self, records):
        return Counter(type(record).__name__ for record in records)
'''


@pytest.fixture
def formats_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"formatjobs_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "formatpkg"
    root.mkdir()
    (root / f"{name}.py").write_text(JOBS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", str(root))  # the task processes import it too
    yield name
    sys.modules.pop(name, None)
    load_catalog.cache_clear()


async def submit(cluster: Cluster, spec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with cluster.session.post(f"{cluster.url}/v1/jobs", json=spec, headers=cluster.auth) as response:
        return response.status, dict(await response.json())


async def finished(cluster: Cluster, spec: dict[str, Any]) -> dict[str, Any]:
    """The job's status once it ended (its result too, when done)."""
    status, body = await submit(cluster, spec)
    assert status == 202, body
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{body['id']}/result", params={"wait": "30"}) as answer:
        result = await answer.json()
    final = await cluster.status(body["id"])
    return {**final, "result": result.get("result")}


# ---- the parser, pure ------------------------------------------------------------------------------------------


def test_crlf_and_a_bom_are_stripped_in_every_format() -> None:
    assert lines_of("a\r\nb\r\n\r\nc\r") == ["a", "b", "", "c"]
    assert lines_of("a\rb\n") == ["a\rb"]  # a lone CR inside a line stays: only a line end's goes
    assert input_records(BOM + b"x y\r\n", "lines", "in") == ["x y"]
    assert input_records(BOM + b'{"a": 1}\r\n\r\n \t\n[2]\r\n', "jsonl", "in") == [{"a": 1}, [2]]
    assert input_records(BOM + b'a,"b,c"\r\n\r\n"",x\r\n', "csv", "in") == [["a", "b,c"], ["", "x"]]
    # Only at byte 0 of the input: a split's own start is no file start.
    assert parse(BOM + b"x\n", "lines", "in", 100) == ["\ufeffx"]


@pytest.mark.parametrize(("data", "fmt", "offset", "why"), [
    (b'{"a": 1}\r\n{"a": \n', "jsonl", 10, "not a JSON line"),
    (b'[1]\nNaN\n', "jsonl", 4, "NaN is not JSON"),
    (b'a,b\n"a"b,c\n', "csv", 4, "not a CSV record"),
    (b'a,b\n"open,x\nrest",y\n', "csv", 4, "a newline inside quotes is not supported"),
    (BOM + b'a\n"\n', "csv", 5, "a quoted CSV field does not end on its line"),
    (b"caf\xe9 \xff\n{\n", "jsonl", 0, "not a JSON line"),
    (b"\xff\xfe\xfd\n[\n", "jsonl", 0, "not a JSON line"),
])
def test_a_bad_record_is_named_by_input_and_byte_offset(data: bytes, fmt: str, offset: int, why: str) -> None:
    with pytest.raises(RecordError, match=why) as caught:
        input_records(data, fmt, "in.txt")
    assert caught.value.input_name == "in.txt" and caught.value.offset == offset
    assert caught.value.message.startswith(f"input 'in.txt', byte {offset}: ")


def test_offsets_count_raw_bytes_after_invalid_utf8() -> None:
    data = b'"\xff\xff\xff"\n["ok"]\n{\n'  # three invalid bytes decode to three 3-byte U+FFFD each
    with pytest.raises(RecordError) as caught:
        input_records(data, "jsonl", "in")
    assert caught.value.offset == data.index(b"{")


# ---- real actors ----------------------------------------------------------------------------------------------


def jsonl_input(seed: int, lines: int) -> bytes:
    rows = [json.dumps({"n": i % 7, "s": f"w{seed}-{i % 5}", "l": [i % 3, None]}) for i in range(lines)]
    rows[3] = ""  # a blank line: skipped
    rows[5] = "   "
    return BOM + "\r\n".join(rows).encode() + b"\r\n"


def csv_input(seed: int, lines: int) -> bytes:
    rows = [f'{i % 9},"q, {seed}",x{i % 4},"say ""hi"""' for i in range(lines)]
    rows[2] = ""
    return BOM + "\r\n".join(rows).encode() + b"\r\n"


@pytest.mark.parametrize(("fmt", "make"), [("jsonl", jsonl_input), ("csv", csv_input)])
async def test_jsonl_and_csv_inputs_equal_the_oracle(make_cluster: ClusterFactory, data_root: Path,
                                                     formats_module: str, fmt: str, make: Any) -> None:
    cluster = await make_cluster(job_modules=(formats_module,))
    inputs = [("books/a." + fmt, make(1, 700)), ("books/b." + fmt, make(2, 300))]
    (data_root / "books").mkdir()
    for name, data in inputs:
        (data_root / name).write_bytes(data)
    for job in ("record_shapes", "record_kinds"):
        final = await finished(cluster, {"job": job, "input": {"paths": ["books"]}, "format": fmt,
                                         "split_size": 2048})
        assert final["state"] == "done", final["error"]
        assert final["progress"]["splits_total"] > 4 and final["format"] == fmt
        assert final["result"] == run_sequential_inputs(job, inputs, modules=(formats_module,), fmt=fmt)
    # The input's own spelling of it, and a text input: the same records.
    data = make(3, 50)
    final = await finished(cluster, {"job": "record_kinds", "input": {"text": data.decode(), "format": fmt}})
    assert final["result"] == run_sequential_inputs("record_kinds", [("text", data)], modules=(formats_module,),
                                                    fmt=fmt)


async def test_lines_lose_crlf_and_a_bom_for_user_and_built_in_jobs(make_cluster: ClusterFactory, data_root: Path,
                                                                    formats_module: str) -> None:
    cluster = await make_cluster(job_modules=(formats_module,))
    data = BOM + b"".join(b"line %d of \xef\xbb\xbfthem\r\n" % (i % 40) for i in range(2000))
    (data_root / "crlf.txt").write_bytes(data)
    for job in ("record_shapes", "wordcount", "grep", "median_length"):
        params = {"pattern": r"\w+$"} if job == "grep" else {}
        final = await finished(cluster, {"job": job, "params": params, "input": {"path": "crlf.txt"},
                                         "split_size": 4096})
        assert final["state"] == "done", final["error"]
        expected = run_sequential_inputs(job, [("crlf.txt", data)], params, modules=(formats_module,))
        assert final["result"] == expected
        assert "\r" not in json.dumps(final["result"])  # before: every line kept its \r (grep's "them\r" count)
    shapes = (await finished(cluster, {"job": "record_shapes", "input": {"path": "crlf.txt"}}))["result"]
    assert json.dumps(["crlf.txt", "line 0 of \ufeffthem"]) in shapes  # a BOM inside the text stays


@pytest.mark.parametrize(("fmt", "bad", "why"), [
    ("jsonl", b'{"n": 1, "s": "broken"\r\n', "not a JSON line"),
    ("csv", b'7,"an open quote\r\n', "a newline inside quotes is not supported"),
])
async def test_a_bad_line_fails_the_job_naming_input_and_offset(make_cluster: ClusterFactory, data_root: Path,
                                                                formats_module: str, fmt: str, bad: bytes,
                                                                why: str) -> None:
    cluster = await make_cluster(job_modules=(formats_module,))
    good = jsonl_input(1, 400) if fmt == "jsonl" else csv_input(1, 400)
    cut = good.index(b"\n", len(good) * 2 // 3) + 1  # deep in a later split, not the first
    data = good[:cut] + bad + good[cut:]
    (data_root / f"in.{fmt}").write_bytes(data)
    final = await finished(cluster, {"job": "record_shapes", "input": {"path": f"in.{fmt}"}, "format": fmt,
                                     "split_size": 1024})
    assert final["state"] == "failed"
    assert f"input 'in.{fmt}', byte {cut}: " in final["error"] and why in final["error"], final["error"]
    with pytest.raises(RecordError) as oracle:
        run_sequential_inputs("record_shapes", [(f"in.{fmt}", data)], modules=(formats_module,), fmt=fmt)
    assert oracle.value.message in final["error"]


@pytest.mark.parametrize(("spec", "named"), [
    ({"format": "xml"}, '"format" must be one of lines, jsonl, csv'),
    ({"format": 3}, '"format" must be one of'),
    ({"format": ["csv"]}, '"format" must be one of'),
    ({"input": {"text": "x", "format": "yaml"}}, '"input.format" must be one of'),
    ({"format": "csv", "input": {"text": "x", "format": "jsonl"}}, '"format" and "input.format" disagree'),
    ({"job": "wordcount", "format": "jsonl"}, "the built-in job 'wordcount' reads lines"),
    ({"job": "inverted_index", "format": "csv"}, "the built-in job 'inverted_index' reads lines"),
    ({"input": {"paths": ["x"], "name_prefix": 5}}, '"input.name_prefix" must be a string'),
    ({"input": {"paths": ["x"], "name_prefix": "a\x1b[2J"}}, '"input.name_prefix" has a control character'),
])
async def test_hostile_formats_are_400s_naming_the_field(make_cluster: ClusterFactory, formats_module: str,
                                                         spec: dict[str, Any], named: str) -> None:
    cluster = await make_cluster(job_modules=(formats_module,))
    status, body = await submit(cluster, {"job": "record_shapes", "input": {"text": "x\n"}, **spec})
    assert status == 400 and named in body["message"], body
    async with cluster.session.post(f"{cluster.url}/v1/jobs", data=b"x\n", headers=cluster.auth,
                                    params={"job": "record_shapes", "format": "toml"}) as response:
        body = await response.json()
        assert response.status == 400 and "?format= must be one of" in body["message"], body


async def test_submit_takes_format_for_uploads_and_paths(make_cluster: ClusterFactory, data_root: Path,
                                                         formats_module: str, tmp_path: Path) -> None:
    cluster = await make_cluster(job_modules=(formats_module,))
    data = csv_input(4, 200)
    local = tmp_path / "up"
    local.mkdir()
    (local / "t.csv").write_bytes(data)
    (data_root / "t.csv").write_bytes(data)
    expected = run_sequential_inputs("record_shapes", [("t.csv", data)], modules=(formats_module,), fmt="csv")
    token = cluster.auth["Authorization"].removeprefix("Bearer ")
    for given in ([str(local / "t.csv")], ["--path", "t.csv"]):
        args = ["submit", "--url", cluster.url, "--token", token, "--job", "record_shapes", "--format", "csv",
                "--wait", "--json", "--quiet", *given]
        code, out = await asyncio.to_thread(cli_output, args)
        assert code == 0, out
        result = json.loads(out)
        if given[0] != "--path":  # an upload is named by its path as given: here an absolute one
            result = {key.replace(json.dumps(str(local / "t.csv")), '"t.csv"'): n for key, n in result.items()}
        assert result == expected


def cli_output(args: list[str]) -> tuple[int, str]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(args)
    return code, out.getvalue()


# ---- names and --format through the real CLI ------------------------------------------------------------------


def test_run_names_inputs_as_given_with_or_without_output(tmp_path: Path, formats_module: str) -> None:
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "a.txt").write_text("fox dog\n")
    (tmp_path / "books" / "b.txt").write_text("fox cat\n")
    common = ["run", "--job", "inverted_index", "--static", "--mappers", "2", "--reducers", "2"]
    inputs = ["books/a.txt", "books/b.txt"]
    printed = mapreduce(*common, "--json", *inputs, cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    expected = {"fox": ["books/a.txt", "books/b.txt"], "dog": ["books/a.txt"], "cat": ["books/b.txt"]}
    assert json.loads(printed.stdout) == expected  # before: a.txt and b.txt
    written = mapreduce(*common, *inputs, "--output", "out", cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    parts = [json.loads(line) for part in sorted((tmp_path / "out").glob("part-*.jsonl"))
             for line in part.read_text().splitlines()]
    assert dict(map(tuple, parts)) == expected
    alone = mapreduce(*common, "--json", "books/a.txt", cwd=tmp_path)  # one file: before, "a.txt"
    assert json.loads(alone.stdout) == {"fox": ["books/a.txt"], "dog": ["books/a.txt"]}


def test_run_takes_format(tmp_path: Path, formats_module: str) -> None:
    data = jsonl_input(5, 300)
    (tmp_path / "in.jsonl").write_bytes(data)
    env = {"MR_JOB_MODULES": formats_module, "PYTHONPATH": f"{os.environ['PYTHONPATH']}{os.pathsep}{REPO}"}
    done = mapreduce("run", "--job", "record_kinds", "--format", "jsonl", "--json", "--static", "--mappers", "2",
                     "--reducers", "2", "--split-size", "4096", "in.jsonl", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == run_sequential_inputs("record_kinds", [("in.jsonl", data)],
                                                            modules=(formats_module,), fmt="jsonl") == {"dict": 298}
    refused = mapreduce("run", "--job", "wordcount", "--format", "csv", "--static", "in.jsonl", cwd=tmp_path)
    assert refused.returncode == 1 and "the built-in job 'wordcount' reads lines, not csv" in refused.stderr
