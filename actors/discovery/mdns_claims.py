"""mDNS announcements: what an actor announces, how it is signed, and when a peer's announcement is believed."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from zeroconf import ServiceInfo

from ..core.config import Settings
from ..core.errors import ConfigError
from .base import Peer, PeerRole, peer_url

SERVICE_TYPE = "_mapreduce._tcp.local."
ROLES: tuple[PeerRole, ...] = ("mapper", "reducer")  # the roles that announce themselves
_CLUSTER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_MAX_LABEL = 63  # DNS label limit for the instance name
_SIGNED = "mapreduce-mdns/1"  # names what the signature covers; change it when the covered fields change


@dataclass(frozen=True)
class Claim:
    """One actor's announcement, verified: the peer, and when (and as which incarnation) it started."""

    peer: Peer
    since: int  # the announcing process's start, ns since the epoch; a later start supersedes an earlier one
    incarnation: str  # random per process: tells two starts in the same ns apart, deterministically

    @property
    def rank(self) -> tuple[int, str]:
        return self.since, self.incarnation


def signature(token: str, cluster: str, role: str, ordinal: str, url: str, incarnation: str, since: str) -> str:
    """HMAC-SHA256 of an announcement's fields, keyed by the cluster token: proof the announcer holds the token."""
    fields = json.dumps([_SIGNED, cluster, role, ordinal, url, incarnation, since], separators=(",", ":"))
    return hmac.new(token.encode(), fields.encode(), hashlib.sha256).hexdigest()


def instance_name(cluster: str, role: str, ordinal: str) -> str:
    """The mDNS instance name of one actor: unique by construction in its cluster."""
    return f"{cluster}-{role}-{ordinal}"


def announcement(settings: Settings, role: PeerRole, url: str, incarnation: str, since: int) -> dict[str, str]:
    """The TXT properties this actor announces, signed with the cluster token when there is one."""
    cluster, ordinal = settings.mdns_cluster, str(settings.ordinal)
    properties = {"cluster": cluster, "role": role, "ordinal": ordinal, "url": url, "inc": incarnation,
                  "since": str(since)}
    if settings.token:
        properties["sig"] = signature(settings.token, cluster, role, ordinal, url, incarnation, str(since))
    return properties


def claim_of(info: ServiceInfo, cluster: str, token: str) -> Claim | str:
    """The verified claim an announcement makes, or why it is not believed ("" when it is simply not ours)."""
    props = info.decoded_properties
    if props.get("cluster") != cluster:
        return ""  # another cluster on the segment, or another application
    role, ordinal, url = props.get("role"), props.get("ordinal") or "", props.get("url") or ""
    incarnation, since = props.get("inc") or "", props.get("since") or ""
    if role not in ROLES or not ordinal.isdigit() or ordinal != str(int(ordinal)):
        return f"bad role {role!r} or ordinal {ordinal!r}"
    expected = f"{instance_name(cluster, role, ordinal)}.{SERVICE_TYPE}"
    if info.name.lower() != expected.lower():
        # The instance name is what mDNS keeps unique; a record claiming another name's ordinal is an impostor.
        return f"instance name {info.name!r} does not match its role and ordinal ({expected!r})"
    if not since.isdigit() or not incarnation:
        return "no start time or incarnation"
    if token:
        sig = props.get("sig") or ""
        if not hmac.compare_digest(sig, signature(token, cluster, role, ordinal, url, incarnation, since)):
            return "missing or wrong signature: the announcer does not hold the cluster token (MR_TOKEN)"
    if not url.startswith(("http://", "https://")):
        if token:
            return "no URL: only a URL in the signed record is trusted"  # A records are not signed
        addresses = info.parsed_addresses()
        if not addresses or info.port is None:
            return "no URL and no address"
        url = peer_url(addresses[0], info.port)
    peer_role: PeerRole = "mapper" if role == "mapper" else "reducer"
    peer = Peer(int(ordinal), peer_role, f"{peer_role}-{int(ordinal)}", url.rstrip("/"))
    return Claim(peer, int(since), incarnation)


def advertised(settings: Settings) -> tuple[str, int, str]:
    """The IPv4 address, port and URL to announce, from ``advertise_url``.

    A host name there (the default is the pod or process name) may not resolve for local peers, so it is replaced
    by the mDNS interface's address, on which the peers certainly reach us.
    """
    parts = urlsplit(settings.advertise_url)
    try:
        port = parts.port or settings.port
    except ValueError as exc:
        raise ConfigError(f"advertise URL {settings.advertise_url!r} has a bad port") from exc
    try:
        address = str(ipaddress.IPv4Address(parts.hostname or ""))
    except ValueError:
        address = settings.mdns_interface
        return address, port, peer_url(address, port, parts.scheme or "http")
    return address, port, settings.advertise_url.rstrip("/")


def check_settings(settings: Settings) -> None:
    """Refuse a cluster id or interface that cannot make a valid instance name or bind one IPv4 interface."""
    cluster = settings.mdns_cluster
    if not _CLUSTER_ID.match(cluster):
        raise ConfigError(f"MR_MDNS_CLUSTER={cluster!r}: use letters, digits and dashes")
    longest = f"{cluster}-reducer-{max(settings.ordinal, 9999)}"
    if len(longest) > _MAX_LABEL:
        raise ConfigError(f"MR_MDNS_CLUSTER={cluster!r} is too long for an mDNS instance name")
    try:
        ipaddress.IPv4Address(settings.mdns_interface)
    except ValueError:
        raise ConfigError(f"MR_MDNS_INTERFACE={settings.mdns_interface!r} is not an IPv4 address") from None
