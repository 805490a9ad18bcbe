"""Many path inputs: files, directories (walked recursively, in sorted order) and globs, confined to the data root.

Every file is counted once however often its entries (or one glob's repeated ``**``) name it, and the work of
finding them is bounded: a walk examines each directory entry once, and at most MR_MAX_PATH_SCAN entries in all.
Past either limit the job is refused, never run over part of what it named.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import InputError, shown
from .globs import Pattern, States, has_magic
from .gzipped import MAGIC, is_gzip
from .ref import GZIP, PATH, InputRef
from .sources import resolve_under_root


class Scan:
    """The directory entries one submission's walks and globs may still examine (MR_MAX_PATH_SCAN)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen = 0

    def take(self, entry: str) -> None:
        self.seen += 1
        if self.seen > self.limit:
            raise InputError(f"input path {shown(entry)}: the inputs' directories and globs examine more than "
                             f"{self.limit} directory entries, the most one job may (MR_MAX_PATH_SCAN); name "
                             "narrower directories or patterns")


def expand_paths(root: str, entries: list[str], limit: int, scan_limit: int) -> list[str]:
    """The distinct files ``entries`` name, as paths relative to ``root``: in the order given, each directory and
    glob expanded in sorted order, each file once. Anything outside the root (``..``, an absolute path, a symlink
    leading out, even inside a walked directory) is refused, and so are an entry matching no file, more than
    ``limit`` distinct files (MR_MAX_INPUTS) and walks examining more than ``scan_limit`` entries (MR_MAX_PATH_SCAN)."""
    if not root:
        raise InputError("path inputs are disabled: no data root is configured (MR_DATA_ROOT)")
    base = Path(root).resolve()
    scan = Scan(scan_limit)
    found: dict[str, None] = {}  # insertion-ordered set
    for entry in entries:
        names = _expand(base, entry, limit, scan)
        if not names:
            raise InputError(f"input path {shown(entry)} matches no file under the data root")
        for relative in names:
            found.setdefault(relative)
            if len(found) > limit:
                raise _too_many(limit)
    return list(found)


def _too_many(limit: int) -> InputError:
    return InputError(f"the inputs name more than {limit} files (counting each distinct file once), the most one "
                      "job may have (MR_MAX_INPUTS)")


def _expand(base: Path, entry: str, limit: int, scan: Scan) -> list[str]:
    _check_relative(entry)
    return _glob(base, entry, limit, scan) if has_magic(entry) else _named(base, Path(entry).as_posix(), limit, scan)


def _named(base: Path, relative: str, limit: int, scan: Scan) -> list[str]:
    """The files one path names (itself, or every file below it if it is a directory), whatever its characters."""
    if _inside(base, relative).is_dir():
        return _walk(base, relative, limit, scan)
    resolve_under_root(str(base), relative)  # a readable regular file, or a clear refusal
    return [relative]


def _glob(base: Path, entry: str, limit: int, scan: Scan) -> list[str]:
    """The files a glob matches, sorted: one walk below its literal prefix, each entry stepped through the pattern
    once; a matched directory contributes every file below it, as a directory entry does."""
    parts = Path(entry).parts
    literal = next(i for i, part in enumerate(parts) if has_magic(part))
    prefix = "/".join(parts[:literal])
    pattern = Pattern.of(parts[literal:])
    if prefix:
        top = _real(base, prefix)
        if not _exists(top, prefix) or not top.is_dir():
            return []
        if pattern.accepts(pattern.start()):  # ``docs/**`` names docs itself, as glob has it: every file below
            return _walk(base, prefix, limit, scan)
    files: set[str] = set()
    pending: list[tuple[str, States]] = [(prefix, pattern.start())]
    while pending:
        folder, states = pending.pop()
        for name, is_dir, is_link in _listing(base, folder, entry, scan):
            relative = _join(folder, name)
            after = pattern.step(states, name)
            if is_link:
                # A symlink the pattern names is taken like an entry naming it; one it would only pass through
                # is checked, not followed, as in a directory walk.
                if pattern.accepts(after):
                    files.update(_named(base, relative, limit, scan))
                elif pattern.alive(after) and _real(base, relative).is_dir():
                    _inside(base, relative)
            elif is_dir:
                if pattern.accepts(after):
                    files.update(_walk(base, relative, limit, scan))
                elif pattern.alive(after):
                    pending.append((relative, after))
            elif pattern.accepts(after) and _regular(base, relative):
                files.add(relative)
            if len(files) > limit:
                raise _too_many(limit)
    return sorted(files)


def _walk(base: Path, entry: str, limit: int, scan: Scan) -> list[str]:
    """Every regular file under the directory ``entry``, sorted; symlinked directories are checked, not followed."""
    files: list[str] = []
    pending = [entry]
    while pending:
        folder = pending.pop()
        for name, is_dir, is_link in _listing(base, folder, entry, scan):
            relative = _join(folder, name)
            if is_link and _real(base, relative).is_dir():
                _inside(base, relative)
            elif is_dir:
                pending.append(relative)
            elif _regular(base, relative):
                files.append(relative)
                if len(files) > limit:
                    raise _too_many(limit)
    return sorted(files)  # by whole path, as a listing shows them: not each folder's files before its subfolders


def _listing(base: Path, folder: str, entry: str, scan: Scan) -> list[tuple[str, bool, bool]]:
    """(name, a directory not through a symlink, a symlink) for each entry of ``folder``, each counted once
    against MR_MAX_PATH_SCAN; a directory that cannot be listed refuses the job rather than shrink it."""
    listed: list[tuple[str, bool, bool]] = []
    try:
        with os.scandir(base / folder) as entries:
            for item in entries:
                scan.take(entry)
                listed.append((item.name, item.is_dir(follow_symlinks=False), item.is_symlink()))
    except OSError as error:
        raise InputError(f"input path {folder[:100]!r} cannot be listed: {error.strerror}") from None
    listed.sort()
    return listed


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder not in ("", ".") else name


def _regular(base: Path, relative: str) -> bool:
    """A regular file inside the root (a symlink leading out refuses the job); a socket, a FIFO or a device is
    nothing to read and is passed over."""
    if not _inside(base, relative).is_file():
        return False
    resolve_under_root(str(base), relative)
    return True


def _check_relative(entry: str) -> None:
    if not entry or "\x00" in entry:
        raise InputError("input path is empty or contains a NUL byte")
    if os.path.isabs(entry) or ".." in Path(entry).parts:
        raise InputError(f"input path {shown(entry)} must be relative to the data root, without '..'")


def _real(base: Path, relative: str) -> Path:
    """The real path of ``relative``, which must not leave the root (a symlink may lead out)."""
    _check_relative(relative)
    try:
        target = (base / relative).resolve()
    except OSError as error:
        raise InputError(f"input path {relative[:100]!r} cannot be used: {error.strerror}") from None
    except RuntimeError:  # Python 3.11's Path.resolve on a symlink loop
        raise InputError(f"input path {relative[:100]!r} cannot be used: it passes through a symlink loop") from None
    if target != base and base not in target.parents:
        raise InputError(f"input path {shown(relative)} leaves the data root")
    return target


def _exists(target: Path, relative: str) -> bool:
    try:
        return target.exists()
    except OSError as error:  # a component too long for the file system, say
        raise InputError(f"input path {relative[:100]!r} cannot be used: {error.strerror}") from None


def _inside(base: Path, relative: str) -> Path:
    """The real path of ``relative``, which must exist inside the root."""
    target = _real(base, relative)
    if not _exists(target, relative):
        raise InputError(f"input path {shown(relative)} does not exist under the data root")
    return target


def path_refs(root: str, entries: list[str], limit: int, scan_limit: int) -> list[InputRef]:
    """The references of ``paths`` entries: one per file they name, named by its relative path (blocking I/O)."""
    refs = []
    for relative in expand_paths(root, entries, limit, scan_limit):
        size, compression = path_info(root, relative)
        refs.append(InputRef(PATH, relative, relative, size, compression=compression))
    return refs


def path_info(root: str, relative: str) -> tuple[int, str]:
    """A path input's size, and whether it is gzip-compressed (by its name or its first bytes)."""
    with open(resolve_under_root(root, relative), "rb") as file:
        head = file.read(len(MAGIC))
        size = os.fstat(file.fileno()).st_size
    return size, GZIP if is_gzip(relative, head) else ""
