"""Task places: the directory an actor makes for one task attempt (the job's side files, a whole input's copy),
owned by the actor and removed by it when the attempt ends, whatever became of its task process."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from .protocol import TaskPlace

FILES = "files"  # the task's working directory: the side files, and nothing else
INPUT = "input"  # a whole input copied for mapper_raw


@dataclass(frozen=True)
class AttemptDir:
    """One attempt's directory (empty strings when the attempt needs none) and the place its task is given."""

    root: str
    place: TaskPlace

    @property
    def input_dir(self) -> str:
        return os.path.join(self.root, INPUT)


@contextlib.contextmanager
def attempt_dir(spool: str, data_root: str, files: Mapping[str, str], whole_input: bool) -> Iterator[AttemptDir]:
    """A private directory under ``spool`` (MR_SPOOL_DIR) for an attempt that has side files (``files``: their pins)
    or maps a whole input; removed on leaving. An attempt that needs neither gets none (nothing is created)."""
    if not files and not whole_input:
        yield AttemptDir("", TaskPlace("", data_root, {}))
        return
    root = tempfile.mkdtemp(prefix="task-", dir=spool or None)
    try:
        workdir = ""
        if files:
            workdir = os.path.join(root, FILES)
            os.mkdir(workdir)
        if whole_input:
            os.mkdir(os.path.join(root, INPUT))
        yield AttemptDir(root, TaskPlace(workdir, data_root, dict(files)))
    finally:
        # Side files are read-only, which removing them from their (writable) directory does not mind.
        shutil.rmtree(root, ignore_errors=True)
