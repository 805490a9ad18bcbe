"""Uploaded inputs: the query that carries an upload's job spec, and a multipart body's parts spooled one by one."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiMapping

from ..core.config import Settings
from ..core.errors import BadRequest, RequestTimeout, shown_all
from ..inputs.ref import InputRef
from ..inputs.spec import check_name
from ..jobs import DEFAULT_JOB
from ..jobs.records import DEFAULT_FORMAT, check_format
from .limits import query_max_bad_records, query_partitions, query_split_size
from .store import Digest, InputStore

UPLOAD_QUERY = ("job", "name", "split_size", "partitions", "output", "format", "max_bad_records", "param")
PLAIN_TRANSFER = frozenset({"", "binary", "8bit", "7bit"})  # a part's bytes as sent are its bytes
# Malformed framing as aiohttp's multipart reader reports it (a missing boundary, a header line past its cap, ...).
FRAMING_ERRORS = (ValueError, RuntimeError, AssertionError, HttpProcessingError)


@dataclass(frozen=True)
class UploadSpec:
    """What an upload's query asks for: ``?job=&param=NAME=VALUE&output=DIR&split_size=N&partitions=N&format=F``
    (and ``?name=`` for a raw body); the body, or each part of a multipart body, is an input."""

    job: str = DEFAULT_JOB
    params: dict[str, str] = field(default_factory=dict)
    output: str | None = None
    split_size: int = 0
    name: str = "upload"
    format: str = DEFAULT_FORMAT  # the record format of every input (actors.jobs.records)
    max_bad_records: int = 0
    partitions: int = 0  # 0: MR_REDUCER_COUNT


def upload_spec(query: MultiMapping[str], settings: Settings, multipart: bool) -> UploadSpec:
    """The upload's job spec from its query, every parameter checked before a byte of the body is read."""
    unknown = sorted(set(query) - set(UPLOAD_QUERY))
    if unknown:
        raise BadRequest(f"unknown query parameters {shown_all(unknown)}; an upload takes job, name, split_size, "
                         "partitions, output, format, max_bad_records and param=NAME=VALUE (repeatable)")
    for single in UPLOAD_QUERY[:-1]:
        if len(query.getall(single, [])) > 1:
            raise BadRequest(f"?{single}= is given more than once")
    if multipart and "name" in query:
        raise BadRequest("?name= names a raw upload; each part of a multipart upload is named by its filename")
    params: dict[str, str] = {}
    for item in query.getall("param", []):
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise BadRequest(f"?param= must be NAME=VALUE, got {item[:40]!r}")
        if name in params:
            raise BadRequest(f"?param= gives the parameter {name[:40]!r} more than once")
        params[name] = value
    output = query.get("output")
    if output is not None and not output:
        raise BadRequest("?output= must name a directory under the data root")
    try:
        fmt = check_format(query.get("format", DEFAULT_FORMAT), "?format=")
    except ValueError as error:
        raise BadRequest(str(error)) from None
    return UploadSpec(job=query.get("job", DEFAULT_JOB), params=params, output=output, format=fmt,
                      split_size=query_split_size(query.get("split_size"), settings),
                      name=_raw_name(query.get("name", "upload"), settings.max_name),
                      max_bad_records=query_max_bad_records(query.get("max_bad_records")),
                      partitions=query_partitions(query.get("partitions"), settings))


def _raw_name(name: str, limit: int) -> str:
    check_name(name, limit, "?name=")
    return os.path.basename(name) or "upload"


class _PartStream:
    """A multipart part read as the input store reads a body (``read(n)``), its framing errors a 400."""

    def __init__(self, part: BodyPartReader) -> None:
        self.part = part

    async def read(self, n: int = -1, /) -> bytes:
        try:
            return await self.part.read_chunk(n)
        except FRAMING_ERRORS as error:
            raise BadRequest(f"malformed multipart body: {str(error)[:200]}") from None


async def _next_part(reader: MultipartReader, settings: Settings,
                     deadline: float) -> MultipartReader | BodyPartReader | None:
    """The next part's headers, within the body's idle timeout and deadline (the parts' bytes are paced by the
    input store as it reads them)."""
    idle = settings.timeouts.body_idle
    left = deadline - asyncio.get_running_loop().time()
    try:
        async with asyncio.timeout(max(0.0, min(idle, left))):
            return await reader.next()
    except TimeoutError:
        raise RequestTimeout(f"the multipart body stalled: no next part within {min(idle, left):g} s "
                             "(MR_TIMEOUT_BODY_IDLE, MR_TIMEOUT_BODY)") from None
    except FRAMING_ERRORS as error:
        raise BadRequest(f"malformed multipart body: {str(error)[:200]}") from None


def _part_name(part: BodyPartReader, index: int, limit: int) -> str:
    """A part's input name: its filename as given (a relative path names the file below where it was chosen)."""
    name = part.filename
    if name is None:
        raise BadRequest(f"part {index} of the multipart upload has no filename: each part is one input file, named "
                         "by Content-Disposition's filename; job, params, output and split_size go in the query")
    what = f"the filename of part {index}"
    check_name(name, limit, what)
    for header in (hdrs.CONTENT_ENCODING, hdrs.CONTENT_TRANSFER_ENCODING):
        coding = part.headers.get(header, "").strip().lower()
        if coding not in PLAIN_TRANSFER and not (header == hdrs.CONTENT_ENCODING and coding == "identity"):
            raise BadRequest(f"part {index} ({name[:100]!r}) has {header}: {coding[:40]}; send each file's bytes as "
                             "they are (a .gz file is read as gzip by its name or its first bytes)")
    return name or "upload"


async def read_parts(request: web.Request, store: InputStore, deadline: float, digest: Digest) -> list[InputRef]:
    """Spool each part of a multipart body as one input, as a raw upload is (MR_MAX_BODY each, MR_UPLOAD_BUDGET
    for all that is spooled), at most MR_MAX_INPUTS of them; ``digest`` is fed each part's name and hash. Every part
    already spooled is dropped if the body is refused."""
    settings = store.settings
    try:
        reader = MultipartReader(request.headers, request.content)
    except FRAMING_ERRORS as error:
        raise BadRequest(f"malformed multipart body: {str(error)[:200]}") from None
    refs: list[InputRef] = []
    try:
        while (part := await _next_part(reader, settings, deadline)) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadRequest(f"part {len(refs)} of the multipart upload is itself multipart; send one part per "
                                 "file")
            if len(refs) == settings.max_inputs:
                raise BadRequest(f"the multipart upload has more than {settings.max_inputs} parts, the most inputs "
                                 "one job may have (MR_MAX_INPUTS)")
            name = _part_name(part, len(refs), settings.max_name)
            hashed = hashlib.blake2b(digest_size=16)
            refs.append(await store.add_upload(_PartStream(part), name, settings.max_body, deadline=deadline,
                                               digest=hashed))
            digest.update(json.dumps([name, hashed.hexdigest()]).encode("utf-8", "surrogatepass"))
    except BaseException:
        for ref in refs:
            store.drop(ref.served_id)
        raise
    if not refs:
        raise BadRequest("the multipart upload has no parts: send one part per input file")
    return refs


def is_multipart(request: web.Request) -> bool:
    return request.content_type.startswith("multipart/")


def fingerprint_query(query: Mapping[str, str] | MultiMapping[str], digest: Digest) -> None:
    """Feed ``digest`` an upload's query in a canonical order (the body's bytes follow)."""
    digest.update(json.dumps(sorted(query.items())).encode("utf-8", "surrogatepass"))
