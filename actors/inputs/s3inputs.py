"""``s3://`` inputs on the master: an object, every object under a prefix, or a glob over keys, listed once (paged,
at most MR_MAX_INPUTS) and each pinned to the size and ETag the listing gave."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.config import Settings
from ..core.errors import BadRequest, InputError
from .globs import Pattern, has_magic
from .gzipped import is_gzip
from .ref import GZIP, S3, InputRef
from .s3 import S3Uri, open_store, parse_s3, s3_error

if TYPE_CHECKING:
    from obstore.store import S3Store

_PAGE = 1000  # keys per list request: S3's own maximum


def _hidden(relative: str) -> bool:
    """Hadoop's rule, which every reader of a job's output follows: a name starting with ``_`` or ``.`` (``_SUCCESS``,
    an attempt's pending data) is not data."""
    return any(part.startswith(("_", ".")) for part in relative.split("/"))


async def s3_inputs(settings: Settings, texts: list[str], limit: int) -> list[InputRef]:
    """The inputs ``texts`` name, in order, each object once; a listing past ``limit`` objects is refused, never
    cut short. An object named outright must exist; a prefix or glob must match at least one object."""
    refs: dict[str, InputRef] = {}
    stores: dict[str, S3Store] = {}
    for text in texts:
        uri = parse_s3(text)
        if uri.bucket not in stores:
            stores[uri.bucket] = open_store(settings, uri.bucket)
        store = stores[uri.bucket]
        found = await _resolve(store, uri, limit - len(refs) + 1)
        if not found:
            raise InputError(f"input {text!r} matches no object")
        for ref in found:
            refs.setdefault(ref.location, ref)
        if len(refs) > limit:
            raise BadRequest(f"the s3:// inputs name more than the {limit} inputs one job may have (MR_MAX_INPUTS)")
    return list(refs.values())


async def _resolve(store: S3Store, uri: S3Uri, room: int) -> list[InputRef]:
    import obstore

    key = uri.key
    if key and not key.endswith("/") and not has_magic(key):
        try:
            meta = await obstore.head_async(store, key)
        except Exception as error:
            raise s3_error(error, uri) from None
        return [_ref(uri, meta)]
    parts = key.split("/")
    literal = next((i for i, part in enumerate(parts) if has_magic(part)), len(parts))
    prefix = "/".join(parts[:literal]) + ("/" if literal and literal < len(parts) else "")
    pattern = Pattern(tuple(parts[literal:])) if literal < len(parts) else None
    found: list[InputRef] = []
    try:
        # Listing is by whole path segments: "logs/" lists logs/a and logs/b/c but not logs2/x.
        async for page in obstore.list(store, prefix.rstrip("/") or None, chunk_size=_PAGE):
            for meta in page:
                relative = meta["path"][len(prefix):]
                if meta["path"].endswith("/") or not relative or _hidden(relative):
                    continue  # a "directory" marker, or not data
                if pattern is not None and not _matches(pattern, relative):
                    continue
                found.append(_ref(uri.child(meta["path"]), meta))
                if len(found) >= room:
                    return found  # the caller refuses the job by MR_MAX_INPUTS
    except Exception as error:
        raise s3_error(error, uri) from None
    return found


def _matches(pattern: Pattern, relative: str) -> bool:
    states = pattern.start()
    for part in relative.split("/"):
        states = pattern.step(states, part)
        if not states:
            return False
    return pattern.accepts(states)


def _ref(uri: S3Uri, meta: Any) -> InputRef:
    etag = meta.get("e_tag") or ""
    if not etag:  # without a version to pin to, a changed object could go unnoticed between two ranged reads
        raise InputError(f"{uri}: the object store gave no ETag for it, so its reads cannot be pinned")
    location = str(uri.child(meta["path"]))
    return InputRef(S3, location, meta["path"], int(meta["size"]),
                    compression=GZIP if is_gzip(meta["path"], b"") else "", etag=etag)
