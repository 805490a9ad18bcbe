"""The blocking client: the asyncio client run on a private event loop in a thread this client owns."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Generator, Mapping
from types import TracebackType
from typing import Any, TypeVar

from .aio import (
    DEFAULT_MAX_JSON,
    DEFAULT_STREAM_TIMEOUT,
    DEFAULT_TIMEOUT,
    DEFAULT_UPLOAD_TIMEOUT,
    AsyncClient,
    AsyncJobHandle,
    Progressed,
)
from .bodies import DEFAULT_MAX_LINE
from .inputs import Inputs
from .logs import LogLine
from .status import JobStatus

T = TypeVar("T")
CLOSE_TIMEOUT = 10.0


class Client:
    """A master's public API, from ordinary (blocking) code; use ``with Client(url) as client``.

    Why a thread: one event loop, started with the client and stopped by :meth:`close`, keeps one connection
    pool for every call and lets :meth:`JobHandle.iter_result` stream; each call runs the :class:`AsyncClient`
    coroutine there and blocks until it ends. The calls' timeouts and size caps are the async client's. A client
    may be used from several threads, and from inside another event loop's code (it never touches that loop).
    """

    def __init__(self, url: str, token: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 upload_timeout: float = DEFAULT_UPLOAD_TIMEOUT, stream_timeout: float = DEFAULT_STREAM_TIMEOUT,
                 max_json: int = DEFAULT_MAX_JSON, max_line: int = DEFAULT_MAX_LINE) -> None:
        self.aio = AsyncClient(url, token, timeout=timeout, upload_timeout=upload_timeout,
                               stream_timeout=stream_timeout, max_json=max_json, max_line=max_line)
        self._loop = asyncio.new_event_loop()
        # A daemon thread, so a client never closed cannot keep the interpreter from exiting.
        self._thread = threading.Thread(target=self._loop.run_forever, name="mapreduce-api-client", daemon=True)
        self._thread.start()
        self._closed = False

    @property
    def url(self) -> str:
        return self.aio.url

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and stop the loop's thread; the client cannot be used afterwards."""
        if self._closed:
            return
        self._closed = True
        try:
            asyncio.run_coroutine_threadsafe(self.aio.aclose(), self._loop).result(CLOSE_TIMEOUT)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(CLOSE_TIMEOUT)
            if not self._thread.is_alive():
                self._loop.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one of the async client's coroutines on this client's loop and wait for its answer."""
        if self._closed or threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("this Client is closed" if self._closed else
                               "a Client cannot be called from its own loop (it would wait on itself)")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:  # e.g. KeyboardInterrupt while blocked: stop the request too
            future.cancel()
            raise

    def submit(self, job: str, inputs: Inputs, params: Mapping[str, Any] | None = None,
               output: str | Mapping[str, Any] | None = None, idempotency_key: str | None = None, *,
               split_size: int | None = None, timeout: float | None = None, format: str | None = None,
               max_bad_records: int | None = None,
               partitions: int | None = None) -> JobHandle:
        """See :meth:`AsyncClient.submit`."""
        handle = self._run(self.aio.submit(job, inputs, params, output, idempotency_key, split_size=split_size,
                                          timeout=timeout, format=format, max_bad_records=max_bad_records,
                                          partitions=partitions))
        return JobHandle(self, handle)

    def job(self, job_id: str) -> JobHandle:
        """A handle on a job submitted earlier."""
        return JobHandle(self, self.aio.job(job_id))

    def jobs(self, timeout: float | None = None) -> list[JobStatus]:
        return self._run(self.aio.jobs(timeout))

    def kinds(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """See :meth:`AsyncClient.kinds`."""
        return self._run(self.aio.kinds(timeout))

    def cluster(self, timeout: float | None = None) -> dict[str, Any]:
        """See :meth:`AsyncClient.cluster`."""
        return self._run(self.aio.cluster(timeout))

    def logs(self, job_id: str, *, follow: bool = False, actor: str | None = None, level: str | None = None,
             timeout: float | None = None) -> Generator[LogLine, None, None]:
        """See :meth:`AsyncClient.logs`: the lines are fetched a batch at a time as the loop is consumed."""
        batches = self.aio._log_batches(job_id, follow, actor, level, timeout)
        try:
            while (batch := self._run(_next(batches))) is not None:
                yield from batch
        finally:
            if not self._closed:
                self._run(batches.aclose())


class JobHandle:
    """One submitted job, from blocking code; the methods are those of :class:`AsyncJobHandle`."""

    def __init__(self, client: Client, handle: AsyncJobHandle) -> None:
        self.client = client
        self.aio = handle

    @property
    def id(self) -> str:
        return self.aio.id

    @property
    def submitted(self) -> JobStatus | None:
        return self.aio.submitted

    def __repr__(self) -> str:
        return repr(self.aio)

    def status(self, timeout: float | None = None) -> JobStatus:
        return self.client._run(self.aio.status(timeout))

    def wait(self, timeout: float = 300.0, progress: Progressed | None = None) -> JobStatus:
        """See :meth:`AsyncJobHandle.wait`; ``progress`` is called on the client's own thread."""
        return self.client._run(self.aio.wait(timeout, progress))

    def result(self, top: int | None = None, wait: float | None = None,
               timeout: float | None = None) -> dict[str, Any]:
        return self.client._run(self.aio.result(top, wait, timeout))

    def output(self, wait: float | None = None, timeout: float | None = None) -> dict[str, Any]:
        return self.client._run(self.aio.output(wait, timeout))

    def cancel(self, timeout: float | None = None) -> JobStatus:
        return self.client._run(self.aio.cancel(timeout))

    def iter_result(self, timeout: float | None = None) -> Generator[tuple[str, Any], None, None]:
        """The result's ``(key, value)`` entries, fetched a batch at a time as the loop is consumed."""
        batches = self.aio._result_batches(timeout)
        try:
            while (batch := self.client._run(_next(batches))) is not None:
                yield from batch
        finally:
            if not self.client._closed:
                self.client._run(batches.aclose())


async def _next(batches: AsyncIterator[list[T]]) -> list[T] | None:
    """The next batch, or None at the end (a coroutine must not raise StopAsyncIteration through a future)."""
    try:
        return await anext(batches)
    except StopAsyncIteration:
        return None
