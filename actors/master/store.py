"""The input store: bytes the master serves to mappers by id, small texts in memory and uploads spooled to disk."""

from __future__ import annotations

import asyncio
import errno
import tempfile
import uuid
from pathlib import Path
from typing import Protocol

from aiohttp import web

from ..core.config import Settings
from ..core.errors import BadRequest, InsufficientStorage, NotFound, PayloadTooLarge, TooManyRequests
from ..inputs.gzipped import MAGIC, is_gzip
from ..inputs.paths import path_refs
from ..inputs.ref import GZIP, SERVED, InputRef
from .body import UPLOAD_BLOCK, Readable, body_pace, read_block
from .textbudget import Reservation, TextBudget


class Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


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
            None, path_refs, settings.data_root, entries, settings.max_inputs, settings.max_path_scan)
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

    async def add_upload(self, stream: Readable, name: str, cap: int, length: int | None = None, *,
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

