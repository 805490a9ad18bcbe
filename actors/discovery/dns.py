"""DNS discovery: a Kubernetes headless Service's SRV records name the pods, their A records give the IPs."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Iterable
from pathlib import Path

import dns.asyncresolver
import dns.exception
import dns.message
import dns.rdatatype
import dns.resolver

from ..core.config import Settings
from ..core.errors import DiscoveryError
from .base import Peer, PeerRole, peer_url

# A StatefulSet pod's name is "<set>-<ordinal>"; the set name must hold a letter so that the dashed-IP labels
# CoreDNS gives endpoints without a hostname ("10-244-1-5") are not mistaken for ordinals.
_POD_LABEL = re.compile(r"^([a-z0-9-]*[a-z][a-z0-9-]*)-(\d+)$")
RESOLV_CONF = "/etc/resolv.conf"
DEFAULT_CLUSTER_DOMAIN = "cluster.local"


def cluster_domain_of(resolv_conf: str) -> str | None:
    """The cluster domain in a pod's resolv.conf: kubelet puts ``svc.<domain>`` in the search list."""
    search: list[str] = []
    for line in resolv_conf.splitlines():
        words = line.split()
        if words and words[0] in ("search", "domain"):
            search = words[1:]  # the last search/domain line wins, as in the resolver
    for entry in search:
        entry = entry.rstrip(".").lower()
        if entry.startswith("svc.") and len(entry) > len("svc."):
            return entry[len("svc."):]
    return None


def cluster_domain(configured: str, resolv_conf: str | Path = RESOLV_CONF) -> str:
    """MR_CLUSTER_DOMAIN when set; else the pod's search list says it; else ``cluster.local``."""
    if configured:
        return configured.strip(".")
    try:
        text = Path(resolv_conf).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return DEFAULT_CLUSTER_DOMAIN
    return cluster_domain_of(text) or DEFAULT_CLUSTER_DOMAIN


class DnsDiscovery:
    """Look peers up in cluster DNS on every call, so a scaled StatefulSet is seen on the next call."""

    def __init__(self, settings: Settings, resolv_conf: str | Path = RESOLV_CONF) -> None:
        self._settings = settings
        self._timeout = settings.timeouts.discovery
        self.cluster_domain = cluster_domain(settings.cluster_domain, resolv_conf)
        try:
            if settings.dns_nameserver:
                self._resolver = dns.asyncresolver.Resolver(configure=False)
                self._resolver.nameservers = [settings.dns_nameserver]
                self._resolver.port = settings.dns_port
            else:
                self._resolver = dns.asyncresolver.Resolver()
        except (dns.exception.DNSException, OSError, ValueError) as exc:
            raise DiscoveryError(f"cannot set up the DNS resolver: {exc}") from exc
        # A single attempt may use the whole budget; lifetime bounds the query including its retries.
        self._resolver.timeout = self._timeout
        self._resolver.lifetime = self._timeout

    def srv_name(self, role: PeerRole) -> str:
        """The SRV name Kubernetes publishes for the role's headless Service and named port."""
        s = self._settings
        host = s.mapper_host if role == "mapper" else s.reducer_host
        service = host.rstrip(".") if "." in host else f"{host}.{s.namespace}.svc.{self.cluster_domain}"
        return f"_{s.port_name}._tcp.{service}."

    async def peers(self, role: PeerRole) -> list[Peer]:
        qname = self.srv_name(role)
        answer = await self._query(qname, "SRV")
        if answer is None:
            return []  # the Service exists but has no ready pods, or does not exist yet
        targets: dict[str, int] = {}
        for srv in answer:
            # One pod may be listed once per port protocol; the first port seen for it is kept.
            targets.setdefault(srv.target.to_text().lower(), srv.port)
        glue = _addresses_in(answer.response)
        lookups = [self._address(target, glue) for target in targets]
        addresses = await asyncio.gather(*lookups)
        chosen: dict[int, Peer] = {}
        candidates = []
        for (target, port), ip in zip(targets.items(), addresses, strict=True):
            match = _POD_LABEL.match(target.split(".", 1)[0])
            if ip is None or match is None:
                continue  # the pod went away between the two queries, or is not a StatefulSet pod
            candidates.append(Peer(int(match.group(2)), role, match.group(0), peer_url(ip, port)))
        # Two pods claiming one ordinal (say two sets behind one Service): the smallest name and URL wins,
        # so every caller routes a partition to the same pod.
        for peer in sorted(candidates):
            chosen.setdefault(peer.ordinal, peer)
        return [chosen[ordinal] for ordinal in sorted(chosen)]

    async def wait_for(self, role: PeerRole, count: int, timeout: float) -> list[Peer]:
        """Re-query with a short, growing pause until ``count`` peers of ``role`` answer, for at most ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        backoff = self._settings.discovery_backoff
        tries = 0
        peers: list[Peer] = []
        last_error: DiscoveryError | None = None
        while True:
            try:
                peers = await asyncio.wait_for(self.peers(role), max(deadline - loop.time(), 0.001))
                last_error = None
                if len(peers) >= count:
                    return peers
            except DiscoveryError as exc:
                last_error = exc  # DNS may be briefly unreachable while the cluster starts; keep trying
            except TimeoutError:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            tries += 1
            await asyncio.sleep(min(backoff.pause(tries), remaining))  # a pause between look-ups, not a condition
        cause = f"; last error: {last_error.message}" if last_error else ""
        raise DiscoveryError(
            f"only {len(peers)} of {count} {role}(s) appeared in DNS ({self.srv_name(role)}) within {timeout:g}s{cause}"
        )

    async def _address(self, target: str, glue: dict[str, str]) -> str | None:
        """The pod's address: its A record, else (an IPv6-only pod) its AAAA record."""
        if target in glue:
            return glue[target]
        for rdtype in ("A", "AAAA"):
            answer = await self._query(target, rdtype)
            if answer is not None:
                return _lowest(rdata.address for rdata in answer)
        return None

    async def _query(self, qname: str, rdtype: str) -> dns.resolver.Answer | None:
        """One bounded query; None when the name or the record type does not exist."""
        try:
            return await self._resolver.resolve(qname, rdtype, search=False, lifetime=self._timeout)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.Timeout as exc:
            raise DiscoveryError(f"DNS {rdtype} query for {qname} timed out after {self._timeout:g}s") from exc
        except dns.exception.DNSException as exc:
            raise DiscoveryError(f"DNS {rdtype} query for {qname} failed: {exc}") from exc


def _addresses_in(response: dns.message.Message) -> dict[str, str]:
    """A (else AAAA) records the server volunteered in the additional section (CoreDNS sends them with SRV)."""
    found: dict[str, str] = {}
    for rdtype in (dns.rdatatype.AAAA, dns.rdatatype.A):  # A last, so it wins where a pod has both
        for rrset in response.additional:
            if rrset.rdtype == rdtype:
                found[rrset.name.to_text().lower()] = _lowest(rdata.address for rdata in rrset)
    return found


def _lowest(addresses: Iterable[str]) -> str:
    # Numeric order, so every caller picks the same address of a multi-address pod.
    return str(min(ipaddress.ip_address(a) for a in addresses))
