"""A real S3-compatible server for tests: moto's standalone server in its own process, on loopback, and a boto3
client to arrange buckets and objects behind the actors' backs."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key-not-a-real-one"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port: int = holder.getsockname()[1]
        return port


class S3Server:
    """``moto_server`` on 127.0.0.1 and a free port (its process is ours: stopped by its pid on exit)."""

    def __init__(self, scratch: Path, deny: str = "") -> None:
        """``deny``: an ARN pattern (``bucket/prefix/*``) whose objects the credentials may not read; the server
        then checks every request's signature against its IAM, and the credentials are a user's keys made there."""
        self.scratch = scratch
        self.deny = deny
        self.access_key, self.secret_key = ACCESS_KEY, SECRET_KEY
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        """What an actor needs to reach this server with valid (fake) credentials."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": REGION}

    def __enter__(self) -> S3Server:
        log = open(self.scratch / f"moto-{self.port}.log", "wb")
        moto = Path(sys.executable).with_name("moto_server")
        env = {**os.environ, "MOTO_PORT": str(self.port)}
        if self.deny:  # the three IAM calls below go unchecked; every request after them must be signed rightly
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
        self.process = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(self.port)], stdout=log,
                                        stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)  # a process we started, not yet listening: nothing else to wait on
        if self.deny:
            self._user()
        return self

    def _user(self) -> None:
        import boto3  # type: ignore[import-untyped]

        iam = boto3.client("iam", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                           aws_secret_access_key=SECRET_KEY, region_name=REGION)
        iam.create_user(UserName="reader")
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": [f"arn:aws:s3:::{self.deny}"]}]}
        iam.put_user_policy(UserName="reader", PolicyName="reader", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=REGION)

    def put(self, bucket: str, key: str, data: bytes) -> str:
        """Create ``bucket`` if needed and store ``data`` under ``key``; its ETag."""
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=bucket)
        etag: str = client.put_object(Bucket=bucket, Key=key, Body=data)["ETag"]
        return etag

    def get(self, bucket: str, key: str) -> bytes:
        body: bytes = self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]
