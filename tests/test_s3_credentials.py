"""s3:// credentials against a server that checks every signature (moto's, with its IAM on): bad keys and a denied
key each give a clear 4xx at submit where the listing can tell, else a job error naming the object, never a 500;
and the credentials appear in no answer, status, log line or metric."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from actors.sequential import run_sequential_inputs
from tests.conftest import ClusterFactory
from tests.s3server import S3Server
from tests.test_inputs import document, submit_error

BUCKET = "guarded"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("s3auth"), deny=f"{BUCKET}/denied/*") as s3:
        s3.put(BUCKET, "open/a.log", document(1, 50))
        s3.put(BUCKET, "denied/b.log", document(2, 50))
        yield s3


@pytest.fixture
def s3(server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    return server


async def test_valid_credentials_read_what_they_may(s3: S3Server, make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1, s3_endpoint=s3.endpoint)
    job = await cluster.submit({"job": "wordcount", "input": {"uris": [f"s3://{BUCKET}/open/"]}})
    assert await cluster.result(job["id"]) == run_sequential_inputs("wordcount", [("a", document(1, 50))])


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("AWS_SECRET_ACCESS_KEY", "wrong-secret-0123456789", "refused the credentials (bad secret key)"),
    ("AWS_ACCESS_KEY_ID", "AKIANOSUCHKEY0000000", "refused the credentials (unknown access key)"),
])
async def test_bad_credentials_are_a_400_at_submit_and_never_shown(
    s3: S3Server, make_cluster: ClusterFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    variable: str, value: str, message: str,
) -> None:
    monkeypatch.setenv(variable, value)
    cluster = await make_cluster(mappers=1, reducers=1, s3_endpoint=s3.endpoint)
    status, body = await submit_error(cluster, {"job": "wordcount", "input": {"uris": [f"s3://{BUCKET}/open/"]}})
    assert status == 400 and f"s3://{BUCKET}/open/: the object store {message}" == body["message"], body
    # One object named outright is probed with HEAD, whose 403 has no body: the store cannot say which it was.
    status, body = await submit_error(cluster, {"job": "wordcount", "input": {"url": f"s3://{BUCKET}/open/a.log"}})
    assert status == 400 and "access denied by the object store" in body["message"], body
    async with cluster.session.get(f"{cluster.url}/metrics") as response:
        metrics = await response.text()
    for secret in (value, s3.secret_key):
        assert secret not in caplog.text and secret not in metrics and secret not in str(body)


async def test_a_denied_key_fails_the_job_naming_the_object(s3: S3Server, make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1, s3_endpoint=s3.endpoint)
    # Listing is allowed, reading is not: only the mapper finds out, and the job fails naming the object at once
    # (retrying cannot help: an InputError is not retried).
    job = await cluster.submit({"job": "wordcount", "input": {"uris": [f"s3://{BUCKET}/denied/"]}})
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{job['id']}/result", params={"wait": "30"}) as response:
        assert response.status >= 400
    status = await cluster.status(job["id"])
    assert status["state"] == "failed"
    assert f"s3://{BUCKET}/denied/b.log: access denied by the object store" in status["error"], status
    assert s3.secret_key not in str(status)
    # Named outright, the object is probed with HEAD at submit: S3 refuses it there (HEAD needs s3:GetObject), a
    # 400; this server lets HEAD through, and then the job fails as above. Either way the object is named.
    code, body = await submit_error(cluster, {"job": "wordcount", "input": {"url": f"s3://{BUCKET}/denied/b.log"}})
    if code == 400:
        assert "access denied" in body["message"], body
    else:
        assert code == 202
        async with cluster.session.get(f"{cluster.url}/v1/jobs/{body['id']}/result", params={"wait": "30"}):
            pass
        assert "denied/b.log: access denied" in (await cluster.status(body["id"]))["error"]
