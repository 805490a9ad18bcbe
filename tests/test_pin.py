"""URL reads pinned to the probed version: every ranged answer is checked (status, Content-Range, size, validator)
and every read is conditional, so a lying or changing server is an error naming the URL, never other bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from actors.core.config import Settings
from actors.core.errors import InputError
from actors.inputs.pin import Pin
from actors.inputs.sources import UrlSource
from actors.inputs.urls import UrlPolicy, url_pin

from .objectstore import ObjectStore
from .support import serve_app

DATA = b"".join(b"line %d of the pinned object\n" % i for i in range(3000))
V2 = DATA.replace(b"pinned", b"edited")  # same size: only the validator tells the versions apart
DATE = "Wed, 21 Oct 2015 07:28:00 GMT"


@pytest.fixture
async def store() -> AsyncIterator[tuple[ObjectStore, str]]:
    store = ObjectStore(DATA)
    async with serve_app(store.app()) as base:
        yield store, f"{base}/object.txt"


async def _read(url: str, pin: Pin, offset: int) -> bytes:
    source = UrlSource(url, UrlPolicy(allow_private=True), connect=2.0, idle=5.0, pin=pin)
    return b"".join([block async for block in source.blocks(offset)])


async def test_the_probe_records_the_strong_etag_and_reads_send_it(store: tuple[ObjectStore, str]) -> None:
    server, url = store
    pin = await url_pin(UrlPolicy(allow_private=True), url, Settings())
    assert pin == Pin(len(DATA), '"v1"', "")
    assert await _read(url, pin, 1234) == DATA[1234:]
    sent = server.gets[-1]
    assert sent["If-Match"] == sent["If-Range"] == '"v1"' and sent["Range"] == "bytes=1234-"


async def test_a_weak_etag_falls_back_to_last_modified(store: tuple[ObjectStore, str]) -> None:
    server, url = store
    server.etag, server.modified = 'W/"v1"', DATE
    pin = await url_pin(UrlPolicy(allow_private=True), url, Settings())
    assert pin == Pin(len(DATA), "", DATE)
    assert await _read(url, pin, 10) == DATA[10:]
    assert server.gets[-1]["If-Unmodified-Since"] == DATE and "If-Match" not in server.gets[-1]


async def test_the_ranged_get_probe_records_the_validator_too(store: tuple[ObjectStore, str]) -> None:
    # A URL presigned for GET only refuses HEAD (403): the size and version come from a GET of the first byte.
    server, url = store
    server.presigned = True
    pin = await url_pin(UrlPolicy(allow_private=True), url, Settings())
    assert pin == Pin(len(DATA), '"v1"', "")
    assert server.gets[-1]["Range"] == "bytes=0-0"


async def test_a_server_that_answers_every_range_from_byte_0_is_an_error(store: tuple[ObjectStore, str]) -> None:
    server, url = store
    server.lie_about_ranges = True
    assert await _read(url, Pin(len(DATA), '"v1"'), 0) == DATA  # byte 0 is what it sends: the truth, by luck
    with pytest.raises(InputError, match=rf"input url {url} answered a read of bytes 500- with Content-Range "
                                         rf"'bytes 0-{len(DATA) - 1}/{len(DATA)}', not 'bytes 500-"):
        await _read(url, Pin(len(DATA), '"v1"'), 500)


async def test_a_server_that_ignores_ranges_is_an_error_even_at_offset_0(store: tuple[ObjectStore, str]) -> None:
    server, url = store
    server.ignore_ranges = True
    with pytest.raises(InputError, match="with 200 \\(the whole object\\): it ignores byte ranges"):
        await _read(url, Pin(len(DATA), '"v1"'), 0)


async def test_a_changed_object_is_refused_by_the_condition(store: tuple[ObjectStore, str]) -> None:
    server, url = store
    server.next_version = (V2, '"v2"', "")
    with pytest.raises(InputError, match=rf"input url {url} changed since the job was planned: it answered 412"):
        await _read(url, Pin(len(DATA), '"v1"'), 100)


async def test_a_changed_object_behind_a_server_ignoring_conditions_is_an_error(
    store: tuple[ObjectStore, str],
) -> None:
    server, url = store
    server.ignore_conditions, server.next_version = True, (V2, '"v2"', "")
    with pytest.raises(InputError, match=r'changed since the job was planned: ETag "v1" then, "v2" now'):
        await _read(url, Pin(len(DATA), '"v1"'), 100)


async def test_a_changed_size_without_any_validator_is_an_error(store: tuple[ObjectStore, str]) -> None:
    # No validator: accepted, but each answer's range and total must still be the probed ones.
    server, url = store
    server.etag = ""
    assert await _read(url, Pin(len(DATA)), 7) == DATA[7:]
    assert "If-Match" not in server.gets[-1] and "If-Unmodified-Since" not in server.gets[-1]
    server.data = DATA + b"appended line\n"
    with pytest.raises(InputError, match=f"not 'bytes 7-{len(DATA) - 1}/{len(DATA)}'"):
        await _read(url, Pin(len(DATA)), 7)


async def test_an_empty_object_reads_nothing(store: tuple[ObjectStore, str]) -> None:
    server, url = store
    server.data = b""
    assert await _read(url, Pin(0, '"v1"'), 0) == b""


@pytest.mark.parametrize(("status", "headers", "offset", "match"), [
    (206, {"Content-Range": "bytes 10-99/100", "Content-Length": "50"}, 10, "announced 50 bytes for a range of 90"),
    (206, {"Content-Range": "bytes 10-99/101"}, 10, "not 'bytes 10-99/100'"),
    (206, {"Content-Range": "bytes 10-99/100", "ETag": '"v2"'}, 10, 'ETag "v1" then, "v2" now'),
    (416, {"Content-Range": "bytes */50"}, 10, "out of range"),
    (200, {}, 10, "with 200"),
])
def test_the_check_of_one_answer(status: int, headers: dict[str, str], offset: int, match: str) -> None:
    with pytest.raises(InputError, match=match):
        Pin(100, '"v1"').check("http://x/y", offset, status, headers)


def test_pinned_answers_that_pass() -> None:
    pin = Pin(100, '"v1"')
    assert pin.check("u", 10, 206, {"Content-Range": "bytes 10-99/100", "Content-Length": "90", "ETag": '"v1"'})
    assert not pin.check("u", 100, 416, {"Content-Range": "bytes */100"})
    assert not Pin(0).check("u", 0, 200, {"Content-Length": "0"})
    dated = Pin(100, "", DATE)
    assert dated.conditions() == {"If-Unmodified-Since": DATE}
    with pytest.raises(InputError, match="Last-Modified"):
        dated.check("u", 0, 206, {"Content-Range": "bytes 0-99/100", "Last-Modified": "Thu, 22 Oct 2015 07:28:00 GMT"})


def test_the_pin_of_a_probe_answer() -> None:
    assert Pin.of(5, {"ETag": '"abc"', "Last-Modified": DATE}) == Pin(5, '"abc"', "")
    assert Pin.of(5, {"ETag": 'W/"abc"', "Last-Modified": DATE}) == Pin(5, "", DATE)
    assert Pin.of(5, {}) == Pin(5)
    assert Pin.of(5, {"ETag": '"\x7f"'}) == Pin(5)  # not a value a request header could carry back


def test_a_read_in_a_content_coding_is_refused_unless_the_input_is_gzip() -> None:
    """A server switching to a coded rendering mid-job: the body would be the coded bytes of the same length."""
    headers = {"Content-Range": f"bytes 0-{len(DATA) - 1}/{len(DATA)}", "Content-Encoding": "gzip"}
    with pytest.raises(InputError, match="answered a read of bytes 0- with Content-Encoding 'gzip'"):
        Pin(len(DATA), '"v1"').check("http://x/o", 0, 206, headers)
    assert Pin(len(DATA), '"v1"', gzip=True).check("http://x/o", 0, 206, headers)
    with pytest.raises(InputError, match="Content-Encoding 'deflate'"):
        Pin(len(DATA), '"v1"', gzip=True).check("http://x/o", 0, 206, {**headers, "Content-Encoding": "deflate"})
