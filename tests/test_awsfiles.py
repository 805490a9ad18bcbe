"""The AWS shared credentials and config files: a profile's keys and region as the SDKs read them, and s3:// jobs
that reach a signature-checking server with keys from those files alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.core.errors import InputError
from actors.inputs.awsfiles import profile_config
from actors.sequential import run_sequential_inputs
from tests.conftest import ClusterFactory
from tests.s3server import REGION, S3Server
from tests.test_inputs import document, submit_error

BUCKET = "profiled"


def files(home: Path, credentials: str, config: str = "") -> Path:
    (home / ".aws").mkdir(parents=True, exist_ok=True)
    (home / ".aws" / "credentials").write_text(credentials)
    (home / ".aws" / "config").write_text(config)
    return home


def test_the_default_profile_gives_keys_and_region(tmp_path: Path) -> None:
    home = files(tmp_path, "[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n",
                 "[default]\nregion = eu-west-3\n")
    assert profile_config({}, home) == {"access_key_id": "AK", "secret_access_key": "SK", "region": "eu-west-3"}


def test_a_named_profile_and_its_config_section(tmp_path: Path) -> None:
    home = files(tmp_path, "[default]\naws_access_key_id = D\naws_secret_access_key = DS\n"
                           "[work]\naws_access_key_id = W\naws_secret_access_key = WS\naws_session_token = T\n",
                 "[profile work]\nregion = ap-south-1\n[default]\nregion = us-east-2\n")
    assert profile_config({"AWS_PROFILE": "work"}, home) == {
        "access_key_id": "W", "secret_access_key": "WS", "session_token": "T", "region": "ap-south-1"}


def test_variables_come_first(tmp_path: Path) -> None:
    home = files(tmp_path, "[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n",
                 "[default]\nregion = eu-west-3\n")
    assert profile_config({"AWS_ACCESS_KEY_ID": "env", "AWS_REGION": "us-east-1"}, home) == {}
    assert profile_config({"AWS_REGION": "us-east-1"}, home) == {"access_key_id": "AK", "secret_access_key": "SK"}


def test_the_file_locations_come_from_their_variables(tmp_path: Path) -> None:
    creds = tmp_path / "elsewhere.ini"
    creds.write_text("[default]\naws_access_key_id = X\naws_secret_access_key = Y\n")
    environ = {"AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_CONFIG_FILE": str(tmp_path / "none")}
    assert profile_config(environ, tmp_path / "nohome") == {"access_key_id": "X", "secret_access_key": "Y"}


def test_no_files_add_nothing(tmp_path: Path) -> None:
    assert profile_config({}, tmp_path) == {}


@pytest.mark.parametrize(("credentials", "environ", "message"), [
    ("[default]\naws_access_key_id = AK\n", {}, "only one of aws_access_key_id and aws_secret_access_key"),
    ("[default]\naws_access_key_id = AK\n", {"AWS_PROFILE": "missing"}, "AWS_PROFILE 'missing' is in neither"),
    ("aws_secret_access_key = SECRETVALUE\n", {}, "cannot be read (MissingSectionHeaderError)"),
])
def test_refusals_name_the_fault_never_a_value(tmp_path: Path, credentials: str, environ: dict[str, str],
                                               message: str) -> None:
    home = files(tmp_path, credentials)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        profile_config(environ, home)
    assert "SECRETVALUE" not in error.value.message and "AK" not in error.value.message.replace("AKIA", "")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("s3profile"), deny=f"{BUCKET}/denied/*") as s3:
        s3.put(BUCKET, "open/a.log", document(1, 50))
        yield s3


@pytest.fixture
def profiled(server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The server's keys only in a shared credentials file, under a named profile; no key variable set."""
    creds = tmp_path / "credentials"
    creds.write_text(f"[reader]\naws_access_key_id = {server.access_key}\n"
                     f"aws_secret_access_key = {server.secret_key}\n[wrong]\n"
                     f"aws_access_key_id = {server.access_key}\naws_secret_access_key = not-the-secret-000\n")
    config = tmp_path / "config"
    config.write_text(f"[profile reader]\nregion = {REGION}\n[profile wrong]\nregion = {REGION}\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                 "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "reader")
    return server


async def test_a_job_reads_with_the_keys_of_a_shared_profile(profiled: S3Server, make_cluster: ClusterFactory,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = await make_cluster(mappers=1, reducers=1, s3_endpoint=profiled.endpoint)
    job = await cluster.submit({"job": "wordcount", "input": {"uris": [f"s3://{BUCKET}/open/"]}})
    assert await cluster.result(job["id"]) == run_sequential_inputs("wordcount", [("a", document(1, 50))])
    monkeypatch.setenv("AWS_PROFILE", "wrong")  # the same key id, a wrong secret: refused, and never shown
    status, body = await submit_error(cluster, {"job": "wordcount", "input": {"uris": [f"s3://{BUCKET}/open/"]}})
    assert status == 400 and "refused the credentials (bad secret key)" in body["message"], body
    assert "not-the-secret-000" not in str(body) and profiled.secret_key not in str(body)
