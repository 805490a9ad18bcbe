"""The URL address policy: every address form, the submit-time check, and the check on every connection."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from actors.core.config import Settings
from actors.core.errors import InputError
from actors.inputs.urls import ForbiddenAddress, UrlPolicy, embedded_ipv4, forbidden_cause, refusal, url_size

from .support import serve_app

REFUSED = [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "255.255.255.255", "240.0.0.1", "198.51.100.7",
    "::1", "::", "fe80::1", "fd00::1", "ff02::1",
    "::127.0.0.1",  # IPv4-compatible: Python calls it global
    "::8.8.8.8",  # IPv4-compatible is deprecated whatever it carries
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1",  # IPv4-mapped
    "2002:7f00:1::1", "2002:a9fe:a9fe::1", "2002:0a00:0001::5",  # 6to4 around loopback, metadata, private
    "2001:0:7f00:1:0:0:f7f7:f7f7",  # Teredo: server 127.0.0.1
    "2001:0:808:808:8000:63bf:80ff:fffe",  # Teredo: client 127.0.0.1 (stored inverted)
    "2001:0:808:808:8000:63bf:f7f7:f7f7",  # Teredo between public addresses: not global either
    "64:ff9b::127.0.0.1", "64:ff9b::a9fe:a9fe", "64:ff9b::192.168.0.1",  # NAT64 well-known prefix
    "64:ff9b:1::8.8.8.8",  # local-use NAT64: the IPv4 position is site-specific, so never checkable
]
ALLOWED = [
    "8.8.8.8", "1.1.1.1", "192.0.0.9", "2606:4700:4700::1111",
    "::ffff:8.8.8.8",  # mapped: reaches 8.8.8.8
    "64:ff9b::8.8.8.8",  # NAT64 to a public IPv4 (IPv6-only clusters reach the internet this way)
    "2002:808:808::1",  # 6to4 around a public IPv4
]


@pytest.mark.parametrize("text", REFUSED)
def test_refused_forms(text: str) -> None:
    assert refusal(ipaddress.ip_address(text)) is not None


@pytest.mark.parametrize("text", ALLOWED)
def test_public_forms(text: str) -> None:
    assert refusal(ipaddress.ip_address(text)) is None


def test_embedded_ipv4_of_each_form() -> None:
    v4 = ipaddress.IPv4Address
    assert embedded_ipv4(ipaddress.IPv6Address("::ffff:10.0.0.1")) == [v4("10.0.0.1")]
    assert embedded_ipv4(ipaddress.IPv6Address("::127.0.0.1")) == [v4("127.0.0.1")]
    assert embedded_ipv4(ipaddress.IPv6Address("64:ff9b::169.254.169.254")) == [v4("169.254.169.254")]
    assert embedded_ipv4(ipaddress.IPv6Address("2002:7f00:1::1")) == [v4("127.0.0.1")]
    assert embedded_ipv4(ipaddress.IPv6Address("2001:0:808:808:8000:63bf:80ff:fffe")) == [
        v4("8.8.8.8"), v4("127.0.0.1")]
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700::1111")) == []


@pytest.mark.parametrize("url", [
    "http://[::127.0.0.1]/", "http://[::ffff:127.0.0.1]:8080/x", "http://[::ffff:7f00:1]/",
    "http://[2002:7f00:1::1]/", "http://[64:ff9b::7f00:1]/", "http://127.0.0.1/", "http://[::1]/",
    "http://169.254.169.254/latest/meta-data", "http://2130706433/", "http://127.1/",
])
async def test_submit_check_refuses_literal_forms(url: str) -> None:
    with pytest.raises(InputError, match="non-public address"):
        await UrlPolicy(allow_private=False).check(url)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "http:///nohost", "http://x:99999/"])
async def test_submit_check_refuses_malformed(url: str) -> None:
    with pytest.raises(InputError):
        await UrlPolicy(allow_private=True).check(url)


class ChangingResolver(AbstractResolver):
    """A DNS at the world's edge whose answer changes between queries, as in DNS rebinding."""

    def __init__(self, *answers: str) -> None:
        self._answers: Iterator[str] = iter(answers)
        self.queries = 0

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        self.queries += 1
        address = next(self._answers)
        kind = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [ResolveResult(hostname=host, host=address, port=port, family=kind, proto=0, flags=0)]

    async def close(self) -> None:
        pass


@pytest.fixture
async def loopback_service() -> AsyncIterator[tuple[int, list[str]]]:
    """A service on 127.0.0.1 the policy must keep URL inputs away from; it records every request."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.method)
        return web.Response(body=b"internal secret\n", headers={"Accept-Ranges": "bytes"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with serve_app(app) as url:
        yield int(url.rsplit(":", 1)[1]), seen


async def test_rebinding_between_check_and_fetch_is_refused_at_connect(
    loopback_service: tuple[int, list[str]],
) -> None:
    port, seen = loopback_service
    resolver = ChangingResolver("192.0.0.9", "127.0.0.1")  # public when checked, loopback when fetched
    policy = UrlPolicy(allow_private=False, resolver=resolver)
    url = f"http://rebind.example:{port}/data.txt"
    await policy.check(url)
    async with policy.session() as session:
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await session.get(url)
    assert resolver.queries == 2
    forbidden = forbidden_cause(caught.value)
    assert isinstance(forbidden, ForbiddenAddress) and "127.0.0.1 is not a public address" in str(forbidden)
    assert seen == []


async def test_the_size_probe_obeys_the_policy_at_connect(loopback_service: tuple[int, list[str]]) -> None:
    port, seen = loopback_service
    policy = UrlPolicy(allow_private=False, resolver=ChangingResolver("::ffff:127.0.0.1"))
    with pytest.raises(InputError, match=r"refused to connect: .* MR_ALLOW_PRIVATE_URLS"):
        await url_size(policy, f"http://rebind.example:{port}/data.txt", Settings())
    assert seen == []


async def test_a_literal_loopback_host_is_refused_by_the_session(loopback_service: tuple[int, list[str]]) -> None:
    # aiohttp does not ask the resolver about IP literals (a redirect's Location can be one): the socket is checked.
    port, seen = loopback_service
    async with UrlPolicy(allow_private=False).session() as session:
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await session.get(f"http://127.0.0.1:{port}/")
    assert forbidden_cause(caught.value) is not None
    assert seen == []


async def test_allowed_private_urls_reach_loopback(loopback_service: tuple[int, list[str]]) -> None:
    port, seen = loopback_service
    policy = UrlPolicy(allow_private=True)
    await policy.check(f"http://127.0.0.1:{port}/")
    async with policy.session() as session, session.get(f"http://127.0.0.1:{port}/") as response:
        assert await response.read() == b"internal secret\n"
    assert seen == ["GET"]
