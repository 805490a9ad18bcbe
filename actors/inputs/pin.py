"""Pinning a URL input to the version the master probed: the validator, the conditions every ranged read sends,
and the check of every answer, so a server that ignores or fakes ranges, or an object that changes mid-job, fails
the job instead of feeding it the wrong bytes or a mix of two versions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..core.errors import InputError


@dataclass(frozen=True)
class Pin:
    """A URL input's version: its size, and its strong ETag or else its Last-Modified (both empty: the server gave
    no validator, and only the size and each answer's range are checked)."""

    size: int
    etag: str = ""
    modified: str = ""
    gzip: bool = False  # the input is read as gzip: a gzip content coding is then the object's own bytes

    @classmethod
    def of(cls, size: int, headers: Mapping[str, str], url: str = "") -> Pin:
        """The pin for a probe's answer: a weak ETag (``W/``) cannot be used with If-Match, so Last-Modified
        stands in for it. An object stored with ``Content-Encoding: gzip`` (as object stores keep one uploaded so)
        is a gzip input; any other coding is refused, naming ``url``."""
        etag = headers.get("ETag", "")
        if etag.startswith("W/") or not _printable(etag):
            etag = ""
        modified = headers.get("Last-Modified", "") if not etag else ""
        coding = content_coding(headers)
        if coding not in ("", *GZIP_CODINGS):
            raise InputError(f"input url {url} is sent with Content-Encoding {coding[:40]!r}, which the mappers "
                             "cannot decode (only gzip is read)")
        return cls(size, etag, modified if _printable(modified) else "", gzip=bool(coding))

    def conditions(self) -> dict[str, str]:
        """The headers that make the server refuse (412) or answer whole (200, refused here) once the object is
        no longer the pinned version. A date goes only in If-Unmodified-Since: a date in If-Range is a weak
        validator that servers may treat as never matching."""
        if self.etag:
            return {"If-Match": self.etag, "If-Range": self.etag}
        if self.modified:
            return {"If-Unmodified-Since": self.modified}
        return {}

    def describe(self) -> str:
        if self.etag:
            return f"ETag {self.etag}"
        if self.modified:
            return f"Last-Modified {self.modified}"
        return "no validator"

    def check(self, url: str, offset: int, status: int, headers: Mapping[str, str]) -> bool:
        """Whether an answer to ``Range: bytes=<offset>-`` carries the pinned bytes from ``offset`` to the end (True),
        or says rightly that there are none (False); anything else raises InputError naming ``url``.

        Retrying cannot help (a second read asks the same server for the same thing), hence InputError, which a
        mapper reports as not retriable and which fails the job with the cause.
        """
        if status == 412:
            raise InputError(f"input url {url} changed since the job was planned: it answered 412 Precondition "
                             f"Failed to the pinned {self.describe()}")
        self._same_version(url, headers)
        coding = content_coding(headers)
        if coding and not (self.gzip and coding in GZIP_CODINGS):
            # Without a client-side decoder the body is the coded bytes, the same size as Content-Range says:
            # counted as the object's text, they would be a wrong answer reported as done.
            raise InputError(f"input url {url} answered a read of bytes {offset}- with Content-Encoding "
                             f"{coding[:40]!r}: not the bytes of the object planned")
        expected = f"bytes {offset}-{self.size - 1}/{self.size}"
        if status == 206:
            got = headers.get("Content-Range", "")
            if got != expected:
                raise InputError(f"input url {url} answered a read of bytes {offset}- with Content-Range {got!r}, "
                                 f"not {expected!r} ({self.size} bytes when the job was planned): it does not "
                                 "honour byte ranges, or the object changed")
            self._length(url, headers, self.size - offset)
            return True
        if status == 416 and offset >= self.size and headers.get("Content-Range", "") == f"bytes */{self.size}":
            return False
        if status == 200 and self.size == 0 == offset:
            self._length(url, headers, 0)  # a server that ignores ranges on an empty object: nothing to read
            return False
        if status == 200:
            raise InputError(f"input url {url} answered a read of bytes {offset}- with 200 (the whole object): it "
                             "ignores byte ranges, or the object changed since the job was planned")
        if status == 416:
            raise InputError(f"input url {url} refused bytes {offset}- as out of range (Content-Range "
                             f"{headers.get('Content-Range', '')!r}), but it had {self.size} bytes when the job was "
                             "planned: the object changed")
        raise ValueError(f"status {status} is the caller's to handle")

    def _same_version(self, url: str, headers: Mapping[str, str]) -> None:
        """Servers that ignore the conditions still name the version they answer with."""
        etag, modified = headers.get("ETag", ""), headers.get("Last-Modified", "")
        if self.etag and etag and etag != self.etag:
            raise InputError(f"input url {url} changed since the job was planned: ETag {self.etag} then, {etag} now")
        if self.modified and modified and modified != self.modified:
            raise InputError(f"input url {url} changed since the job was planned: Last-Modified {self.modified} "
                             f"then, {modified} now")

    @staticmethod
    def _length(url: str, headers: Mapping[str, str], expected: int) -> None:
        length = headers.get("Content-Length")
        if length is not None and length != str(expected):
            raise InputError(f"input url {url} announced {length} bytes for a range of {expected} bytes")


GZIP_CODINGS = ("gzip", "x-gzip")


def content_coding(headers: Mapping[str, str]) -> str:
    """An answer's content coding, lower-cased ("" for none or ``identity``)."""
    coding = headers.get("Content-Encoding", "").strip().lower()
    return "" if coding == "identity" else coding


def _printable(value: str) -> bool:
    """A header value that can travel back in a request header and in a CBOR text field as it is."""
    return value.isascii() and value.isprintable() and len(value) <= 1024
