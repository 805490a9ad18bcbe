"""Job inputs: turning a user's input spec or upload into a reference mappers can read, and holding served bytes."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import StreamReader, web

from .client import describe
from .config import Settings
from .errors import BadRequest, InputError, NotFound, PayloadTooLarge
from .sources import PATH, SERVED, URL, resolve_under_root

UPLOAD_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class InputRef:
    """Where a job's input lives: what an assignment carries instead of the data."""

    kind: str
    location: str
    name: str
    size: int
    served_id: str = ""  # set when the master holds the bytes


class InputStore:
    """Bytes the master serves to mappers by id: small texts in memory, uploads spooled to disk."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._texts: dict[str, bytes] = {}
        self._files: dict[str, Path] = {}
        self._dir = tempfile.TemporaryDirectory(prefix="mr-uploads-", dir=settings.spool_dir or None)

    def _ref(self, input_id: str, name: str, size: int) -> InputRef:
        url = f"{self.settings.advertise_url}/internal/v1/inputs/{input_id}"
        return InputRef(SERVED, url, name, size, served_id=input_id)

    def add_text(self, data: bytes, name: str) -> InputRef:
        input_id = uuid.uuid4().hex
        self._texts[input_id] = data
        return self._ref(input_id, name, len(data))

    async def add_upload(self, stream: StreamReader, name: str, cap: int) -> InputRef:
        """Spool an upload to disk as it arrives; never held whole in memory."""
        input_id = uuid.uuid4().hex
        path = Path(self._dir.name) / input_id
        size = 0
        try:
            with open(path, "wb") as file:
                while block := await stream.read(UPLOAD_BLOCK):
                    size += len(block)
                    if size > cap:
                        raise PayloadTooLarge(f"upload exceeds the cap of {cap} bytes (MR_MAX_BODY)")
                    file.write(block)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self._files[input_id] = path
        return self._ref(input_id, name, size)

    def drop(self, input_id: str) -> None:
        self._texts.pop(input_id, None)
        path = self._files.pop(input_id, None)
        if path is not None:
            path.unlink(missing_ok=True)

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
        self._dir.cleanup()


async def parse_spec(spec: Any, settings: Settings, store: InputStore, session: aiohttp.ClientSession) -> InputRef:
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
    if kind == "text":
        data = value.encode("utf-8", "surrogatepass")
        if len(data) > settings.max_body:
            raise PayloadTooLarge(f"text input exceeds the cap of {settings.max_body} bytes")
        return store.add_text(data, name or "text")
    if kind == "path":
        path = resolve_under_root(settings.data_root, value)
        return InputRef(PATH, value, name or Path(value).name, path.stat().st_size)
    await check_url(value, settings.allow_private_urls)
    size = await url_size(session, value, settings)
    return InputRef(URL, value, name or Path(urlsplit(value).path).name or "url", size)


async def url_size(session: aiohttp.ClientSession, url: str, settings: Settings) -> int:
    """The size of a URL input, which must answer HEAD with a length and accept byte ranges."""
    timeout = aiohttp.ClientTimeout(total=settings.timeouts.request, sock_connect=settings.timeouts.connect)
    try:
        # No redirects: a redirect could lead past the address check.
        async with session.head(url, timeout=timeout, allow_redirects=False) as response:
            if response.status != 200:
                raise InputError(f"input url {url!r} answered HEAD with {response.status}")
            if response.headers.get("Accept-Ranges", "").lower() != "bytes":
                raise InputError(f"input url {url!r} does not accept byte ranges (Accept-Ranges: bytes)")
            length = response.headers.get("Content-Length", "")
            if not length.isdigit():
                raise InputError(f"input url {url!r} does not say its length")
            return int(length)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise InputError(f"input url {url!r} cannot be read: {describe(exc)}") from None


async def check_url(url: str, allow_private: bool) -> None:
    """Refuse non-http(s) URLs and, unless allowed, loopback, link-local, private and metadata addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"input url {url!r} must be an absolute http(s) URL")
    if allow_private:
        return
    try:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(parts.hostname, parts.port or 80, proto=socket.IPPROTO_TCP)
    except OSError:
        raise InputError(f"input url host {parts.hostname!r} does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise InputError(f"input url {url!r} points at a non-public address {address}; refused")


def upload_name(request: web.Request) -> str:
    name = request.query.get("name", "upload")
    return os.path.basename(name) or "upload"

