"""The IANA special-purpose address registries as data: which blocks are globally reachable, by the registry alone.

The URL address policy decides from this table and never from ``ipaddress``'s ``is_global``/``is_private``, whose
answers changed between CPython patch releases (2002::/16, 2001:20::/28, 2001:3::/32 and 2001:4:112::/48 flipped
within 3.11): a policy must not depend on the interpreter it happens to run on.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPV4_REGISTRY = "IANA IPv4 Special-Purpose Address Registry"
IPV6_REGISTRY = "IANA IPv6 Special-Purpose Address Registry"
# The version encoded below (both pages' "Last Updated"); the newest entry is 100:0:0:1::/64 (RFC 9780, 2025-04).
REGISTRY_VERSION = "2025-10-09"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Block:
    """One registry row: its block, name, defining RFC and "Globally Reachable" column (None: N/A or empty)."""

    network: Network
    name: str
    rfc: str
    reachable: bool | None
    registry: str


# (block, name, RFC, Globally Reachable). Rows are the registry's own, in its order; a more specific row overrides
# the block it sits in (footnote [2] of IPv4, [1] of IPv6: "unless allowed by a more specific allocation").
_IPV4: tuple[tuple[str, str, str, bool | None], ...] = (
    ("0.0.0.0/8", '"This network"', "RFC 791", False),
    ("0.0.0.0/32", '"This host on this network"', "RFC 1122", False),
    ("10.0.0.0/8", "Private-Use", "RFC 1918", False),
    ("100.64.0.0/10", "Shared Address Space", "RFC 6598", False),
    ("127.0.0.0/8", "Loopback", "RFC 1122", False),
    ("169.254.0.0/16", "Link Local", "RFC 3927", False),
    ("172.16.0.0/12", "Private-Use", "RFC 1918", False),
    ("192.0.0.0/24", "IETF Protocol Assignments", "RFC 6890", False),
    ("192.0.0.0/29", "IPv4 Service Continuity Prefix", "RFC 7335", False),
    ("192.0.0.8/32", "IPv4 dummy address", "RFC 7600", False),
    ("192.0.0.9/32", "Port Control Protocol Anycast", "RFC 7723", True),
    ("192.0.0.10/32", "Traversal Using Relays around NAT Anycast", "RFC 8155", True),
    ("192.0.0.170/32", "NAT64/DNS64 Discovery", "RFC 8880", False),
    ("192.0.0.171/32", "NAT64/DNS64 Discovery", "RFC 8880", False),
    ("192.0.2.0/24", "Documentation (TEST-NET-1)", "RFC 5737", False),
    ("192.31.196.0/24", "AS112-v4", "RFC 7535", True),
    ("192.52.193.0/24", "AMT", "RFC 7450", True),
    ("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", "RFC 7526", None),  # terminated 2015-03: empty columns
    ("192.88.99.2/32", "6a44-relay anycast address", "RFC 6751", False),
    ("192.168.0.0/16", "Private-Use", "RFC 1918", False),
    ("192.175.48.0/24", "Direct Delegation AS112 Service", "RFC 7534", True),
    ("198.18.0.0/15", "Benchmarking", "RFC 2544", False),
    ("198.51.100.0/24", "Documentation (TEST-NET-2)", "RFC 5737", False),
    ("203.0.113.0/24", "Documentation (TEST-NET-3)", "RFC 5737", False),
    ("240.0.0.0/4", "Reserved", "RFC 1112", False),
    ("255.255.255.255/32", "Limited Broadcast", "RFC 919", False),
)
_IPV6: tuple[tuple[str, str, str, bool | None], ...] = (
    ("::1/128", "Loopback Address", "RFC 4291", False),
    ("::/128", "Unspecified Address", "RFC 4291", False),
    ("::ffff:0:0/96", "IPv4-mapped Address", "RFC 4291", False),
    ("64:ff9b::/96", "IPv4-IPv6 Translat.", "RFC 6052", True),
    ("64:ff9b:1::/48", "IPv4-IPv6 Translat.", "RFC 8215", False),
    ("100::/64", "Discard-Only Address Block", "RFC 6666", False),
    ("100:0:0:1::/64", "Dummy IPv6 Prefix", "RFC 9780", False),
    ("2001::/23", "IETF Protocol Assignments", "RFC 2928", False),
    ("2001::/32", "TEREDO", "RFC 4380", None),  # N/A: see RFC 4380 section 5
    ("2001:1::1/128", "Port Control Protocol Anycast", "RFC 7723", True),
    ("2001:1::2/128", "Traversal Using Relays around NAT Anycast", "RFC 8155", True),
    ("2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", "RFC 9665", True),
    ("2001:2::/48", "Benchmarking", "RFC 5180", False),
    ("2001:3::/32", "AMT", "RFC 7450", True),
    ("2001:4:112::/48", "AS112-v6", "RFC 7535", True),
    ("2001:10::/28", "Deprecated (previously ORCHID)", "RFC 4843", None),  # terminated 2014-03: empty columns
    ("2001:20::/28", "ORCHIDv2", "RFC 7343", True),
    ("2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", "RFC 9374", True),
    ("2001:db8::/32", "Documentation", "RFC 3849", False),
    ("2002::/16", "6to4", "RFC 3056", None),  # N/A: reachable as far as the IPv4 address it carries
    ("2620:4f:8000::/48", "Direct Delegation AS112 Service", "RFC 7534", True),
    ("3fff::/20", "Documentation", "RFC 9637", False),
    ("5f00::/16", "Segment Routing (SRv6) SIDs", "RFC 9602", False),
    ("fc00::/7", "Unique-Local", "RFC 4193", False),
    ("fe80::/10", "Link-Local Unicast", "RFC 4291", False),
)
# What the special-purpose registries leave to others: multicast (its own registries: a TCP connection has no use
# for it), and for IPv6 the address space registry, where only 2000::/3 is global unicast and everything else is
# reserved by the IETF or special (the rows above override it by being more specific).
_ARCHITECTURE: tuple[tuple[str, str, str, bool | None, str], ...] = (
    ("0.0.0.0/0", "IPv4 unicast", "RFC 791", True, "IANA IPv4 Address Space Registry"),
    ("224.0.0.0/4", "Multicast", "RFC 5771", False, "IANA IPv4 Multicast Address Space Registry"),
    ("::/0", "Reserved by IETF (not global unicast)", "RFC 4291", False, "IANA IPv6 Address Space Registry"),
    ("2000::/3", "Global Unicast", "RFC 4291", True, "IANA IPv6 Address Space Registry"),
    ("ff00::/8", "Multicast", "RFC 4291", False, "IANA IPv6 Address Space Registry"),
)


def _blocks() -> tuple[Block, ...]:
    rows = [Block(ipaddress.ip_network(n), name, rfc, r, IPV4_REGISTRY) for n, name, rfc, r in _IPV4]
    rows += [Block(ipaddress.ip_network(n), name, rfc, r, IPV6_REGISTRY) for n, name, rfc, r in _IPV6]
    rows += [Block(ipaddress.ip_network(n), name, rfc, r, registry) for n, name, rfc, r, registry in _ARCHITECTURE]
    # Most specific first: the first block holding an address is the one that speaks for it.
    return tuple(sorted(rows, key=lambda block: -block.network.prefixlen))


BLOCKS = _blocks()


def block_of(address: Address) -> Block:
    """The most specific registry block holding ``address`` (every address is in one: the tables cover both spaces)."""
    for block in BLOCKS:
        if block.network.version == address.version and address in block.network:
            return block
    raise AssertionError(f"no registry block holds {address}")  # unreachable: 0.0.0.0/0 and ::/0 hold everything
