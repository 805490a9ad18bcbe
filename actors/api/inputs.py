"""A job's input as the caller gives it (text, a local file, a path or URL reference) made ready to send."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeAlias

from ..core.errors import BadRequest

# str: text; a PathLike or an open binary file: uploaded; a mapping: {"text"|"path"|"url": ..., "name": ...}.
Input: TypeAlias = "str | os.PathLike[str] | IO[bytes] | Mapping[str, Any]"
Inputs: TypeAlias = "Input | Sequence[Input]"


@dataclass(frozen=True)
class JsonInput:
    """An input sent inside the JSON job spec, as its ``"input"`` object."""

    spec: dict[str, Any]


@dataclass(frozen=True)
class Upload:
    """An input whose bytes are the request body: a file the client opens (``path``) or one the caller holds."""

    name: str
    path: Path | None = None
    file: IO[bytes] | None = None


def one_input(inputs: Inputs) -> JsonInput | Upload:
    """The single input this API takes per job; a list is accepted only with one element."""
    if isinstance(inputs, Sequence) and not isinstance(inputs, (str, bytes, bytearray)):
        if len(inputs) != 1:
            raise BadRequest(f"this server takes exactly one input per job, got a list of {len(inputs)}; "
                             "submit one job per input")
        return _prepare(inputs[0])
    return _prepare(inputs)


def _prepare(item: Any) -> JsonInput | Upload:
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
