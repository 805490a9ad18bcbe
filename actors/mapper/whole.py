"""A whole input file for a job's ``mapper_raw``: a path input as it lies under the data root, any other input
copied into the attempt's directory, each checked against the size the master planned it with."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, Callable
from pathlib import PurePosixPath

from ..core.config import Settings
from ..core.errors import InputError, shown
from ..core.messages import Assignment
from ..inputs.ref import PATH
from ..inputs.sources import Source, resolve_under_root

COPY_NAME = "input"  # the copy's name when the input's own last component is no plain file name


class WholeInput:
    """One split's whole input file: :meth:`fetch` it (yields bytes so far), then :attr:`path` is where it is."""

    def __init__(self, assignment: Assignment, settings: Settings, source: Callable[[], Source],
                 directory: str) -> None:
        self.a = assignment
        self.settings = settings
        self.source = source
        self.directory = directory  # the attempt's own: removed with the copy when the attempt ends
        self.path = ""

    async def fetch(self) -> AsyncGenerator[int, None]:
        """Find (a path input) or copy (any other) the whole input; yields the bytes read so far."""
        if self.a.input_kind == PATH:
            self.path = str(await asyncio.to_thread(resolve_under_root, self.settings.data_root,
                                                    self.a.input_location))
            await self.check_unchanged()
            yield self.a.pin_size
            return
        self.path = os.path.join(self.directory, copy_name(self.a.input_name))
        cap, seen = self.settings.max_raw_input, 0
        out = await asyncio.to_thread(open, self.path, "xb")
        try:
            async with contextlib.aclosing(self.source().blocks(0)) as blocks:
                async for block in blocks:
                    seen += len(block)
                    if seen > cap:
                        raise InputError(f"input {shown(self.a.input_name)} is larger than {cap} bytes, the most a "
                                         "whole-file mapper copies (MR_MAX_RAW_INPUT)")
                    await asyncio.to_thread(out.write, block)
                    yield seen
        finally:
            out.close()
        if seen != self.a.pin_size:
            raise InputError(f"input {shown(self.a.input_name)} has {seen} bytes, not the {self.a.pin_size} it had "
                             "when the job was planned")
        os.chmod(self.path, 0o444)

    async def check_unchanged(self) -> None:
        """A path input must still have the size it was planned with (before and after the mapper read it)."""
        if self.a.input_kind != PATH:
            return
        size = (await asyncio.to_thread(os.stat, self.path)).st_size
        if size != self.a.pin_size:
            raise InputError(f"input path {shown(self.a.input_location)} changed since the job was planned: "
                             f"{self.a.pin_size} bytes then, {size} now")


def copy_name(name: str) -> str:
    """The copy's file name: the input name's last component when it is a plain file name (a mapper may look at its
    extension), else ``input``."""
    last = PurePosixPath(name).name
    plain = last and last not in (".", "..") and "\x00" not in last and "\\" not in last
    return last if plain and len(last.encode("utf-8", "surrogatepass")) <= 200 else COPY_NAME
