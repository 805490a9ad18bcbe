"""Discovery: how an actor finds the mappers and reducers, by ordinal, in any of three modes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..core.config import Settings
from .base import Discovery, Peer, PeerRole

__all__ = ["Discovery", "Peer", "PeerRole", "open_discovery"]

@asynccontextmanager
async def open_discovery(settings: Settings) -> AsyncIterator[Discovery]:
    """Open the discovery ``settings.discovery`` names for this actor; close it (unregister) on exit."""
    if settings.discovery == "static":
        from .static import StaticDiscovery

        yield StaticDiscovery(settings)
    elif settings.discovery == "dns":
        from .dns import DnsDiscovery

        yield DnsDiscovery(settings)
    else:
        from .mdns import MdnsDiscovery

        async with MdnsDiscovery.open(settings) as discovery:
            yield discovery
