"""URL inputs: the address policy every fetch obeys, and the size probe."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

import aiohttp

from ..core.config import Settings
from ..core.errors import InputError, describe


async def url_size(session: aiohttp.ClientSession, url: str, settings: Settings) -> int:
    """The size of a URL input, which must answer HEAD with a length and accept byte ranges."""
    timeout = aiohttp.ClientTimeout(total=settings.timeouts.request, sock_connect=settings.timeouts.connect)
    try:
        # No redirects: a redirect could lead past the address check.
        async with session.head(url, timeout=timeout, allow_redirects=False) as response:
            if response.status != 200:
                raise InputError(f"input url {url!r} answered HEAD with {response.status}")
            if response.headers.get("Accept-Ranges", "").lower() != "bytes":
                raise InputError(f"input url {url!r} does not accept byte ranges (Accept-Ranges: bytes)")
            length = response.headers.get("Content-Length", "")
            if not length.isdigit():
                raise InputError(f"input url {url!r} does not say its length")
            return int(length)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise InputError(f"input url {url!r} cannot be read: {describe(exc)}") from None


async def check_url(url: str, allow_private: bool) -> None:
    """Refuse non-http(s) URLs and, unless allowed, loopback, link-local, private and metadata addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"input url {url!r} must be an absolute http(s) URL")
    if allow_private:
        return
    try:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(parts.hostname, parts.port or 80, proto=socket.IPPROTO_TCP)
    except OSError:
        raise InputError(f"input url host {parts.hostname!r} does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise InputError(f"input url {url!r} points at a non-public address {address}; refused")
