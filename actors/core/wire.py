"""The wire codec: strict CBOR items and length-prefixed CBOR frames."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

import cbor2

from .errors import PayloadTooLarge, WireError

MAX_DEPTH = 16
_LENGTH = struct.Struct(">I")
PREFIX = _LENGTH.size
_PLAIN = (type(None), bool, int, float, str, bytes, list, dict)
_PLAIN_SET = frozenset(_PLAIN)


def _reject_tag(decoder: object, *rest: object) -> NoReturn:
    raise ValueError("CBOR tags are not accepted")


class _EveryTag(Mapping[int, Any]):
    """Overrides cbor2's built-in semantic decoders (datetimes, bignums, ...) so every tag is refused."""

    def __getitem__(self, tag: int) -> Any:
        return _reject_tag

    def __contains__(self, tag: object) -> bool:
        return True

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


_NO_TAGS = _EveryTag()


def encode(item: Any) -> bytes:
    """Encode one item; only plain CBOR types (no tags) ever leave this process."""
    _check_plain(item, 0)  # cbor2 would happily emit tags for sets, datetimes, bignums...
    try:
        return cbor2.dumps(item)
    except (cbor2.CBOREncodeError, TypeError, ValueError) as exc:
        raise WireError(f"cannot encode message: {exc}") from None


def decode(data: bytes, cap: int) -> Any:
    """Decode exactly one CBOR item of at most ``cap`` bytes, refusing tags, duplicates and deep nesting."""
    if len(data) > cap:
        raise PayloadTooLarge(f"CBOR body of {len(data)} bytes exceeds the cap of {cap} bytes")
    if not data:
        raise WireError("empty CBOR body")
    stream = io.BytesIO(data)
    try:
        item = cbor2.CBORDecoder(
            stream,
            tag_hook=_reject_tag,
            semantic_decoders=_NO_TAGS,
            max_depth=MAX_DEPTH,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            str_errors="strict",
        ).decode()
    except cbor2.CBORDecodeEOF:
        raise WireError("truncated CBOR item") from None
    except (cbor2.CBORDecodeError, ValueError, RecursionError, MemoryError) as exc:
        raise WireError(f"malformed CBOR: {_reason(exc)}") from None
    if stream.tell() != len(data):
        raise WireError(f"{len(data) - stream.tell()} trailing bytes after the CBOR item")
    _check_plain(item, 0)
    return item


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return f"{exc} ({cause})" if cause is not None and str(cause) not in str(exc) else str(exc)


def _check_plain(item: Any, depth: int) -> None:
    """cbor2 also yields simple values, undefined and frozen containers; only JSON-like types pass."""
    kind = type(item)
    if kind not in _PLAIN:
        raise WireError(f"CBOR value of type {kind.__name__} is not accepted")
    if depth > MAX_DEPTH:
        raise WireError("CBOR nesting too deep")
    # Maps of scalars are the bulk of shuffle data: check their types with C-level iteration, not a Python loop.
    if kind is dict:
        if item and set(map(type, item)) != {str}:
            raise WireError("CBOR map keys must be text strings")
        _check_members(item.values(), depth)
    elif kind is list:
        _check_members(item, depth)


def _check_members(values: Any, depth: int) -> None:
    kinds = set(map(type, values))
    if not kinds <= _PLAIN_SET:
        bad = sorted(k.__name__ for k in kinds - _PLAIN_SET)
        raise WireError(f"CBOR values of type {', '.join(bad)} are not accepted")
    if list in kinds or dict in kinds:
        for value in values:
            if type(value) is list or type(value) is dict:
                _check_plain(value, depth + 1)


def frame(item: Any, cap: int) -> bytes:
    """One frame: a 4-byte big-endian length, then one CBOR item."""
    body = encode(item)
    if len(body) > cap:
        raise PayloadTooLarge(f"frame of {len(body)} bytes exceeds the cap of {cap} bytes")
    return _LENGTH.pack(len(body)) + body


def frame_length(prefix: bytes, cap: int) -> int:
    """The body length a frame prefix announces, checked against ``cap`` before anything is read."""
    if len(prefix) != PREFIX:
        raise WireError("truncated frame length prefix")
    (length,) = _LENGTH.unpack(prefix)
    if length == 0:
        raise WireError("empty frame")
    if length > cap:
        raise PayloadTooLarge(f"frame of {length} bytes exceeds the cap of {cap} bytes")
    return int(length)


def map_size_after(body: bytes, prefix: bytes) -> int | None:
    """How many entries the CBOR map right after ``prefix`` declares, read before decoding anything; None when
    ``body`` does not start with ``prefix`` and a definite-length map header (so a decoder's work is known)."""
    if not body.startswith(prefix) or len(body) <= len(prefix):
        return None
    initial = body[len(prefix)]
    if initial >> 5 != 5:  # major type 5: a map
        return None
    info = initial & 0x1F
    if info < 24:
        return info
    width = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
    start = len(prefix) + 1
    if width is None or len(body) < start + width:
        return None  # indefinite length (refused by the decoder anyway) or a truncated header
    return int.from_bytes(body[start : start + width], "big")


def _head(body: bytes, at: int) -> tuple[int, int, int] | None:
    """(major type, argument, where the item's content starts) of the definite-length CBOR head at ``at``."""
    if at >= len(body):
        return None
    initial = body[at]
    info = initial & 0x1F
    if info < 24:
        return initial >> 5, info, at + 1
    width = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
    if width is None or len(body) < at + 1 + width:
        return None
    return initial >> 5, int.from_bytes(body[at + 1 : at + 1 + width], "big"), at + 1 + width


def only_byte_strings_after(body: bytes, prefix: bytes, names: tuple[str, ...]) -> bool:
    """Whether ``body`` is ``prefix`` then exactly the fields ``names``, in order, each a byte string: then
    decoding it costs a copy, whatever its size (no map or array with a million members can hide in it)."""
    if not body.startswith(prefix):
        return False
    at = len(prefix)
    for name in names:
        key = encode(name)
        if body[at : at + len(key)] != key:
            return False
        head = _head(body, at + len(key))
        if head is None or head[0] != 2:  # major type 2: a byte string
            return False
        at = head[2] + head[1]
    return at == len(body)
