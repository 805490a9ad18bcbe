"""Peers by ordinal: wait (bounded) until discovery shows every ordinal a job needs, whatever else it shows."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable

from ..core.config import Backoff
from ..core.errors import DiscoveryError
from ..discovery import Discovery, Peer, PeerRole


class OrdinalMissing(DiscoveryError):
    """An ordinal a job needs stayed invisible for the whole wait."""

    def __init__(self, message: str, missing: list[int]) -> None:
        super().__init__(message)
        self.missing = missing


async def wait_for_ordinals(
    discovery: Discovery, role: PeerRole, ordinals: Iterable[int], timeout: float, backoff: Backoff
) -> dict[int, Peer]:
    """The peers holding ``ordinals``, waiting up to ``timeout`` s for any not yet visible (a pod not Ready yet,
    or restarting), looking again after each ``backoff`` pause (the settings' discovery_backoff); raise
    OrdinalMissing naming the ones still missing."""
    needed = sorted(set(ordinals))
    if not needed:
        return {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    tries = 0
    while True:
        remaining = max(deadline - loop.time(), 0.001)
        try:
            # Ordinal i needs at least i + 1 peers in all (mDNS wakes on events, DNS re-queries); then check them.
            peers = await discovery.wait_for(role, needed[-1] + 1, remaining)
            cause = ""
        except DiscoveryError as error:
            peers, cause = await _visible(discovery, role), f"; {error.message}"
        by_ordinal = {p.ordinal: p for p in peers}
        missing = [i for i in needed if i not in by_ordinal]
        if not missing:
            return {i: by_ordinal[i] for i in needed}
        if loop.time() >= deadline:
            names = ", ".join(f"{role}-{i}" for i in missing)
            seen = ", ".join(p.name for p in peers) or "none"
            raise OrdinalMissing(
                f"{names} not visible within {timeout:g} s (MR_TIMEOUT_RECOVERY); {role}s seen: {seen}{cause}",
                missing,
            )
        # The protocol offers no event for "this ordinal appeared": look again after a short, growing pause.
        tries += 1
        await asyncio.sleep(min(backoff.pause(tries, random.uniform(0.5, 1.5)), max(deadline - loop.time(), 0.0)))


async def _visible(discovery: Discovery, role: PeerRole) -> list[Peer]:
    try:
        return await discovery.peers(role)
    except DiscoveryError:
        return []
