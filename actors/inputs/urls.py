"""URL inputs: the address policy every fetch obeys (at submit and on every connection), and the size probe."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from ..core.config import Settings
from ..core.errors import InputError, describe
from .pin import Pin
from .special import block_of

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix: the last 32 bits are the IPv4 target
_SIXTOFOUR = ipaddress.IPv6Network("2002::/16")  # RFC 3056: bits 16-47 are the IPv4 relay that carries the packet
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated IPv4-compatible form ::a.b.c.d
_ALLOW = "MR_ALLOW_PRIVATE_URLS"


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries and may end up reaching (mapped, compatible, 6to4, Teredo, NAT64)."""
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address in _COMPATIBLE or address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)  # (server, client); either could be steered at an inside address
    return found


def refusal(address: IPAddress) -> str | None:
    """Why the policy forbids connecting to ``address``, or None when it is a public unicast address.

    Decided by the IANA registries encoded in :mod:`actors.inputs.special` alone, the same on every interpreter.
    """
    if isinstance(address, ipaddress.IPv6Address) and (
        address.ipv4_mapped is not None or address in _NAT64 or address in _SIXTOFOUR
    ):
        # Ways to write (or to reach through) an IPv4 address: that address decides, whatever the IPv6 row says.
        for inner in embedded_ipv4(address):
            if refusal(inner) is not None:
                return f"{address} carries the non-public IPv4 address {inner}"
        return None
    block = block_of(address)  # Teredo and IPv4-compatible forms are refused here, by their rows
    if block.reachable:
        return None
    verdict = "not globally reachable" if block.reachable is False else "given no global reachability (N/A)"
    return (f"{address} is not a public address: {block.network} ({block.name}, {block.rfc}) is {verdict} in the "
            f"{block.registry}")


class ForbiddenAddress(OSError):
    """A connection the address policy refused, raised where the socket would have been made."""


def _guarded_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """aiohttp's socket factory: called with the very address about to be connected, after every DNS answer."""
    family, kind, proto, _, sockaddr = addr_info
    reason = refusal(ipaddress.ip_address(sockaddr[0]))
    if reason is not None:
        raise ForbiddenAddress(f"refused to connect: {reason} (set {_ALLOW} to allow)")
    return socket.socket(family=family, type=kind, proto=proto)


class UrlPolicy:
    """The address policy for URL inputs: checked when a job is submitted, enforced again on every connection.

    The submit-time check gives a clear 400 early. It cannot be the guard: a redirect, or a DNS answer that changes
    between the check and the fetch (rebinding), would lead past it. So every session made here checks the address
    each socket is about to connect to, after resolution and on every redirect hop: what is checked is what is
    connected to.
    """

    def __init__(self, allow_private: bool, resolver: AbstractResolver | None = None) -> None:
        self.allow_private = allow_private
        self._resolver = resolver  # tests inject a fake DNS; None: the connector's own resolver

    async def check(self, url: str) -> None:
        """Refuse non-http(s) URLs and, unless allowed, hosts with any non-public address."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"input url {url!r} must be an absolute http(s) URL")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise InputError(f"input url {url!r} has a bad port") from None
        if self.allow_private:
            return
        for address in await self._addresses(parts.hostname, port):
            reason = refusal(address)
            if reason is not None:
                raise InputError(f"input url {url!r} points at a non-public address: {reason}; refused ({_ALLOW})")

    async def _addresses(self, host: str, port: int) -> list[IPAddress]:
        try:
            if self._resolver is not None:
                answers = await self._resolver.resolve(host, port, family=socket.AF_UNSPEC)
                return [ipaddress.ip_address(answer["host"]) for answer in answers]
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        except OSError:
            raise InputError(f"input url host {host!r} does not resolve") from None
        return [ipaddress.ip_address(info[4][0]) for info in infos]

    def session(self) -> aiohttp.ClientSession:
        """A client session whose every connection obeys the policy; the caller owns it (``async with``)."""
        connector = aiohttp.TCPConnector(
            resolver=self._resolver,
            socket_factory=None if self.allow_private else _guarded_socket,
            limit=16,
        )
        # No environment proxies: a proxy would connect on our behalf, out of the policy's sight.
        return aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False)


def forbidden_cause(exc: BaseException) -> ForbiddenAddress | None:
    """The policy refusal behind a client error, if that is what it is."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ForbiddenAddress):
            return seen
        if isinstance(seen, aiohttp.ClientConnectorError) and isinstance(seen.os_error, ForbiddenAddress):
            return seen.os_error
        seen = seen.__cause__ or seen.__context__
    return None


# What object stores answer HEAD on a URL presigned for GET only (403: the signature covers the method), and what
# servers without HEAD answer: the size is then probed with a ranged GET of one byte.
_NO_HEAD = frozenset({403, 405, 501})
_IDENTITY = {"Accept-Encoding": "identity"}  # a size and a range count the object's own bytes, never a rendering


async def url_pin(policy: UrlPolicy, url: str, settings: Settings) -> Pin:
    """The size and version of a URL input, which must accept byte ranges: from HEAD, or (a presigned URL, which
    allows GET only) from the Content-Range of a ranged GET of its first byte. The mappers' reads are pinned to it."""
    timeout = aiohttp.ClientTimeout(total=settings.timeouts.request, sock_connect=settings.timeouts.connect)
    try:
        # No redirects: the size must come from the URL the mappers will read, not from wherever it points.
        async with policy.session() as session:
            async with session.head(url, headers=_IDENTITY, timeout=timeout, allow_redirects=False) as response:
                if response.status in _NO_HEAD:
                    pass
                elif response.status != 200:
                    raise InputError(f"input url {url!r} answered HEAD with {response.status}")
                else:
                    if response.headers.get("Accept-Ranges", "").lower() != "bytes":
                        raise InputError(f"input url {url!r} does not accept byte ranges (Accept-Ranges: bytes)")
                    length = response.headers.get("Content-Length", "")
                    if not (length.isascii() and length.isdigit()):
                        raise InputError(f"input url {url!r} does not say its length")
                    return Pin.of(int(length), response.headers, url)
            return await _ranged_pin(session, url, timeout)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        forbidden = forbidden_cause(exc)
        if forbidden is not None:
            raise InputError(f"input url {url!r}: {forbidden}") from None
        raise InputError(f"input url {url!r} cannot be read: {describe(exc)}") from None


async def _ranged_pin(session: aiohttp.ClientSession, url: str, timeout: aiohttp.ClientTimeout) -> Pin:
    """The total of ``Content-Range: bytes 0-0/N`` from a GET of the first byte (``bytes */0``: empty)."""
    headers = {"Range": "bytes=0-0", **_IDENTITY}
    async with session.get(url, headers=headers, timeout=timeout, allow_redirects=False) as response:
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
        if response.status not in (206, 416) or not (total.isascii() and total.isdigit()):
            raise InputError(f"input url {url!r} answered a ranged GET (its HEAD refused) with {response.status} "
                             "and no byte range with a length (Content-Range)")
        # The body (one byte) is left unread: closing the response drops the connection.
        return Pin.of(int(total), response.headers, url)
