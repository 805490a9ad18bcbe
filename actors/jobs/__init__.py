"""Jobs: the catalog of job definitions (built-ins, MR_JOB_MODULES, entry points) and their engines, by name."""

from __future__ import annotations

from .base import Job
from .catalog import DEFAULT_JOB, Catalog, get_job, job_names, load_catalog
from .engine import ByteEngine, CountTable, Packing, PackingEngine, byte_table_of, packing_of
from .wordcount.kernel import NATIVE, native_status

__all__ = ["DEFAULT_JOB", "NATIVE", "ByteEngine", "Catalog", "CountTable", "Job", "Packing", "PackingEngine",
           "byte_table_of", "get_job", "job_names", "load_catalog", "native_status", "packing_of"]
