"""Peers by ordinal: a job's reducers are found by ordinal, a missing one is waited for (bounded) and named."""

from __future__ import annotations

import asyncio

import pytest

from actors.core.config import Settings
from actors.discovery.static import StaticDiscovery
from actors.net.ordinals import OrdinalMissing, wait_for_ordinals

from .fakes import FakeDiscovery

BACKOFF = Settings().discovery_backoff


async def test_every_needed_ordinal_is_returned_by_ordinal() -> None:
    found = await wait_for_ordinals(FakeDiscovery(0, 3), "reducer", [2, 0], 1.0, BACKOFF)
    assert {i: p.name for i, p in found.items()} == {0: "reducer-0", 2: "reducer-2"}
    assert await wait_for_ordinals(FakeDiscovery(0, 0), "reducer", [], 0.01, BACKOFF) == {}


async def test_a_gap_is_waited_for_even_when_enough_peers_are_visible() -> None:
    # reducer-0 and reducer-2 make two peers, but the job needs ordinals 0 and 1.
    discovery = FakeDiscovery(0, 3, hidden=["reducer-1"])
    task = asyncio.create_task(wait_for_ordinals(discovery, "reducer", [0, 1], 5.0, BACKOFF))
    await asyncio.sleep(0.1)  # let it look (and find the gap) a few times; nothing to wait on for "not found"
    assert not task.done()
    await discovery.show("reducer-1")
    async with asyncio.timeout(5):
        found = await task
    assert sorted(found) == [0, 1]


async def test_an_ordinal_that_never_appears_is_named_after_the_timeout() -> None:
    discovery = FakeDiscovery(0, 3, hidden=["reducer-1"])
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(OrdinalMissing) as caught:
        await wait_for_ordinals(discovery, "reducer", range(3), 0.3, BACKOFF)
    assert 0.25 <= loop.time() - started < 2.0
    assert caught.value.missing == [1]
    assert caught.value.message.startswith("reducer-1 not visible within 0.3 s (MR_TIMEOUT_RECOVERY)")
    assert "reducers seen: reducer-0, reducer-2" in caught.value.message


async def test_a_static_list_too_short_names_the_setting_to_fix() -> None:
    discovery = StaticDiscovery(Settings(reducer_urls=("http://127.0.0.1:9",)))
    with pytest.raises(OrdinalMissing) as caught:
        await wait_for_ordinals(discovery, "reducer", [0, 1], 0.1, BACKOFF)
    assert caught.value.missing == [1] and "set MR_REDUCERS to at least 2 URLs" in caught.value.message
