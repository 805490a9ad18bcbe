"""The public API's description as an OpenAPI 3.1 document, served at ``GET /v1/openapi.json``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import __version__
from ..jobs import DEFAULT_JOB
from .openapi_schemas import POSITIVE, SCHEMAS, WHOLE, ref

JSON = "application/json"
ERROR_STATUSES = {
    400: "The request is malformed: bad JSON, an unknown job, a bad input spec or parameter, a limit passed",
    401: "The API token is missing or wrong (only when the master has MR_API_TOKEN)",
    403: "A web page could have sent this without the user's intent: a request from another site's page, a write "
         "from another origin, or a POST whose Content-Type a page may send unasked (use application/json or "
         "application/octet-stream, or an Authorization: Bearer header)",
    404: "No such job (unknown, or forgotten after MR_JOB_TTL), or no such route",
    408: "The request body arrived too slowly",
    409: "The job has no result: it is not done yet, failed or was cancelled (the message says which); or its "
         "result is in its output directory; or the output directory asked for holds a job's output or is being "
         "written by a running job",
    410: "The job is done but its result was dropped to stay within MR_RESULTS_BUDGET",
    413: "The body is over its cap (MR_MAX_BODY for uploads and text, MR_MAX_JSON for JSON)",
    421: "The Host header names a host this actor does not answer (DNS rebinding); see MR_ALLOWED_HOSTS",
    422: "The Idempotency-Key was used before for a different request",
    429: "An admission limit is reached (running or queued jobs, MR_MAX_UPLOADS, MR_TEXT_BUDGET, "
         "MR_MAX_EXPANSIONS); retry after Retry-After seconds",
    500: "The master failed, or the job did (the message names the split or partition and the cause)",
    502: "Peers could not be found or did not answer",
    503: "The master cannot take the work now (shutting down, not ready); retry after Retry-After seconds",
    507: "The uploads spooled at once would pass MR_UPLOAD_BUDGET",
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": f"#/components/responses/Error{s}"} for s in statuses}


def _guarded(paths: dict[str, Any]) -> dict[str, Any]:
    """``paths`` with 403 and 421 on every operation: net/origin.py answers them on every public route."""
    return {path: {method: operation if method == "parameters" else
                   {**operation, "responses": {**operation["responses"], **_errors(403, 421)}}
                   for method, operation in item.items()}
            for path, item in paths.items()}


def _query(name: str, description: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


JOB_ID = {"name": "id", "in": "path", "required": True, "description": "the job's id", "schema": {"type": "string"}}
SECONDS = {"type": "number", "minimum": 0, "maximum": 600}

RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": POSITIVE}}
RESPONSES = {
    f"Error{status}": {
        "description": text,
        "content": {JSON: {"schema": ref("Error")}},
        **({"headers": RETRY_AFTER} if status in (429, 503) else {}),
    }
    for status, text in ERROR_STATUSES.items()
}

OPEN: list[dict[str, list[str]]] = []  # no token, even when MR_API_TOKEN is set

PATHS: dict[str, Any] = {
    "/compute": {"get": {
        "summary": "The original trigger: a word count of the text, answered when it is done",
        "parameters": [_query("text", "the text to count", {"type": "string"}, required=True)],
        "responses": {"200": _json({"type": "object", "additionalProperties": {"type": "integer"}},
                                   "word -> count"), **_errors(400, 401, 429, 500, 503)},
    }},
    "/v1/jobs": {
        "post": {
            "summary": "Submit a job: a JSON job spec, or any other body uploaded as the input",
            "parameters": [
                {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"},
                 "description": "the same key answers the same job (200) instead of starting another"},
                _query("job", "uploads: the job's name", {"type": "string", "default": DEFAULT_JOB}),
                _query("name", "a raw upload: the input's name (a multipart part is named by its filename)",
                       {"type": "string"}),
                _query("split_size", "uploads: bytes per split", POSITIVE),
                _query("format", "uploads: the inputs' record format (as a JSON spec's format)",
                       {"enum": ["lines", "jsonl", "csv"], "default": "lines"}),
                _query("max_bad_records", "uploads: records whose parsing or mapper fails that the job may skip",
                       {"type": "integer", "minimum": 0, "default": 0}),
                _query("partitions", "uploads: the job's partitions, at most MR_MAX_PARTITIONS", POSITIVE),
                {**_query("param", "uploads: one job parameter as NAME=VALUE (repeatable; GET /v1/jobs/kinds "
                                   "lists them)", {"type": "array", "items": {"type": "string"}}),
                 "style": "form", "explode": True},
                _query("output", "uploads: write the result to this directory under MR_DATA_ROOT (as a JSON spec's "
                       "output)", {"type": "string"}),
            ],
            "requestBody": {"required": True, "content": {
                JSON: {"schema": ref("JobSpec")},
                "application/octet-stream": {"schema": {"type": "string", "contentMediaType":
                                                        "application/octet-stream"}},
                "multipart/mixed": {"schema": {
                    "type": "string", "contentMediaType": "multipart/mixed",
                    "description": "several files, one job: each part one input of at most MR_MAX_BODY bytes, named "
                                   "by its Content-Disposition filename (filename*=utf-8''... for any name); at most "
                                   "MR_MAX_INPUTS parts. multipart/form-data is taken too, but only with an "
                                   "Authorization header (a web page may send it without asking)"}},
            }},
            "responses": {
                "200": _json(ref("JobStatus"), "a job submitted earlier with this Idempotency-Key"),
                "202": _json(ref("JobStatus"), "the job is accepted; its status and links"),
                **_errors(400, 401, 408, 409, 413, 422, 429, 503, 507),
            },
        },
        "get": {"summary": "The jobs the master knows",
                "responses": {"200": _json(ref("JobList"), "the jobs"), **_errors(401)}},
    },
    "/v1/jobs/kinds": {"get": {
        "summary": "The jobs this cluster can run, with their parameters and docstrings",
        "responses": {"200": _json({"type": "object", "required": ["jobs"],
                                    "properties": {"jobs": {"type": "array", "items": ref("JobKind")}}},
                                   "the registered jobs"), **_errors(401)},
    }},
    "/v1/jobs/{id}": {
        "parameters": [JOB_ID],
        "get": {
            "summary": "A job's state, progress and attempts, with a summary or one page of its splits",
            "parameters": [
                _query("splits", "list one page of these splits", {"enum": ["all", "failed", "running"]}),
                _query("offset", "the page's first split (with splits=)", WHOLE),
                _query("limit", "splits per page (with splits=)", {"type": "integer", "minimum": 0,
                                                                    "maximum": 1000, "default": 100}),
            ],
            "responses": {"200": _json(ref("JobStatus"), "the job's status"), **_errors(400, 401, 404)},
        },
        "delete": {
            "summary": "Cancel a job",
            "responses": {"200": _json(ref("Cancelled"), "the state the job ended in"), **_errors(401, 404)},
        },
    },
    "/v1/jobs/{id}/result": {
        "parameters": [JOB_ID],
        "get": {
            "summary": "A done job's result",
            "parameters": [_query("top", "only the first N entries, in the job's order", POSITIVE),
                           _query("wait", "seconds to hold the request until the job finishes", SECONDS),
                           _query("format", "json (one document, the default) or ndjson (one [key, value] array a "
                                  "line, streamed, in the job's order)", {"enum": ["json", "ndjson"]})],
            "responses": {"200": {"description": "the result", "content": {
                "application/json": {"schema": ref("Result")},
                "application/x-ndjson": {"schema": {"type": "string"}},
            }}, **_errors(400, 401, 404, 409, 410)},
        },
    },
    "/v1/jobs/{id}/logs": {
        "parameters": [JOB_ID],
        "get": {
            "summary": "The job's log lines from every actor (each keeps its recent lines per job), in time order",
            "parameters": [_query("follow", "1: stream new lines until the job ends (an empty line while there are "
                                  "none)", {"enum": ["1", "0", "true", "false"]}),
                           _query("actor", "only this actor's lines (e.g. mapper-1)", {"type": "string"}),
                           _query("level", "only lines at this level or above",
                                  {"enum": ["debug", "info", "warning", "error"]})],
            "responses": {"200": {"description": "one LogLine a line (NDJSON), streamed; an actor that cannot "
                                                 "answer is a line with the event logs_unavailable",
                                  "content": {"application/x-ndjson": {"schema": ref("LogLine")}}},
                          **_errors(400, 401, 404)},
        },
    },
    "/v1/cluster": {"get": {
        "summary": "The peers the master sees; optionally wait (bounded) until it sees enough",
        "parameters": [_query("wait_mappers", "wait until this many mappers are visible", WHOLE),
                       _query("wait_reducers", "wait until this many reducers are visible", WHOLE)],
        "responses": {"200": _json(ref("Cluster"), "peers and job counts"), **_errors(400, 401, 502)},
    }},
    "/v1/cluster/actors": {"get": {
        "summary": "Every actor by role, each probed now: ready or not, version (what the status page shows)",
        "responses": {"200": _json(ref("Actors"), "the master and every visible peer"), **_errors(401)},
    }},
    "/v1/openapi.json": {"get": {
        "summary": "This document", "security": OPEN,
        "responses": {"200": _json({"type": "object"}, "the OpenAPI 3.1 description of the public API")},
    }},
    "/healthz": {"get": {
        "summary": "Liveness probe", "security": OPEN,
        "responses": {"200": _json(ref("Identity"), "the actor is alive")},
    }},
    "/readyz": {"get": {
        "summary": "Readiness probe: 503 while draining", "security": OPEN,
        "responses": {"200": _json(ref("Identity"), "ready"), "503": _json(ref("Identity"), "draining")},
    }},
    "/metrics": {"get": {
        "summary": "Prometheus metrics (every actor serves them): jobs, split attempts, peers, HTTP requests",
        "security": OPEN,
        "responses": {"200": {"description": "the Prometheus text exposition format",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}},
    }},
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "mapreduce-actors master",
        "version": __version__,
        "description": "Submit MapReduce jobs and follow them. Every error is JSON {\"error\": code, \"message\": "
                       "...} with a 4xx or 5xx status. The token is needed only when the master has MR_API_TOKEN.",
    },
    "security": [{"apiToken": []}, {}],
    "paths": _guarded(PATHS),
    "components": {
        "schemas": SCHEMAS,
        "responses": RESPONSES,
        "securitySchemes": {"apiToken": {"type": "http", "scheme": "bearer",
                                         "description": "Authorization: Bearer $MR_API_TOKEN"}},
    },
}


async def openapi(request: web.Request) -> web.Response:
    """GET /v1/openapi.json: public documentation, served without a token."""
    return web.json_response(DOCUMENT)
