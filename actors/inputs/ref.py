"""Input references: where a job's input lives, which an assignment carries instead of the data."""

from __future__ import annotations

from dataclasses import dataclass

SERVED = "served"  # bytes the master holds (text, uploads), read with the cluster token
PATH = "path"  # a file under the shared data root
URL = "url"  # an external http(s) URL, read with Range requests and no token
S3 = "s3"  # an object in an S3-compatible store (s3://bucket/key), read with ranged GETs pinned to its ETag
WORK = "work"  # a multi-step job's intermediate file under MR_WORK_DIR: records a step's reducer wrote
MANY = "many"  # a job's summary of its several inputs (JobRecord.input), never read itself
GZIP = "gzip"  # a compressed input: one whole-file split, decompressed as a stream by the mapper

@dataclass(frozen=True)
class InputRef:
    """Where a job's input lives: what an assignment carries instead of the data."""

    kind: str
    location: str
    name: str
    size: int
    served_id: str = ""  # set when the master holds the bytes
    compression: str = ""  # "" (plain text) or GZIP
    # A URL or s3 input's version when the master probed it (see actors/inputs/pin.py): its strong ETag, else its
    # Last-Modified; both empty when the server gave neither.
    etag: str = ""
    modified: str = ""
