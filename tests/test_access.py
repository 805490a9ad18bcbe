"""Access logs: one JSON line per public request (route pattern, method, status, duration, job id), at INFO."""

from __future__ import annotations

import io
import json
import logging
import os
import select
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from actors.core.logs import JsonFormatter

from .conftest import ClusterFactory

API_TOKEN = "api-secret"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def access_lines() -> Iterator[io.StringIO]:
    """The access logger's output as the actors write it (JSON lines), at DEBUG so quiet lines show too."""
    logger = logging.getLogger("actors.net.access")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter("test"))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def parse(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_one_line_per_public_request_with_route_status_duration_and_job(
        make_cluster: ClusterFactory, access_lines: io.StringIO) -> None:
    cluster = await make_cluster(api_token=API_TOKEN)
    url = cluster.url
    sent: list[tuple[str, str, int, str | None]] = []  # method, route pattern, status, job

    async def call(method: str, path: str, route: str, status: int, job: str | None = None,
                   **kwargs: Any) -> Any:
        kwargs.setdefault("headers", AUTH)
        async with cluster.session.request(method, url + path, **kwargs) as response:
            body = await response.json()
        assert response.status == status, body
        sent.append((method, route, status, job))
        return body

    job = (await call("POST", "/v1/jobs", "/v1/jobs", 202, json={"input": {"text": "a b a"}}))["id"]
    await call("GET", f"/v1/jobs/{job}/result?wait=30", "/v1/jobs/{id}/result", 200, job)
    await call("GET", f"/v1/jobs/{job}", "/v1/jobs/{id}", 200, job)
    await call("GET", "/v1/jobs/nosuchid", "/v1/jobs/{id}", 404, "nosuchid")
    await call("DELETE", f"/v1/jobs/{job}", "/v1/jobs/{id}", 200, job)
    await call("POST", "/v1/jobs", "/v1/jobs", 400, json={"job": "nosuchjob", "input": {"text": "a"}})
    await call("GET", "/v1/jobs", "/v1/jobs", 401, headers={"Authorization": "Bearer wrong"})
    await call("GET", "/no/such/route/123", "(no route)", 404)
    forged = '\n"event": "http_request", "status": 200 ' + "x" * 1000  # a line break cannot forge a log line
    await call("GET", f"/v1/jobs/{quote(forged, safe='')}", "/v1/jobs/{id}", 404, forged[:64])
    await call("GET", "/v1/openapi.json", "/v1/openapi.json", 200, headers={})
    for probe in ("/healthz", "/readyz"):  # quiet: DEBUG only
        async with cluster.session.get(url + probe) as response:
            assert response.status == 200

    lines = parse(access_lines)
    assert all(line["event"] == "http_request" for line in lines)
    info = [line for line in lines if line["level"] == "info"]
    assert [(line["method"], line["route"], line["status"], line.get("job")) for line in info] == sent
    for line in info:
        assert isinstance(line["duration_ms"], float | int) and 0 <= line["duration_ms"] < 30_000
        assert job not in line["route"] and "nosuchid" not in line["route"]  # patterns, never raw paths
    debug = [line for line in lines if line["level"] == "debug"]
    routes = {line["route"] for line in debug}
    assert {"/healthz", "/readyz"} <= routes  # probes are quiet (the small text travels inline: no read back)
    assert not {line["route"] for line in info} & routes


def test_a_served_master_logs_access_at_info_by_default(tmp_path: Any) -> None:
    """``mapreduce serve`` with no log settings: the access lines are on its stdout."""
    read_end, write_end = os.pipe()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MR_") and k != "TYPE"}
    env.update(TYPE="master", MR_HOST="127.0.0.1", MR_PORT="0", MR_NAME="master-0", MR_READY_FD=str(write_end),
               MR_SPOOL_DIR=str(tmp_path))
    process = subprocess.Popen([sys.executable, "-m", "actors", "serve"], env=env, pass_fds=(write_end,),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 30)
        assert ready, "the master did not start"
        url = json.loads(os.read(read_end, 4096))["url"]
        statuses = []
        for path in ("/v1/jobs", "/v1/jobs/nosuchid", "/healthz", "/v1/jobs/nosuchid/result"):
            try:
                with urllib.request.urlopen(url + path, timeout=10) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as error:
                statuses.append(error.code)
        assert statuses == [200, 404, 200, 404]
    finally:
        os.close(read_end)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["event"] == "http_request"]
    assert [(line["level"], line["method"], line["route"], line["status"], line.get("job")) for line in access] == [
        ("info", "GET", "/v1/jobs", 200, None),
        ("info", "GET", "/v1/jobs/{id}", 404, "nosuchid"),
        ("info", "GET", "/v1/jobs/{id}/result", 404, "nosuchid"),
    ]
    assert all(line["actor"] == "master-0" and "duration_ms" in line for line in access)
