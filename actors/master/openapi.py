"""The public API's description as an OpenAPI 3.1 document, served at ``GET /v1/openapi.json``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import __version__
from ..jobs import DEFAULT_JOB
from .attempts import AttemptOutcome, AttemptState

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


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


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
POSITIVE = {"type": "integer", "minimum": 1}
WHOLE = {"type": "integer", "minimum": 0}
SECONDS = {"type": "number", "minimum": 0, "maximum": 600}
NULLABLE_STRING = {"type": ["string", "null"]}

SCHEMAS: dict[str, Any] = {
    "LogLine": {
        "type": "object",
        "description": "One line of a job's logs: an actor's event with its fields (a failing user function's "
                       "traceback in fields.traceback, what user code wrote in fields.message).",
        "required": ["time", "actor", "level", "event", "fields"],
        "properties": {
            "time": {"type": "number", "description": "seconds since the epoch"},
            "actor": {"type": "string", "examples": ["mapper-1"]},
            "level": {"enum": ["debug", "info", "warning", "error"]},
            "event": {"type": "string", "examples": ["split_failed"]},
            "fields": {"type": "object"},
        },
    },
    "Error": {
        "type": "object",
        "description": "Every error: a code and a message naming the problem (and the limit's setting, if any).",
        "required": ["error", "message"],
        "properties": {"error": {"type": "string", "examples": ["bad_request"]}, "message": {"type": "string"}},
    },
    "Input": {
        "type": "object",
        "description": "Exactly one of text, path (under the master's MR_DATA_ROOT), url (http(s), public, or "
                       "s3://), paths, urls or uris (several inputs, at most MR_MAX_INPUTS; .gz inputs are read "
                       "whole, decompressed).",
        "properties": {
            "text": {"type": "string"},
            "path": {"type": "string"},
            "url": {"type": "string", "format": "uri"},
            "paths": {"type": "array", "minItems": 1, "items": {"type": "string"},
                      "description": "files, directories (walked recursively) and globs under MR_DATA_ROOT; each "
                                     "file's input name is its path relative to the root"},
            "urls": {"type": "array", "minItems": 1, "items": {"type": "string", "format": "uri"},
                     "description": "http(s) URLs with byte ranges (presigned, GET-only URLs work) and s3:// URIs"},
            "uris": {"type": "array", "minItems": 1, "items": {"type": "string", "format": "uri"},
                     "description": "s3://bucket/key, s3://bucket/prefix/ (every object under it), "
                                    "s3://bucket/prefix/*.log (a glob over keys) and http(s) URLs"},
            "name": {"type": "string", "description": "the input's name (MR_MAX_NAME bytes at most)"},
        },
        "additionalProperties": False,
        "oneOf": [{"required": ["text"]}, {"required": ["path"]}, {"required": ["url"]}, {"required": ["paths"]},
                  {"required": ["urls"]}, {"required": ["uris"]}],
    },
    "JobSpec": {
        "type": "object",
        "required": ["input"],
        "additionalProperties": False,
        "properties": {
            "job": {"type": "string", "default": DEFAULT_JOB, "description": "a registered job's name"},
            "params": {"type": "object", "additionalProperties": {"type": "string"},
                       "description": "the job's parameters (GET /v1/jobs/kinds lists them)"},
            "input": _ref("Input"),
            "output": _ref("Output"),
            "split_size": {**POSITIVE, "description": "bytes per split, at least MR_SPLIT_SIZE_FLOOR"},
        },
    },
    "Output": {
        "type": "object",
        "description": "Write the result to this directory under MR_DATA_ROOT (created if missing), or to an "
                       "s3://bucket/prefix/, as part-NNNNN.jsonl files, one [key, value] array a line sorted by key, "
                       "then _SUCCESS; 409 if it already holds a _SUCCESS or part files, or a running job writes "
                       "there.",
        "required": ["path"],
        "additionalProperties": False,
        "properties": {"path": {"type": "string"}},
    },
    "OutputPointer": {
        "type": "object",
        "description": "Where a done job with an output wrote its result (never the data).",
        "required": ["path", "success", "parts"],
        "properties": {"path": {"type": "string"}, "success": {"const": "_SUCCESS"},
                       "parts": {"type": "array", "items": {"type": "string"}}, "bytes": WHOLE, "keys": WHOLE},
    },
    "Progress": {
        "type": "object",
        "properties": {k: WHOLE for k in ("splits_done", "splits_total", "bytes_done", "bytes_total")},
    },
    "Attempts": {
        "type": "object",
        "properties": {
            "started": WHOLE, "retries": WHOLE, "late_reports_dropped": WHOLE, "stale_dropped": WHOLE,
            "duplicate_streams": WHOLE, "last_failure": NULLABLE_STRING,
        },
    },
    "Splits": {
        "type": "object",
        "description": "A summary (counts, the first failed and running splits), or the page ?splits= asked for.",
        "properties": {
            "counts": {"type": "object", "additionalProperties": WHOLE},
            "failed": {"type": "array", "items": _ref("Split")},
            "running": {"type": "array", "items": _ref("Split")},
            "filter": {"enum": ["all", "failed", "running"]},
            "offset": WHOLE, "limit": WHOLE, "matching": WHOLE,
            "items": {"type": "array", "items": _ref("Split")},
            "straggler_after": {"type": ["number", "null"], "description": "seconds past which an attempt is a "
                                "straggler: MR_BACKUP_AFTER, or twice the median finished attempt if more"},
        },
    },
    "Split": {
        "type": "object",
        "description": "One split (a byte range of one input) and every attempt at it.",
        "properties": {"split": WHOLE, "start": WHOLE, "end": WHOLE, "done": {"type": "boolean"},
                       "attempts": {"type": "array", "items": _ref("SplitAttempt")}},
    },
    "SplitAttempt": {
        "type": "object",
        "description": "One try at a split on one mapper: started and ended in Unix seconds (ended null while it "
                       "runs), seconds it took (or has taken), bytes it read, and how it ended.",
        "properties": {
            "attempt": WHOLE, "mapper": {"type": "string"},
            "state": {"enum": [s.value for s in AttemptState]},
            "outcome": {"enum": [o.value for o in AttemptOutcome]},
            "backup": {"type": "boolean"}, "cause": {"type": "string"}, "bytes": WHOLE,
            "started": {"type": "number"}, "ended": {"type": ["number", "null"]}, "seconds": {"type": "number"},
            "straggler": {"type": "boolean", "description": "it ran (or runs) past straggler_after"},
        },
    },
    "State": {"enum": ["queued", "running", "finalizing", "done", "failed", "cancelled"]},
    "JobStatus": {
        "type": "object",
        "required": ["id", "job", "state"],
        "properties": {
            "id": {"type": "string"},
            "job": {"type": "string"},
            "epoch": {"type": "integer"},
            "state": _ref("State"),
            "error": NULLABLE_STRING,
            "input": {"type": "object", "description": "the input; for several, kind \"many\" and their total size",
                      "properties": {"kind": {"type": "string"}, "name": {"type": "string"}, "size": WHOLE}},
            "inputs": {"type": "object", "description": "only for a job of several inputs: a summary of them",
                       "properties": {"count": WHOLE, "kinds": {"type": "array", "items": {"type": "string"}},
                                      "compressed": WHOLE, "size": WHOLE,
                                      "first": {"type": "array", "items": {"type": "string"}}}},
            "created": {"type": "number", "description": "Unix time"},
            "finished": {"type": ["number", "null"]},
            "partitions": WHOLE,
            "mappers": {"type": "array", "items": {"type": "string"}},
            "reducers": {"type": "array", "items": {"type": "string"}},
            "progress": _ref("Progress"),
            "attempts": _ref("Attempts"),
            "recoveries": {"type": "array", "items": {"type": "object"}},
            "splits": _ref("Splits"),
            "output": {"type": "object", "description": "with an output: its path and whether _SUCCESS is written",
                       "properties": {"path": {"type": "string"}, "written": {"type": "boolean"}}},
            "links": {"type": "object", "properties": {"status": {"type": "string"}, "result": {"type": "string"}}},
        },
    },
    "JobList": {
        "type": "object",
        "required": ["jobs"],
        "properties": {"jobs": {"type": "array", "items": {
            "type": "object",
            "required": ["id", "job", "state"],
            "properties": {"id": {"type": "string"}, "job": {"type": "string"}, "state": _ref("State"),
                           "created": {"type": "number"}, "error": NULLABLE_STRING},
        }}},
    },
    "Result": {
        "type": "object",
        "description": "A done job's result: the whole result, or with ?top=N its first N [key, value] entries; "
                       "for a job with an output, where it went (output) instead.",
        "required": ["id", "job", "state", "keys"],
        "properties": {
            "id": {"type": "string"}, "job": {"type": "string"}, "state": {"const": "done"}, "keys": WHOLE,
            "result": {"type": "object", "description": "key -> value"},
            "output": _ref("OutputPointer"),
            "top": {"type": "array", "items": {"type": "array", "prefixItems": [{"type": "string"}, {}],
                                               "minItems": 2, "maxItems": 2}},
        },
    },
    "Cancelled": {
        "type": "object",
        "required": ["id", "state"],
        "properties": {"id": {"type": "string"}, "state": _ref("State"), "error": NULLABLE_STRING},
    },
    "Cluster": {
        "type": "object",
        "properties": {
            "mappers": {"type": "array", "items": _ref("Peer")},
            "reducers": {"type": "array", "items": _ref("Peer")},
            "jobs_running": WHOLE, "jobs_known": WHOLE, "finished": WHOLE,
        },
    },
    "Actors": {
        "type": "object",
        "required": ["version", "actors"],
        "properties": {
            "version": {"type": "string"},
            "actors": {"type": "array", "items": {
                "type": "object",
                "properties": {
                    "role": {"enum": ["master", "mapper", "reducer"]}, "name": {"type": "string"}, "ordinal": WHOLE,
                    "url": {"type": "string"}, "ready": {"type": "boolean"}, "status": {"type": "string"},
                    "version": {"type": ["string", "null"]}, "incarnation": {"type": ["string", "null"]},
                    "restarts": {"type": ["integer", "null"], "minimum": 0,
                                 "description": "times its local launcher restarted it; null: unknown"},
                },
            }},
        },
    },
    "Peer": {"type": "object", "properties": {"name": {"type": "string"}, "ordinal": WHOLE,
                                              "url": {"type": "string"}}},
    "JobKind": {
        "type": "object",
        "required": ["name", "doc", "parameters", "fingerprint"],
        "properties": {"name": {"type": "string"}, "doc": {"type": "string"},
                       "parameters": {"type": "object", "additionalProperties": {"type": "string"}},
                       "combiner": {"type": "boolean"}, "fingerprint": {"type": "string"},
                       "origin": {"type": "string"}},
    },
    "Identity": {
        "type": "object",
        "required": ["status", "role"],
        "properties": {"status": {"enum": ["ok", "ready", "draining"]}, "role": {"type": "string"},
                       "name": {"type": "string"}, "ordinal": WHOLE, "incarnation": {"type": "string"},
                       "restarts": WHOLE, "jobs": {"type": "object", "additionalProperties": {"type": "string"},
                                "description": "/healthz: each job this actor runs, by name, with its fingerprint"}},
    },
}

RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": POSITIVE}}
RESPONSES = {
    f"Error{status}": {
        "description": text,
        "content": {JSON: {"schema": _ref("Error")}},
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
                {**_query("param", "uploads: one job parameter as NAME=VALUE (repeatable; GET /v1/jobs/kinds "
                                   "lists them)", {"type": "array", "items": {"type": "string"}}),
                 "style": "form", "explode": True},
                _query("output", "uploads: write the result to this directory under MR_DATA_ROOT (as a JSON spec's "
                       "output)", {"type": "string"}),
            ],
            "requestBody": {"required": True, "content": {
                JSON: {"schema": _ref("JobSpec")},
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
                "200": _json(_ref("JobStatus"), "a job submitted earlier with this Idempotency-Key"),
                "202": _json(_ref("JobStatus"), "the job is accepted; its status and links"),
                **_errors(400, 401, 408, 409, 413, 422, 429, 503, 507),
            },
        },
        "get": {"summary": "The jobs the master knows",
                "responses": {"200": _json(_ref("JobList"), "the jobs"), **_errors(401)}},
    },
    "/v1/jobs/kinds": {"get": {
        "summary": "The jobs this cluster can run, with their parameters and docstrings",
        "responses": {"200": _json({"type": "object", "required": ["jobs"],
                                    "properties": {"jobs": {"type": "array", "items": _ref("JobKind")}}},
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
            "responses": {"200": _json(_ref("JobStatus"), "the job's status"), **_errors(400, 401, 404)},
        },
        "delete": {
            "summary": "Cancel a job",
            "responses": {"200": _json(_ref("Cancelled"), "the state the job ended in"), **_errors(401, 404)},
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
                "application/json": {"schema": _ref("Result")},
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
                                  "content": {"application/x-ndjson": {"schema": _ref("LogLine")}}},
                          **_errors(400, 401, 404)},
        },
    },
    "/v1/cluster": {"get": {
        "summary": "The peers the master sees; optionally wait (bounded) until it sees enough",
        "parameters": [_query("wait_mappers", "wait until this many mappers are visible", WHOLE),
                       _query("wait_reducers", "wait until this many reducers are visible", WHOLE)],
        "responses": {"200": _json(_ref("Cluster"), "peers and job counts"), **_errors(400, 401, 502)},
    }},
    "/v1/cluster/actors": {"get": {
        "summary": "Every actor by role, each probed now: ready or not, version (what the status page shows)",
        "responses": {"200": _json(_ref("Actors"), "the master and every visible peer"), **_errors(401)},
    }},
    "/v1/openapi.json": {"get": {
        "summary": "This document", "security": OPEN,
        "responses": {"200": _json({"type": "object"}, "the OpenAPI 3.1 description of the public API")},
    }},
    "/healthz": {"get": {
        "summary": "Liveness probe", "security": OPEN,
        "responses": {"200": _json(_ref("Identity"), "the actor is alive")},
    }},
    "/readyz": {"get": {
        "summary": "Readiness probe: 503 while draining", "security": OPEN,
        "responses": {"200": _json(_ref("Identity"), "ready"), "503": _json(_ref("Identity"), "draining")},
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
