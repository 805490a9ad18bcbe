"""Output directories: a job's ``part-NNNNN.jsonl`` files and ``_SUCCESS`` marker, committed by atomic renames.

A job's reducers write their parts into the job's own staging directory inside the output directory
(``.staging-<job>-<epoch>``, same file system): each under a hidden temporary name, flushed and fsynced, then
renamed to its final name there. Only the master moves parts from there into the output directory, once every
partition has reported, and then writes ``_SUCCESS`` the same way, last, as Hadoop's FileOutputCommitter does. A
job that ends any other way has its staging directory renamed away: a late writer of a cancelled, failed or
superseded job finds no directory to rename into, so it can never publish over another job's output.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import BadRequest, Conflict, InputError, shown
from ..core.keyorder import typed_key, wire_order
from ..core.partition import TAG

SUCCESS = "_SUCCESS"
PART = re.compile(r"part-\d{5}\.jsonl")
_JOB_ID = re.compile(r"[A-Za-z0-9_]{1,64}")  # what a staging directory's name may carry of a job id
_COMMITTER = (".staging-", ".discarded-")  # the prefixes of the directories the commit protocol owns
_WRITE_BLOCK = 256 * 1024


def part_name(partition: int) -> str:
    return f"part-{partition:05d}.jsonl"


def staging_name(job: str, epoch: int) -> str:
    """The hidden directory (inside the output directory) where (job, epoch)'s reducers put their parts."""
    if not _JOB_ID.fullmatch(job) or epoch < 0:
        raise BadRequest(f"job id {job[:80]!r} cannot name a staging directory")
    return f".staging-{job}-{epoch}"


def resolve_output_dir(root: str, relative: str, max_depth: int) -> Path:
    """The real path of output directory ``relative`` inside ``root``, confined as input paths are (no absolute
    path, no ``..``, no symlink leading out, at most ``max_depth`` levels); it need not exist yet, but if it does
    it must be a directory. Every refusal is an InputError naming the problem (a symlink loop too)."""
    if not root:
        raise InputError("outputs are disabled: no output root is configured (MR_OUTPUT_ROOT or MR_DATA_ROOT)")
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise InputError("output path must be a non-empty string without NUL bytes")
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"output path {shown(relative)} is not valid UTF-8") from None
    parts = Path(relative).parts
    if os.path.isabs(relative) or ".." in parts:
        raise InputError(f"output path {shown(relative)} must be relative to the output root, without '..'")
    if len(parts) > max_depth:
        raise InputError(f"output path {shown(relative)} has {len(parts)} directory levels, more than the "
                         f"{max_depth} an output may have (MR_MAX_OUTPUT_DEPTH)")
    base = Path(root).resolve()
    try:
        target = (base / relative).resolve()  # Python 3.11 raises RuntimeError on a loop, later ones do not
        if target == base or base not in target.parents:
            raise InputError(f"output path {shown(relative)} leaves the output root (or is the output root itself)")
        # Another job's staging directory (or one being discarded) is never an output: that job's commit would
        # overwrite this job's parts or remove them with its staging directory after this job said done.
        if any(part.startswith(_COMMITTER) for part in target.relative_to(base).parts):
            raise InputError(f"output path {shown(relative)} is inside a job's staging directory "
                             "(names starting '.staging-' or '.discarded-' belong to the output commit)")
        if _kind(target) not in (None, "dir"):
            raise InputError(f"output path {shown(relative)} exists and is not a directory")
    except (RuntimeError, RecursionError):
        raise InputError(f"output path {shown(relative)} cannot be used: a symlink loop") from None
    except OSError as error:
        cause = "a symlink loop" if error.errno == errno.ELOOP else error.strerror
        raise InputError(f"output path {shown(relative)} cannot be used: {cause}") from None
    return target


def _kind(path: Path) -> str | None:
    """``"dir"``, ``"other"`` or None (absent); a symlink loop or an unusable component raises OSError."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    return "dir" if stat.S_ISDIR(mode) else "other"


def check_output_free(target: Path, relative: str) -> None:
    """Refuse (409) a directory that already holds a job's output (a ``_SUCCESS`` or a part file), so no job's parts
    ever mix with another's; other files are left alone. Reads only: nothing is created here."""
    try:
        names = os.listdir(target)
    except FileNotFoundError:
        return
    except OSError as error:
        raise InputError(f"output directory {shown(relative)} cannot be read: "
                         f"{os.strerror(error.errno or 0)}") from None
    taken = sorted(name for name in names if name == SUCCESS or PART.fullmatch(name))
    if taken:
        held = ", ".join(taken[:3]) + (", ..." if len(taken) > 3 else "")
        raise Conflict(f"output directory {shown(relative)} already holds a job's output ({held}); "
                       "choose a new directory or remove them")


def open_staging(root: str, relative: str, max_depth: int, job: str, epoch: int) -> Path:
    """At a job's start: create its output directory (parents too) and its empty staging directory; refused if
    the directory holds another job's output by now. Returns the staging directory (blocking: call in a thread)."""
    target = resolve_output_dir(root, relative, max_depth)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create output directory {shown(relative)}: {os.strerror(error.errno or 0)}") from None
    # The directory may have been a symlink swapped in between the checks; check the result once more.
    if resolve_output_dir(root, relative, max_depth) != target:
        raise InputError(f"output path {shown(relative)} changed while it was created")
    check_output_free(target, relative)
    staging = target / staging_name(job, epoch)
    try:
        staging.mkdir()
    except OSError as error:
        raise InputError(f"cannot create the staging directory in {shown(relative)}: "
                         f"{os.strerror(error.errno or 0)}") from None
    return staging


def staged_dir(root: str, relative: str, max_depth: int, job: str, epoch: int) -> Path:
    """A reducer's view: (job, epoch)'s staging directory, which must exist (only the master creates it). Gone
    means the job ended (cancelled, failed, superseded) and fenced its writers: a Conflict says so."""
    target = resolve_output_dir(root, relative, max_depth)  # confined again here: never trust the path given
    staging = target / staging_name(job, epoch)
    try:
        real = staging.resolve(strict=True)
    except (OSError, RuntimeError):
        real = None
    if real != staging or not staging.is_dir():
        raise Conflict(f"job {job} epoch {epoch} no longer writes to {shown(relative)}: its staging directory is gone "
                       "(the job was cancelled, failed or superseded)")
    return staging


def discard_staging(staging: Path) -> None:
    """Fence a job's writers: rename its staging directory away (atomic: a writer's later rename into it fails),
    then remove it with whatever it held. Absent already: nothing to do."""
    doomed = staging.with_name(f".discarded-{uuid.uuid4().hex}")
    try:
        os.rename(staging, doomed)
    except FileNotFoundError:
        return
    shutil.rmtree(doomed, ignore_errors=True)


@dataclass(frozen=True)
class PartInfo:
    """What a reducer reports of the part it wrote: never the data itself."""

    name: str
    bytes: int
    keys: int
    sha256: str


def entry_lines(result: Mapping[str, Any]) -> Iterable[bytes]:
    """A finished partition (canonical keys, see actors.core.partition) as JSONL in natural key order
    (actors.core.keyorder)."""
    keys = list(result)
    if TAG not in "".join(keys):  # plain str keys (word count's): code-point order, no Python call per key
        return record_lines((key, result[key]) for key in sorted(keys))
    return record_lines((typed_key(key), result[key]) for key in sorted(keys, key=wire_order))


def record_lines(records: Iterable[tuple[Any, Any] | list[Any]]) -> Iterable[bytes]:
    """THE line writer of part files: one compact ``[key, value]`` JSON array a line, UTF-8, the key typed (a str,
    an int, or a tuple as an array, nested). ``records`` are written in the order given."""
    dumps = json.dumps
    for key, value in records:
        yield dumps([key, value], separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def attempt_name(split: int, attempt: int) -> str:
    """A map-only job's attempt file in its staging directory: one per attempt of a split, never a part's name (the
    master publishes the counted attempt's as ``part_name(split)``; any other is removed with the directory)."""
    return f"{part_name(split)[:-6]}.attempt-{attempt}.jsonl"


def attempt_token(attempt: int) -> str:
    """What names a map-only job's attempt object under an s3:// prefix (as a reducer's incarnation does)."""
    return f"attempt{attempt}"


def write_part(directory: Path, partition: int, tag: str, lines: Iterable[bytes], final: str = "") -> PartInfo:
    """Write ``lines`` as ``part-NNNNN.jsonl`` (or ``final``) in ``directory`` through ``tag``'s temporary file
    (blocking: call it in a thread). On any error the temporary file is removed and a BadRequest names the cause."""
    final = final or part_name(partition)
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


def check_parts(directory: Path, parts: list[PartInfo], sources: Mapping[str, str] | None = None) -> None:
    """Every reported part is in place with its reported size (the master checks before ``_SUCCESS``); ``sources``:
    a part's staged name when it is not the part's own (a map-only job's attempt files)."""
    for part in parts:
        try:
            size = os.stat(directory / (sources or {}).get(part.name, part.name)).st_size
        except OSError as error:
            raise BadRequest(f"output part {part.name} is not in place: {os.strerror(error.errno or 0)}") from None
        if size != part.bytes:
            raise BadRequest(f"output part {part.name} is {size} bytes, not the {part.bytes} its reducer reported")


def commit_staged(target: Path, staging: Path, job: str, epoch: int, parts: list[PartInfo],
                  extra: Mapping[str, Any] | None = None, sources: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Publish (job, epoch)'s staged parts: each checked in place with its reported size, then moved into
    ``target`` (atomic renames), then ``_SUCCESS`` written, then the staging directory removed with any temporary
    file a killed reducer left there (and any attempt file of a map-only job that was not counted). ``sources``: a
    part's staged name when it is not the part's own. Blocking: call in a thread. Returns what ``_SUCCESS`` says
    (with ``extra``'s fields: the job's counters)."""
    check_parts(staging, parts, sources)
    for part in parts:
        try:
            os.replace(staging / (sources or {}).get(part.name, part.name), target / part.name)
        except OSError as error:
            raise BadRequest(f"cannot publish output part {part.name}: {os.strerror(error.errno or 0)}") from None
    doc = write_success(target, job, epoch, parts, f"{job}.{epoch}", extra)  # fsyncs the directory: the moves too
    discard_staging(staging)
    return doc


def write_success(directory: Path, job: str, epoch: int, parts: list[PartInfo], tag: str,
                  extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write ``_SUCCESS`` atomically; returns what it says."""
    doc = {"job": job, "epoch": epoch, "parts": [p.name for p in parts], "keys": sum(p.keys for p in parts),
           "bytes": sum(p.bytes for p in parts), "sha256": {p.name: p.sha256 for p in parts}, "created": time.time(),
           **(extra or {})}
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
