"""The asyncio client: submit jobs to a master over its public HTTP API and follow them (aiohttp)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from ..core.errors import BadRequest, Conflict, Gone, PeerError
from .bodies import DEFAULT_MAX_LINE, NDJSON, MiB, ndjson_batches, ndjson_lines, read_capped
from .errors import server_error, unreachable
from .inputs import Inputs, JsonInput, Upload, one_input
from .logs import LogLine
from .status import JobStatus

Progressed = Callable[[JobStatus], object]  # wait()'s progress callback: called with each status it reads

DEFAULT_TIMEOUT = 30.0  # seconds for one ordinary call
DEFAULT_UPLOAD_TIMEOUT = 3600.0  # seconds for a whole upload
DEFAULT_STREAM_TIMEOUT = 3600.0  # seconds for a whole streamed result
# A master holds at most MR_RESULT_MAX (32 MiB by default) of result JSON; twice that leaves room for a raised one.
DEFAULT_MAX_JSON = 64 * MiB
LONG_POLL = 60.0  # one long-poll of wait(): the server answers as soon as the job finishes
SPLIT_PAGE = 1000  # splits one status page lists at most (the master's largest page)
PROGRESS_POLL = 1.0  # one long-poll of wait() that reports progress: how often the caller hears of the job
ERROR_BODY_CAP = 64 * 1024  # bytes of an error answer read before it is judged
BATCH = 1024  # result entries handed over at a time by _result_batches


def _segment(job_id: str) -> str:
    """A job id as one path segment: '/' and the dot segments are escaped so an id cannot name another route."""
    if not job_id:
        raise ValueError("a job id is a non-empty string")
    escaped = quote(job_id, safe="")
    return escaped.replace(".", "%2E") if escaped in {".", ".."} else escaped


def _upload_query(job: str, params: Mapping[str, Any] | None, output: str | Mapping[str, Any] | None,
                  split_size: int | None, fmt: str | None = None, max_bad_records: int | None = None,
                  partitions: int | None = None) -> list[tuple[str, str]]:
    """An upload's job spec as its query: ``job``, one ``param=NAME=VALUE`` each, ``output``, ``split_size``,
    ``format``, ``max_bad_records``, ``partitions``."""
    query = [("job", job)]
    query.extend(("param", f"{name}={value}") for name, value in (params or {}).items())
    if output is not None:
        path = output if isinstance(output, str) else output.get("path")
        if not isinstance(path, str) or (not isinstance(output, str) and set(output) != {"path"}):
            raise BadRequest('output must be a directory under the data root: "DIR" or {"path": "DIR"}')
        query.append(("output", path))
    if split_size is not None:
        query.append(("split_size", str(split_size)))
    if fmt is not None:
        query.append(("format", fmt))
    if max_bad_records is not None:
        query.append(("max_bad_records", str(max_bad_records)))
    if partitions is not None:
        query.append(("partitions", str(partitions)))
    return query


class AsyncClient:
    """A master's public API, from asyncio code; use ``async with AsyncClient(url) as client``.

    Every call has a total deadline, reading the answer included: ``timeout`` seconds by default, or the
    ``timeout=`` given to the call (plus the ``wait`` of a long poll); a whole upload gets ``upload_timeout`` (its
    answer, once the body is sent, ``timeout``); a streamed result gets ``stream_timeout`` in all and times out when
    the server is silent ``timeout`` seconds. The server is not trusted with memory: a JSON answer past
    ``max_json`` bytes and a streamed result line past ``max_line`` bytes are refused (:class:`PeerError`). The
    session is made on first use and belongs to that event loop.
    """

    def __init__(self, url: str, token: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 upload_timeout: float = DEFAULT_UPLOAD_TIMEOUT, stream_timeout: float = DEFAULT_STREAM_TIMEOUT,
                 max_json: int = DEFAULT_MAX_JSON, max_line: int = DEFAULT_MAX_LINE) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.upload_timeout = upload_timeout
        self.stream_timeout = stream_timeout
        self.max_json = max_json
        self.max_line = max_line
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._session: aiohttp.ClientSession | None = None  # made on first use, inside the running loop

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _url(self, path: str) -> URL:
        return URL(self.url + path, encoded=True)

    @asynccontextmanager
    async def _open(self, method: str, path: str, timeout: aiohttp.ClientTimeout,
                    **kwargs: Any) -> AsyncIterator[aiohttp.ClientResponse]:
        """A response with a 2xx status; any other status raises the project's error with the server's message."""
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers)
        what = f"{method} {path.split('?')[0]}"
        try:
            async with self._session.request(method, self._url(path), timeout=timeout, **kwargs) as response:
                if response.status >= 400:
                    body = await read_capped(response.content, ERROR_BODY_CAP)
                    raise server_error(response.status, body, response.headers, what)
                yield response
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise unreachable(what, exc) from exc

    async def _call(self, method: str, path: str, timeout: float | aiohttp.ClientTimeout | None = None,
                    **kwargs: Any) -> Any:
        """One request whose whole answer is a JSON document (aiohttp's ``total`` covers reading it)."""
        if not isinstance(timeout, aiohttp.ClientTimeout):
            timeout = aiohttp.ClientTimeout(total=self.timeout if timeout is None else timeout)
        async with self._open(method, path, timeout, **kwargs) as response:
            raw = await self._read_json(response, f"{method} {path.split('?')[0]}")
        try:
            return json.loads(raw)
        except ValueError:
            raise PeerError(f"{method} {path}: the master answered malformed JSON") from None

    async def _read_json(self, response: aiohttp.ClientResponse, what: str) -> bytes:
        """A JSON answer's bytes, refused past ``max_json`` before more of it is held."""
        cap = self.max_json
        if response.content_length is not None and response.content_length > cap:
            raise PeerError(f"{what}: the master's answer is {response.content_length} bytes, more than the "
                            f"client's max_json of {cap}")
        raw = await read_capped(response.content, cap + 1)
        if len(raw) > cap:
            raise PeerError(f"{what}: the master's answer is more than the client's max_json of {cap} bytes")
        return raw

    async def submit(self, job: str, inputs: Inputs, params: Mapping[str, Any] | None = None,
                     output: str | Mapping[str, Any] | None = None, idempotency_key: str | None = None, *,
                     split_size: int | None = None, timeout: float | None = None,
                     format: str | None = None, max_bad_records: int | None = None,
                     partitions: int | None = None) -> AsyncJobHandle:
        """Submit ``job`` on ``inputs`` (see :mod:`actors.api.inputs`); the handle follows the job.

        ``partitions``: the job's partitions, so its part files (default: the master's MR_REDUCER_COUNT).

        ``params`` and ``output`` (a directory under the master's data root: ``"DIR"`` or ``{"path": "DIR"}``) are
        sent only when given, in the JSON job spec or, for uploaded files, in the upload's query. Several files are
        uploaded together as one job's inputs (one multipart body), each named by its :class:`Upload` name or its
        file name. ``format``: how the inputs' lines are read ("lines", "jsonl" or "csv"; the master's default,
        lines, when not given). ``max_bad_records``: records whose parsing or mapper fails that the job may skip
        (docs/jobs.md).
        """
        given = one_input(inputs)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        if isinstance(given, JsonInput):
            spec: dict[str, Any] = {"job": job, "input": given.spec}
            if params is not None:
                spec["params"] = dict(params)
            if output is not None:
                spec["output"] = {"path": output} if isinstance(output, str) else dict(output)
            if split_size is not None:
                spec["split_size"] = split_size
            if format is not None:
                spec["format"] = format
            if max_bad_records is not None:
                spec["max_bad_records"] = max_bad_records
            if partitions is not None:
                spec["partitions"] = partitions
            body = await self._call("POST", "/v1/jobs", timeout, json=spec, headers=headers)
        else:
            query = _upload_query(job, params, output, split_size, format, max_bad_records, partitions)
            body = await self._upload(given if isinstance(given, list) else [given], query, headers, timeout)
        status = JobStatus.from_json(body)
        return AsyncJobHandle(self, status.id, status)

    async def _upload(self, uploads: list[Upload], query: list[tuple[str, str]], headers: dict[str, str],
                      timeout: float | None) -> Any:
        """One upload as the body (``?name=`` names it), or several as the parts of one multipart/mixed body: a
        type no web page may send unasked, so the master takes it without a token; each part named in RFC 5987's
        ``filename*`` form, which carries any name."""
        # The whole upload within upload_timeout; the answer, once the body is sent, within the usual timeout.
        limit = aiohttp.ClientTimeout(total=self.upload_timeout if timeout is None else timeout,
                                      sock_connect=self.timeout, sock_read=self.timeout)
        async with contextlib.AsyncExitStack() as files:
            opened = [upload.file if upload.file is not None else
                      # Opened in a thread, as aiohttp then reads it: the caller's loop may be serving other work.
                      files.enter_context(await asyncio.to_thread(open, upload.path or "", "rb"))
                      for upload in uploads]
            if len(uploads) == 1:
                # Always octet-stream: a guessed type (a file named x.json) would make the master read it as a spec.
                return await self._call("POST", "/v1/jobs", limit, data=opened[0],
                                        params=[*query, ("name", uploads[0].name)],
                                        headers={**headers, "Content-Type": "application/octet-stream"})
            body = aiohttp.MultipartWriter("mixed")
            for upload, file in zip(uploads, opened, strict=True):
                named = "attachment; filename*=utf-8''" + quote(upload.name, safe="")
                body.append(file, {"Content-Type": "application/octet-stream", "Content-Disposition": named})
            return await self._call("POST", "/v1/jobs", limit, data=body, params=query, headers=headers)

    async def kinds(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """The jobs the master can run: each one's ``name``, ``doc``, ``parameters`` (name -> description) and
        ``fingerprint``."""
        body = await self._call("GET", "/v1/jobs/kinds", timeout)
        kinds = body.get("jobs") if isinstance(body, dict) else None
        if not isinstance(kinds, list) or not all(isinstance(k, dict) and isinstance(k.get("name"), str)
                                                  for k in kinds):
            raise PeerError("GET /v1/jobs/kinds: the master answered no list of jobs")
        return kinds

    async def cluster(self, timeout: float | None = None) -> dict[str, Any]:
        """The peers the master sees (``mappers``, ``reducers``: name, ordinal, url) and its job counts."""
        body = await self._call("GET", "/v1/cluster", timeout)
        if not isinstance(body, dict) or not isinstance(body.get("mappers"), list) or \
                not isinstance(body.get("reducers"), list):
            raise PeerError("GET /v1/cluster: the master answered no mappers and reducers")
        return body

    def job(self, job_id: str) -> AsyncJobHandle:
        """A handle on a job submitted earlier (by this client or another)."""
        _segment(job_id)
        return AsyncJobHandle(self, job_id, None)

    async def jobs(self, timeout: float | None = None) -> list[JobStatus]:
        """The jobs the master knows: id, job name, state and error."""
        body = await self._call("GET", "/v1/jobs", timeout)
        entries = body.get("jobs") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise PeerError("GET /v1/jobs: the master answered no job list")
        return [JobStatus.from_json(entry) for entry in entries]


    async def logs(self, job_id: str, *, follow: bool = False, actor: str | None = None, level: str | None = None,
                   timeout: float | None = None) -> AsyncIterator[LogLine]:
        """The job's log lines from every actor, in time order; ``follow``: new ones as they come, until the job
        ends. ``actor``: only that actor's; ``level``: only at that level (debug, info, warning, error) or above.

        ``timeout`` bounds each silence of the server (a followed job's server sends a blank line every
        MR_JOB_LOG_POLL seconds); the client's ``stream_timeout`` the whole transfer; a line past ``max_line``
        bytes is refused."""
        async for batch in self._log_batches(job_id, follow, actor, level, timeout):
            for line in batch:
                yield line

    async def _log_batches(self, job_id: str, follow: bool, actor: str | None, level: str | None,
                           timeout: float | None) -> AsyncGenerator[list[LogLine], None]:
        idle = self.timeout if timeout is None else timeout
        limits = aiohttp.ClientTimeout(total=self.stream_timeout, sock_connect=idle, sock_read=idle)
        path = f"/v1/jobs/{_segment(job_id)}/logs"
        params = {"follow": "1"} if follow else {}
        if actor is not None:
            params["actor"] = actor
        if level is not None:
            params["level"] = level
        async with self._open("GET", path, limits, params=params) as response:
            async for lines in ndjson_lines(response.content.iter_any(), path, self.max_line, "a log line"):
                yield [LogLine.from_json(line, path) for line in lines]


class AsyncJobHandle:
    """One submitted job: its status, its result, waiting for it, cancelling it."""

    def __init__(self, client: AsyncClient, job_id: str, submitted: JobStatus | None) -> None:
        self.client = client
        self.id = job_id
        self.submitted = submitted  # the status the submit answered (None for a handle made from an id)
        self._path = f"/v1/jobs/{_segment(job_id)}"

    def __repr__(self) -> str:
        return f"<JobHandle {self.id} at {self.client.url}>"

    async def status(self, timeout: float | None = None) -> JobStatus:
        return JobStatus.from_json(await self.client._call("GET", self._path, timeout))

    async def splits(self, which: str = "all", offset: int = 0, limit: int = SPLIT_PAGE,
                     timeout: float | None = None) -> dict[str, Any]:
        """One page of the job's splits (``which``: all, failed or running), in table order from ``offset``:
        ``{"matching": N, "items": [{"split", "start", "end", "done", "attempts": [...]}, ...], ...}``."""
        query = {"splits": which, "offset": str(offset), "limit": str(limit)}
        body = await self.client._call("GET", self._path, timeout, params=query)
        page = body.get("splits") if isinstance(body, dict) else None
        if not isinstance(page, dict) or not isinstance(page.get("items"), list) or \
                not isinstance(page.get("matching"), int):
            raise PeerError(f"GET {self._path}?splits={which}: the master answered no page of splits")
        return page

    async def wait(self, timeout: float = 300.0, progress: Progressed | None = None) -> JobStatus:
        """The job's final status (done, failed or cancelled); TimeoutError if it is still going after ``timeout``.

        Waits on the server's long poll (``/result?wait=S&top=1`` answers as soon as the job finishes), not by
        polling on a clock. ``progress``, if given, is called with every status read, the final one included; the
        long poll then lasts at most PROGRESS_POLL seconds, so the calls come about that often while the job runs.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        longest = LONG_POLL if progress is None else PROGRESS_POLL
        while True:
            status = await self.status()
            if progress is not None:
                progress(status)
            if status.finished:
                return status
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"job {self.id} is still {status.state} after {timeout:g} s")
            poll = min(remaining, longest)
            # Conflict: not done yet, failed or cancelled; Gone: done, its result dropped. The status tells which.
            with contextlib.suppress(Conflict, Gone):
                await self.client._call("GET", f"{self._path}/result", poll + self.client.timeout,
                                        params={"wait": f"{poll:.3f}", "top": "1"})

    async def result(self, top: int | None = None, wait: float | None = None,
                     timeout: float | None = None) -> dict[str, Any]:
        """The result of a done job (409 Conflict before, 410 Gone once dropped); ``top``: its first N entries.

        ``wait``: seconds the server may hold the request until the job finishes.
        """
        params = {}
        if top is not None:
            params["top"] = str(top)
        if wait is not None:
            params["wait"] = f"{wait:.3f}"
        limit = (self.client.timeout if timeout is None else timeout) + (wait or 0.0)
        body = await self.client._call("GET", f"{self._path}/result", limit, params=params)
        if isinstance(body, dict) and isinstance(body.get("output"), dict):
            raise Conflict(f"job {body.get('id')} wrote its result to the output directory "
                           f"{body['output'].get('path')!r}: read it with output()")
        field = "top" if top is not None else "result"
        value = body.get(field) if isinstance(body, dict) else None
        if top is not None and isinstance(value, list):
            if not all(isinstance(e, list) and len(e) == 2 and type(e[0]) in (str, int, list) for e in value):
                raise PeerError(f"GET {self._path}/result: the master's top entries are not [key, value] pairs")
            # Keys named as the whole result's object names them (its key encoding): a prefix of result().
            if body.get("key_encoding", "str") == "str":
                return {key: entry for key, entry in value}
            return {json.dumps(key, separators=(",", ":"), ensure_ascii=False): entry for key, entry in value}
        if not isinstance(value, dict):
            raise PeerError(f"GET {self._path}/result: the master's answer has no {field!r}")
        return value

    async def output(self, wait: float | None = None, timeout: float | None = None) -> dict[str, Any]:
        """Where a done job with an output wrote it: ``{"path", "success", "parts", "bytes", "keys"}``."""
        params = {"wait": f"{wait:.3f}"} if wait is not None else {}
        limit = (self.client.timeout if timeout is None else timeout) + (wait or 0.0)
        body = await self.client._call("GET", f"{self._path}/result", limit, params=params)
        output = body.get("output") if isinstance(body, dict) else None
        if not isinstance(output, dict):
            raise Conflict(f"job {self.id} has no output directory: its result is held by the master (result())")
        return output

    async def iter_result(self, timeout: float | None = None) -> AsyncIterator[tuple[Any, Any]]:
        """The result's ``(key, value)`` entries, in the server's order, each key typed as NDJSON carries it (a str,
        an int, or a list for a tuple key; any JSON value for a job whose output keys are ``OutputKey``s, such as an
        mrjob job's)."""
        async for batch in self._result_batches(timeout):
            for entry in batch:
                yield entry

    async def _result_batches(self, timeout: float | None = None) -> AsyncGenerator[list[tuple[Any, Any]], None]:
        """Entries a batch at a time: streamed NDJSON lines when the server offers them, else its JSON document.

        ``timeout`` bounds each silence of the server; the client's ``stream_timeout`` the whole transfer.
        """
        client = self.client
        idle = client.timeout if timeout is None else timeout
        limits = aiohttp.ClientTimeout(total=client.stream_timeout, sock_connect=idle, sock_read=idle)
        path = f"{self._path}/result"
        async with client._open("GET", path, limits, params={"format": "ndjson"}) as response:
            if response.content_type in NDJSON:
                async for batch in ndjson_batches(response.content.iter_any(), path, client.max_line):
                    yield batch
                return
            raw = await client._read_json(response, f"GET {path}")  # errors reading it become PeerError in _open
        try:
            body = json.loads(raw)
        except ValueError:
            raise PeerError(f"GET {path}: the master answered malformed JSON") from None
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, dict):
            raise PeerError(f"GET {path}: the master's answer has no 'result'")
        items = list(result.items())
        for start in range(0, len(items), BATCH):
            yield items[start:start + BATCH]

    async def cancel(self, timeout: float | None = None) -> JobStatus:
        """Cancel the job; the answer says the state it ended in."""
        return JobStatus.from_json(await self.client._call("DELETE", self._path, timeout))
