"""Jobs: the registry of job definitions (map, combine, reduce) by name."""

from __future__ import annotations

from ..core.errors import BadRequest
from .base import Job
from .inverted_index import InvertedIndex
from .wordcount import WordCount

_REGISTRY: dict[str, Job] = {job.name: job for job in (WordCount(), InvertedIndex())}


def get_job(name: str) -> Job:
    """The job registered under ``name``; a user naming an unknown one gets a 400 listing the known ones."""
    job = _REGISTRY.get(name)
    if job is None:
        raise BadRequest(f"unknown job {name!r}; known jobs: {', '.join(sorted(_REGISTRY))}")
    return job


def job_names() -> list[str]:
    return sorted(_REGISTRY)


__all__ = ["Job", "get_job", "job_names"]
