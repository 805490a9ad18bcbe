"""The shared middleware's token check: RFC 7235 bearer scheme in any case, never a crash on odd header bytes."""

from __future__ import annotations

from typing import Any, cast

import pytest
from aiohttp import web
from multidict import CIMultiDict

from actors.net.middleware import authorized as check_authorized

TOKEN = "s3cret-Token"


class Request:
    """Just the headers, as aiohttp decodes them (surrogate escapes for bytes that are not UTF-8)."""

    def __init__(self, header: str | None) -> None:
        self.headers: CIMultiDict[str] = CIMultiDict() if header is None else CIMultiDict({"Authorization": header})


def authorized(header: str | None) -> bool:
    return check_authorized(cast(web.Request, cast(Any, Request(header))), TOKEN)


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}", f"  Bearer  {TOKEN} "])
def test_the_scheme_is_case_insensitive(header: str) -> None:
    assert authorized(header)


@pytest.mark.parametrize("header", [
    None, "", "Bearer", f"Basic {TOKEN}", f"Bearer {TOKEN.lower()}", f"Bearer {TOKEN}x", TOKEN,
    "Bearer \udcff\udcfe",  # bytes that are not UTF-8 arrive as surrogate escapes
    f"Bearer {TOKEN}\ud800",
])
def test_anything_else_is_refused_without_an_error(header: str | None) -> None:
    assert not authorized(header)
