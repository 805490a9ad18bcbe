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
from actors.inputs import special
from actors.inputs.urls import ForbiddenAddress, UrlPolicy, embedded_ipv4, forbidden_cause, refusal, url_pin

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
    # Rows some CPython releases' is_global gets wrong (the registry says: not globally reachable, or N/A).
    "192.88.99.2",  # 6a44 relay anycast (RFC 6751)
    "192.88.99.1",  # deprecated 6to4 relay anycast (RFC 7526): terminated
    "192.0.0.8", "192.0.0.170", "192.0.0.171", "192.0.0.1",  # 192.0.0.0/24 outside its two reachable /32s
    "3fff::1",  # documentation (RFC 9637)
    "5f00::1",  # SRv6 SIDs (RFC 9602)
    "100:0:0:1::1", "100::1",  # dummy prefix (RFC 9780), discard-only
    "2001:2::1",  # benchmarking, inside 2001::/23
    "2001:10::1",  # deprecated ORCHID: terminated
    "2001:1::4",  # 2001::/23 next to its reachable anycast /128s
    "2001:db8::1",
    "4000::1", "8000::1", "fec0::1",  # outside 2000::/3: reserved by the IETF, never assigned to anyone
]
ALLOWED = [
    "8.8.8.8", "1.1.1.1", "192.0.0.9", "192.0.0.10", "2606:4700:4700::1111",
    "::ffff:8.8.8.8",  # mapped: reaches 8.8.8.8
    "64:ff9b::8.8.8.8",  # NAT64 to a public IPv4 (IPv6-only clusters reach the internet this way)
    "2002:808:808::1",  # 6to4 around a public IPv4 (is_global says no on CPython 3.13.0 and Debian's 3.11.2)
    # The registry's globally reachable rows inside 2001::/23 (is_global says no on CPython 3.11.7 and 3.12.1).
    "2001:1::1", "2001:1::2", "2001:1::3", "2001:3::1", "2001:4:112::1", "2001:20::1", "2001:2f:ffff::1",
    "2001:30::1",
    "192.31.196.1", "192.52.193.1", "192.175.48.1", "2620:4f:8000::1",  # AS112 and AMT
]


@pytest.mark.parametrize("text", REFUSED)
def test_refused_forms(text: str) -> None:
    assert refusal(ipaddress.ip_address(text)) is not None


@pytest.mark.parametrize("text", ALLOWED)
def test_public_forms(text: str) -> None:
    assert refusal(ipaddress.ip_address(text)) is None


_PROPERTIES = ("is_global", "is_private", "is_reserved", "is_multicast", "is_loopback", "is_link_local",
               "is_unspecified", "is_site_local")


@pytest.mark.parametrize("text", REFUSED + ALLOWED)
def test_the_policy_never_asks_ipaddress(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The verdict comes from the registry table alone: the interpreter's own idea of "global" (which changed between
    # CPython patch releases) is not consulted at all.
    def asked(self: object) -> bool:
        raise AssertionError("refusal() consulted ipaddress's own classification")

    expected = text in REFUSED
    for cls in (ipaddress.IPv4Address, ipaddress.IPv6Address):
        for name in _PROPERTIES:
            if hasattr(cls, name):
                monkeypatch.setattr(cls, name, property(asked))
    assert (refusal(ipaddress.ip_address(text)) is not None) is expected


def test_the_table_names_its_registries_and_version() -> None:
    assert special.REGISTRY_VERSION == "2025-10-09"
    assert {b.registry for b in special.BLOCKS} >= {special.IPV4_REGISTRY, special.IPV6_REGISTRY}
    by_network = {str(b.network): b for b in special.BLOCKS}
    # The registry's three-valued column is kept: N/A (Teredo, 6to4) and terminated rows are neither yes nor no.
    assert by_network["2001::/32"].reachable is None and by_network["2002::/16"].reachable is None
    assert by_network["2001::/23"].reachable is False and by_network["2001:20::/28"].reachable is True


_CARRY_IPV4 = {"::ffff:0:0/96", "64:ff9b::/96", "2002::/16"}


@pytest.mark.parametrize("block", [b for b in special.BLOCKS if b.network.prefixlen > 0],
                         ids=lambda b: str(b.network))
def test_every_row_decides_its_first_and_last_address(block: special.Block) -> None:
    # The most specific row speaks: a row's first and last addresses get its verdict unless a narrower row (or, for
    # the IPv4-carrying forms, the IPv4 address they carry) decides them instead.
    for address in (block.network[0], block.network[-1]):
        assert special.block_of(address).network.subnet_of(block.network)  # type: ignore[arg-type]
        if special.block_of(address) == block and str(block.network) not in _CARRY_IPV4:
            assert (refusal(address) is None) is bool(block.reachable), (address, block)


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
        await url_pin(policy, f"http://rebind.example:{port}/data.txt", Settings())
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
