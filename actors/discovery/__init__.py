"""Discovery: how an actor finds the mappers and reducers, by ordinal, in any of three modes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

from ..config import Settings

PeerRole = Literal["mapper", "reducer"]


@dataclass(frozen=True, order=True)
class Peer:
    """One actor as discovery sees it; ``ordinal`` is its StatefulSet index (reducer i owns partition i)."""

    ordinal: int
    role: PeerRole
    name: str  # e.g. "reducer-1" (the pod or process name)
    url: str  # base URL, e.g. "http://127.0.0.2:8082"


class Discovery(Protocol):
    """A live view of the peers; each call answers the current set, sorted by ordinal."""

    async def peers(self, role: PeerRole) -> list[Peer]: ...

    async def wait_for(self, role: PeerRole, count: int, timeout: float) -> list[Peer]:
        """Answer once at least ``count`` peers of ``role`` are visible; raise DiscoveryError after ``timeout``."""
        ...


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
