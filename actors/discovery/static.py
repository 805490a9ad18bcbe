"""Static discovery: fixed lists of peer URLs whose order is the ordinal."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..core.config import Settings
from ..core.errors import ConfigError, DiscoveryError
from .base import Peer, PeerRole


class StaticDiscovery:
    """Peers from ``settings.mapper_urls`` and ``settings.reducer_urls``; list position ``i`` is ordinal ``i``."""

    def __init__(self, settings: Settings) -> None:
        self._peers: dict[PeerRole, list[Peer]] = {
            "mapper": _peers_of("mapper", settings.mapper_urls),
            "reducer": _peers_of("reducer", settings.reducer_urls),
        }

    async def peers(self, role: PeerRole) -> list[Peer]:
        return list(self._peers[role])

    async def wait_for(self, role: PeerRole, count: int, timeout: float) -> list[Peer]:
        """Return the peers of ``role`` if there are at least ``count``; a fixed list never grows, so never wait."""
        peers = await self.peers(role)
        if len(peers) < count:
            raise DiscoveryError(
                f"static discovery lists {len(peers)} {role}(s) but {count} are needed; "
                f"set MR_{role.upper()}S to at least {count} URLs"
            )
        return peers


def _peers_of(role: PeerRole, urls: tuple[str, ...]) -> list[Peer]:
    for url in urls:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 -- parsing the port is the check
        except ValueError as exc:
            raise ConfigError(f"MR_{role.upper()}S: {url!r} is not a valid URL ({exc}); write an IPv6 address in "
                              "brackets, e.g. http://[fd00::5]:8082") from None
        if not parts.hostname:
            raise ConfigError(f"MR_{role.upper()}S: {url!r} has no host")
    return [Peer(ordinal=i, role=role, name=f"{role}-{i}", url=url.rstrip("/")) for i, url in enumerate(urls)]
