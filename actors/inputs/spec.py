"""Input specs: the references a job's JSON ``input`` names (text, path, url, paths or urls), checked."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from ..core.config import Settings
from ..core.errors import BadRequest, InputError, PayloadTooLarge, shown_all
from ..core.text import first_control
from .gzipped import is_gzip
from .paths import path_info
from .ref import GZIP, PATH, URL, InputRef
from .s3 import is_s3
from .s3inputs import s3_inputs
from .urls import UrlPolicy, url_pin

HoldText = Callable[[bytes, str], InputRef]  # holds a text input's bytes under a name (the master's input store)
Expand = Callable[[list[str]], Awaitable[list[InputRef]]]  # the references of ``paths`` entries


async def parse_spec(spec: Any, settings: Settings, hold_text: HoldText, encoded: bytes | None = None) -> InputRef:
    """The reference for a JSON input spec: exactly one of ``text``, ``path`` or ``url``.

    ``encoded``: the text's UTF-8 bytes when the caller has them already; ``hold_text``: where a text is held (the
    master charges it to MR_TEXT_BUDGET, out of the request's reservation).
    """
    if not isinstance(spec, dict) or not spec:
        raise BadRequest('"input" must be an object with one of "text", "path", "url", "paths" or "urls"')
    kinds = [k for k in ("text", "path", "url") if k in spec]
    unknown = sorted(set(spec) - {"text", "path", "url", "name"})
    if unknown:
        raise BadRequest(f"unknown input fields {shown_all(unknown)}; use one of text, path, url, paths, urls")
    if len(kinds) != 1:
        raise BadRequest('"input" must have exactly one of "text", "path", "url", "paths" or "urls"')
    kind = kinds[0]
    value = spec[kind]
    if not isinstance(value, str):
        raise BadRequest(f'"input.{kind}" must be a string')
    name = spec.get("name", "")
    if not isinstance(name, str):
        raise BadRequest('"input.name" must be a string')
    check_name(name, settings.max_name, '"input.name"')
    if kind == "text":
        # A text travels as bytes (a lone surrogate becomes bytes a mapper decodes as it decodes any input).
        data = encoded if encoded is not None else value.encode("utf-8", "surrogatepass")
        if len(data) > settings.max_body:
            raise PayloadTooLarge(f"text input exceeds the cap of {settings.max_body} bytes")
        return hold_text(data, name or "text")
    check_unicode(value, f'"input.{kind}"')
    if kind == "path":
        # File-system calls (resolve, stat, a trial open) may block on a network volume: off the loop.
        size, compression = await asyncio.to_thread(path_info, settings.data_root, value)
        # Named by its path as given (below the data root), as each file of ``paths`` is: a.txt and books/a.txt are
        # two inputs, and a job that outputs names (inverted_index) tells them apart.
        return InputRef(PATH, value, name or PurePosixPath(value).as_posix(), size, compression=compression)
    return await _url_ref(value, name, settings)


async def parse_inputs(spec: Any, settings: Settings, hold_text: HoldText, expand: Expand,
                       encoded: bytes | None = None) -> list[InputRef]:
    """The references for a JSON input spec: one for ``text``, ``path`` or ``url``; one per file for ``paths``
    (files, directories and globs under the data root, named by their relative paths) and one per URL of
    ``urls``. At most MR_MAX_INPUTS."""
    if isinstance(spec, dict) and isinstance(spec.get("url"), str) and is_s3(spec["url"]):
        return await _s3_spec(spec, settings)
    if not isinstance(spec, dict) or not ({"paths", "urls", "uris"} & set(spec)):
        return [await parse_spec(spec, settings, hold_text, encoded)]
    prefix = spec.get("name_prefix", "") if "paths" in spec else ""
    if not isinstance(prefix, str):
        raise BadRequest('"input.name_prefix" must be a string')
    check_name(prefix, settings.max_name, '"input.name_prefix"')
    spec = {field: value for field, value in spec.items() if field != "name_prefix" or "paths" not in spec}
    if len(spec) != 1:
        raise BadRequest(f'"input" with "paths", "urls" or "uris" takes nothing else (but "name_prefix" with '
                         f'"paths"), got {shown_all(sorted(spec))}')
    ((kind, values),) = spec.items()
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise BadRequest(f'"input.{kind}" must be a non-empty list of strings')
    limit = settings.max_inputs
    if len(values) > limit:
        raise BadRequest(f'"input.{kind}" has {len(values)} entries, more than the {limit} inputs one job may have '
                         "(MR_MAX_INPUTS)")
    for value in values:
        check_unicode(value, f'"input.{kind}"')
    if kind in ("urls", "uris"):
        return await _uri_refs(values, settings)
    refs = await expand(values)
    if prefix and prefix != ".":
        refs = [dataclasses.replace(ref, name=f"{prefix.rstrip('/')}/{ref.name}") for ref in refs]
    return refs


async def _uri_refs(values: list[str], settings: Settings) -> list[InputRef]:
    """The inputs of ``urls`` or ``uris``: an http(s) URL is one input; an s3:// URI an object, or every object
    under a prefix or matching a glob (listed here, once). Each input once, at most MR_MAX_INPUTS."""
    refs: dict[str, InputRef] = {}
    for value in values:
        room = settings.max_inputs - len(refs)
        found = await s3_inputs(settings, [value], room) if is_s3(value) else [await _url_ref(value, "", settings)]
        for ref in found:
            refs.setdefault(ref.location, ref)
        if len(refs) > settings.max_inputs:
            raise BadRequest(f"the input names more than the {settings.max_inputs} inputs one job may have "
                             "(MR_MAX_INPUTS)")
    return list(refs.values())


async def _s3_spec(spec: dict[str, Any], settings: Settings) -> list[InputRef]:
    """``{"url": "s3://...", "name": ...}``: the object(s) it names; a name applies only to a single object."""
    unknown = sorted(set(spec) - {"url", "name"})
    if unknown:
        raise BadRequest(f"unknown input fields {shown_all(unknown)}; use one of text, path, url, paths, urls, uris")
    name = spec.get("name", "")
    if not isinstance(name, str):
        raise BadRequest('"input.name" must be a string')
    check_name(name, settings.max_name, '"input.name"')
    check_unicode(spec["url"], '"input.url"')
    refs = await s3_inputs(settings, [spec["url"]], settings.max_inputs)
    if name and len(refs) == 1:
        refs = [dataclasses.replace(refs[0], name=name)]
    return refs


async def _url_ref(url: str, name: str, settings: Settings) -> InputRef:
    policy = UrlPolicy(settings.allow_private_urls)
    await policy.check(url)
    pin = await url_pin(policy, url, settings)
    name = name or Path(urlsplit(url).path).name or "url"
    gzipped = pin.gzip or is_gzip(urlsplit(url).path, b"")
    return InputRef(URL, url, name, pin.size, compression=GZIP if gzipped else "",
                    etag=pin.etag, modified=pin.modified)


def check_unicode(value: str, what: str) -> None:
    """Refuse a string that has no UTF-8 form (a lone surrogate such as "\\ud800"): it could never reach an actor."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InputError(f"{what} is not valid Unicode text: it has a lone surrogate at character {error.start}, "
                         "which has no UTF-8 form") from None


def check_name(name: str, limit: int, what: str) -> None:
    """Refuse a name with a control character, or longer than ``limit`` UTF-8 bytes: a job may copy it into every
    value (inverted index)."""
    check_unicode(name, what)
    at = first_control(name)
    if at is not None:  # a name is shown by the CLI, the page and the logs: it must not be able to drive a terminal
        raise BadRequest(f"{what} has a control character (U+{ord(name[at]):04X}) at character {at}; a name is "
                         "printable text")
    size = len(name.encode("utf-8"))
    if size > limit:
        raise BadRequest(f"{what} is {size} bytes, more than the limit of {limit} bytes (MR_MAX_NAME)")


def clip_name(ref: InputRef, limit: int) -> InputRef:
    """A name derived from a path or URL, cut to ``limit`` UTF-8 bytes at a character boundary."""
    data = ref.name.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return ref
    return dataclasses.replace(ref, name=data[:limit].decode("utf-8", "ignore"))

