"""Inputs given on a command line (files, directories, globs): checked, read from the deepest directory holding them
all, and named by their paths as given (relative to the working directory, or absolute when given so), as
`mapreduce run` names them and `mapreduce submit` uploads them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..core.config import Settings
from ..core.errors import MapReduceError
from .paths import expand_paths


def readable_input(given: Path) -> Path:
    """The input's real path, checked before a cluster starts: a regular file this process can open, whose name
    is UTF-8 (the name travels in the job's messages, which carry UTF-8 text only)."""
    path = given.resolve()
    if not path.is_file():
        raise MapReduceError(f"{given} is not a readable file")
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError:
        raise MapReduceError(f"cannot read {given}: its file name {os.fsencode(path.name)!r} is not valid UTF-8; "
                             "rename the file") from None
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise MapReduceError(f"cannot read {given}: {reason}") from None
    return path


_GLOB = frozenset("*?[")


def input_spec(given: list[str]) -> tuple[Path, dict[str, Any]]:
    """The data root and the job's input spec for ``mapreduce run``'s INPUTs: one file is a ``path``; several, or
    directories and globs, are ``paths`` relative to the deepest directory holding them all (a file's or a
    directory's parent, a glob's leading directory). Each input is named by its path as given: the root as the user
    reaches it (:func:`name_base`) joined to its path below the root, whatever other inputs are given and wherever
    the output goes. s3:// URIs are ``uris``, listed and read by the actors themselves (through AWS_ENDPOINT_URL and
    the AWS_* credentials)."""
    objects = [text for text in given if text.startswith("s3://")]
    if objects:
        if len(objects) != len(given):
            raise MapReduceError("give local files or s3:// URIs as INPUTs, not both in one job")
        return Path.cwd().resolve(), {"uris": objects}
    entries: list[tuple[Path, str]] = []  # (where it lies, the pattern below that, "" for none)
    for text in given:
        parts = Path(text).parts
        magic = next((i for i, part in enumerate(parts) if _GLOB & set(part)), None)
        if magic is None:
            path = Path(text).resolve()
            if path.is_dir():
                entries.append((path, ""))
                continue
            entries.append((readable_input(Path(text)), ""))
            continue
        base = Path(*parts[:magic]).resolve() if magic else Path.cwd().resolve()
        if not base.is_dir():
            raise MapReduceError(f"{text}: {base} is not a directory")
        entries.append((base, str(Path(*parts[magic:]))))
    if len(entries) == 1 and not entries[0][1] and entries[0][0].is_file():
        path = entries[0][0]
        return path.parent, {"path": path.name, "name": _joined(name_base(path.parent, given), path.name)}
    root = Path(os.path.commonpath([p if pattern else p.parent for p, pattern in entries]))
    paths = []
    for path, pattern in entries:
        below = path.relative_to(root).as_posix()
        paths.append(f"{below}/{pattern}" if pattern and below != "." else pattern or below)
    return root, {"paths": paths, "name_prefix": name_base(root, given)}


def name_base(root: Path, given: list[str]) -> str:
    """How the user reaches ``root``: its path from the working directory ("." for itself), or the absolute path
    when every input was given as one."""
    if all(Path(text).is_absolute() for text in given):
        return root.as_posix()
    return Path(os.path.relpath(root, Path.cwd().resolve())).as_posix()


def _joined(base: str, name: str) -> str:
    return name if base == "." else f"{base.rstrip('/')}/{name}"


def local_files(given: list[str]) -> list[tuple[Path, str]]:
    """The files ``given`` names (directories walked, globs matched, each file once), each with its name: its path
    as given (see :func:`input_spec`). At most MR_MAX_INPUTS's and
    MR_MAX_PATH_SCAN's defaults, so a mistaken ``/`` is refused before anything is sent."""
    root, spec = input_spec(given)
    if "path" in spec:
        return [(root / spec["path"], spec["name"])]
    defaults = Settings()  # the client has no actor settings: the masters' defaults bound the walk
    names = expand_paths(str(root), spec["paths"], defaults.max_inputs, defaults.max_path_scan)
    return [(root / name, _joined(spec["name_prefix"], name)) for name in names]
