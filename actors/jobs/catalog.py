"""The job catalog: built-ins, MR_JOB_MODULES and the ``mapreduce_actors.jobs`` entry points, with fingerprints."""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import inspect
import sys
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

from ..core.errors import BadRequest, ConfigError, shown
from ..sdk import JobConfigError, MapReduceJob, configure_job
from .adapter import SdkJob
from .base import Job
from .grep import Grep
from .inverted_index import InvertedIndex
from .median_length import MedianLength
from .wordcount.engine import WordCount

BUILT_INS: tuple[type[MapReduceJob], ...] = (WordCount, InvertedIndex, Grep, MedianLength)
#: The job a submission that names none runs, and the one ``GET /compute`` runs (the original's word count).
DEFAULT_JOB = WordCount.name
ENTRY_POINTS = "mapreduce_actors.jobs"
BUILT_IN = "built-in"  # the origin of a built-in job: our own code, which a master may run in its own process


PARTITIONERS = ("hash", "total_order")  # what a job's ``partitioner`` may be (actors.sdk.MapReduceJob)


class Catalog:
    """The jobs one actor can run, by name; each has a fingerprint every actor of a cluster must share."""

    def __init__(self, classes: Iterable[tuple[type[MapReduceJob], str]]) -> None:
        self.classes: dict[str, type[MapReduceJob]] = {}
        self.origins: dict[str, str] = {}
        for cls, origin in classes:
            have = self.classes.get(cls.name)
            if have is not None and have is not cls:
                raise ConfigError(f"job name {cls.name!r} is defined twice: by {_qualname(have)} "
                                  f"({self.origins[cls.name]}) and by {_qualname(cls)} ({origin})")
            if cls.partitioner not in PARTITIONERS:
                raise ConfigError(f"job {cls.name!r}: partitioner {cls.partitioner!r} is not one of "
                                  f"{', '.join(PARTITIONERS)}")
            self.classes[cls.name] = cls
            self.origins.setdefault(cls.name, origin)
        self.fingerprints = {name: fingerprint(cls) for name, cls in sorted(self.classes.items())}

    def names(self) -> list[str]:
        return sorted(self.classes)

    def sdk(self, name: str, params: Mapping[str, Any] | None = None) -> MapReduceJob:
        """A new configured instance of the job (400: an unknown job, or parameters it refuses)."""
        cls = self.classes.get(name)
        if cls is None:
            raise BadRequest(f"unknown job {shown(name)}; known jobs: {', '.join(self.names())}")
        job = _instance(cls, params or {})
        configure_job(job, params or {})
        return job

    def get(self, name: str, params: Mapping[str, Any] | None = None) -> Job:
        """The engine for the job: a built-in's native fast path, or the SDK adapter."""
        job = self.sdk(name, params)
        engine: Job | None = job.engine()
        return engine if engine is not None else SdkJob(job)

    def trusted(self, name: str) -> bool:
        """Whether an actor may run the job's own methods in its process: a built-in (our code), or a job that brings
        its own engine (declared native, as the built-ins' are: actors.jobs.engine). Any other job's code runs in
        task processes only."""
        cls = self.classes.get(name)
        return cls is not None and (self.origins[name] == BUILT_IN or cls.engine is not MapReduceJob.engine)

    def view(self, name: str, params: Mapping[str, Any] | None = None, step: int = 0) -> Job:
        """The job as an actor that runs no user code sees it: a built-in's engine (our own code, configured here),
        or the SDK adapter over an instance the job's own ``__init__`` and ``configure`` never ran on. Such an actor
        only routes, frames and checks the job's values; its code (and its configure) runs in task processes."""
        cls = self.classes.get(name)
        if cls is None or self.trusted(name):
            return self.get(name, params)  # an unknown name: the same 400
        job = cls.__new__(cls)
        MapReduceJob.__init__(job, params)
        return SdkJob(job, step)

    def describe(self) -> list[dict[str, Any]]:
        """Every job with its parameters and docstring, for ``GET /v1/jobs/kinds`` and ``mapreduce jobs``."""
        return [{"name": name, "doc": inspect.getdoc(cls) or "", "parameters": dict(cls.parameters),
                 "combiner": cls.has_combiner(), "fingerprint": self.fingerprints[name], "origin": self.origins[name]}
                for name, cls in sorted(self.classes.items())]


def _instance(cls: type[MapReduceJob], params: Mapping[str, Any]) -> MapReduceJob:
    """A new instance of the job class; whatever its ``__init__`` raises is a 400 naming the job, not a 500."""
    try:
        return cls(params)
    except BadRequest as error:
        raise JobConfigError(f"job {cls.name!r}: {shown(error.message, quote=False)}") from None
    except Exception as error:
        cause = shown(str(error), quote=False)
        raise JobConfigError(f"job {cls.name!r}: __init__ raised {type(error).__name__}: {cause}") from None


def fingerprint(cls: type[MapReduceJob]) -> str:
    """A short hash of the job's qualified name and its ``version``, or else its module's source."""
    digest = hashlib.blake2b(_qualname(cls).encode(), digest_size=8)
    if cls.version is not None:
        digest.update(b"version:" + str(cls.version).encode())
    else:
        module = sys.modules.get(cls.__module__)
        try:
            source = inspect.getsource(module) if module is not None else ""
        except (OSError, TypeError):
            source = ""  # no source to read (e.g. a compiled-only module): the name alone
        digest.update(b"source:" + source.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def jobs_in(module: ModuleType) -> list[type[MapReduceJob]]:
    """The named MapReduceJob subclasses a module defines or re-exports; else its mrjob job (an ``mrjob.job.MRJob``
    subclass it defines), adapted and named after the module."""
    found = [value for value in vars(module).values()
             if isinstance(value, type) and issubclass(value, MapReduceJob) and value.name]
    if not found and "mrjob.job" in sys.modules:  # mrjob is imported only if the module itself did
        from .mrjobs import mrjob_classes
        found = mrjob_classes(module)
    return sorted(set(found), key=lambda cls: cls.name)


def job_class(value: object) -> type[MapReduceJob] | None:
    """``value`` as a job class: a named MapReduceJob subclass, or an mrjob job (adapted); None for anything else."""
    if isinstance(value, type) and issubclass(value, MapReduceJob) and value.name:
        return value
    mrjob_job = sys.modules.get("mrjob.job")
    if mrjob_job is not None and isinstance(value, type) and issubclass(value, mrjob_job.MRJob):
        from .mrjobs import adapted
        return adapted(value)
    return None


def _import(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except Exception as error:  # anything a user's module raises while importing is a configuration error
        raise ConfigError(f"job module {module_name!r} (MR_JOB_MODULES) cannot be imported: "
                          f"{type(error).__name__}: {error}") from None


def _entry_point_jobs() -> list[tuple[type[MapReduceJob], str]]:
    found: list[tuple[type[MapReduceJob], str]] = []
    for point in importlib.metadata.entry_points(group=ENTRY_POINTS):
        where = f"entry point {point.name!r} = {point.value}"
        try:
            loaded = point.load()
        except Exception as error:
            raise ConfigError(f"{where} ({ENTRY_POINTS}) cannot be loaded: {type(error).__name__}: {error}") from None
        cls = None if isinstance(loaded, ModuleType) else job_class(loaded)
        if isinstance(loaded, ModuleType):
            classes = jobs_in(loaded)
        elif cls is not None:
            classes = [cls]
        else:
            raise ConfigError(f"{where} ({ENTRY_POINTS}) is neither a module nor a named MapReduceJob class (or an "
                              "mrjob job)")
        found.extend((cls, where) for cls in classes)
    return found


@functools.lru_cache(maxsize=16)
def load_catalog(modules: tuple[str, ...] = ()) -> Catalog:
    """The catalog of the built-ins, the entry points installed and ``modules`` (ConfigError naming a bad one).

    Cached per module list: an actor builds it once at startup, every request reads it.
    """
    classes: list[tuple[type[MapReduceJob], str]] = [(cls, BUILT_IN) for cls in BUILT_INS]
    classes.extend(_entry_point_jobs())
    for module_name in modules:
        module = _import(module_name)
        jobs = jobs_in(module)
        if not jobs:
            raise ConfigError(f"job module {module_name!r} (MR_JOB_MODULES) defines no MapReduceJob with a name "
                              "(nor an mrjob job)")
        classes.extend((cls, f"module {module_name}") for cls in jobs)
    return Catalog(classes)


def get_job(name: str, params: Mapping[str, Any] | None = None, modules: tuple[str, ...] = ()) -> Job:
    """The engine of job ``name`` configured with ``params``; a user naming an unknown one gets a 400."""
    return load_catalog(modules).get(name, params)


def job_names(modules: tuple[str, ...] = ()) -> list[str]:
    return load_catalog(modules).names()
