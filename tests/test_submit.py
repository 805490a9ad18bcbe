"""Submission: every bad spec or upload gets a 4xx naming the problem, a known key answers its job, plans are capped."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from actors.master.keys import REGISTRY, STORE

from .conftest import SHARED, Cluster, ClusterFactory
from .test_master import GOOD_RESULT, GOOD_TEXT, UPLOAD, assert_error

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
