"""Jobs: the catalog of job definitions (built-ins, MR_JOB_MODULES, entry points) and their engines, by name."""

from __future__ import annotations

from .base import Job
from .catalog import Catalog, get_job, job_names, load_catalog

__all__ = ["Catalog", "Job", "get_job", "job_names", "load_catalog"]
