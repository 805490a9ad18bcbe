"""Object storage (``s3://``): URIs, the client for a bucket, and what the object store's refusals mean.

The client is obstore's (the ``s3`` extra; see docs/storage.md for why that library). Credentials are never ours:
the library reads the standard AWS variables (keys, session token, region, web identity) from the environment, and
actors/inputs/awsfiles.py the shared credentials and config files, so no setting, message, log line or metric can
carry them. Every refusal becomes an error of our tree
with a fixed description and the object's URI, never the store's own text, which may echo request details.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.config import Settings
from ..core.errors import InputError, MapReduceError, PeerError
from .awsfiles import profile_config

if TYPE_CHECKING:
    from obstore.store import S3Store

SCHEME = "s3://"
# What the library reads from the environment itself (besides AWS_ENDPOINT_URL, a setting): the credentials chain.
LIBRARY_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                     "AWS_DEFAULT_REGION", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE",
                     # and the shared files, read by actors/inputs/awsfiles.py
                     "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE")
# Bucket names as S3 allows them (dots included: path-style requests keep them out of the host name).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MAX_KEY = 1024  # bytes: S3's limit on a key


@dataclass(frozen=True)
class S3Uri:
    """``s3://bucket/key``: the key may be empty (the whole bucket), a prefix ending in ``/``, or a glob."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"

    def child(self, key: str) -> S3Uri:
        return S3Uri(self.bucket, key)


def is_s3(text: str) -> bool:
    return text.startswith(SCHEME)


def parse_s3(text: str) -> S3Uri:
    """The bucket and key of ``s3://bucket/key``; a bad bucket name or key is an InputError naming it."""
    if not is_s3(text):
        raise InputError(f"{text[:100]!r} is not an s3:// URI")
    bucket, _, key = text[len(SCHEME):].partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise InputError(f"{text[:100]!r} does not name a valid bucket (3-63 lowercase letters, digits, dots and "
                         "hyphens)")
    if "\x00" in key or len(key.encode("utf-8", "surrogatepass")) > _MAX_KEY:
        raise InputError(f"{text[:100]!r} has a key with a NUL byte or longer than {_MAX_KEY} bytes")
    return S3Uri(bucket, key)


def open_store(settings: Settings, bucket: str) -> S3Store:
    """The client for one bucket: the configured endpoint (trusted: no address policy applies to it), path-style
    requests, and the settings' connect timeout; credentials from the environment, by the library."""
    try:
        from obstore.store import S3Store
    except ImportError:
        raise InputError("s3:// inputs and outputs need the s3 extra: pip install 'mapreduce-actors[s3]'") from None
    endpoint = settings.s3_endpoint
    timeouts = settings.timeouts
    options = {"connect_timeout": timedelta(seconds=timeouts.connect),
               "timeout": timedelta(seconds=max(timeouts.request, timeouts.stream_idle)),
               "allow_http": endpoint.startswith("http://")}
    # The library reads the variables; the shared files (~/.aws/credentials, ~/.aws/config) only through us.
    config = {**profile_config(os.environ, Path.home()), **({"endpoint": endpoint} if endpoint else {})}
    # The library retries transient failures itself (with backoff); bounded by the settings' request timeout, not
    # its own three minutes, so a store that is down fails a submission or a split in time to be retried by us.
    retry = {"max_retries": 3, "retry_timeout": timedelta(seconds=timeouts.request)}
    try:
        return S3Store(bucket, config=config, client_options=options, retry_config=retry)  # type: ignore[arg-type]
    except Exception as error:  # a malformed endpoint or variable: the library's own config error
        raise InputError(f"the object store client for bucket {bucket!r} cannot be made: "
                         f"{type(error).__name__} (check AWS_ENDPOINT_URL and AWS_REGION)") from None


# What S3 error codes (in the library's generic errors) mean, checked in this order.
_CODES = (
    ("NoSuchBucket", "its bucket does not exist"),
    ("NoSuchKey", "no such object"),
    ("InvalidAccessKeyId", "the object store refused the credentials (unknown access key)"),
    ("SignatureDoesNotMatch", "the object store refused the credentials (bad secret key)"),
    ("ExpiredToken", "the object store refused the credentials (expired session token)"),
    ("InvalidToken", "the object store refused the credentials (bad session token)"),
    ("AccessDenied", "access denied by the object store"),
    ("PreconditionFailed", "it changed since the job was planned (its ETag no longer matches)"),
)


def s3_error(error: BaseException, uri: S3Uri | str) -> MapReduceError:
    """Our error for a failure of the object store on ``uri``: an InputError (a 4xx at submit, a job error naming
    the object later) when retrying cannot help, a PeerError (retried, 502 at submit) when the store is unreachable
    or failing. Only the exception's class and S3 error code are read: its text may echo a request."""
    from obstore import exceptions

    if isinstance(error, MapReduceError):
        return error
    text = str(error)
    if isinstance(error, exceptions.PreconditionError):
        return InputError(f"{uri} changed since the job was planned: the object store refused the pinned ETag")
    for code, meaning in _CODES:
        if f"<Code>{code}</Code>" in text:  # the S3 error document's code, never a word of the key or URL
            return InputError(f"{uri}: {meaning}")
    # The library raises Python's own FileNotFoundError and PermissionError for some of these.
    if isinstance(error, (exceptions.NotFoundError, FileNotFoundError)):
        return InputError(f"{uri}: no such object (or no such bucket)")
    if isinstance(error, (exceptions.PermissionDeniedError, PermissionError)):
        return InputError(f"{uri}: access denied by the object store")
    if isinstance(error, exceptions.UnauthenticatedError):
        return InputError(f"{uri}: the object store refused the credentials")
    if isinstance(error, exceptions.InvalidPathError):
        return InputError(f"{uri}: not a valid object key")
    return PeerError(f"{uri}: the object store could not be reached or failed ({type(error).__name__})")
