"""Submitting a job: POST /v1/jobs, its JSON spec or upload read within its limits, idempotent under a key."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from contextlib import nullcontext
from typing import Any

from aiohttp import web

from ..core.errors import BadRequest, PayloadTooLarge, TaskFailed, shown, shown_all
from ..inputs.ref import SERVED, InputRef
from ..inputs.spec import clip_name, parse_inputs
from ..jobs import DEFAULT_JOB
from ..jobs.catalog import BUILT_IN
from ..jobs.records import DEFAULT_FORMAT, FORMATS, check_format
from ..jobs.steps import VALUES, class_shape
from ..net.actor import DISCOVERY, JOBS, SETTINGS
from ..sdk import JobConfigError
from ..tasks.calls import class_spec, configure, describe_steps
from .admit import job_links, ready_for_jobs, start_job
from .body import UPLOAD_BLOCK, body_pace, read_block
from .jobcheck import check_job_everywhere
from .jobfiles import check_whole_inputs, pinned_files, whole_files
from .keys import CLAIMS, REGISTRY, SESSION, STORE, TASKS, UPLOADS
from .limits import (
    check_inputs_plan,
    check_plan,
    idempotency_key,
    json_max_bad_records,
    json_partitions,
    json_split_size,
    parse_cost,
)
from .outputs import OutputClaim, claim_output
from .record import many_inputs
from .sampler import TOTAL_ORDER
from .textbudget import Reservation
from .uploads import UploadSpec, fingerprint_query, is_multipart, read_parts, upload_spec

JSON_SLOT_SIZE = 64 * 1024  # a JSON body larger than this (or of unknown length) holds an MR_MAX_UPLOADS slot


async def submit(request: web.Request) -> web.Response:
    """POST /v1/jobs: a JSON spec ``{"job": ..., "input": {...}}``, a raw body uploaded as the input, or a multipart
    body whose parts (one per file, named by their filenames) are the inputs. An upload's query carries the rest of
    its spec: ``?job=&param=NAME=VALUE&output=DIR&split_size=N`` (uploads.py).

    With an ``Idempotency-Key``, the request's fingerprint is the hash of its canonical form (a JSON spec re-encoded
    with sorted keys; an upload's sorted query and its bytes, or each part's name and bytes): the same key and
    fingerprint answer the same job (200), the same key with another fingerprint is refused (422).
    """
    app, settings = request.app, request.app[SETTINGS]
    await ready_for_jobs(app)
    registry = app[REGISTRY]
    key = idempotency_key(request.headers.get("Idempotency-Key", ""))
    if key not in registry.keys:  # a known key may be answered with its job even when the master is full
        registry.check_room()  # refuse a flood before reading its bodies
    deadline = asyncio.get_running_loop().time() + settings.timeouts.body
    digest = hashlib.blake2b(digest_size=16)
    reservation = Reservation(app[STORE].text_budget)  # released when this request ends, whatever its outcome
    encoded = None
    uploads: list[InputRef] = []
    upload: UploadSpec | None = None
    if request.content_type == "application/json":
        try:
            spec = await _json_body(request, deadline, reservation)
            encoded = _fingerprint(spec, digest)
        except BaseException:
            reservation.release()
            raise
    else:
        spec = {}
        multipart = is_multipart(request)
        upload = upload_spec(request.query, settings, multipart)
        app[JOBS].sdk(upload.job, upload.params)  # an unknown job or parameter is refused before a byte is spooled
        fingerprint_query(request.query, digest)
        if not multipart and request.content_length is not None:  # refuse before spooling a byte
            _check_upload_plan(app, upload, request.content_length)
        with app[UPLOADS].hold():
            if multipart:
                digest.update(b"multipart")
                uploads = await read_parts(request, app[STORE], deadline, digest)
            else:
                uploads = [await app[STORE].add_upload(request.content, upload.name, settings.max_body,
                                                       request.content_length, deadline=deadline, digest=digest)]
    held = False  # whether this request holds the key's claim, so it alone may release it
    output: OutputClaim | None = None
    try:
        existing = await registry.claim(key, digest.hexdigest(), settings.timeouts.request) if key else None
        held = bool(key) and existing is None
        if existing is not None:
            _drop(app, uploads)
            return web.json_response({**existing.status(), "links": job_links(existing)}, status=200)
        if upload is not None:
            job_name, refs, split_size, output, files, (steps, shape, whole) = await _uploaded_job(app, upload,
                                                                                                  uploads)
            params: dict[str, str] | None = upload.params
            fmt = upload.format
            partitions = upload.partitions
        else:
            job_name, refs, split_size, output, files, (steps, shape, whole) = await _job_of(request, spec,
                                                                                                   reservation, encoded)
            params = spec.get("params")
            fmt = spec["format"]  # checked by _job_of
            partitions = json_partitions(spec, settings)
        max_bad_records = upload.max_bad_records if upload is not None else json_max_bad_records(spec)
        ref = refs[0] if len(refs) == 1 else many_inputs(refs)
        record = start_job(app, job_name, ref, split_size, key, params=params,
                           inputs=refs if len(refs) > 1 else None, output=output, files=files,
                           whole=whole, fmt=fmt, max_bad_records=max_bad_records,
                           steps=steps, shape=shape, partitions=partitions)
    except BaseException:
        _drop(app, uploads)
        if output is not None:
            output.release()  # a no-op once start_job bound it to the job
        raise
    finally:
        reservation.release()
        if held:
            registry.release(key)  # a no-op once start_job bound the key to the job
    return web.json_response({**record.status(), "links": job_links(record)}, status=202)


def _drop(app: web.Application, refs: list[InputRef]) -> None:
    for ref in refs:
        app[STORE].drop(ref.served_id)


#: What a submission asks for: job name, inputs, split size, claimed output, pinned side files, (step count, output
#: shape, whether it maps whole input files).
_Submitted = tuple[str, list[InputRef], int, OutputClaim | None, dict[str, str], tuple[int, str, bool]]


async def _uploaded_job(app: web.Application, upload: UploadSpec,
                        refs: list[InputRef]) -> _Submitted:
    """The job an upload asks for on its spooled inputs: checked everywhere (and how many steps it has), its side
    files pinned, its output claimed, its plan checked against MR_MAX_SPLITS (an upload without a Content-Length, or
    of several parts, is checked once spooled)."""
    described = await check_job(app, upload.job, upload.params)
    check_job_format(app, upload.job, upload.format, "?format=")
    files = await pinned_files(app[JOBS], upload.job, app[SETTINGS], upload.params)
    output = await _output_of(app, {"path": upload.output}) if upload.output is not None else None
    try:
        _check_plan(app, described[2], refs, upload.split_size)
    except BaseException:
        if output is not None:
            output.release()
        raise
    return upload.job, refs, upload.split_size, output, files, described


async def _job_of(request: web.Request, spec: dict[str, Any], reservation: Reservation | None = None,
                  encoded: bytes | None = None) -> _Submitted:
    """The job name, inputs, split size, claimed output directory, pinned side files and (step count, output shape)
    a JSON spec
    asks for, its plan checked against MR_MAX_SPLITS; the claim is let go here if anything after it refuses the
    submission."""
    app, settings = request.app, request.app[SETTINGS]
    job_name = spec.get("job", DEFAULT_JOB)
    if not isinstance(job_name, str):
        raise BadRequest('"job" must be a job name string')
    described = await check_job(app, job_name, spec.setdefault("params", {}))
    # Before any input is held: a refusal leaves none.
    files = await pinned_files(app[JOBS], job_name, settings, spec["params"])
    if "input" not in spec:
        raise BadRequest('missing "input": give {"text": ...}, {"path": ...} or {"url": ...}')
    split_size = json_split_size(spec, settings)
    json_max_bad_records(spec)  # refused before any input is resolved
    json_partitions(spec, settings)
    unknown = sorted(set(spec) - {"job", "input", "split_size", "partitions", "params", "output", "format",
                                  "max_bad_records"})
    if unknown:
        raise BadRequest(f"unknown fields {shown_all(unknown)}; a job spec has job, params, input, output, "
                         "split_size, partitions, format and max_bad_records")
    source, spec["format"] = spec_format(spec)
    check_job_format(app, job_name, spec["format"], '"format"')
    # Claimed before the inputs are resolved (a slow URL probe, a large glob): a second submission for the same
    # directory meanwhile is refused, never admitted alongside.
    output = await _output_of(app, spec.get("output")) if "output" in spec else None
    try:
        store = app[STORE]
        refs = await parse_inputs(source, settings, lambda data, name: store.add_text(data, name, reservation),
                                  store.expand, encoded)
        refs = [clip_name(ref, settings.max_name) for ref in refs]
        _admit_plan(app, described[2], refs, split_size)
    except BaseException:
        if output is not None:
            output.release()
        raise
    return job_name, refs, split_size, output, files, described


def spec_format(spec: dict[str, Any]) -> tuple[Any, str]:
    """The input spec without its ``format``, and the inputs' record format: the job's ``"format"`` or the input's
    own ``"input": {"format": ...}`` (one format for every input of a job; both given must agree), "lines" if none."""
    source = spec["input"]
    given: dict[str, Any] = {}
    if "format" in spec:
        given['"format"'] = spec["format"]
    if isinstance(source, dict) and "format" in source:
        given['"input.format"'] = source["format"]
        source = {name: value for name, value in source.items() if name != "format"}
    try:
        formats = {check_format(value, what) for what, value in given.items()}
    except ValueError as error:
        raise BadRequest(str(error)) from None
    if len(formats) > 1:
        raise BadRequest(f'"format" and "input.format" disagree ({spec["format"]} and {spec["input"]["format"]}); '
                         "a job reads every input in one format")
    return source, formats.pop() if formats else DEFAULT_FORMAT


def check_job_format(app: web.Application, job_name: str, fmt: str, what: str) -> None:
    """A built-in job reads lines (its native engine counts words of text): any other format is refused."""
    catalog = app[JOBS]
    if fmt != DEFAULT_FORMAT and catalog.origins.get(job_name) == BUILT_IN:
        raise BadRequest(f"{what}: the built-in job {job_name!r} reads lines, not {fmt}; a job of your own reads "
                         f"{', '.join(FORMATS)}")


async def _output_of(app: web.Application, spec: Any) -> OutputClaim:
    """The output directory ``{"path": DIR}`` asks for, under the data root, claimed (outputs.py): 400 for a bad or
    escaping path, 409 when it holds another job's output or a job of this master holds it. Nothing is created
    until the job starts."""
    if not isinstance(spec, dict) or set(spec) != {"path"} or not isinstance(spec["path"], str):
        raise BadRequest('"output" must be {"path": DIR}, DIR a directory under the data root')
    return await claim_output(app[SETTINGS], app[CLAIMS], spec["path"])


async def check_job(app: web.Application, name: str, params: Any) -> tuple[int, str, bool]:
    """400 unless the job is known here, takes ``params`` (its configure hook), and every visible actor has it in
    this version (jobcheck.py); its number of steps, its output's shape (actors.jobs.steps) and whether its first
    step maps whole input files (``mapper_raw``) when it is: from its class, or, for a job with ``steps()`` of its
    own, from a task process that runs them (a later step's mapper_raw is a 400 from there)."""
    if not isinstance(params, dict):
        raise BadRequest('"params" must be an object of string values')
    catalog = app[JOBS]
    described = 1, VALUES, whole_files(catalog, name)
    if catalog.trusted(name) or name not in catalog.classes:
        catalog.sdk(name, params)  # our own code: checked here (an unknown name is a 400 from here too)
    else:
        cls = catalog.classes[name]
        spec = class_spec(cls, params)
        try:
            await configure(app[TASKS], spec, app[SETTINGS].timeouts.request)
            described = await describe_steps(app[TASKS], spec, app[SETTINGS].timeouts.request) \
                if cls.has_steps() else (1, class_shape(cls), cls.has_mapper_raw())
        except TaskFailed as error:  # it hung, exited or crashed: the submission's fault, never the master's
            raise JobConfigError(error.message) from None
    cls = catalog.classes[name]
    if cls.partitioner == TOTAL_ORDER and described[0] == 1 and described[2]:
        # The sample maps a bounded number of records at byte places of the input; mapper_raw maps whole files.
        raise BadRequest(f"job {shown(name)} has partitioner total_order and a mapper_raw: its keys cannot be "
                         "sampled from records (give it a later step, whose keys are sampled, or a line mapper)")
    await check_job_everywhere(app[SESSION], app[DISCOVERY], name, catalog.fingerprints[name],
                               app[SETTINGS].timeouts.connect)
    return described


def _finite(text: str) -> float:
    """A JSON number that is finite: NaN, Infinity and overflowing literals are refused."""
    value = float(text)
    if not math.isfinite(value):
        raise BadRequest(f"JSON number {text[:40]!r} is not finite")
    return value


def _no_constant(name: str) -> Any:
    raise BadRequest(f"JSON has {name}, which is not a JSON number")


def _fingerprint(spec: dict[str, Any], digest: hashlib.blake2b) -> bytes | None:
    """Feed ``digest`` a JSON spec's canonical form; return its text input's UTF-8 bytes, if it has one.

    A text enters the canonical form as the hash of its bytes: re-encoding it as escaped JSON took 6x its size
    for 4-byte characters. The bytes are returned so the text is encoded once.
    """
    source, canonical, data = spec.get("input"), spec, None
    if isinstance(source, dict) and isinstance(source.get("text"), str):
        data = source["text"].encode("utf-8", "surrogatepass")
        text_hash = hashlib.blake2b(data, digest_size=16).hexdigest()
        canonical = {**spec, "input": {**source, "text": {"blake2b": text_hash}}}
    digest.update(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    return data


async def _json_body(request: web.Request, deadline: float, reservation: Reservation) -> dict[str, Any]:
    """Read and parse a JSON body, its memory reserved in MR_TEXT_BUDGET before it is held (see parse_cost)."""
    app, settings = request.app, request.app[SETTINGS]
    cap, length = settings.max_json, request.content_length
    if length is not None and length > cap:
        raise PayloadTooLarge(f"JSON body too large: {length} bytes exceed the cap of {cap} bytes (MR_MAX_JSON)")
    what = f"a JSON body of {length} bytes" if length is not None else "a JSON body"
    if length is not None:
        reservation.grow_to(parse_cost(b"", length), what)  # before a byte is read: the least it can cost
    large = length is None or length > JSON_SLOT_SIZE
    with app[UPLOADS].hold() if large else nullcontext():
        parts: list[bytes] = []
        size, pace = 0, body_pace(settings)
        while block := await read_block(request.content, UPLOAD_BLOCK, settings.timeouts.body_idle, deadline, pace):
            size += len(block)
            if size > cap:
                raise PayloadTooLarge(f"JSON body too large: it exceeds the cap of {cap} bytes (MR_MAX_JSON)")
            parts.append(block)
            reservation.grow_to(parse_cost(b"", size), what)
    body = b"".join(parts)
    del parts  # only the joined body from here on, as parse_cost counts
    reservation.grow_to(parse_cost(body, size), what)  # its characters known: what parsing it will hold
    try:
        spec = json.loads(body, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise BadRequest("JSON body is nested too deeply") from None
    except ValueError as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from None
    if not isinstance(spec, dict):
        raise BadRequest("the JSON body must be an object")
    return spec


def _check_upload_plan(app: web.Application, upload: UploadSpec, length: int) -> None:
    """Before an upload of a known length is spooled, refuse what its plan certainly refuses: one split of it, for a
    job whose class maps whole files; else its plan within MR_MAX_SPLITS, unless the job's ``steps()`` may map it
    whole (known once they run, in _uploaded_job: then either check may be the one that applies)."""
    catalog, settings = app[JOBS], app[SETTINGS]
    whole = [InputRef(SERVED, "", upload.name, length)]
    if whole_files(catalog, upload.job):  # one split, copied whole by a mapper
        check_whole_inputs(whole, settings)
        return
    cls = catalog.classes.get(upload.job)
    if cls is not None and cls.has_steps():
        try:
            check_plan(length, upload.split_size, settings)
        except (BadRequest, PayloadTooLarge):
            check_whole_inputs(whole, settings)
        return
    check_plan(length, upload.split_size, settings)


def _check_plan(app: web.Application, whole: bool, refs: list[InputRef], split_size: int) -> None:
    """The plan the inputs' known sizes give is within MR_MAX_SPLITS (a whole-file job: one split per input, each
    input it must copy within MR_MAX_RAW_INPUT)."""
    if whole:
        check_whole_inputs(refs, app[SETTINGS])
    check_inputs_plan(refs, split_size, app[SETTINGS], whole)


def _admit_plan(app: web.Application, whole: bool, refs: list[InputRef], split_size: int) -> None:
    """Check the plan the inputs' known sizes give; a refused job's served input is let go at once."""
    try:
        _check_plan(app, whole, refs, split_size)
    except (BadRequest, PayloadTooLarge):
        for ref in refs:
            app[STORE].drop(ref.served_id)
        raise
