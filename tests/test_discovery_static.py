"""Static discovery: list order is the ordinal, and waiting for more peers than listed fails at once."""

from __future__ import annotations

import time

import pytest

from actors.core.config import Settings
from actors.core.errors import ConfigError, DiscoveryError
from actors.discovery import Peer, open_discovery
from actors.discovery.base import peer_url
from actors.discovery.static import StaticDiscovery

SETTINGS = Settings(
    discovery="static",
    mapper_urls=("http://127.0.0.1:9101", "http://127.0.0.1:9100"),
    reducer_urls=("http://127.0.0.3:8082", "http://127.0.0.1:8082/", "http://127.0.0.2:8082"),
)


async def test_list_order_is_the_ordinal() -> None:
    discovery = StaticDiscovery(SETTINGS)
    assert await discovery.peers("mapper") == [
        Peer(0, "mapper", "mapper-0", "http://127.0.0.1:9101"),
        Peer(1, "mapper", "mapper-1", "http://127.0.0.1:9100"),
    ]
    assert await discovery.peers("reducer") == [
        Peer(0, "reducer", "reducer-0", "http://127.0.0.3:8082"),
        Peer(1, "reducer", "reducer-1", "http://127.0.0.1:8082"),
        Peer(2, "reducer", "reducer-2", "http://127.0.0.2:8082"),
    ]


async def test_callers_cannot_change_the_list() -> None:
    discovery = StaticDiscovery(SETTINGS)
    (await discovery.peers("reducer")).clear()
    assert len(await discovery.peers("reducer")) == 3


async def test_open_discovery_picks_static() -> None:
    async with open_discovery(SETTINGS) as discovery:
        assert [p.ordinal for p in await discovery.peers("reducer")] == [0, 1, 2]


async def test_wait_for_returns_the_list_when_it_is_long_enough() -> None:
    peers = await StaticDiscovery(SETTINGS).wait_for("reducer", 2, timeout=5.0)
    assert [p.name for p in peers] == ["reducer-0", "reducer-1", "reducer-2"]


async def test_wait_for_more_than_listed_fails_without_waiting() -> None:
    started = time.monotonic()
    with pytest.raises(DiscoveryError, match="lists 2 mapper"):
        await StaticDiscovery(SETTINGS).wait_for("mapper", 3, timeout=30.0)
    assert time.monotonic() - started < 1.0


async def test_no_urls_means_no_peers() -> None:
    assert await StaticDiscovery(Settings()).peers("mapper") == []


async def test_ipv6_reducers_are_written_in_brackets() -> None:
    settings = Settings.from_env({"MR_REDUCERS": "http://[fd00::5]:8082,http://[::1]:8083/"})
    peers = await StaticDiscovery(settings).peers("reducer")
    assert [p.url for p in peers] == ["http://[fd00::5]:8082", "http://[::1]:8083"]


@pytest.mark.parametrize("url", ["http://fd00::5:8082", "http://[fd00::5:8082", "http://host:port", "http://:8082"])
def test_a_malformed_reducer_url_is_refused_with_a_hint(url: str) -> None:
    with pytest.raises(ConfigError, match="MR_REDUCERS"):
        StaticDiscovery(Settings(reducer_urls=(url,)))


@pytest.mark.parametrize(("host", "url"), [
    ("10.0.0.1", "http://10.0.0.1:8082"), ("fd00::5", "http://[fd00::5]:8082"), ("reducer-0.x", "http://reducer-0.x:8082"),
])
def test_peer_urls_bracket_ipv6(host: str, url: str) -> None:
    assert peer_url(host, 8082) == url
