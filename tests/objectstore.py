"""An object served over HTTP on loopback the way an object store serves it (HEAD, byte ranges, a validator,
conditional requests), which a test can make lie about ranges or change between reads: a fake at the world's edge."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class ObjectStore:
    """One object at any path. ``etag``/``modified``: the validators it announces ("" for none)."""

    data: bytes
    etag: str = '"v1"'
    modified: str = ""
    lie_about_ranges: bool = False  # answer 206 from byte 0 for every range, whatever was asked
    ignore_ranges: bool = False  # answer 200 with the whole object to every ranged GET
    ignore_conditions: bool = False  # serve whatever it holds now, whatever If-Match/If-Range say
    presigned: bool = False  # refuse HEAD (403) as a URL presigned for GET only does
    encoding: str = ""  # a Content-Encoding stored with the object and sent with its bytes, as S3 does
    # The next version and after how many answered GETs it replaces the current one (the probe is a HEAD).
    next_version: tuple[bytes, str, str] | None = None
    change_after: int = 0
    gets: list[dict[str, str]] = field(default_factory=list)  # each GET's request headers

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def _validators(self) -> dict[str, str]:
        headers = {"ETag": self.etag} if self.etag else {}
        if self.encoding:
            headers["Content-Encoding"] = self.encoding
        return {**headers, "Last-Modified": self.modified} if self.modified else headers

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "HEAD" and self.presigned:
            return web.Response(status=403)
        if request.method == "HEAD":
            return web.Response(headers={"Accept-Ranges": "bytes", "Content-Length": str(len(self.data)),
                                         **self._validators()})
        if self.next_version is not None and len(self.gets) >= self.change_after:
            self.data, self.etag, self.modified = self.next_version
            self.next_version = None
        self.gets.append(dict(request.headers))
        return self._answer(request)

    def _answer(self, request: web.Request) -> web.Response:
        data, size, headers = self.data, len(self.data), {"Accept-Ranges": "bytes", **self._validators()}
        current = self.etag or self.modified
        if not self.ignore_conditions:
            match = request.headers.get("If-Match")
            unmodified = request.headers.get("If-Unmodified-Since")
            if (match is not None and match != self.etag) or (unmodified is not None and unmodified != self.modified):
                return web.Response(status=412, headers=headers)
            if request.headers.get("If-Range", current) != current:
                return web.Response(body=data, headers=headers)  # RFC 9110: a changed object is sent whole
        if "Range" not in request.headers or self.ignore_ranges:
            return web.Response(body=data, headers=headers)
        start, stop, _ = request.http_range.indices(size)
        if self.lie_about_ranges:
            start, stop = 0, size
        if start >= size:
            return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        return web.Response(body=data[start:stop], status=206,
                            headers={**headers, "Content-Range": f"bytes {start}-{stop - 1}/{size}"})
