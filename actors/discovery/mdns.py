"""mDNS discovery: local actors announce ``<cluster>-<role>-<ordinal>`` with zeroconf and browse each other.

Anyone on the segment can announce anything, so an announcement is believed only when its instance name matches its
TXT role and ordinal and, with a cluster token (MR_TOKEN), when it carries an HMAC of its fields keyed by that token.
Without a token, mDNS is trust-on-loopback.

Goodbyes (records with TTL 0) cannot be signed, so anyone can send one. A verified peer therefore leaves the view
only when a newer verified claim for its ordinal replaces it (a restarted actor), or when the network stays silent
about it after a goodbye: the goodbye only makes us ask again (a PTR query), and the peer is dropped if no record
for it comes back within MR_TIMEOUT_DISCOVERY. A live peer answers, so a forged goodbye changes nothing; a peer that
really left is gone after that bound. A forged *answer* can keep a dead peer listed, which is harmless: callers
already treat a refused connection as the peer being down, and jobs wait for a missing ordinal (MR_TIMEOUT_RECOVERY).
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from zeroconf import (  # type: ignore[attr-defined]  # public names, not in __all__
    DNSOutgoing,
    DNSQuestion,
    DNSQuestionType,
    IPVersion,
    ServiceInfo,
    ServiceStateChange,
    Zeroconf,
    current_time_millis,
)
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf
from zeroconf.const import _CLASS_IN, _FLAGS_QR_QUERY, _TYPE_PTR

from ..core.config import Settings
from ..core.errors import DiscoveryError
from ..core.logs import EventLog
from .base import Peer, PeerRole
from .mdns_claims import (
    ROLES,
    SERVICE_TYPE,
    Claim,
    advertised,
    announcement,
    check_settings,
    claim_of,
    instance_name,
)

log = EventLog(__name__)

# RFC 6762 suggests 75 minutes for PTR records; python-zeroconf browsers raise any PTR TTL to at least this floor, so
# it is the soonest an actor killed without a goodbye (kill -9) drops out of its peers' lists. Callers must treat a
# peer that refuses connections as gone; a restarted actor takes over its own instance name at once.
_PTR_TTL = 1125
_MAX_REFUSED = 256  # refused instance names remembered (for logs and tests), oldest dropped first
_ASKS = 3  # PTR queries sent, evenly over MR_TIMEOUT_DISCOVERY, before a goodbye is believed (multicast is lossy)
ANSWERED, SILENT = "answered", "silent"  # what came of a goodbye: the peer's records came back, or nothing did

class MdnsDiscovery:
    """Peers of one ``mdns_cluster`` on one interface, kept current from zeroconf's browse callbacks."""

    def __init__(self, settings: Settings) -> None:
        """Use :meth:`open`; the constructor only checks the settings."""
        check_settings(settings)
        self._settings = settings
        self._cluster = settings.mdns_cluster
        self._timeout = settings.timeouts.discovery
        self._claims: dict[str, Claim] = {}  # by lower-cased mDNS instance name
        self.refused: dict[str, str] = {}  # instance name -> why its last announcement was not believed
        self.goodbyes: dict[str, str] = {}  # instance name -> what came of the last goodbye for a verified peer
        self._doubted: set[str] = set()  # instance names whose goodbye is being checked
        self._incarnation = secrets.token_hex(8)
        self._since = time.time_ns()
        self._resolving: dict[str, asyncio.Task[None]] = {}
        self._changed = asyncio.Event()
        self._own_name: str | None = None
        self._info: ServiceInfo | None = None
        self._announcing: Awaitable[object] | None = None
        self._zeroconf: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator[MdnsDiscovery]:
        """Join the mDNS segment on ``settings.mdns_interface``, announce this actor if it is a mapper or reducer."""
        discovery = cls(settings)
        try:
            await discovery._start()
            yield discovery
        finally:
            await discovery._close()

    async def peers(self, role: PeerRole) -> list[Peer]:
        return self._snapshot(role)

    async def wait_for(self, role: PeerRole, count: int, timeout: float) -> list[Peer]:
        """Wait, woken by browse events, until at least ``count`` peers of ``role`` are visible."""
        return await self.wait_until(role, lambda peers: len(peers) >= count, timeout, f"{count} {role}(s)")

    async def wait_until(
        self,
        role: PeerRole,
        condition: Callable[[list[Peer]], bool],
        timeout: float,
        what: str = "the condition",
    ) -> list[Peer]:
        """Wait, woken by browse events, until ``condition`` holds for the peers of ``role``; return them."""
        peers = self._snapshot(role)
        try:
            async with asyncio.timeout(timeout):
                while not condition(peers):
                    await self._changed.wait()
                    peers = self._snapshot(role)
        except TimeoutError:
            seen = ", ".join(p.name for p in peers) or "none"
            raise DiscoveryError(
                f"waited {timeout:g}s for {what} in mDNS cluster {self._cluster!r} on "
                f"{self._settings.mdns_interface}; {role}s seen: {seen}"
            ) from None
        return peers

    def _snapshot(self, role: PeerRole) -> list[Peer]:
        # A claim is stored only under the instance name its role and ordinal dictate, so one ordinal has one claim;
        # should two ever meet, the latest start wins (then the larger incarnation): never a URL order an
        # announcer could game.
        chosen: dict[int, Claim] = {}
        for claim in self._claims.values():
            if claim.peer.role != role:
                continue
            held = chosen.get(claim.peer.ordinal)
            if held is None or claim.rank > held.rank:
                chosen[claim.peer.ordinal] = claim
        return [chosen[ordinal].peer for ordinal in sorted(chosen)]

    # lifecycle

    async def _start(self) -> None:
        s = self._settings
        try:
            # One interface only: the sockets are bound to its address, so nothing goes out on other links.
            self._zeroconf = AsyncZeroconf(interfaces=[s.mdns_interface], ip_version=IPVersion.V4Only)
        except OSError as exc:
            raise DiscoveryError(f"cannot start mDNS on {s.mdns_interface}: {exc}") from exc
        # QM questions are answered by multicast. A QU question would be answered by unicast to port 5353, which
        # every local actor binds with SO_REUSEPORT, and the kernel hands a unicast datagram to only one of them.
        self._browser = AsyncServiceBrowser(
            self._zeroconf.zeroconf, SERVICE_TYPE, handlers=[self._on_change], question_type=DNSQuestionType.QM
        )
        if s.role in ROLES:
            await self._register()

    async def _register(self) -> None:
        assert self._zeroconf is not None
        s = self._settings
        role: PeerRole = "mapper" if s.role == "mapper" else "reducer"
        instance = instance_name(self._cluster, role, str(s.ordinal))
        address, port, url = advertised(s)
        info = ServiceInfo(
            SERVICE_TYPE,
            f"{instance}.{SERVICE_TYPE}",
            port=port,
            properties=announcement(s, role, url, self._incarnation, self._since),
            server=f"{instance}.local.",  # one host name per actor, so one actor's goodbye never drops another's A
            other_ttl=_PTR_TTL,
            addresses=[ipaddress.IPv4Address(address).packed],
        )
        try:
            async with asyncio.timeout(self._timeout):
                # Probing exists to find a name someone else holds. Ours is unique by construction (cluster id,
                # role, ordinal), and a restarted actor must take over its own name, so skip the ~2 s of probes.
                self._announcing = await self._zeroconf.async_register_service(info, cooperating_responders=True)
        except TimeoutError:
            raise DiscoveryError(f"registering {instance} over mDNS took longer than {self._timeout:g}s") from None
        self._info = info
        self._own_name = info.name.lower()
        own = Peer(s.ordinal, role, f"{role}-{s.ordinal}", url)
        self._claims[self._own_name] = Claim(own, self._since, self._incarnation)
        self._notify()

    async def _close(self) -> None:
        tasks: list[asyncio.Future[Any]] = list(self._resolving.values())
        if isinstance(self._announcing, asyncio.Future):
            tasks.append(self._announcing)  # a late announcement after our goodbye would revive us in caches
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._resolving.clear()
        if self._zeroconf is None:
            return
        try:
            async with asyncio.timeout(self._timeout):
                if self._browser is not None:
                    await self._browser.async_cancel()
                if self._info is not None:
                    await self._say_goodbye(self._info)
                await self._zeroconf.async_close()
        except TimeoutError:
            # Peers will drop us when our records expire.
            log.warning("mdns_close_slow", timeout=self._timeout)
        finally:
            self._zeroconf = None
            self._browser = None

    async def _say_goodbye(self, info: ServiceInfo) -> None:
        assert self._zeroconf is not None
        zeroconf = self._zeroconf.zeroconf
        # Answers queued for recent queries carry our records with a live TTL. Sent between our goodbyes they would
        # re-add us, and peers drop the repeated goodbyes as duplicate packets, so we would stay listed for the
        # whole TTL. Nothing else is registered on this instance, so the queues hold only our answers.
        zeroconf.out_queue.queue.clear()
        zeroconf.out_delay_queue.queue.clear()
        # No await between clearing and this call's removal from the registry, so no new answer can be queued.
        goodbyes = await self._zeroconf.async_unregister_service(info)
        await goodbyes

    # browse events

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        key = name.lower()
        if state_change is ServiceStateChange.Removed:
            if key in self._doubted:
                return  # already asking about it: a flood of goodbyes costs one check, not one each
            self._cancel(key)
            if key != self._own_name and key in self._claims:
                # Unsigned, so not believed: ask the network instead, and drop the peer only if it stays silent.
                self._doubted.add(key)
                self._resolving[key] = asyncio.create_task(self._recheck(key, zeroconf, name))
            return
        if key in self._doubted:
            self._remember(self.goodbyes, key, ANSWERED)  # its records came back: the goodbye is refuted
            log.info("mdns_goodbye_answered", instance=name)
        self._cancel(key)  # a newer event for the same instance supersedes a pending one
        info = AsyncServiceInfo(service_type, name)
        if info.load_from_cache(zeroconf):
            self._apply(key, info)
        else:
            self._resolving[key] = asyncio.create_task(self._resolve(key, zeroconf, info))

    def _cancel(self, key: str) -> None:
        pending = self._resolving.pop(key, None)
        if pending is not None:
            pending.cancel()
        self._doubted.discard(key)

    async def _recheck(self, key: str, zeroconf: Zeroconf, name: str) -> None:
        """After a goodbye for a verified peer: ask for the service's pointers; no answer in time means it left.

        An answer arrives as a browse event for ``name`` (the goodbye took its pointer out of the cache), which
        cancels this task. The pointer query, not a cached SRV/TXT look-up, also puts the pointer back, so a later
        genuine goodbye is seen again.
        """
        try:
            for _ in range(_ASKS):
                _ask_for_pointers(zeroconf)
                await asyncio.sleep(self._timeout / _ASKS)  # between retries; an answer cancels the task
        finally:
            if self._resolving.get(key) is asyncio.current_task():
                del self._resolving[key]
                self._doubted.discard(key)
        self._remember(self.goodbyes, key, SILENT)
        if self._claims.pop(key, None) is not None:
            log.info("mdns_peer_left", instance=name, waited=self._timeout)
            self._notify()

    def _remember(self, table: dict[str, str], key: str, value: str) -> None:
        if key not in table and len(table) >= _MAX_REFUSED:  # a flood of bogus names must not grow memory
            del table[next(iter(table))]
        table[key] = value
        self._notify()

    async def _resolve(self, key: str, zeroconf: Zeroconf, info: AsyncServiceInfo) -> None:
        try:
            found = await info.async_request(zeroconf, self._timeout * 1000, question_type=DNSQuestionType.QM)
        finally:
            if self._resolving.get(key) is asyncio.current_task():
                del self._resolving[key]
        if found:
            self._apply(key, info)
        else:
            log.warning("mdns_peer_silent", instance=info.name, timeout=self._timeout)

    def _apply(self, key: str, info: ServiceInfo) -> None:
        if key == self._own_name:
            return
        claim = claim_of(info, self._cluster, self._settings.token)
        held = self._claims.get(key)
        if not isinstance(claim, str) and held is not None and held.rank > claim.rank:
            claim = "an earlier start than the announcement already held (a replay)"
        if isinstance(claim, str):
            # Not believed: it never displaces what we hold for that name (a verified claim stays).
            if claim and self.refused.get(key) != claim:
                self._remember(self.refused, key, claim)
                log.warning("mdns_peer_refused", instance=info.name, cause=claim)
            return
        self.refused.pop(key, None)
        if held != claim:
            self._claims[key] = claim
            self._notify()

    def _notify(self) -> None:
        # Wake every waiter once, then give later waiters a fresh event.
        self._changed.set()
        self._changed = asyncio.Event()


def _ask_for_pointers(zeroconf: Zeroconf) -> None:
    """Multicast one PTR question for our service type, listing the pointers we hold so only the others answer."""
    query = DNSOutgoing(_FLAGS_QR_QUERY)
    query.add_question(DNSQuestion(SERVICE_TYPE, _TYPE_PTR, _CLASS_IN))
    now = current_time_millis()
    for known in zeroconf.cache.async_all_by_details(SERVICE_TYPE, _TYPE_PTR, _CLASS_IN):
        query.add_answer_at_time(known, now)
    zeroconf.async_send(query)
