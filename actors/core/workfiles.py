"""Intermediate files: where a multi-step job's records between steps live under MR_WORK_DIR, by name only.

A job's files are ``<job>.<epoch>/step-<k>/part-NNNNN.jsonl`` under the work root: step ``k``'s reducer of
partition ``NNNNN`` writes one, the next step's mappers read them as line-aligned splits, the master makes each
step's directory before asking for them and removes the job's whole directory when the job ends.
"""

from __future__ import annotations

import re

from .errors import BadRequest

# The job ids a master makes (hex, or "k" + hex) and the epoch: nothing that could climb out of the work root.
_JOB_DIR = re.compile(r"[A-Za-z0-9_-]{1,64}\.[0-9]{1,20}")
_PART = re.compile(r"part-[0-9]{5,}\.jsonl")
_STEP_DIR = re.compile(r"([A-Za-z0-9_-]{1,64}\.[0-9]{1,20})/step-([0-9]{1,6})")


def job_dir(job: str, epoch: int) -> str:
    """The directory of (job, epoch)'s intermediate files, relative to the work root."""
    name = f"{job}.{epoch}"
    if not _JOB_DIR.fullmatch(name):
        raise BadRequest(f"job id {job!r} cannot name an intermediate directory")
    return name


def step_dir(job: str, epoch: int, step: int) -> str:
    """The directory step ``step``'s reducers write their records into, relative to the work root."""
    return f"{job_dir(job, epoch)}/step-{step}"


def check_step_dir(relative: str, job: str, epoch: int, step: int) -> str:
    """``relative`` from a Finalize, checked to be exactly (job, epoch, step)'s directory: a peer names no other."""
    if not _STEP_DIR.fullmatch(relative) or relative != step_dir(job, epoch, step):
        raise BadRequest(f"intermediate directory {relative[:80]!r} is not job {job} epoch {epoch} step {step}'s")
    return relative


def check_work_input(location: str, job: str, epoch: int, step: int) -> str:
    """``location`` from an Assignment of kind "work", checked to be a part file of (job, epoch)'s step ``step - 1``:
    a later step's mapper reads its own job's intermediate files, never another job's or anything else."""
    directory, _, name = location.rpartition("/")
    if step < 1 or not _PART.fullmatch(name) or directory != step_dir(job, epoch, step - 1):
        raise BadRequest(f"intermediate input {location[:80]!r} is not a file of job {job} epoch {epoch} "
                         f"step {step - 1}")
    return location
