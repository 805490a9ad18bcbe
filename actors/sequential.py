"""The sequential oracle: a job run in one process, the answer every distributed run must equal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .jobs import get_job


def run_sequential(job_name: str, data: bytes, source: str = "input") -> dict[str, Any]:
    """Map the whole input at once and finish it; invalid UTF-8 is replaced exactly as the mappers do."""
    job = get_job(job_name)
    return job.finish(dict(job.map(data.decode("utf-8", "replace"), source)))


def run_sequential_file(job_name: str, path: str | Path, source: str | None = None) -> dict[str, Any]:
    path = Path(path)
    return run_sequential(job_name, path.read_bytes(), source or path.name)
