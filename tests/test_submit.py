"""Submission: every bad spec or upload gets a 4xx naming the problem, a known key answers its job, plans are capped."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from actors.master.keys import REGISTRY, STORE
from actors.sequential import run_sequential, run_sequential_inputs

from .conftest import SHARED, Cluster, ClusterFactory, eventually
from .test_master import GOOD_RESULT, GOOD_TEXT, UPLOAD, assert_error
from .test_output import read_output

BAD_SUBMISSIONS = [
    ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "malformed JSON"),
    ({"json": ["a", "list"]}, 400, "must be an object"),
    ({"json": {"job": "nosuchjob", "input": {"text": "a"}}}, 400, "unknown job 'nosuchjob'"),
    ({"json": {"job": 7, "input": {"text": "a"}}}, 400, '"job" must be'),
    ({"json": {"job": "wordcount"}}, 400, 'missing "input"'),
    ({"json": {"job": "wordcount", "input": {}}}, 400, '"input" must be an object with one of'),
    ({"json": {"job": "wordcount", "input": "text"}}, 400, '"input" must be an object'),
    ({"json": {"input": {"text": "a", "path": "b"}}}, 400, "exactly one of"),
    ({"json": {"input": {"text": 5}}}, 400, '"input.text" must be a string'),
    ({"json": {"input": {"colour": "red"}}}, 400, "unknown input fields"),
    ({"json": {"input": {"text": "a"}, "split_size": 0}}, 400, "split_size must be a positive integer"),
    ({"json": {"input": {"text": "a"}, "split_size": True}}, 400, "split_size must be a positive integer"),
    ({"json": {"input": {"text": "a"}, "split_size": 1.9}}, 400, "split_size must be a positive integer"),
    ({"json": {"input": {"text": "a"}, "split_size": "65536"}}, 400, "split_size must be a positive integer"),
    ({"json": {"input": {"text": "a"}, "split_size": 65536.0}}, 400, "split_size must be a positive integer"),
    ({"json": {"input": {"text": "a"}, "split_size": None}}, 400, "split_size must be a positive integer"),
    ({"json": {"input": {"text": "a"}, "split_size": 1}}, 400, "(MR_SPLIT_SIZE_FLOOR)"),
    ({"json": {"input": {"text": "a", "name": "n" * 256}}}, 400, "256 bytes, more than the limit of 255 bytes "
                                                                 "(MR_MAX_NAME)"),
    ({"json": {"input": {"text": "a", "name": "é" * 128}}}, 400, "(MR_MAX_NAME)"),  # 256 bytes of UTF-8
    ({"json": {"input": {"text": "a"}, "extra": 1}}, 400, "unknown fields"),
    ({"json": {"input": {"path": "../secret.txt"}}}, 400, "without '..'"),
    ({"json": {"input": {"path": "/etc/passwd"}}}, 400, "relative to the data root"),
    ({"json": {"input": {"path": "missing.txt"}}}, 400, "not a readable file"),
    ({"json": {"input": {"path": "escape"}}}, 400, "leaves the data root"),
    ({"json": {"input": {"url": "file:///etc/passwd"}}}, 400, "must be an absolute http(s) URL"),
    ({"json": {"input": {"url": "http://127.0.0.1:1/x"}}}, 400, "non-public address"),
    ({"json": {"input": {"url": "http://169.254.169.254/latest"}}}, 400, "non-public address"),
]


@pytest.fixture(scope="module")
def escaping_root(shared_cluster: Cluster) -> Path:
    """The shared cluster's data root, with a symlink ``escape`` to a file outside it."""
    data_root = Path(shared_cluster.master.settings.data_root)
    outside = data_root.parent / "secret.txt"
    outside.write_text("secret words")
    os.symlink(outside, data_root / "escape")
    return data_root


@pytest.mark.parametrize(("kwargs", "status", "message"), BAD_SUBMISSIONS,
                         ids=[case[2] for case in BAD_SUBMISSIONS])
@SHARED
async def test_bad_submissions_are_refused_clearly(
    shared_cluster: Cluster, escaping_root: Path, kwargs: dict[str, Any], status: int, message: str
) -> None:
    # A refused submission leaves nothing behind, so one cluster serves every case (and a good job after each).
    cluster = shared_cluster
    await assert_error(cluster, "POST", "/v1/jobs", status, message, **kwargs)
    assert await cluster.run_text(GOOD_TEXT) == GOOD_RESULT


async def test_oversized_bodies_get_413(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(max_json=2048, max_body=4096)
    await assert_error(cluster, "POST", "/v1/jobs", 413, "too large",
                       json={"input": {"text": "x " * 5000}})
    await assert_error(cluster, "POST", "/v1/jobs", 413, "exceeds the cap of 4096 bytes",
                       data=b"word " * 2000, headers={"Content-Type": "application/octet-stream"})
    assert await cluster.run_text(GOOD_TEXT) == GOOD_RESULT


@SHARED
async def test_idempotency_key_returns_the_same_job(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    headers = {"Idempotency-Key": "nightly-42"}
    first = await cluster.submit({"input": {"text": GOOD_TEXT}}, headers=headers)
    async with cluster.session.post(f"{cluster.url}/v1/jobs", json={"input": {"text": GOOD_TEXT}},
                                    headers=headers) as response:
        again = await response.json()
    assert response.status == 200
    assert again["id"] == first["id"]
    assert await cluster.result(first["id"]) == GOOD_RESULT


@pytest.mark.parametrize("query", ["split_size=1e5", "split_size=+65536", "split_size=%2065536", "split_size=65536.0",
                                   "split_size=%D9%A3%D9%A3%D9%A3%D9%A3%D9%A3", "split_size=0", "split_size=",
                                   "split_size=0x10000", "split_size=99999999999999999999999"])
@SHARED
async def test_upload_split_size_must_be_plain_decimal_digits(shared_cluster: Cluster, query: str) -> None:
    cluster = shared_cluster
    await assert_error(cluster, "POST", f"/v1/jobs?{query}", 400, "split_size must be a positive integer",
                       data=GOOD_TEXT.encode(), headers=UPLOAD)
    assert cluster.master.app[STORE].spooled == 0
    assert await cluster.run_text(GOOD_TEXT) == GOOD_RESULT


@SHARED
async def test_upload_names_and_tiny_splits_are_refused(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    await assert_error(cluster, "POST", "/v1/jobs?name=" + "x" * 300, 400, "?name= is 300 bytes, more than the "
                       "limit of 255 bytes (MR_MAX_NAME)", data=GOOD_TEXT.encode(), headers=UPLOAD)
    await assert_error(cluster, "POST", "/v1/jobs?split_size=100", 400, "below the smallest split size a request "
                       "may ask for, 512 bytes (MR_SPLIT_SIZE_FLOOR)", data=GOOD_TEXT.encode(), headers=UPLOAD)
    async with cluster.session.post(f"{cluster.url}/v1/jobs?name=" + "x" * 255, data=GOOD_TEXT.encode(),
                                    headers=UPLOAD) as response:
        job = await response.json()
    assert response.status == 202, job
    assert job["input"]["name"] == "x" * 255
    assert await cluster.result(job["id"]) == GOOD_RESULT


async def test_a_plan_past_max_splits_is_refused_at_submit_for_every_input_kind(
    make_cluster: ClusterFactory, data_root: Path
) -> None:
    cluster = await make_cluster(max_splits=16)
    text = "word " * 4000  # 20 000 bytes: 40 splits of 512 bytes
    message = "plans 40 splits, more than the 16 one job may have (MR_MAX_SPLITS); use a split_size of at least 1250"
    await assert_error(cluster, "POST", "/v1/jobs", 400, message, json={"input": {"text": text}, "split_size": 512})
    (data_root / "book.txt").write_text(text)
    await assert_error(cluster, "POST", "/v1/jobs", 400, message, json={"input": {"path": "book.txt"},
                                                                         "split_size": 512})
    await assert_error(cluster, "POST", "/v1/jobs?split_size=512", 400, message, data=text.encode(), headers=UPLOAD)

    async def chunked() -> Any:  # no Content-Length: refused after spooling, and the spooled file is removed
        for _ in range(4):
            yield text.encode()[:5000]

    await assert_error(cluster, "POST", "/v1/jobs?split_size=512", 400, "(MR_MAX_SPLITS)", data=chunked(),
                       headers=UPLOAD)
    store = cluster.master.app[STORE]
    assert store.spooled == 0 and not store._files and not store._texts
    assert not list(Path(store._dir.name).iterdir())
    assert cluster.master.app[REGISTRY].jobs == {}
    job = await cluster.submit({"input": {"path": "book.txt"}, "split_size": 1250})
    assert await cluster.result(job["id"]) == {"word": 4000}
    assert (await cluster.status(job["id"]))["progress"]["splits_total"] <= 16


async def test_a_huge_path_input_at_the_default_split_size_is_refused(make_cluster: ClusterFactory,
                                                                      data_root: Path) -> None:
    cluster = await make_cluster(split_size=64 * 1024 * 1024, max_splits=65536)
    with open(data_root / "huge.bin", "wb") as sparse:
        sparse.truncate(5 << 40)  # 5 TiB, sparse: past 4 TiB at 64 MiB
    await assert_error(cluster, "POST", "/v1/jobs", 400, "plans 81920 splits, more than the 65536 one job may have "
                       "(MR_MAX_SPLITS)", json={"input": {"path": "huge.bin"}})
    assert cluster.master.app[REGISTRY].jobs == {}


# --- uploads that carry a whole job spec: params and output in the query, several files as a multipart body ------

FILES = {"dir/a.txt": b"The cat sat\nthe mat\n" * 40, "dir/sub/b.txt": b"a cat, a hat.\n" * 30, "c.txt": b"Sat\n"}


def multipart(files: dict[str, bytes], subtype: str = "mixed") -> aiohttp.MultipartWriter:
    """A multipart body with one part per file, named as the client names them (RFC 5987 filename*)."""
    writer = aiohttp.MultipartWriter(subtype)
    disposition = 'form-data; name="file"' if subtype == "form-data" else "attachment"
    for name, data in files.items():
        writer.append(data, {"Content-Type": "application/octet-stream",
                             "Content-Disposition": f"{disposition}; filename*=utf-8''" + quote(name, safe="")})
    return writer


async def post(cluster: Cluster, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    async with cluster.session.post(f"{cluster.url}{path}", **kwargs) as response:
        return response.status, await response.json()


async def test_a_multipart_upload_with_params_and_output_equals_the_same_files_by_path(
        make_cluster: ClusterFactory, data_root: Path) -> None:
    """Several uploaded files with params and an output: the same parts, keys and names as a JSON spec over the same
    files under the data root (the spec `mapreduce run` sends)."""
    cluster = await make_cluster()
    files = {**{k: v for k, v in FILES.items() if k != "c.txt"}, "c.txt.gz": gzip.compress(FILES["c.txt"])}
    for name, data in files.items():
        (data_root / name).parent.mkdir(parents=True, exist_ok=True)
        (data_root / name).write_bytes(data)
    params = "param=lower=true&param=strip_punctuation=true"
    status, job = await post(cluster, f"/v1/jobs?output=up&split_size=512&{params}", data=multipart(files))
    assert status == 202, job
    assert job["input"]["kind"] == "many" and job["inputs"]["count"] == 3 and job["inputs"]["compressed"] == 1
    assert job["inputs"]["first"] == list(files)
    by_path = await cluster.submit({"input": {"paths": ["dir", "c.txt.gz"]}, "output": {"path": "by-path"},
                                    "split_size": 512, "params": {"lower": "true", "strip_punctuation": "true"}})
    for job_id in (job["id"], by_path["id"]):
        async with cluster.session.get(f"{cluster.url}/v1/jobs/{job_id}/result?wait=30") as response:
            assert response.status == 200
    assert sorted(p.name for p in (data_root / "up").iterdir()) == sorted(p.name for p in (data_root / "by-path")
                                                                           .iterdir())
    expected = run_sequential("wordcount", b"".join(FILES.values()),
                              params={"lower": "true", "strip_punctuation": "true"})
    assert read_output(data_root / "up", 2) == read_output(data_root / "by-path", 2) == expected
    # Names travel too: an inverted index over the parts names each file by its part's filename.
    status, job = await post(cluster, "/v1/jobs?job=inverted_index", data=multipart(files))
    assert status == 202, job
    index = await cluster.result(job["id"])
    named = [(name, gzip.decompress(data) if name.endswith(".gz") else data) for name, data in files.items()]
    assert index == run_sequential_inputs("inverted_index", named)
    assert index["hat."] == ["dir/sub/b.txt"] and index["Sat"] == ["c.txt.gz"]
    store = cluster.master.app[STORE]
    await eventually(lambda: store.spooled == 0 and not store._files)  # every part dropped once its job ended


async def test_a_raw_upload_carries_params_and_output_in_its_query(make_cluster: ClusterFactory,
                                                                    data_root: Path) -> None:
    cluster = await make_cluster()
    text = b"Alpha beta, alpha!\nBETA gamma\n" * 50
    status, job = await post(cluster, "/v1/jobs?job=grep&param=pattern=(?i)(a)lpha&output=out/g&name=n.txt",
                             data=text, headers=UPLOAD)
    assert status == 202, job
    assert job["input"]["name"] == "n.txt" and job["output"] == {"path": "out/g", "written": False}
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result?wait=30") as response:
        body = await response.json()
    assert body["output"]["path"] == "out/g"
    assert read_output(data_root / "out" / "g", 2) == run_sequential("grep", text, params={"pattern": "(?i)(a)lpha"})


MIXED = {"Content-Type": "multipart/mixed; boundary=XX"}
MULTIPART_REFUSALS = [
    ("?colour=red", {"data": b"a b", "headers": UPLOAD}, "unknown query parameters 'colour'"),
    ("?param=lower", {"data": b"a b", "headers": UPLOAD}, "?param= must be NAME=VALUE"),
    ("?param=lower=true&param=lower=false", {"data": b"a b", "headers": UPLOAD}, "more than once"),
    ("?param=colour=red", {"data": b"a b", "headers": UPLOAD}, "has no parameter colour"),
    ("?job=a&job=b", {"data": b"a b", "headers": UPLOAD}, "?job= is given more than once"),
    ("?output=../up", {"data": b"a b", "headers": UPLOAD}, "'..'"),
    ("?name=x", {"data": multipart({"a": b"a"})}, "each part of a multipart upload is named by its filename"),
    ("", {"data": multipart({})}, "has no parts"),
    ("", {"data": b"--XX\r\nContent-Type: text/plain\r\n\r\nhi\r\n--XX--\r\n", "headers": MIXED},
     "part 0 of the multipart upload has no filename"),
    ("", {"data": b"no boundary at all", "headers": MIXED},
     "malformed multipart body"),
    ("", {"data": b"x", "headers": {"Content-Type": "multipart/mixed"}}, "malformed multipart body"),
    ("", {"data": b"--XX\r\nContent-Disposition: attachment; filename=\"a\"\r\nContent-Transfer-Encoding: base64"
                  b"\r\n\r\naGk=\r\n--XX--\r\n", "headers": MIXED},
     "Content-Transfer-Encoding: base64"),
    ("", {"data": multipart({"bad\x1bname": b"a"})}, "has a control character (U+001B)"),
]


@pytest.mark.parametrize(("query", "kwargs", "message"), MULTIPART_REFUSALS, ids=[m for _, _, m in MULTIPART_REFUSALS])
@SHARED
async def test_bad_upload_queries_and_multipart_bodies_are_refused_clearly(
        shared_cluster: Cluster, query: str, kwargs: dict[str, Any], message: str) -> None:
    cluster = shared_cluster
    await assert_error(cluster, "POST", f"/v1/jobs{query}", 400, message, **kwargs)
    store = cluster.master.app[STORE]
    assert store.spooled == 0 and not store._files  # nothing left spooled
    assert await cluster.run_text(GOOD_TEXT) == GOOD_RESULT


async def test_multipart_uploads_keep_the_upload_limits(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(max_inputs=2, max_body=1000, upload_budget=1500)
    store = cluster.master.app[STORE]
    await assert_error(cluster, "POST", "/v1/jobs", 400, "more than 2 parts, the most inputs one job may have "
                       "(MR_MAX_INPUTS)", data=multipart({"a": b"a", "b": b"b", "c": b"c"}))
    await assert_error(cluster, "POST", "/v1/jobs", 413, "exceeds the cap of 1000 bytes (MR_MAX_BODY)",
                       data=multipart({"a": b"a", "b": b"b" * 1001}))
    await assert_error(cluster, "POST", "/v1/jobs", 507, "(MR_UPLOAD_BUDGET", data=multipart({"a": b"a " * 400,
                                                                                             "b": b"b " * 400}))
    assert store.spooled == 0 and not store._files and not list(Path(store._dir.name).iterdir())
    assert cluster.master.app[REGISTRY].jobs == {}
    status, job = await post(cluster, "/v1/jobs", data=multipart({"a": b"a b\n", "b": b"b c\n"}))
    assert status == 202 and await cluster.result(job["id"]) == {"a": 1, "b": 2, "c": 1}


async def test_a_multipart_form_is_a_simple_request_a_page_could_send(make_cluster: ClusterFactory) -> None:
    """multipart/form-data is what any web page may POST without asking: refused without a bearer header, as
    before; multipart/mixed (or a bearer header) needs a preflight no page gets."""
    cluster = await make_cluster()
    await assert_error(cluster, "POST", "/v1/jobs", 403, "Content-Type multipart/form-data is what any web page",
                       data=multipart({"a": b"a"}, "form-data"))
    status, job = await post(cluster, "/v1/jobs", data=multipart({"a": b"a a\n"}, "form-data"),
                             headers={"Authorization": "Bearer anything"})
    assert status == 202 and await cluster.result(job["id"]) == {"a": 2}


@SHARED
async def test_idempotency_key_fingerprints_every_part_and_its_name(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    headers = {"Idempotency-Key": "parts-7"}
    status, first = await post(cluster, "/v1/jobs?param=lower=true", data=multipart(FILES), headers=headers)
    assert status == 202, first
    status, again = await post(cluster, "/v1/jobs?param=lower=true", data=multipart(FILES), headers=headers)
    assert status == 200 and again["id"] == first["id"]
    renamed = {("x.txt" if k == "c.txt" else k): v for k, v in FILES.items()}
    for changed in ({"data": multipart(renamed)}, {"data": multipart({**FILES, "c.txt": b"other\n"})}):
        status, body = await post(cluster, "/v1/jobs?param=lower=true", headers=headers, **changed)
        assert status == 422, body
    status, body = await post(cluster, "/v1/jobs?param=lower=false", data=multipart(FILES), headers=headers)
    assert status == 422, body
    assert await cluster.result(first["id"]) == run_sequential("wordcount", b"".join(FILES.values()),
                                                               params={"lower": "true"})
