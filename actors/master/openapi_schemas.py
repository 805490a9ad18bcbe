"""The public API's JSON schemas (the OpenAPI document's ``components.schemas``), by name."""

from __future__ import annotations

from typing import Any

from ..jobs import DEFAULT_JOB
from .attempts import AttemptOutcome, AttemptState


def ref(name: str) -> dict[str, str]:
    """A JSON reference to the schema ``name`` of :data:`SCHEMAS`."""
    return {"$ref": f"#/components/schemas/{name}"}


POSITIVE = {"type": "integer", "minimum": 1}
WHOLE = {"type": "integer", "minimum": 0}
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
            "name": {"type": "string", "description": "the input's name (MR_MAX_NAME bytes at most); by default a "
                                                       "path's own path as given, a URL's last path segment"},
            "name_prefix": {"type": "string", "description": "with paths: joined before each file's path below "
                                                            "MR_DATA_ROOT to make its name (`mapreduce run` names "
                                                            "inputs by their paths as given on its command line)"},
            "format": {"enum": ["lines", "jsonl", "csv"], "description": "the inputs' record format, as the job "
                                                                         "spec's format (both given: they agree)"},
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
            "input": ref("Input"),
            "output": ref("Output"),
            "split_size": {**POSITIVE, "description": "bytes per split, at least MR_SPLIT_SIZE_FLOOR"},
            "format": {"enum": ["lines", "jsonl", "csv"], "default": "lines",
                       "description": "how every input's lines are read: lines (a str per line), jsonl (each "
                                      "line's JSON value; blank lines skipped) or csv (each line's list of fields; "
                                      "empty lines skipped; a quoted newline is a bad record). CRLF and a BOM at "
                                      "an input's start are stripped. A line that does not parse fails the job "
                                      "naming its input and byte offset. Built-in jobs read lines only."},
            "max_bad_records": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1, "default": 0,
                                "description": "records whose parsing or mapper fails that the job may skip"},
            "partitions": {**POSITIVE, "description": "the job's partitions (part files), at most MR_MAX_PARTITIONS; "
                           "default MR_REDUCER_COUNT"},
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
    "StepProgress": {
        "type": "object",
        "description": "One step of the job (one for a job without steps()): its state, its splits (a later step's "
                       "are over the previous step's intermediate files, bytes_total their reported size) and the "
                       "milliseconds its map and its finalize took (null until they ended).",
        "properties": {
            "step": WHOLE, "state": {"enum": ["waiting", "mapping", "finalizing", "done"]},
            **{k: WHOLE for k in ("splits_done", "splits_total", "bytes_done", "bytes_total")},
            "map_ms": {"type": ["number", "null"]}, "finalize_ms": {"type": ["number", "null"]},
        },
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
            "failed": {"type": "array", "items": ref("Split")},
            "running": {"type": "array", "items": ref("Split")},
            "filter": {"enum": ["all", "failed", "running"]},
            "offset": WHOLE, "limit": WHOLE, "matching": WHOLE,
            "items": {"type": "array", "items": ref("Split")},
            "straggler_after": {"type": ["number", "null"], "description": "seconds past which an attempt is a "
                                "straggler: MR_BACKUP_AFTER, or twice the median finished attempt if more"},
        },
    },
    "Split": {
        "type": "object",
        "description": "One split (a byte range of one input) and every attempt at it.",
        "properties": {"split": WHOLE, "start": WHOLE, "end": WHOLE, "done": {"type": "boolean"},
                       "attempts": {"type": "array", "items": ref("SplitAttempt")}},
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
    "BadRecords": {
        "type": "object",
        "description": "records skipped under max_bad_records: how many, and the first 100 in input order",
        "properties": {"allowed": WHOLE, "count": WHOLE, "first": {"type": "array", "items": {
            "type": "object", "properties": {"input": {"type": "string"}, "offset": WHOLE,
                                             "error": {"type": "string"}}}}},
    },
    "State": {"enum": ["queued", "running", "finalizing", "done", "failed", "cancelled"]},
    "JobStatus": {
        "type": "object",
        "required": ["id", "job", "state"],
        "properties": {
            "id": {"type": "string"},
            "job": {"type": "string"},
            "epoch": {"type": "integer"},
            "state": ref("State"),
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
            "partitioner": {"type": "string", "enum": ["hash", "total_order"]},
            "sample": {"type": "object", "description": "a total-order job's sample: places read, records per "
                       "place, keys found, cut points picked",
                       "properties": {"places": WHOLE, "records_per_place": WHOLE, "keys": WHOLE, "cuts": WHOLE}},
            "phases": {"type": "object", "description": "milliseconds per phase: sample_ms (total order), map_ms, "
                       "finalize_ms", "additionalProperties": {"type": "number"}},
            "mappers": {"type": "array", "items": {"type": "string"}},
            "reducers": {"type": "array", "items": {"type": "string"}},
            "progress": ref("Progress"),
            "attempts": ref("Attempts"),
            "recoveries": {"type": "array", "items": {"type": "object"},
                           "description": "partitions re-mapped after a reducer lost them: round, partition, "
                                          "splits, and the step they were of"},
            "counters": {"type": "object", "description": "the job's counters, {group: {name: value}}, summed over "
                         "the attempts counted (a split's first finished attempt, a partition's first report)",
                         "additionalProperties": {"type": "object", "additionalProperties": {"type": "integer"}}},
            "bad_records": ref("BadRecords"),
            "step": {"type": "integer", "description": "the step running now (0-based; the last one once ended); "
                     "progress and splits are this step's"},
            "steps": {"type": "array", "items": ref("StepProgress")},
            "splits": ref("Splits"),
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
            "properties": {"id": {"type": "string"}, "job": {"type": "string"}, "state": ref("State"),
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
            "output": ref("OutputPointer"),
            "top": {"type": "array", "items": {"type": "array", "prefixItems": [{"type": "string"}, {}],
                                               "minItems": 2, "maxItems": 2}},
        },
    },
    "Cancelled": {
        "type": "object",
        "required": ["id", "state"],
        "properties": {"id": {"type": "string"}, "state": ref("State"), "error": NULLABLE_STRING},
    },
    "Cluster": {
        "type": "object",
        "properties": {
            "mappers": {"type": "array", "items": ref("Peer")},
            "reducers": {"type": "array", "items": ref("Peer")},
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
