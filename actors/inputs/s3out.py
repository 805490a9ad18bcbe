"""``s3://`` outputs: the commit protocol for a store without atomic rename.

Each reducer attempt PUTs its whole part, in one request (never a multipart upload), under the job's hidden attempt
prefix: ``<prefix>_attempts/<job>-<epoch>/part-NNNNN-<incarnation>.jsonl``. A single PUT is atomic: the object
appears whole or not at all, so a reducer killed mid-upload leaves nothing, not even a pending multipart upload
to abort. Only the master publishes: once every partition has reported, it checks each chosen attempt's object
(its reported size), copies it server-side to ``<prefix>part-NNNNN.jsonl`` (a copy is atomic too), writes
``_SUCCESS`` (the manifest: parts, sizes, SHA-256s) last, and deletes the attempt prefix. A job that ends any other
way deletes its attempt objects and any part it had copied, and never writes ``_SUCCESS``.

Why not rename-based staging (as for directories) or S3A's magic committer (uncompleted multipart uploads the
master completes): S3 has no rename, and our library has no API to complete another process's multipart upload;
a copy per part costs one server-side request and keeps every write a single atomic PUT. A late writer of a
cancelled or superseded attempt can still PUT under the hidden attempt prefix, but nothing there is ever taken
for output: readers skip ``_`` names (Hadoop's rule), and only the master copies, for the job it is committing.
Limits: a part is built in the reducer's memory and is at most 5 GiB (one PUT, one CopyObject).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..core.config import Settings
from ..core.errors import BadRequest, Conflict, InputError
from .outdir import PART, SUCCESS, PartInfo, part_name
from .s3 import S3Uri, open_store, parse_s3, s3_error

if TYPE_CHECKING:
    from obstore.store import S3Store

ATTEMPTS = "_attempts"
_SINGLE_PUT = 5 * 1024**3  # S3's largest single PUT and CopyObject
_TOKEN = re.compile(r"[A-Za-z0-9_]{1,64}")  # what a job id or an incarnation may put in a key


def output_uri(text: str) -> S3Uri:
    """The output prefix ``s3://bucket/prefix/`` (a trailing ``/`` added); refused: a glob, a hidden segment, an
    empty or root prefix (a job's output has a prefix of its own)."""
    uri = parse_s3(text if text.endswith("/") else text + "/")
    segments = uri.key.split("/")[:-1]
    if not segments or any(not s or s.startswith(("_", ".")) or set("*?[") & set(s) for s in segments):
        raise InputError(f"output {text[:100]!r} must be s3://bucket/prefix/ with a prefix of plain, non-empty, "
                         "non-hidden segments")
    return uri


def attempt_key(uri: S3Uri, job: str, epoch: int, partition: int, incarnation: str) -> str:
    """Where one reducer incarnation's part for (job, epoch) is written: hidden, and its own."""
    if not _TOKEN.fullmatch(job) or not _TOKEN.fullmatch(incarnation) or epoch < 0:
        raise BadRequest(f"job {job[:80]!r} or incarnation {incarnation[:80]!r} cannot name an attempt object")
    return f"{_attempt_prefix(uri, job, epoch)}{part_name(partition)[:-6]}-{incarnation}.jsonl"


def _attempt_prefix(uri: S3Uri, job: str, epoch: int) -> str:
    return f"{uri.key}{ATTEMPTS}/{job}-{epoch}/"


async def check_free(settings: Settings, uri: S3Uri) -> None:
    """Refuse (409) a prefix that already holds a job's output (``_SUCCESS`` or a part) directly under it."""
    import obstore

    store = open_store(settings, uri.bucket)
    taken: list[str] = []
    try:
        async for page in obstore.list(store, uri.key.rstrip("/"), chunk_size=1000):
            for meta in page:
                name = meta["path"][len(uri.key):]
                if name == SUCCESS or PART.fullmatch(name):
                    taken.append(name)
            if len(taken) > 3:
                break
    except Exception as error:
        raise s3_error(error, uri) from None
    if taken:
        shown = ", ".join(sorted(taken)[:3]) + (", ..." if len(taken) > 3 else "")
        raise Conflict(f"output {uri} already holds a job's output ({shown}); choose a new prefix or remove them")


def _body(lines: Iterable[bytes]) -> tuple[bytes, PartInfo]:
    digest, chunks, keys = hashlib.sha256(), [], 0
    for line in lines:
        digest.update(line)
        chunks.append(line)
        keys += 1
    body = b"".join(chunks)
    return body, PartInfo("", len(body), keys, digest.hexdigest())


async def write_part(settings: Settings, output: str, job: str, epoch: int, partition: int, incarnation: str,
                     lines: Iterable[bytes]) -> PartInfo:
    """A reducer's part: built in a thread, PUT whole under its attempt key. Reports the final name the master
    will publish it under (``part-NNNNN.jsonl``)."""
    import obstore

    uri = output_uri(output)
    key = attempt_key(uri, job, epoch, partition, incarnation)
    body, info = await asyncio.to_thread(_body, lines)
    if info.bytes > _SINGLE_PUT:
        raise BadRequest(f"output part {part_name(partition)} is {info.bytes} bytes, more than the 5 GiB one s3 "
                         "object write may carry: use more reducers")
    try:
        await obstore.put_async(open_store(settings, uri.bucket), key, body, use_multipart=False)
    except Exception as error:
        raise s3_error(error, uri.child(key)) from None
    return PartInfo(part_name(partition), info.bytes, info.keys, info.sha256)


class S3Commit:
    """One job's output prefix on the master's side: publish the chosen attempts, or clean up after the job."""

    def __init__(self, settings: Settings, output: str, job: str, epoch: int) -> None:
        self.settings = settings
        self.uri = output_uri(output)
        self.job = job
        self.epoch = epoch
        self.copied: list[str] = []  # final keys this job wrote, removed again if it never commits

    def _store(self) -> S3Store:
        return open_store(self.settings, self.uri.bucket)

    async def commit(self, parts: list[PartInfo], incarnations: Mapping[str, str],
                     extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Each part's attempt object checked (its reported size) and copied to its final key, then ``_SUCCESS``
        (with ``extra``'s fields: the job's counters)."""
        import obstore

        store, uri = self._store(), self.uri
        for part in parts:
            if part.name not in incarnations:
                raise Conflict(f"output part {part.name} came with no reducer incarnation to find it by")
            source = attempt_key(uri, self.job, self.epoch, int(part.name[5:10]), incarnations[part.name])
            try:
                meta = await obstore.head_async(store, source)
            except Exception as error:
                raise Conflict(f"output part {part.name} is not in place: {s3_error(error, uri.child(source))}") \
                    from None
            if int(meta["size"]) != part.bytes:
                raise Conflict(f"output part {part.name} is {meta['size']} bytes, not the {part.bytes} its reducer "
                               "reported")
            final = uri.key + part.name
            self.copied.append(final)
            try:
                await obstore.copy_async(store, source, final)
            except Exception as error:
                raise s3_error(error, uri.child(final)) from None
        doc = {"job": self.job, "epoch": self.epoch, "parts": [p.name for p in parts],
               "keys": sum(p.keys for p in parts), "bytes": sum(p.bytes for p in parts),
               "sha256": {p.name: p.sha256 for p in parts}, "created": time.time(), **(extra or {})}
        try:
            await obstore.put_async(store, uri.key + SUCCESS, json.dumps(doc, indent=1).encode() + b"\n",
                                    use_multipart=False)
        except Exception as error:
            raise s3_error(error, uri.child(uri.key + SUCCESS)) from None
        self.copied.clear()  # committed: these are the output now
        await self.discard()
        return doc

    async def discard(self) -> None:
        """Delete the job's attempt objects and any part it copied but never committed (best effort; a writer
        still running may PUT one more attempt object later: hidden, never published)."""
        import obstore

        store = self._store()
        try:
            doomed = list(self.copied)
            async for page in obstore.list(store, _attempt_prefix(self.uri, self.job, self.epoch).rstrip("/"),
                                           chunk_size=1000):
                doomed.extend(meta["path"] for meta in page)
            for start in range(0, len(doomed), 1000):
                await obstore.delete_async(store, doomed[start:start + 1000])
            self.copied.clear()
        except Exception as error:
            raise s3_error(error, self.uri) from None
