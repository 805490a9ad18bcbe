"""Many inputs per job: paths, directories and globs under the data root, several URLs (size probed by a ranged GET
when HEAD is refused), gzip inputs as whole-file splits; against real actors on loopback and the sequential oracle."""

from __future__ import annotations

import glob
import gzip
import itertools
import json
import os
import re
import zlib
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from actors.core.config import Settings
from actors.core.errors import InputError, MapReduceError
from actors.core.messages import Assignment, from_wire, to_wire
from actors.core.splits import plan, plan_inputs
from actors.inputs.given import input_spec, local_files
from actors.inputs.gzipped import OUT_BLOCK, gunzip, is_gzip
from actors.inputs.paths import expand_paths
from actors.sequential import run_sequential_inputs
from tests.conftest import ClusterFactory

SCAN = Settings().max_path_scan
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "and", "the", "cat", "naps", "while",
         "a", "bird", "sings"]


def document(seed: int, lines: int) -> bytes:
    """Text whose words differ by seed, so the inverted index has words in some files only."""
    rows = [" ".join(f"{WORDS[(seed * 7 + i * 3 + j) % len(WORDS)]}{(seed + j) % 4}" for j in range(9))
            for i in range(lines)]
    return ("\n".join(rows) + "\n").encode()


def tree(root: Path) -> dict[str, bytes]:
    """A directory of documents, nested, with an empty file; answers name -> bytes, names relative to root."""
    files = {
        "docs/a.txt": document(1, 400),
        "docs/b.txt": document(2, 30),
        "docs/sub/c.txt": document(3, 250),
        "docs/sub/deeper/d.txt": document(4, 5),
        "docs/sub/empty.txt": b"",
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


# ---- planning ----------------------------------------------------------------------------------------------------


def test_plan_inputs_never_crosses_an_input_and_numbers_splits_across_them() -> None:
    sizes, whole = [10_000, 0, 2_500, 70_000], [False, False, False, True]
    splits = plan_inputs(sizes, whole, 4096, min_splits=3)
    assert [s.index for s in splits] == list(range(len(splits)))
    for number, size in enumerate(sizes):
        mine = [s for s in splits if s.input == number]
        assert mine[0].start == 0 and mine[-1].end == size  # each input tiled exactly, on its own
        assert all(a.end == b.start for a, b in itertools.pairwise(mine))
    assert [len([s for s in splits if s.input == n]) for n in range(4)] == [3, 1, 1, 1]  # the gzip one is whole


def test_one_plain_input_is_planned_as_before() -> None:
    assert plan_inputs([1_000_000], [False], 64 * 1024, 3, 1024, 100) == plan(1_000_000, 64 * 1024, 3, 1024, 100)


def test_an_assignment_carries_its_compression_on_the_strict_wire() -> None:
    a = Assignment("j", 1, 0, 1, "wordcount", "path", "x.gz", "x.gz", 0, 10, 2, [], {}, compression="gzip")
    assert from_wire(to_wire(a), Assignment) == a
    old = {k: v for k, v in to_wire(a).items() if k != "compression"}  # an actor of before: refused loudly
    with pytest.raises(MapReduceError, match=r"missing fields \['compression'\]"):
        from_wire(old, Assignment)


# ---- paths, directories and globs --------------------------------------------------------------------------------


def test_directories_are_walked_recursively_in_sorted_order(data_root: Path) -> None:
    files = tree(data_root)
    (data_root / "top.txt").write_bytes(b"x\n")
    found = expand_paths(str(data_root), ["top.txt", "docs", "docs/b.txt"], 100, SCAN)
    assert found == ["top.txt", *sorted(files)]  # in the order given, each file once


def test_globs_match_under_the_root(data_root: Path) -> None:
    tree(data_root)
    assert expand_paths(str(data_root), ["docs/*.txt"], 100, SCAN) == ["docs/a.txt", "docs/b.txt"]
    assert expand_paths(str(data_root), ["**/d*.txt"], 100, SCAN) == ["docs/sub/deeper/d.txt"]


@pytest.mark.parametrize(("entry", "message"), [
    ("../*", "without '..'"),
    ("docs/../../*", "without '..'"),
    ("/etc/*", "without '..'"),
    ("/etc", "without '..'"),
    ("nothing/*.txt", "matches no file"),
    ("missing.txt", "does not exist"),
])
def test_entries_outside_the_root_or_matching_nothing_are_refused(data_root: Path, entry: str,
                                                                    message: str) -> None:
    tree(data_root)
    with pytest.raises(InputError, match=message):
        expand_paths(str(data_root), [entry], 100, SCAN)


def test_a_symlink_out_of_the_root_inside_a_directory_is_refused(data_root: Path, tmp_path: Path) -> None:
    tree(data_root)
    outside = tmp_path / "secret.txt"
    outside.write_text("secret words\n")
    (data_root / "docs" / "sub" / "link.txt").symlink_to(outside)
    with pytest.raises(InputError, match=r"link\.txt' leaves the data root"):
        expand_paths(str(data_root), ["docs"], 100, SCAN)
    with pytest.raises(InputError, match="leaves the data root"):
        expand_paths(str(data_root), ["docs/sub/*.txt"], 100, SCAN)


def test_a_symlinked_directory_out_of_the_root_is_refused(data_root: Path, tmp_path: Path) -> None:
    tree(data_root)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.txt").write_text("x\n")
    (data_root / "docs" / "out").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InputError, match="docs/out' leaves the data root"):
        expand_paths(str(data_root), ["docs"], 100, SCAN)


def test_an_empty_directory_and_too_many_files_are_refused(data_root: Path) -> None:
    tree(data_root)
    (data_root / "void").mkdir()
    with pytest.raises(InputError, match="'void' matches no file"):
        expand_paths(str(data_root), ["void"], 100, SCAN)
    with pytest.raises(InputError, match=r"more than 3 files.*\(MR_MAX_INPUTS\)"):
        expand_paths(str(data_root), ["docs"], 3, SCAN)


def test_run_finds_the_deepest_common_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree(tmp_path)
    (tmp_path / "top.txt").write_text("a\n")
    root, spec = input_spec([str(tmp_path / "docs" / "sub"), str(tmp_path / "docs" / "*.txt")])
    # Given as absolute paths, the inputs are named by their absolute paths.
    assert root == tmp_path / "docs" and spec == {"paths": ["sub", "*.txt"], "name_prefix": str(tmp_path / "docs")}
    assert expand_paths(str(root), spec["paths"], 100, SCAN) == [
        "sub/c.txt", "sub/deeper/d.txt", "sub/empty.txt", "a.txt", "b.txt"]
    assert input_spec([str(tmp_path / "top.txt")]) == (tmp_path, {"path": "top.txt",
                                                                  "name": str(tmp_path / "top.txt")})
    assert input_spec([str(tmp_path / "docs")]) == (tmp_path, {"paths": ["docs"], "name_prefix": str(tmp_path)})
    monkeypatch.chdir(tmp_path / "docs")
    assert input_spec(["*.txt"]) == (tmp_path / "docs", {"paths": ["*.txt"], "name_prefix": "."})


def test_inputs_are_named_as_given_whatever_else_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    # Before: "a.txt" alone, "a.txt" with b.txt, but "docs/a.txt" with sub/c.txt: a name depended on the others.
    for given in (["docs/a.txt"], ["docs/a.txt", "docs/b.txt"], ["docs/a.txt", "docs/sub/c.txt"], ["docs"],
                  ["./docs/*.txt"]):
        named = dict((name, path) for path, name in local_files(given))
        assert named["docs/a.txt"] == (tmp_path / "docs" / "a.txt").resolve(), given
    monkeypatch.chdir(tmp_path / "docs" / "sub")
    # From below the inputs: each named by its path from here through the directory holding them all.
    assert [name for _, name in local_files(["../a.txt", "deeper"])] == ["../a.txt", "../sub/deeper/d.txt"]
    with pytest.raises(MapReduceError, match="is not a readable file"):
        input_spec([str(tmp_path / "nope.txt")])


# ---- gzip --------------------------------------------------------------------------------------------------------


async def blocks_of(data: bytes, size: int = 1000) -> AsyncGenerator[bytes, None]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def test_gunzip_streams_concatenated_members_in_bounded_pieces() -> None:
    text = b"zero " * 2_000_000  # 10 MB that compress ~1000-fold: one input block expands far past a piece
    packed = gzip.compress(text) + gzip.compress(b"tail\n")
    pieces = [piece async for piece in gunzip(blocks_of(packed, 64 * 1024), "x.gz")]
    assert b"".join(pieces) == text + b"tail\n"
    assert max(map(len, pieces)) <= OUT_BLOCK


@pytest.mark.parametrize(("damage", "message"), [
    (lambda z: z[: len(z) // 2], "is truncated"),
    (lambda z: z[:20] + bytes(64) + z[84:], "is corrupt"),
])
async def test_gunzip_refuses_a_damaged_stream(damage: Any, message: str) -> None:
    packed = damage(gzip.compress(os.urandom(50_000)))
    with pytest.raises(InputError, match=message):
        async for _ in gunzip(blocks_of(packed), "x.gz"):
            pass


def test_gzip_is_told_by_name_or_magic() -> None:
    assert is_gzip("a/b.GZ", b"") and is_gzip("b.txt", gzip.compress(b"x")[:2]) and not is_gzip("b.txt", b"ab")
    assert zlib.decompress(gzip.compress(b"x"), 31) == b"x"


# ---- real actors on loopback -------------------------------------------------------------------------------------


async def submit_error(cluster: Any, spec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with cluster.session.post(f"{cluster.url}/v1/jobs", json=spec) as response:
        return response.status, dict(await response.json())


async def test_inverted_index_over_a_directory_names_files_by_relative_path(
    make_cluster: ClusterFactory, data_root: Path,
) -> None:
    files = tree(data_root)
    cluster = await make_cluster(mappers=2, reducers=2)
    job = await cluster.submit({"job": "inverted_index", "input": {"paths": ["docs"]}, "split_size": 2048})
    result = await cluster.result(job["id"])
    assert result == run_sequential_inputs("inverted_index", sorted(files.items()))
    assert set().union(*map(set, result.values())) == {n for n, d in files.items() if d}
    status = await cluster.status(job["id"])
    assert status["input"] == {"kind": "many", "name": "5 inputs", "size": sum(map(len, files.values()))}
    assert status["inputs"]["count"] == 5 and status["inputs"]["first"] == sorted(files)
    assert status["progress"]["splits_total"] > 5  # the larger files span several splits, none crosses a file


async def test_wordcount_over_a_glob_and_a_gzip_file(make_cluster: ClusterFactory, data_root: Path) -> None:
    files = tree(data_root)
    packed = document(9, 3000)  # ~150 KB: several splits' worth, read as one whole-file split
    (data_root / "docs" / "packed.txt.gz").write_bytes(gzip.compress(packed))
    (data_root / "docs" / "magic").write_bytes(gzip.compress(b"by magic alone\n"))
    cluster = await make_cluster(mappers=2, reducers=2)
    job = await cluster.submit({"job": "wordcount", "input": {"paths": ["docs/*", "docs/*.gz"]}, "split_size": 4096})
    result = await cluster.result(job["id"])
    plain = {n: d for n, d in files.items() if n.count("/") == 1}
    expected = [*plain.items(), ("magic", b"by magic alone\n"), ("packed.txt.gz", packed), *(
        (n, d) for n, d in files.items() if n.count("/") > 1)]
    assert result == run_sequential_inputs("wordcount", expected)
    status = await cluster.status(job["id"])
    assert status["inputs"]["compressed"] == 2 and status["inputs"]["count"] == 7  # docs/sub walked


async def test_a_single_gzip_path_is_decompressed(make_cluster: ClusterFactory, data_root: Path) -> None:
    text = document(5, 2000)
    (data_root / "one.gz").write_bytes(gzip.compress(text))
    cluster = await make_cluster(mappers=2, reducers=1)
    job = await cluster.submit({"job": "wordcount", "input": {"path": "one.gz"}, "split_size": 1024})
    assert await cluster.result(job["id"]) == run_sequential_inputs("wordcount", [("one.gz", text)])
    assert (await cluster.status(job["id"]))["progress"]["splits_total"] == 1


async def finished_status(cluster: Any, job_id: str) -> dict[str, Any]:
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job_id}/result", params={"wait": "30"}) as response:
        await response.read()
    return dict(await cluster.status(job_id))


@pytest.mark.parametrize("query", [{"name": "book.txt.gz"}, {"name": "book.txt"}, {}],
                         ids=["by-name", "by-magic", "no-name"])
async def test_an_uploaded_gzip_body_is_decompressed(make_cluster: ClusterFactory, query: dict[str, str]) -> None:
    """A .gz upload was counted as its compressed bytes, a job "done" with garbage; told by name or magic bytes."""
    text = document(4, 2000)
    cluster = await make_cluster(mappers=2, reducers=2)
    job = await cluster.submit(data=gzip.compress(text), headers={"Content-Type": "application/octet-stream"},
                               params={**query, "split_size": "1024"})
    assert await cluster.result(job["id"]) == run_sequential_inputs("wordcount", [("x", text)])
    status = await cluster.status(job["id"])
    assert status["progress"]["splits_total"] == 1  # a whole-file split, as a gzip path is read


async def test_a_truncated_gzip_upload_fails_its_job_naming_it(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    packed = gzip.compress(os.urandom(20_000))  # random bytes: incompressible, so half the stream is half the data
    job = await cluster.submit(data=packed[: len(packed) // 2], headers={"Content-Type": "application/octet-stream"},
                               params={"name": "cut.gz"})
    status = await finished_status(cluster, job["id"])
    assert status["state"] == "failed" and "gzip input 'cut.gz' is truncated" in status["error"], status
    assert status["attempts"]["retries"] == 0


@pytest.fixture
async def presigned() -> AsyncIterator[tuple[str, list[tuple[str, str]]]]:
    """Objects served as presigned URLs are: GET with byte ranges, HEAD refused (403). Records (method, Range)."""
    objects = {"/a.txt": document(6, 300), "/b.txt": document(7, 120)}
    seen: list[tuple[str, str]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append((request.method, request.headers.get("Range", "")))
        if request.method == "HEAD":
            return web.Response(status=403, text="SignatureDoesNotMatch")
        data = objects[request.path]
        start, stop, _ = request.http_range.indices(len(data))
        if "Range" not in request.headers:
            return web.Response(body=data)
        return web.Response(body=data[start:stop], status=206,
                            headers={"Content-Range": f"bytes {start}-{stop - 1}/{len(data)}"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_two_presigned_urls_make_one_job(make_cluster: ClusterFactory,
                                               presigned: tuple[str, list[tuple[str, str]]]) -> None:
    base, seen = presigned
    cluster = await make_cluster(mappers=2, reducers=2, allow_private_urls=True)
    urls = [f"{base}/a.txt", f"{base}/b.txt"]
    job = await cluster.submit({"job": "inverted_index", "input": {"urls": urls}, "split_size": 2048})
    result = await cluster.result(job["id"])
    expected = run_sequential_inputs("inverted_index", [("a.txt", document(6, 300)), ("b.txt", document(7, 120))])
    assert result == expected
    assert seen.count(("GET", "bytes=0-0")) == 2  # each size probed by a ranged GET once HEAD was refused
    assert ("HEAD", "") in seen
    status = await cluster.status(job["id"])
    assert status["inputs"]["kinds"] == ["url"] and status["progress"]["splits_total"] > 2


@pytest.mark.parametrize(("given", "message"), [
    ({"paths": ["../*"]}, "without '..'"),
    ({"paths": ["top.txt", "/etc/passwd"]}, "without '..'"),
    ({"paths": ["void"]}, "'void' matches no file"),
    ({"paths": ["docs"]}, "link.txt' leaves the data root"),
    ({"paths": ["docs/a.txt", "docs/b.txt", "docs/sub/c.txt", "top.txt"]}, r"more than the 3 inputs.*MR_MAX_INPUTS"),
    ({"paths": ["docs/sub"]}, "more than 3 files"),
    ({"paths": []}, "must be a non-empty list of strings"),
    ({"paths": ["a", 1]}, "must be a non-empty list of strings"),
    ({"paths": ["top.txt"], "name": "x"}, "takes nothing else"),
    ({"urls": ["file:///etc/passwd"]}, "must be an absolute http"),
])
async def test_hostile_inputs_get_a_400_naming_the_problem(make_cluster: ClusterFactory, data_root: Path,
                                                          tmp_path: Path, given: dict[str, Any],
                                                          message: str) -> None:
    tree(data_root)
    (data_root / "top.txt").write_text("top\n")
    (data_root / "void").mkdir()
    (data_root / "docs" / "sub" / "more.txt").write_text("more\n")
    (tmp_path / "secret.txt").write_text("secret\n")
    if "link" in message:
        (data_root / "docs" / "link.txt").symlink_to(tmp_path / "secret.txt")
    cluster = await make_cluster(mappers=1, reducers=1, max_inputs=3)
    status, body = await submit_error(cluster, {"job": "wordcount", "input": given})
    assert status == 400 and body["error"] in ("bad_request", "bad_input"), body
    assert re.search(message, body["message"]), body


async def test_many_inputs_are_bounded_by_max_splits_over_the_whole_job(make_cluster: ClusterFactory,
                                                                        data_root: Path) -> None:
    tree(data_root)
    cluster = await make_cluster(mappers=1, reducers=1, max_splits=4)
    status, body = await submit_error(cluster, {"job": "wordcount", "input": {"paths": ["docs"]}})
    assert status == 400 and "(MR_MAX_SPLITS)" in body["message"] and "5 inputs" in body["message"], body


def test_an_interrupted_job_of_many_inputs_is_found_again_in_the_journal(tmp_path: Path) -> None:
    from actors.inputs.ref import InputRef
    from actors.master.journal import Journal
    from actors.master.record import JobRecord, many_inputs

    refs = [InputRef("path", f"d/{i}.txt", f"d/{i}.txt", 10 * i) for i in range(3)]
    journal = Journal(str(tmp_path))
    journal.started(JobRecord(id="m", epoch=1, job_name="wordcount", input=many_inputs(refs), created=1.0,
                              split_size=100, inputs=refs), "")
    journal.close()
    restarted = Journal(str(tmp_path))
    ((record, _),) = restarted.interrupted()  # before: skipped as a line of unknown input kind "many"
    assert record.status()["input"] == {"kind": "many", "name": "3 inputs", "size": 30}
    restarted.close()


def test_mapreduce_run_takes_a_directory_and_a_glob(tmp_path: Path) -> None:
    from tests.test_cli import mapreduce

    files = tree(tmp_path)
    (tmp_path / "notes.gz").write_bytes(gzip.compress(b"fox fox zebra\n"))
    done = mapreduce("run", "--job", "inverted_index", "--json", "--static", "--mappers", "2", "--reducers", "1",
                     "--split-size", "4096", "docs/sub", "*.gz", cwd=tmp_path)
    assert done.returncode == 0, done.stderr  # each input named by its path as given (from the working directory)
    inputs = [(n, d) for n, d in files.items() if n.startswith("docs/sub/")] + [("notes.gz", b"fox fox zebra\n")]
    assert json.loads(done.stdout) == run_sequential_inputs("inverted_index", inputs)
    assert f"{len(inputs)} inputs under {tmp_path}" in done.stderr  # the files, not the 2 arguments


async def test_a_corrupt_gzip_input_fails_the_job_naming_it(make_cluster: ClusterFactory, data_root: Path) -> None:
    (data_root / "bad.gz").write_bytes(gzip.compress(document(1, 50))[:20] + b"not deflate at all" * 10)
    cluster = await make_cluster(mappers=1, reducers=1)
    job = await cluster.submit({"job": "wordcount", "input": {"paths": ["bad.gz"]}})
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "30"}) as response:
        await response.read()
    status = await cluster.status(job["id"])
    assert status["state"] == "failed" and "gzip input 'bad.gz' is corrupt" in status["error"], status
    assert status["attempts"]["retries"] == 0  # a bad input is not retried


async def test_a_url_refusing_head_and_ranges_is_refused_at_submit(make_cluster: ClusterFactory) -> None:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=405) if request.method == "HEAD" else web.Response(body=b"whole body\n")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        assert site._server is not None
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        cluster = await make_cluster(mappers=1, reducers=1, allow_private_urls=True)
        status, body = await submit_error(cluster, {"input": {"urls": [f"http://127.0.0.1:{port}/x.txt"]}})
        assert status == 400 and "answered a ranged GET (its HEAD refused) with 200" in body["message"], body
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("pattern", ["*", "**", "**/*.txt", "docs/**", "*/*.txt", "**/.h*", "**/.*/*", "docs/**/d*.txt",
                                     "**/sub/**/*.txt", "d?cs/[ab].txt", "**/**/*.txt", "docs/*", ".*", "e/**/**/*",
                                     "docs/**/**", "docs/sub"])
def test_a_glob_finds_what_glob_finds_each_file_once(data_root: Path, pattern: str) -> None:
    for name in ["a.txt", "b.log", ".h.txt", "docs/a.txt", "docs/.h.txt", "docs/sub/c.txt", "docs/sub/deeper/d.txt",
                 ".hid/x.txt", "docs/.hd/y.txt", "docs/sub/.z/w.txt", "e/f/g/h.txt"]:
        (data_root / name).parent.mkdir(parents=True, exist_ok=True)
        (data_root / name).write_text("x\n")
    expected = set()  # glob's matches, a matched directory standing for every file below it
    for match in glob.glob(pattern, root_dir=data_root, recursive=True):
        if (data_root / match).is_dir():
            expected |= {Path(folder, name).relative_to(data_root).as_posix()
                         for folder, _, names in os.walk(data_root / match) for name in names}
        else:
            expected.add(Path(match).as_posix())
    assert expand_paths(str(data_root), [pattern], 100, SCAN) == sorted(expected)
