"""Side files: a job's declared read-only files, found (confined), pinned at submit, and copied into every task.

A job declares ``files = {name: path}``: a path relative to the data root (a shared volume every actor mounts), or
``"package:PATH"`` relative to the directory of the job's own module (shipped in the image, as mrjob's ``FILES``
next to a job's script); and a parameter named in its ``file_params`` gives a path under the data root (mrjob's
``add_file_arg``), copied as its base name. The master pins each file at submit (its size and a BLAKE2b digest of
its bytes); every task copies it into its working directory and checks the copy against the pin as it goes, so a
file that changes during the job fails the job, naming it, instead of giving different tasks different contents.

Blocking file I/O: a master pins in a thread, a task process copies in its own process.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..core.errors import BadRequest, InputError, PayloadTooLarge, WireError, shown
from ..sdk import MapReduceJob, param_file_name

PACKAGE = "package:"
BLOCK = 1024 * 1024
MAX_NAME = 255  # bytes of a side file's name: one file name in a task's working directory


@dataclass(frozen=True)
class FilePin:
    """A side file's contents when the job was submitted: its size and the BLAKE2b-128 digest of its bytes."""

    size: int
    digest: str

    def encode(self) -> str:
        """The form an assignment (and a finalize) carries: ``"SIZE:DIGEST"``."""
        return f"{self.size}:{self.digest}"

    @classmethod
    def decode(cls, text: str) -> FilePin:
        size, _, digest = text.partition(":")
        if not size.isdigit() or not size.isascii() or len(digest) != 32 or not _hex(digest):
            raise WireError(f"a side file's pin {text[:80]!r} is not SIZE:DIGEST")
        return cls(int(size), digest)


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def declared(cls: type[MapReduceJob], params: Mapping[str, str] | None = None) -> dict[str, str]:
    """The job's side files, name -> path: its ``files``, and each of its ``file_params`` given in ``params`` (a path
    under the data root, named by its base name); each name a plain file name, no two the same (400 naming the job,
    or the parameter, otherwise)."""
    return {name: path for name, path, _ in _sources(cls, params)}


def _sources(cls: type[MapReduceJob], params: Mapping[str, str] | None) -> list[tuple[str, str, str]]:
    """Every side file as (name, path, how an error names it)."""
    files = cls.files
    if not isinstance(files, Mapping):
        raise BadRequest(f"job {cls.name!r}: files must map names to paths, not be a {type(files).__name__}")
    out: dict[str, tuple[str, str, str]] = {}
    for name, path in files.items():
        if type(name) is not str or type(path) is not str:
            raise BadRequest(f"job {cls.name!r}: side file names and paths are strings; {shown(name)} is not")
        _check_name(cls, name, f"side file name {shown(name)}")
        out[name] = name, path, f"job {cls.name!r}: side file {shown(name)} ({shown(path)})"
    for param in sorted(cls.file_params):
        given = (params or {}).get(param)
        if type(given) is not str:
            continue
        path = given
        what = f"job {cls.name!r}: parameter {shown(param)} ({shown(path)})"
        if path.startswith(PACKAGE):
            raise InputError(f"{what} must be a file under the data root")
        name = param_file_name(path)
        _check_name(cls, name, f"parameter {shown(param)}: its file's name {shown(name)}")
        if name in out:
            raise BadRequest(f"{what}: the job has another side file named {shown(name)}, and a task's working "
                             "directory holds one file of a name; give a file of another name")
        out[name] = name, path, what
    return [out[name] for name in sorted(out)]


def _check_name(cls: type[MapReduceJob], name: str, what: str) -> None:
    if (not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name
            or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME):
        raise BadRequest(f"job {cls.name!r}: {what} must be a plain file name (no '/', not '.' or '..', at most "
                         f"{MAX_NAME} bytes)")


def locate(cls: type[MapReduceJob], name: str, path: str, data_root: str, what: str = "") -> Path:
    """The real path of side file ``name`` declared as ``path``: a regular file inside the data root, or inside the
    job module's directory for ``package:``; anything else (missing, ``..``, absolute, a symlink leading out) is an
    InputError naming the job and the file (or ``what`` names it)."""
    what = what or f"job {cls.name!r}: side file {shown(name)} ({shown(path)})"
    if path.startswith(PACKAGE):
        relative, base, where = path[len(PACKAGE):], _module_dir(cls, what), "the job's module directory"
    else:
        if not data_root:
            raise InputError(f"{what} is under the data root, but no data root is configured (MR_DATA_ROOT)")
        relative, base, where = path, Path(data_root), "the data root"
    if not relative or "\x00" in relative:
        raise InputError(f"{what}: the path is empty or contains a NUL byte")
    if os.path.isabs(relative) or ".." in PurePosixPath(relative).parts:
        raise InputError(f"{what} must be a path relative to {where}, without '..'")
    try:
        root = base.resolve()
        target = (root / relative).resolve()
        inside = root in target.parents
        regular = inside and target.is_file()
    except OSError as error:
        raise InputError(f"{what} cannot be used: {error.strerror}") from None
    except RuntimeError:  # Python 3.11's Path.resolve on a symlink loop
        raise InputError(f"{what} cannot be used: it passes through a symlink loop") from None
    if not inside:
        raise InputError(f"{what} leaves {where}")
    if not regular:
        raise InputError(f"{what} is missing: no such file under {where}")
    return target


def _module_dir(cls: type[MapReduceJob], what: str) -> Path:
    try:
        return Path(inspect.getfile(cls)).parent
    except (TypeError, OSError):
        raise InputError(f"{what}: the job's module has no file, so no directory to ship files in") from None


def pin_files(cls: type[MapReduceJob], data_root: str, cap: int,
              params: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every side file of the job (given ``params``: see :func:`declared`), found and pinned (name ->
    :meth:`FilePin.encode`); at most ``cap`` bytes in all (MR_MAX_SIDE_FILES). Reads each file whole: call it off
    the event loop."""
    pins: dict[str, str] = {}
    total = 0
    for name, path, what in _sources(cls, params):
        target = locate(cls, name, path, data_root, what)
        digest = hashlib.blake2b(digest_size=16)
        size = 0
        try:
            with open(target, "rb") as file:
                while block := file.read(BLOCK):
                    size += len(block)
                    if total + size > cap:  # refused having read at most the cap, however large the file
                        raise PayloadTooLarge(f"job {cls.name!r}: its side files hold more than {cap} bytes, the "
                                              "most a job may have (MR_MAX_SIDE_FILES)")
                    digest.update(block)
        except OSError as error:
            raise InputError(f"{what} cannot be read: {error.strerror}") from None
        total += size
        pins[name] = FilePin(size, digest.hexdigest()).encode()
    return pins


def materialize(cls: type[MapReduceJob], pins: Mapping[str, str], data_root: str, directory: str,
                params: Mapping[str, str] | None = None) -> None:
    """Copy every side file of the job into ``directory`` (read-only), checking each copy against its pin: a file
    that is missing, or whose bytes are not the ones pinned at submit, is an InputError naming it (the job fails;
    no attempt could do better)."""
    sources = _sources(cls, params)
    if set(pins) != {name for name, _, _ in sources}:
        raise WireError(f"job {cls.name!r} declares side files {sorted(name for name, _, _ in sources)}, its task was "
                        f"given pins for {sorted(pins)}")
    for name, path, what in sources:
        pin = FilePin.decode(pins[name])
        source = locate(cls, name, path, data_root, what)
        copy = os.path.join(directory, name)
        digest, size = hashlib.blake2b(digest_size=16), 0
        try:
            with open(source, "rb") as file, open(copy, "xb") as out:
                while block := file.read(BLOCK):
                    size += len(block)
                    if size > pin.size:
                        break  # grown: no need to read the rest
                    digest.update(block)
                    out.write(block)
        except OSError as error:
            raise InputError(f"{what} cannot be copied into the task: {error.strerror}") from None
        if size != pin.size or digest.hexdigest() != pin.digest:
            now = f"{size} bytes" if size != pin.size else "other bytes of the same size"
            raise InputError(f"{what} changed since the job was submitted ({pin.size} bytes then, {now} now); "
                             "resubmit the job to use the new contents")
        os.chmod(copy, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
