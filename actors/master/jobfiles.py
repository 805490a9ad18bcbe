"""What a job's class asks of its submission besides its inputs: side files pinned at submit, and whole-file input
(``mapper_raw``: one split per input, non-path inputs copied by the mapper within MR_MAX_RAW_INPUT)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from ..core.config import Settings
from ..core.errors import PayloadTooLarge, shown
from ..inputs.ref import PATH, InputRef
from ..jobs import Catalog
from ..jobs.sidefiles import declared, pin_files


async def pinned_files(catalog: Catalog, job_name: str, settings: Settings,
                       params: Mapping[str, str] | None = None) -> dict[str, str]:
    """The job's side files, each found (confined to the data root or the job's module directory) and pinned to its
    size and digest now (name -> SIZE:DIGEST): a missing or escaping file is a 400 naming it, too many bytes a 413
    naming MR_MAX_SIDE_FILES. No code of the job runs: ``files`` and ``file_params`` are class attributes (a file
parameter's value in ``params`` is a path under the data root)."""
    cls = catalog.classes.get(job_name)
    if cls is None or not declared(cls, params):
        return {}
    return await asyncio.to_thread(pin_files, cls, settings.data_root, settings.max_side_files, params)


def whole_files(catalog: Catalog, job_name: str) -> bool:
    """Whether the job's class maps each input file whole (it defines ``mapper_raw`` and no ``steps()``: a job with
    steps of its own maps whole files when its first step has a ``mapper_raw``, which a task process tells at
    submit)."""
    cls = catalog.classes.get(job_name)
    return cls is not None and cls.has_mapper_raw() and not cls.has_steps()


def check_whole_inputs(refs: list[InputRef], settings: Settings) -> None:
    """A whole-file job's inputs that a mapper must copy (all but path inputs) fit MR_MAX_RAW_INPUT, as far as
    their sizes are known now (a mapper checks every copy too)."""
    cap = settings.max_raw_input
    for ref in refs:
        if ref.kind != PATH and ref.size > cap:
            raise PayloadTooLarge(f"input {shown(ref.name)} has {ref.size} bytes; a whole-file mapper (mapper_raw) "
                                  f"copies at most {cap} bytes of an input (MR_MAX_RAW_INPUT)")
