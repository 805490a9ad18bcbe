"""The Python client of a master's public API: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio).

    with Client("http://127.0.0.1:8080", token=None) as client:
        job = client.submit("wordcount", "to be or not to be")
        job.wait(60)
        print(job.result(top=3))

Errors are the project's own (:mod:`actors.core.errors`), carrying the server's message and status.
"""

from .aio import AsyncClient, AsyncJobHandle
from .inputs import Input, Inputs, Upload
from .logs import LogLine
from .status import JobStatus, Progress
from .sync import Client, JobHandle

__all__ = ["AsyncClient", "AsyncJobHandle", "Client", "Input", "Inputs", "JobHandle", "JobStatus", "LogLine",
           "Progress", "Upload"]
