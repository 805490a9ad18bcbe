"""The peer client (actors/net/client.py): transport failures become named errors."""

from __future__ import annotations

import aiohttp
import pytest

from actors.core.config import Settings
from actors.core.errors import PeerError
from actors.core.messages import Release
from actors.net.client import PeerClient


async def test_unreachable_peer_error_type() -> None:
    # The client maps transport failures to named errors; a refused connection is not a crash.
    async with aiohttp.ClientSession() as session:
        client = PeerClient(session, Settings())
        with pytest.raises(PeerError, match=r"127\.0\.0\.1:1"):
            await client.call("http://127.0.0.1:1/x", Release(job="j", epoch=1), 1024, 2.0)
