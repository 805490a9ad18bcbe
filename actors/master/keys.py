"""The master application's shared state: one typed key for each object its handlers share."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from ..net.metrics import MasterMetrics
from ..tasks.pool import TaskPool
from .body import UploadSlots
from .journal import Journal
from .outputs import OutputClaims
from .registry import JobRegistry
from .results import Results
from .store import InputStore
from .workers import MapperSlots

SESSION = web.AppKey("session", aiohttp.ClientSession)
STORE = web.AppKey("store", InputStore)
REGISTRY = web.AppKey("registry", JobRegistry)
SLOTS = web.AppKey("slots", MapperSlots)
JOURNAL = web.AppKey("journal", Journal)
RESULTS = web.AppKey("results", Results)
MASTER_METRICS = web.AppKey("master_metrics", MasterMetrics)
CLAIMS = web.AppKey("claims", OutputClaims)
UPLOADS = web.AppKey("uploads", UploadSlots)
TASKS = web.AppKey("tasks", TaskPool)  # where a user job's configure and order run (actors.tasks)
