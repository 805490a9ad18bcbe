"""Job inputs: turning a user's input spec or upload into a reference mappers can read, and holding served bytes."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import math
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import StreamReader, web

from ..core.config import Settings
from ..core.errors import (
    BadRequest,
    InputError,
    InsufficientStorage,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    TooManyRequests,
    shown_all,
)
from ..core.text import first_control
from ..inputs.gzipped import MAGIC, is_gzip
from ..inputs.paths import expand_paths
from ..inputs.ref import GZIP, PATH, SERVED, URL, InputRef
from ..inputs.sources import resolve_under_root
from ..inputs.urls import UrlPolicy, url_pin

UPLOAD_BLOCK = 1024 * 1024


class Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


@dataclass
class BodyPace:
    """How fast a request body arrives: after ``grace`` seconds it must average ``rate`` bytes/s (MR_MIN_BODY_RATE).

    Without it a sender of one byte every 20 s never trips the idle timeout and holds its slot (and, for an upload,
    its share of MR_UPLOAD_BUDGET) for the whole MR_TIMEOUT_BODY.
    """

    started: float  # loop time
    rate: int
    grace: float
    received: int = 0

    def due(self) -> float:
        """The loop time by which more bytes must have arrived."""
        return self.started + self.grace + self.received / self.rate if self.rate > 0 else math.inf


def body_pace(settings: Settings) -> BodyPace:
    """A pace starting now; the grace is MR_TIMEOUT_BODY_IDLE, so a body may start as slowly as it may pause."""
    timeouts = settings.timeouts
    return BodyPace(asyncio.get_running_loop().time(), settings.min_body_rate, timeouts.body_idle)


async def read_block(stream: StreamReader, size: int, idle: float, deadline: float,
                     pace: BodyPace | None = None) -> bytes:
    """The next block of a request body (b"" at its end); a stalled, trickling or too slow sender gets 408.

    ``deadline`` is in loop time; the limits are MR_TIMEOUT_BODY_IDLE, MR_TIMEOUT_BODY and (with ``pace``)
    MR_MIN_BODY_RATE.
    """
    now = asyncio.get_running_loop().time()
    left = deadline - now
    wait, cause = (left, "whole") if left <= idle else (idle, "idle")
    if pace is not None and pace.due() - now < wait:
        wait, cause = pace.due() - now, "rate"
    try:
        async with asyncio.timeout(max(0.0, wait)):
            block = await stream.read(size)
    except TimeoutError:
        if cause == "whole":
            raise RequestTimeout("the request body did not arrive whole in time (MR_TIMEOUT_BODY)") from None
        if cause == "rate":
            assert pace is not None
            raise RequestTimeout(f"the request body arrives slower than {pace.rate} bytes/s on average: "
                                 f"{pace.received} bytes in {now - pace.started:.0f} s (MR_MIN_BODY_RATE)") from None
        raise RequestTimeout(f"the request body stalled: no bytes for {idle:g} s (MR_TIMEOUT_BODY_IDLE)") from None
    if pace is not None:
        pace.received += len(block)
    return block


class TextBudget:
    """Bytes of master memory for text inputs held and JSON bodies being read and parsed (MR_TEXT_BUDGET)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, extra: int, total: int, what: str) -> None:
        """Reserve ``extra`` bytes for something needing ``total`` in all: 413 if it never fits, 429 if not now."""
        if total > self.limit:
            raise PayloadTooLarge(f"{what} needs {total} bytes of master memory, more than the {self.limit} bytes "
                                  "text inputs and JSON bodies may take (MR_TEXT_BUDGET); send it as an upload "
                                  "(a raw request body) instead")
        if self.used + extra > self.limit:
            raise TooManyRequests(f"{what} needs {total} bytes of master memory; {self.used} of the {self.limit} "
                                  "bytes text inputs and JSON bodies may take are in use (MR_TEXT_BUDGET); retry "
                                  "later", retry_after=5.0)
        self.used += extra


class Reservation:
    """One request's share of the text budget while it reads and parses its body; released when it ends."""

    def __init__(self, budget: TextBudget) -> None:
        self.budget = budget
        self.held = 0

    def grow_to(self, size: int, what: str) -> None:
        if size > self.held:
            self.budget.take(size - self.held, size, what)
            self.held = size

    def hand_over(self, size: int) -> int:
        """Pass up to ``size`` reserved bytes on to a text the store now holds; how many were passed."""
        moved = min(size, self.held)
        self.held -= moved
        return moved

    def release(self) -> None:
        self.budget.used -= self.held
        self.held = 0


class InputStore:
    """Bytes the master serves to mappers by id: small texts in memory, uploads spooled to disk.

    Uploads on disk (finished and arriving) never pass MR_UPLOAD_BUDGET bytes together, so the spool volume
    cannot fill up and get the pod evicted.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._texts: dict[str, bytes] = {}
        self.text_budget = TextBudget(settings.text_budget)
        self._files: dict[str, Path] = {}
        self._sizes: dict[str, int] = {}
        self.spooled = 0  # bytes of uploads on disk, counting those still arriving
        self.expanding = 0  # threads walking directories and globs now (MR_MAX_EXPANSIONS)
        self._dir = tempfile.TemporaryDirectory(prefix="mr-uploads-", dir=settings.spool_dir or None)

    def _ref(self, input_id: str, name: str, size: int, compression: str = "") -> InputRef:
        url = f"{self.settings.advertise_url}/internal/v1/inputs/{input_id}"
        return InputRef(SERVED, url, name, size, served_id=input_id, compression=compression)

    def add_text(self, data: bytes, name: str, reservation: Reservation | None = None) -> InputRef:
        """Hold a text input, charged to MR_TEXT_BUDGET (out of the request's reservation, if it has one)."""
        size = len(data)
        moved = reservation.hand_over(size) if reservation is not None else 0
        try:
            self.text_budget.take(size - moved, size, f"a text input of {size} bytes")
        except BaseException:
            self.text_budget.used -= moved
            raise
        input_id = uuid.uuid4().hex
        self._texts[input_id] = data
        return self._ref(input_id, name, len(data))

    async def expand(self, entries: list[str]) -> list[InputRef]:
        """The references of ``paths`` entries, walked and stat-ed in a thread (a network volume may block) that
        holds one of MR_MAX_EXPANSIONS slots until it ends, even when the request that asked has gone: the slots
        bound the threads, not the requests."""
        settings = self.settings
        if self.expanding >= settings.max_expansions:
            raise TooManyRequests(f"{self.expanding} submissions' directories and globs are being expanded, the "
                                  "most a master expands at once (MR_MAX_EXPANSIONS); retry later", retry_after=1.0)
        self.expanding += 1
        future = asyncio.get_running_loop().run_in_executor(
            None, _path_refs, settings.data_root, entries, settings.max_inputs, settings.max_path_scan)
        future.add_done_callback(self._expanded)
        return await asyncio.shield(future)

    def _expanded(self, future: asyncio.Future[list[InputRef]]) -> None:
        self.expanding -= 1
        if not future.cancelled():
            future.exception()  # retrieved here: a request that gave up no longer awaits it

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
        time); a full disk gets 507. Either way the partial file is removed. ``digest`` is fed every byte. A gzip
        upload (by its name or its first bytes, as a path input is told) is marked so mappers decompress it.
        """
        if length is not None and length > cap:
            raise PayloadTooLarge(f"upload exceeds the cap of {cap} bytes (MR_MAX_BODY)")
        if length is not None and self.spooled + length > self.settings.upload_budget:
            raise self._budget_error(length)
        input_id = uuid.uuid4().hex
        path = Path(self._dir.name) / input_id
        size = 0
        head = b""  # the upload's first bytes, for the gzip magic
        timeouts = self.settings.timeouts
        deadline = deadline if deadline is not None else asyncio.get_running_loop().time() + timeouts.body
        pace = body_pace(self.settings)
        try:
            # Disk writes run in a thread: a slow volume or the kernel throttling dirty pages can stall one write
            # for seconds, and the loop serves every other request meanwhile.
            file = await asyncio.to_thread(open, path, "wb")
            try:
                while block := await read_block(stream, UPLOAD_BLOCK, timeouts.body_idle, deadline, pace):
                    if size + len(block) > cap:
                        raise PayloadTooLarge(f"upload exceeds the cap of {cap} bytes (MR_MAX_BODY)")
                    if self.spooled + len(block) > self.settings.upload_budget:
                        raise self._budget_error(size + len(block))
                    size += len(block)
                    self.spooled += len(block)  # reserved before the write, so concurrent uploads see it
                    if digest is not None:
                        digest.update(block)
                    if len(head) < len(MAGIC):
                        head = (head + block)[: len(MAGIC)]
                    await asyncio.to_thread(file.write, block)
            finally:
                # Cheap (no fsync; writes of a whole block leave the buffer empty). A write still running in its
                # thread after a cancel holds the buffer's lock, so close waits for it rather than cutting it.
                file.close()
        except BaseException as error:
            self.spooled -= size
            path.unlink(missing_ok=True)
            if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage(f"the master's spool disk is full after {size} bytes of this upload "
                                          "(MR_SPOOL_DIR); retry later or send a smaller input") from None
            raise
        self._files[input_id] = path
        self._sizes[input_id] = size
        return self._ref(input_id, name, size, GZIP if is_gzip(name, head) else "")

    def text(self, input_id: str) -> bytes | None:
        """The bytes of a text input held in memory (None for an upload, spooled to disk, or an unknown id)."""
        return self._texts.get(input_id)

    def drop(self, input_id: str) -> None:
        text = self._texts.pop(input_id, None)
        if text is not None:
            self.text_budget.used -= len(text)
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
        self.text_budget.used = 0
        self._files.clear()
        self._sizes.clear()
        self.spooled = 0
        self._dir.cleanup()


async def parse_spec(spec: Any, settings: Settings, store: InputStore, reservation: Reservation | None = None,
                     encoded: bytes | None = None) -> InputRef:
    """The reference for a JSON input spec: exactly one of ``text``, ``path`` or ``url``.

    ``encoded``: the text's UTF-8 bytes when the caller has them already; ``reservation``: the request's share of
    MR_TEXT_BUDGET, passed on to the held text.
    """
    if not isinstance(spec, dict) or not spec:
        raise BadRequest('"input" must be an object with one of "text", "path", "url", "paths" or "urls"')
    kinds = [k for k in ("text", "path", "url") if k in spec]
    unknown = sorted(set(spec) - {"text", "path", "url", "name"})
    if unknown:
        raise BadRequest(f"unknown input fields {shown_all(unknown)}; use one of text, path, url, paths, urls")
    if len(kinds) != 1:
        raise BadRequest('"input" must have exactly one of "text", "path", "url", "paths" or "urls"')
    kind = kinds[0]
    value = spec[kind]
    if not isinstance(value, str):
        raise BadRequest(f'"input.{kind}" must be a string')
    name = spec.get("name", "")
    if not isinstance(name, str):
        raise BadRequest('"input.name" must be a string')
    check_name(name, settings.max_name, '"input.name"')
    if kind == "text":
        # A text travels as bytes (a lone surrogate becomes bytes a mapper decodes as it decodes any input).
        data = encoded if encoded is not None else value.encode("utf-8", "surrogatepass")
        if len(data) > settings.max_body:
            raise PayloadTooLarge(f"text input exceeds the cap of {settings.max_body} bytes")
        return store.add_text(data, name or "text", reservation)
    check_unicode(value, f'"input.{kind}"')
    if kind == "path":
        # File-system calls (resolve, stat, a trial open) may block on a network volume: off the loop.
        size, compression = await asyncio.to_thread(_path_info, settings.data_root, value)
        return InputRef(PATH, value, name or Path(value).name, size, compression=compression)
    return await _url_ref(value, name, settings)


async def parse_inputs(spec: Any, settings: Settings, store: InputStore, reservation: Reservation | None = None,
                       encoded: bytes | None = None) -> list[InputRef]:
    """The references for a JSON input spec: one for ``text``, ``path`` or ``url``; one per file for ``paths``
    (files, directories and globs under the data root, named by their relative paths) and one per URL of
    ``urls``. At most MR_MAX_INPUTS."""
    if not isinstance(spec, dict) or not ({"paths", "urls"} & set(spec)):
        return [await parse_spec(spec, settings, store, reservation, encoded)]
    if len(spec) != 1:
        raise BadRequest(f'"input" with "paths" or "urls" takes nothing else, got {shown_all(sorted(spec))}')
    ((kind, values),) = spec.items()
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise BadRequest(f'"input.{kind}" must be a non-empty list of strings')
    limit = settings.max_inputs
    if len(values) > limit:
        raise BadRequest(f'"input.{kind}" has {len(values)} entries, more than the {limit} inputs one job may have '
                         "(MR_MAX_INPUTS)")
    for value in values:
        check_unicode(value, f'"input.{kind}"')
    if kind == "urls":
        return [await _url_ref(url, "", settings) for url in values]
    return await store.expand(values)


async def _url_ref(url: str, name: str, settings: Settings) -> InputRef:
    policy = UrlPolicy(settings.allow_private_urls)
    await policy.check(url)
    pin = await url_pin(policy, url, settings)
    name = name or Path(urlsplit(url).path).name or "url"
    return InputRef(URL, url, name, pin.size, compression=GZIP if is_gzip(urlsplit(url).path, b"") else "",
                    etag=pin.etag, modified=pin.modified)


def _path_refs(root: str, entries: list[str], limit: int, scan_limit: int) -> list[InputRef]:
    refs = []
    for relative in expand_paths(root, entries, limit, scan_limit):
        size, compression = _path_info(root, relative)
        refs.append(InputRef(PATH, relative, relative, size, compression=compression))
    return refs


def _path_info(root: str, relative: str) -> tuple[int, str]:
    """A path input's size, and whether it is gzip-compressed (by its name or its first bytes)."""
    with open(resolve_under_root(root, relative), "rb") as file:
        head = file.read(len(MAGIC))
        size = os.fstat(file.fileno()).st_size
    return size, GZIP if is_gzip(relative, head) else ""


def check_unicode(value: str, what: str) -> None:
    """Refuse a string that has no UTF-8 form (a lone surrogate such as "\\ud800"): it could never reach an actor."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InputError(f"{what} is not valid Unicode text: it has a lone surrogate at character {error.start}, "
                         "which has no UTF-8 form") from None


def check_name(name: str, limit: int, what: str) -> None:
    """Refuse a name with a control character, or longer than ``limit`` UTF-8 bytes: a job may copy it into every
    value (inverted index)."""
    check_unicode(name, what)
    at = first_control(name)
    if at is not None:  # a name is shown by the CLI, the page and the logs: it must not be able to drive a terminal
        raise BadRequest(f"{what} has a control character (U+{ord(name[at]):04X}) at character {at}; a name is "
                         "printable text")
    size = len(name.encode("utf-8"))
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

