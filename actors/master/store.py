"""Job inputs: turning a user's input spec or upload into a reference mappers can read, and holding served bytes."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import StreamReader, web

from ..core.config import Settings
from ..core.errors import BadRequest, InsufficientStorage, NotFound, PayloadTooLarge, RequestTimeout
from ..inputs.ref import PATH, SERVED, URL, InputRef
from ..inputs.sources import resolve_under_root
from ..inputs.urls import UrlPolicy, url_size

UPLOAD_BLOCK = 1024 * 1024


class Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


async def read_block(stream: StreamReader, size: int, idle: float, deadline: float) -> bytes:
    """The next block of a request body (b"" at its end); a stalled or endlessly trickling sender gets 408.

    ``deadline`` is in loop time; the two limits are MR_TIMEOUT_BODY_IDLE and MR_TIMEOUT_BODY.
    """
    left = deadline - asyncio.get_running_loop().time()
    whole = left <= idle
    try:
        async with asyncio.timeout(max(0.0, min(idle, left))):
            return await stream.read(size)
    except TimeoutError:
        if whole:
            raise RequestTimeout("the request body did not arrive whole in time (MR_TIMEOUT_BODY)") from None
        raise RequestTimeout(f"the request body stalled: no bytes for {idle:g} s (MR_TIMEOUT_BODY_IDLE)") from None


class InputStore:
    """Bytes the master serves to mappers by id: small texts in memory, uploads spooled to disk.

    Uploads on disk (finished and arriving) never pass MR_UPLOAD_BUDGET bytes together, so the spool volume
    cannot fill up and get the pod evicted.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._texts: dict[str, bytes] = {}
        self._files: dict[str, Path] = {}
        self._sizes: dict[str, int] = {}
        self.spooled = 0  # bytes of uploads on disk, counting those still arriving
        self._dir = tempfile.TemporaryDirectory(prefix="mr-uploads-", dir=settings.spool_dir or None)

    def _ref(self, input_id: str, name: str, size: int) -> InputRef:
        url = f"{self.settings.advertise_url}/internal/v1/inputs/{input_id}"
        return InputRef(SERVED, url, name, size, served_id=input_id)

    def add_text(self, data: bytes, name: str) -> InputRef:
        input_id = uuid.uuid4().hex
        self._texts[input_id] = data
        return self._ref(input_id, name, len(data))

    def _budget_error(self, size: int) -> InsufficientStorage:
        budget = self.settings.upload_budget
        return InsufficientStorage(
            f"an upload of {size} bytes would pass the {budget} bytes all uploads may spool at once "
            f"(MR_UPLOAD_BUDGET; {self.spooled} in use); retry when running jobs finish, or use a path or url input"
        )

    async def add_upload(self, stream: StreamReader, name: str, cap: int, length: int | None = None, *,
                         deadline: float | None = None, digest: Digest | None = None) -> InputRef:
        """Spool an upload to disk as it arrives; never held whole in memory. ``length``: its Content-Length.

        A sender that stalls or trickles past the body timeouts gets 408 (the deadline is the request's, in loop
        time); a full disk gets 507. Either way the partial file is removed. ``digest`` is fed every byte.
        """
        if length is not None and length > cap:
            raise PayloadTooLarge(f"upload exceeds the cap of {cap} bytes (MR_MAX_BODY)")
        if length is not None and self.spooled + length > self.settings.upload_budget:
            raise self._budget_error(length)
        input_id = uuid.uuid4().hex
        path = Path(self._dir.name) / input_id
        size = 0
        timeouts = self.settings.timeouts
        deadline = deadline if deadline is not None else asyncio.get_running_loop().time() + timeouts.body
        try:
            with open(path, "wb") as file:
                while block := await read_block(stream, UPLOAD_BLOCK, timeouts.body_idle, deadline):
                    if size + len(block) > cap:
                        raise PayloadTooLarge(f"upload exceeds the cap of {cap} bytes (MR_MAX_BODY)")
                    if self.spooled + len(block) > self.settings.upload_budget:
                        raise self._budget_error(size + len(block))
                    size += len(block)
                    self.spooled += len(block)  # reserved before the write, so concurrent uploads see it
                    if digest is not None:
                        digest.update(block)
                    file.write(block)
        except BaseException as error:
            self.spooled -= size
            path.unlink(missing_ok=True)
            if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage(f"the master's spool disk is full after {size} bytes of this upload "
                                          "(MR_SPOOL_DIR); retry later or send a smaller input") from None
            raise
        self._files[input_id] = path
        self._sizes[input_id] = size
        return self._ref(input_id, name, size)

    def drop(self, input_id: str) -> None:
        self._texts.pop(input_id, None)
        path = self._files.pop(input_id, None)
        if path is not None:
            path.unlink(missing_ok=True)
            self.spooled -= self._sizes.pop(input_id, 0)

    def response(self, input_id: str, request: web.Request) -> web.StreamResponse:
        """The input's bytes, honouring a Range header; mappers read their split (plus a line) this way."""
        path = self._files.get(input_id)
        if path is not None:
            return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})
        data = self._texts.get(input_id)
        if data is None:
            raise NotFound(f"no input {input_id} (its job is finished or unknown)")
        try:
            window = request.http_range
        except ValueError:
            raise BadRequest("malformed Range header") from None
        start, stop, _ = window.indices(len(data))
        if "Range" not in request.headers:
            return web.Response(body=data, content_type="application/octet-stream")
        if start >= len(data):
            return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
        return web.Response(
            body=data[start:stop], status=206, content_type="application/octet-stream",
            headers={"Content-Range": f"bytes {start}-{stop - 1}/{len(data)}"},
        )

    def close(self) -> None:
        self._texts.clear()
        self._files.clear()
        self._sizes.clear()
        self.spooled = 0
        self._dir.cleanup()


async def parse_spec(spec: Any, settings: Settings, store: InputStore) -> InputRef:
    """The reference for a JSON input spec: exactly one of ``text``, ``path`` or ``url``."""
    if not isinstance(spec, dict) or not spec:
        raise BadRequest('"input" must be an object with one of "text", "path" or "url"')
    kinds = [k for k in ("text", "path", "url") if k in spec]
    unknown = sorted(set(spec) - {"text", "path", "url", "name"})
    if unknown:
        raise BadRequest(f"unknown input fields {unknown}; use one of text, path, url")
    if len(kinds) != 1:
        raise BadRequest('"input" must have exactly one of "text", "path" or "url"')
    kind = kinds[0]
    value = spec[kind]
    if not isinstance(value, str):
        raise BadRequest(f'"input.{kind}" must be a string')
    name = spec.get("name", "")
    if not isinstance(name, str):
        raise BadRequest('"input.name" must be a string')
    check_name(name, settings.max_name, '"input.name"')
    if kind == "text":
        data = value.encode("utf-8", "surrogatepass")
        if len(data) > settings.max_body:
            raise PayloadTooLarge(f"text input exceeds the cap of {settings.max_body} bytes")
        return store.add_text(data, name or "text")
    if kind == "path":
        path = resolve_under_root(settings.data_root, value)
        return InputRef(PATH, value, name or Path(value).name, path.stat().st_size)
    policy = UrlPolicy(settings.allow_private_urls)
    await policy.check(value)
    size = await url_size(policy, value, settings)
    return InputRef(URL, value, name or Path(urlsplit(value).path).name or "url", size)


def check_name(name: str, limit: int, what: str) -> None:
    """Refuse a name longer than ``limit`` UTF-8 bytes: a job may copy it into every value (inverted index)."""
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise BadRequest(f"{what} is {size} bytes, more than the limit of {limit} bytes (MR_MAX_NAME)")


def clip_name(ref: InputRef, limit: int) -> InputRef:
    """A name derived from a path or URL, cut to ``limit`` UTF-8 bytes at a character boundary."""
    data = ref.name.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return ref
    return dataclasses.replace(ref, name=data[:limit].decode("utf-8", "ignore"))


def upload_name(request: web.Request, limit: int) -> str:
    name = request.query.get("name", "upload")
    check_name(name, limit, "?name=")
    return os.path.basename(name) or "upload"

