"""Peers and the discovery protocol: what every discovery mode answers."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal, Protocol

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


def peer_url(host: str, port: int, scheme: str = "http") -> str:
    """The base URL of a peer at ``host``; an IPv6 address goes in brackets (``http://[fd00::5]:8082``)."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"{scheme}://[{host}]:{port}"
    except ValueError:
        pass  # a host name
    return f"{scheme}://{host}:{port}"
