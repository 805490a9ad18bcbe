"""Output directories: a job's ``part-NNNNN.jsonl`` files and ``_SUCCESS`` marker, committed by atomic renames.

Each part is written under a hidden temporary name in the output directory itself (the same file system), flushed
and fsynced, then renamed over its final name (``os.replace``: atomic on POSIX) and the directory fsynced; so a
reader sees a whole part or none, and a rewrite of a part (a retried finalize) replaces it whole. ``_SUCCESS`` is
written the same way, last, by the master, as Hadoop's FileOutputCommitter does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import BadRequest, Conflict, InputError

SUCCESS = "_SUCCESS"
PART = re.compile(r"part-\d{5}\.jsonl")
_WRITE_BLOCK = 256 * 1024


def part_name(partition: int) -> str:
    return f"part-{partition:05d}.jsonl"


def resolve_output_dir(root: str, relative: str) -> Path:
    """The real path of output directory ``relative`` inside ``root``, confined as input paths are (no absolute
    path, no ``..``, no symlink leading out); it need not exist yet, but if it does it must be a directory."""
    if not root:
        raise InputError("outputs are disabled: no data root is configured (MR_DATA_ROOT)")
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise InputError("output path must be a non-empty string without NUL bytes")
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"output path {relative!r} is not valid UTF-8") from None
    if os.path.isabs(relative) or ".." in Path(relative).parts:
        raise InputError(f"output path {relative!r} must be relative to the data root, without '..'")
    base = Path(root).resolve()
    try:
        target = (base / relative).resolve()
        if target == base or base not in target.parents:
            raise InputError(f"output path {relative!r} leaves the data root (or is the data root itself)")
        if target.exists() and not target.is_dir():
            raise InputError(f"output path {relative!r} exists and is not a directory")
    except OSError as error:
        raise InputError(f"output path {relative[:100]!r} cannot be used: {error.strerror}") from None
    return target


def prepare_output_dir(root: str, relative: str) -> Path:
    """Check ``relative`` for a new job and create it: refused (409) when it already holds another job's output (a
    ``_SUCCESS`` or a part file), so no job's parts ever mix with another's. Other files are left alone."""
    target = resolve_output_dir(root, relative)
    try:
        target.mkdir(parents=True, exist_ok=True)
        taken = sorted(name for name in os.listdir(target) if name == SUCCESS or PART.fullmatch(name))
    except OSError as error:
        raise InputError(f"cannot create output directory {relative!r}: {os.strerror(error.errno or 0)}") from None
    if taken:
        shown = ", ".join(taken[:3]) + (", ..." if len(taken) > 3 else "")
        raise Conflict(f"output directory {relative!r} already holds a job's output ({shown}); "
                       "choose a new directory or remove them")
    # The directory may have been a symlink swapped in between the checks; check the result once more.
    resolve_output_dir(root, relative)
    return target


@dataclass(frozen=True)
class PartInfo:
    """What a reducer reports of the part it wrote: never the data itself."""

    name: str
    bytes: int
    keys: int
    sha256: str


def entry_lines(result: dict[str, Any]) -> Iterable[bytes]:
    """A finished partition as JSONL: one ``[key, value]`` array a line, sorted by key (code point order)."""
    for key in sorted(result):
        yield json.dumps([key, result[key]], separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def write_part(directory: Path, partition: int, tag: str, lines: Iterable[bytes]) -> PartInfo:
    """Write ``lines`` as ``part-NNNNN.jsonl`` in ``directory`` through ``tag``'s temporary file (blocking: call it
    in a thread). On any error the temporary file is removed and a BadRequest names the cause."""
    final = part_name(partition)
    temp = directory / f".{final[:-6]}.{tag}.tmp"
    digest, size, keys = hashlib.sha256(), 0, 0
    try:
        with open(temp, "xb") as file:
            buffer: list[bytes] = []
            held = 0
            for line in lines:
                digest.update(line)
                size, keys = size + len(line), keys + 1
                buffer.append(line)
                held += len(line)
                if held >= _WRITE_BLOCK:
                    file.write(b"".join(buffer))
                    buffer, held = [], 0
            file.write(b"".join(buffer))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, directory / final)
        _fsync_dir(directory)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise BadRequest(f"cannot write output part {final}: {os.strerror(error.errno or 0)}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return PartInfo(final, size, keys, digest.hexdigest())


def check_parts(directory: Path, parts: list[PartInfo]) -> None:
    """Every reported part is in place with its reported size (the master checks before ``_SUCCESS``)."""
    for part in parts:
        try:
            size = os.stat(directory / part.name).st_size
        except OSError as error:
            raise BadRequest(f"output part {part.name} is not in place: {os.strerror(error.errno or 0)}") from None
        if size != part.bytes:
            raise BadRequest(f"output part {part.name} is {size} bytes, not the {part.bytes} its reducer reported")


def write_success(directory: Path, job: str, epoch: int, parts: list[PartInfo], tag: str) -> dict[str, Any]:
    """Remove the job's leftover temporary files, then write ``_SUCCESS`` atomically; returns what it says."""
    for name in os.listdir(directory):
        if name.startswith(".part-") and f".{job}." in name and name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                os.unlink(directory / name)  # a reducer killed while writing left it
    doc = {"job": job, "epoch": epoch, "parts": [p.name for p in parts], "keys": sum(p.keys for p in parts),
           "bytes": sum(p.bytes for p in parts), "sha256": {p.name: p.sha256 for p in parts}, "created": time.time()}
    temp = directory / f".{SUCCESS}.{tag}.tmp"
    try:
        with open(temp, "xb") as file:
            file.write(json.dumps(doc, indent=1).encode() + b"\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, directory / SUCCESS)
        _fsync_dir(directory)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise BadRequest(f"cannot write {SUCCESS}: {os.strerror(error.errno or 0)}") from None
    return doc


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
