"""Input specs: names derived from a path or URL are cut to MR_MAX_NAME on a character boundary."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from actors.inputs.ref import URL, InputRef
from actors.inputs.spec import clip_name

from .conftest import ClusterFactory
from .support import serve_app
from .test_master import GOOD_RESULT, GOOD_TEXT


def test_derived_names_are_cut_to_max_name_on_a_character_boundary() -> None:
    ref = InputRef(URL, "http://example.org/x", "é" * 200, 10)
    assert clip_name(ref, 255).name == "é" * 127  # 254 bytes: half of the 128th character would pass the limit
    assert clip_name(ref, 400) is ref


async def test_a_url_input_with_a_long_path_gets_a_bounded_name(make_cluster: ClusterFactory, tmp_path: Path) -> None:
    (tmp_path / "book.txt").write_text(GOOD_TEXT)

    async def serve(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(tmp_path / "book.txt")

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    async with serve_app(app) as base:
        cluster = await make_cluster(allow_private_urls=True)
        job = await cluster.submit({"job": "inverted_index", "input": {"url": f"{base}/{'p' * 2000}"}})
        assert job["input"]["name"] == "p" * 255
        result = await cluster.result(job["id"])
        assert result == {word: ["p" * 255] for word in GOOD_RESULT}
