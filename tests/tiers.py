"""Test tiers: which tests start processes, drive a browser, need the Kubernetes tooling or the native build.

``tests/conftest.py`` marks every collected test from what its code reaches, so a new test lands in the right tier
without an edit: ``scripts/test.sh --quick`` deselects ``process``, ``browser``, ``k8s`` and ``slow``.

- ``process``: the test, a fixture it uses or a helper of ``tests/`` they call (followed by name, transitively)
  starts a process: ``subprocess``, ``asyncio.create_subprocess_*``, ``Popen`` or a ``LocalCluster``; or that code
  starts actors in this process (``build_app``) and gives them user code, which they run in task processes
  (``python -m actors.tasks.worker``): a job module (``job_modules``, ``MR_JOB_MODULES``), an entry point of
  ``mapreduce_actors.jobs`` or a catalog job without a native engine (``grep``, ``median_length``:
  :func:`task_jobs`). What the actors do behind HTTP is no code to follow: the job a test names is what tells. A
  test whose user job happens to bring its own engine is marked too (it only moves to the full tier); one that
  starts a process unmarked fails (tests/conftest.py), so a gap here cannot hide.
- ``browser``: that code reaches ``tests/cdp.py`` (headless Chromium).
- ``k8s``: the test's module uses ``tests/k8s_sim.py`` (manifests, the simulated cluster, the image).
- ``native``: the test's module exercises the C extensions (``kernel.NATIVE``, ``_wordcount``, ``_resultjson``).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import types
from collections.abc import Iterable
from typing import Any

import pytest

from actors.jobs.catalog import ENTRY_POINTS, load_catalog
from actors.sdk import MapReduceJob

from . import conftest

TIERS = ("process", "browser", "k8s", "native")
SPAWNS = re.compile(r"\bsubprocess\.|\bcreate_subprocess_\w+|\bPopen\(|\bLocalCluster\b")
ACTORS = re.compile(r"\bbuild_app\(")  # every in-process actor is made by actors.serve.build_app
USER_JOBS = re.compile(r"\bjob_modules\b|\bMR_JOB_MODULES\b|" + re.escape(ENTRY_POINTS))  # user jobs' three ways in
NATIVE = re.compile(r"\bkernel\.NATIVE\b|\b_wordcount\b|\b_resultjson\b")
CALLED = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
LOCAL_IMPORT = re.compile(r"^\s+from\s+(\.?[\w.]+)\s+import\s+([\w, ]+)$", re.M)  # inside a function
HELPERS = "tests"  # only code of this package is followed; the project's own code is what is under test


@functools.cache
def task_jobs() -> re.Pattern[str]:
    """The names of the catalog's jobs that run in task processes (no native engine), as one pattern."""
    names = sorted(name for name, cls in load_catalog().classes.items() if cls.engine is MapReduceJob.engine)
    return re.compile(r"\b(?:" + "|".join(map(re.escape, names)) + r")\b" if names else r"(?!)")


class Reach:
    """What a piece of test code reaches: the tests/ modules it calls into, whether any of it spawns, starts actors
    in this process or names user code for them to run."""

    def __init__(self) -> None:
        self.modules: set[str] = set()
        self.spawns = False
        self.actors = False
        self.user_code = False

    def add(self, other: Reach) -> None:
        self.modules |= other.modules
        self.spawns = self.spawns or other.spawns
        self.actors = self.actors or other.actors
        self.user_code = self.user_code or other.user_code


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


class Classifier:
    """Marks collected items; remembers what each function reaches, so a helper is read once per session."""

    def __init__(self) -> None:
        self._reach: dict[int, Reach] = {}
        self._modules: dict[str, set[str]] = {}
        self._native: dict[str, bool] = {}

    def reach(self, obj: Any) -> Reach:
        key = id(obj)
        if key in self._reach:
            return self._reach[key]
        found = self._reach[key] = Reach()  # set first: recursion ends on a cycle
        obj = inspect.unwrap(obj) if callable(obj) else obj
        module = getattr(obj, "__module__", "") or ""
        found.modules.add(module)
        source = _source(obj)
        found.spawns = bool(SPAWNS.search(source))
        found.actors = bool(ACTORS.search(source))
        found.user_code = bool(USER_JOBS.search(source) or task_jobs().search(source))
        namespace = dict(getattr(obj, "__globals__", None) or vars(inspect.getmodule(obj) or types.ModuleType("n")))
        for origin, names in LOCAL_IMPORT.findall(source):
            if origin.startswith((".", HELPERS)):
                helper = importlib.import_module(origin, HELPERS)
                namespace.update({name.strip(): getattr(helper, name.strip(), None) for name in names.split(",")})
        for name in set(CALLED.findall(source)):
            target = namespace.get(name)
            if target is None or target is obj or not str(getattr(target, "__module__", "")).startswith(HELPERS):
                continue
            if not callable(target):
                continue
            found.add(self.reach(target))
        return found

    def module_uses(self, module: types.ModuleType) -> set[str]:
        """The tests/ modules a test module imports names from (so ``k8s_sim`` for the manifest tests)."""
        if module.__name__ not in self._modules:
            used = {str(getattr(value, "__module__", "")) for value in vars(module).values()}
            used |= {value.__name__ for value in vars(module).values() if isinstance(value, types.ModuleType)}
            self._modules[module.__name__] = used
        return self._modules[module.__name__]

    def tiers(self, item: pytest.Function) -> set[str]:
        assert item.module is not None
        return self.tiers_of(item.module, item.obj, item.fixturenames)

    def tiers_of(self, module: types.ModuleType, test: Any, fixturenames: Iterable[str]) -> set[str]:
        """The tiers of ``test`` (a function of ``module``) using the fixtures ``fixturenames``."""
        reached = Reach()
        reached.add(self.reach(test))
        for name in fixturenames:  # every fixture the test uses, directly or through another fixture
            fixture = vars(module).get(name) or vars(conftest).get(name)
            if fixture is not None:
                reached.add(self.reach(fixture))
        modules = reached.modules
        tiers = set()
        if reached.spawns or (reached.actors and reached.user_code):
            tiers.add("process")
        if "tests.cdp" in modules:
            tiers.add("browser")
        if "tests.k8s_sim" in self.module_uses(module) or "tests.k8s_sim" in modules:
            tiers.add("k8s")
        if module.__name__ not in self._native:
            self._native[module.__name__] = bool(NATIVE.search(_source(module)))
        if self._native[module.__name__]:
            tiers.add("native")
        return tiers


def mark(items: Iterable[pytest.Item]) -> None:
    classifier = Classifier()
    for item in items:
        if isinstance(item, pytest.Function):
            for tier in sorted(classifier.tiers(item)):
                item.add_marker(getattr(pytest.mark, tier))
