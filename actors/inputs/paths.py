"""Many path inputs: files, directories (walked recursively, in sorted order) and globs, confined to the data root."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from ..core.errors import InputError
from .sources import resolve_under_root

_GLOB = frozenset("*?[")


def expand_paths(root: str, entries: list[str], limit: int) -> list[str]:
    """The files ``entries`` name, as paths relative to ``root``: in the order given, each directory and glob
    expanded in sorted order, each file once. Anything outside the root (``..``, an absolute path, a symlink
    leading out, even inside a walked directory) is refused, and so are an entry matching no file and more than
    ``limit`` files (MR_MAX_INPUTS)."""
    if not root:
        raise InputError("path inputs are disabled: no data root is configured (MR_DATA_ROOT)")
    base = Path(root).resolve()
    found: dict[str, None] = {}  # insertion-ordered set
    for entry in entries:
        names = _expand(base, entry, limit)
        if not names:
            raise InputError(f"input path {entry!r} matches no file under the data root")
        for relative in names:
            found.setdefault(relative)
            if len(found) > limit:
                raise InputError(f"the inputs name more than {limit} files, the most one job may have "
                                 "(MR_MAX_INPUTS)")
    return list(found)


def _expand(base: Path, entry: str, limit: int) -> list[str]:
    _check_relative(entry)
    if _GLOB & set(entry):
        matches = sorted(glob.glob(entry, root_dir=base, recursive=True))
        files: list[str] = []
        for match in matches:
            files.extend(_expand(base, match, limit) if not (_GLOB & set(match)) else [])
            if len(files) > limit:
                break
        return files
    target = _inside(base, entry)
    if target.is_dir():
        return _walk(base, entry, target, limit)
    resolve_under_root(str(base), entry)  # a readable regular file, or a clear refusal
    return [Path(entry).as_posix()]


def _walk(base: Path, entry: str, top: Path, limit: int) -> list[str]:
    """Every regular file under the directory ``entry``, sorted; symlinked directories are checked, not followed."""
    files: list[str] = []
    for folder, dirs, names in os.walk(base / entry, followlinks=False):
        dirs.sort()
        for name in dirs:
            path = Path(folder, name)
            if path.is_symlink():
                _inside(base, path.relative_to(base).as_posix())
        for name in sorted(names):
            relative = Path(folder, name).relative_to(base).as_posix()
            target = _inside(base, relative)
            if not target.is_file():
                continue  # a socket, a FIFO, a device: nothing to read
            resolve_under_root(str(base), relative)
            files.append(relative)
            if len(files) > limit:
                return files
    return sorted(files)  # by whole path, as a listing shows them: not each folder's files before its subfolders


def _check_relative(entry: str) -> None:
    if not entry or "\x00" in entry:
        raise InputError("input path is empty or contains a NUL byte")
    if os.path.isabs(entry) or ".." in Path(entry).parts:
        raise InputError(f"input path {entry!r} must be relative to the data root, without '..'")


def _inside(base: Path, relative: str) -> Path:
    """The real path of ``relative``, which must not leave the root (a symlink may lead out)."""
    _check_relative(relative)
    try:
        target = (base / relative).resolve()
    except OSError as error:
        raise InputError(f"input path {relative[:100]!r} cannot be used: {error.strerror}") from None
    if target != base and base not in target.parents:
        raise InputError(f"input path {relative!r} leaves the data root")
    if not target.exists():
        raise InputError(f"input path {relative!r} does not exist under the data root")
    return target
