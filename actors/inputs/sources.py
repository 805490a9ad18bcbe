"""Input sources: reading an input by reference from a byte offset, from the data root or over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import BinaryIO, Protocol

import aiohttp

from ..core.errors import InputError, NotFound, PeerError, describe, shown
from .pin import Pin
from .urls import UrlPolicy, forbidden_cause

BLOCK = 1024 * 1024


class Source(Protocol):
    def blocks(self, offset: int) -> AsyncGenerator[bytes, None]:
        """The input's bytes from ``offset`` to its end, block by block; the caller may stop early."""
        ...


def resolve_under_root(root: str, relative: str) -> Path:
    """The real path of ``relative`` inside ``root``; anything that escapes it (``..``, symlinks) is refused."""
    if not root:
        raise InputError("path inputs are disabled: no data root is configured (MR_DATA_ROOT)")
    if not relative or "\x00" in relative:
        raise InputError("input path is empty or contains a NUL byte")
    try:
        relative.encode("utf-8")  # lone surrogates: a non-UTF-8 name, which no message could carry to a mapper
    except UnicodeEncodeError:
        raise InputError(f"input path {shown(relative)} is not valid UTF-8") from None
    if os.path.isabs(relative) or ".." in Path(relative).parts:
        raise InputError(f"input path {shown(relative)} must be relative to the data root, without '..'")
    base = Path(root).resolve()
    try:
        target = (base / relative).resolve()
        if target != base and base not in target.parents:
            raise InputError(f"input path {shown(relative)} leaves the data root")
        if not target.is_file():
            raise InputError(f"input path {shown(relative)} is not a readable file under the data root")
    except OSError as error:  # e.g. a name too long for the file system
        raise InputError(f"input path {relative[:100]!r} cannot be used: {error.strerror}") from None
    except RuntimeError:  # Python 3.11's Path.resolve on a symlink loop
        raise InputError(f"input path {relative[:100]!r} cannot be used: it passes through a symlink loop") from None
    try:
        with open(target, "rb"):  # the mappers open it the same way: refuse now rather than fail every attempt
            pass
    except OSError as exc:
        raise InputError(f"cannot read input path {shown(relative)}: {os.strerror(exc.errno or 0).lower()}") from None
    return target


class InlineSource:
    """An input that came whole inside its assignment (a small text the master holds): nothing to request."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def blocks(self, offset: int) -> AsyncGenerator[bytes, None]:
        for start in range(offset, len(self.data), BLOCK):
            yield self.data[start : start + BLOCK]


class PathSource:
    """A file under the data root, read in a thread: a cold or network volume may take long for one block."""

    def __init__(self, root: str, relative: str) -> None:
        self.root = root
        self.relative = relative

    async def blocks(self, offset: int) -> AsyncGenerator[bytes, None]:
        file = await asyncio.to_thread(_open_under_root, self.root, self.relative, offset)
        try:
            while block := await asyncio.to_thread(file.read, BLOCK):
                yield block
        finally:
            file.close()  # cheap for a file opened for reading; a read still in its thread holds the lock


def _open_under_root(root: str, relative: str, offset: int) -> BinaryIO:
    file = open(resolve_under_root(root, relative), "rb")  # closed by PathSource.blocks
    try:
        file.seek(offset)
    except BaseException:
        file.close()
        raise
    return file


class HttpSource:
    """An input read over HTTP with Range requests through ``session``: the master's served bytes, or a URL.

    With a ``pin`` (URL inputs), every read is conditional on the pinned version and its answer is checked: exactly
    the pinned bytes from the offset to the end, or an error (see :class:`actors.inputs.pin.Pin`).
    """

    def __init__(
        self, session: aiohttp.ClientSession, url: str, headers: dict[str, str], connect: float, idle: float,
        pin: Pin | None = None,
    ) -> None:
        self.session = session
        self.url = url
        self.headers = headers
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=idle)
        self.pin = pin

    async def blocks(self, offset: int) -> AsyncGenerator[bytes, None]:
        pin = self.pin
        headers = {**self.headers, "Range": f"bytes={offset}-", **(pin.conditions() if pin else {})}
        try:
            async with self.session.get(self.url, headers=headers, timeout=self.timeout) as response:
                if response.status == 404:
                    raise NotFound(f"input {self.url} is gone")
                if pin is not None and response.status in (200, 206, 412, 416):
                    if not pin.check(self.url, offset, response.status, response.headers):
                        return
                    async with contextlib.aclosing(_counted(response, self.url, pin.size - offset)) as blocks:
                        async for block in blocks:
                            yield block
                    return
                if response.status == 416:
                    return  # offset at or past the end: nothing to read
                if response.status == 200 and offset > 0:
                    raise PeerError(f"{self.url} ignored the Range request")
                if response.status not in (200, 206):
                    raise PeerError(f"{self.url} answered {response.status} to a Range request")
                async for block in response.content.iter_chunked(BLOCK):
                    yield block
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            forbidden = forbidden_cause(exc)
            if forbidden is not None:  # a redirect or a DNS answer led to an address the policy forbids
                raise InputError(f"reading {self.url}: {forbidden}") from None
            raise PeerError(f"reading {self.url}: {describe(exc)}") from None


async def _counted(response: aiohttp.ClientResponse, url: str, expected: int) -> AsyncGenerator[bytes, None]:
    """The body of a checked range, which must be exactly ``expected`` bytes: a body that ends early (no
    Content-Length to hold the server to) or runs long is another object than the pinned one."""
    seen = 0
    async for block in response.content.iter_chunked(BLOCK):
        seen += len(block)
        if seen > expected:
            raise InputError(f"input url {url} sent more than the {expected} bytes of the range it announced")
        yield block
    if seen != expected:
        raise InputError(f"input url {url} ended its answer after {seen} of the {expected} bytes it announced")


class UrlSource:
    """A URL input: read through a session of its own whose every connection, redirects included, obeys the policy,
    pinned to the version the master probed.

    Not the actor's peer session: that one must reach private cluster addresses. The session lives as long as one
    read of one split (this generator), which makes a single GET.
    """

    def __init__(self, url: str, policy: UrlPolicy, connect: float, idle: float, pin: Pin) -> None:
        self.url = url
        self.policy = policy
        self.connect = connect
        self.idle = idle
        self.pin = pin

    async def blocks(self, offset: int) -> AsyncGenerator[bytes, None]:
        async with self.policy.session() as session:
            # identity: a range counts bytes of the object itself, never of a compressed rendering of it.
            source = HttpSource(session, self.url, {"Accept-Encoding": "identity"}, self.connect, self.idle, self.pin)
            async with contextlib.aclosing(source.blocks(offset)) as blocks:
                async for block in blocks:
                    yield block
