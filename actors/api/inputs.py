"""A job's input as the caller gives it (text, a local file, a path or URL reference) made ready to send."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeAlias

from ..core.errors import BadRequest

# str: text; a PathLike, an open binary file or an Upload (a file under a name of the caller's): uploaded; a
# mapping: {"text"|"path"|"url": ..., "name": ...}.
Input: TypeAlias = "str | os.PathLike[str] | IO[bytes] | Upload | Mapping[str, Any]"
Inputs: TypeAlias = "Input | Sequence[Input]"


@dataclass(frozen=True)
class JsonInput:
    """An input sent inside the JSON job spec, as its ``"input"`` object."""

    spec: dict[str, Any]


@dataclass(frozen=True)
class Upload:
    """An input whose bytes are uploaded: a file the client opens (``path``) or one the caller holds (``file``),
    under ``name`` (a relative path such as ``logs/a.txt`` names a file below a directory it was found in)."""

    name: str
    path: Path | None = None
    file: IO[bytes] | None = None


def one_input(inputs: Inputs) -> JsonInput | Upload | list[Upload]:
    """What one job reads: a single input; a list of path (or of URL) references, sent as one ``{"paths": [...]}``
    (or ``{"urls": [...]}``) input; or a list of files, uploaded together (one multipart body). Text goes one per
    job."""
    if isinstance(inputs, Sequence) and not isinstance(inputs, (str, bytes, bytearray)):
        if len(inputs) == 1:
            return _prepare(inputs[0])
        prepared = [_prepare(item) if not isinstance(item, Mapping) else None for item in inputs]
        uploads = [item for item in prepared if isinstance(item, Upload)]
        if uploads and len(uploads) == len(inputs):
            return uploads
        return _references(inputs)
    return _prepare(inputs)


def _references(inputs: Sequence[Input]) -> JsonInput:
    kinds = {next(iter(item)) if isinstance(item, Mapping) and len(item) == 1 else "" for item in inputs}
    if len(inputs) == 0 or len(kinds) != 1 or kinds.pop() not in ("path", "url"):
        raise BadRequest(f"a list of {len(inputs)} inputs must be all local files (uploaded together), all "
                         '{"path": ...} or all {"url": ...} references (text goes one per job)')
    kind = next(iter(inputs[0]))  # type: ignore[arg-type]
    return JsonInput({f"{kind}s": [item[kind] for item in inputs]})  # type: ignore[index]


def _prepare(item: Any) -> JsonInput | Upload:
    if isinstance(item, Upload):
        return item
    if isinstance(item, str):
        return JsonInput({"text": item})
    if isinstance(item, os.PathLike):
        path = Path(item)
        return Upload(name=path.name or "upload", path=path)
    if isinstance(item, Mapping):
        return JsonInput(dict(item))
    if isinstance(item, io.TextIOBase):
        raise TypeError("open the file in binary mode ('rb') to upload it")
    if hasattr(item, "read"):
        name = getattr(item, "name", "")
        return Upload(name=os.path.basename(name) if isinstance(name, str) and name else "upload", file=item)
    raise TypeError(f"an input is text (str), a local file (pathlib.Path or a binary file), or a "
                    f'{{"text"|"path"|"url": ...}} mapping, not {type(item).__name__}')
