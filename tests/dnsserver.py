"""A fake cluster DNS server (dnslib on asyncio) serving a headless Service's A, AAAA and SRV records like CoreDNS."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self, cast

from dnslib import AAAA, EDNS0, QTYPE, RCODE, RR, SRV, A, DNSHeader, DNSRecord  # type: ignore[import-untyped]

_TTL = 5
_PLAIN_UDP_LIMIT = 512


@dataclass
class Srv:
    target: str
    port: int
    priority: int = 0
    weight: int = 100


@dataclass
class Zone:
    """Records by absolute lower-case name; edit freely while the server runs (it reads them per query)."""

    a: dict[str, list[str]] = field(default_factory=dict)
    aaaa: dict[str, list[str]] = field(default_factory=dict)
    srv: dict[str, list[Srv]] = field(default_factory=dict)

    def names(self) -> set[str]:
        return set(self.a) | set(self.aaaa) | set(self.srv)


class FakeClusterDns:
    """Serve ``zone`` over UDP and TCP on one port; ``port=0`` picks a free one, reported by :attr:`port`.

    ``set_headless_service`` fills the records Kubernetes publishes for a headless Service in front of a
    StatefulSet. ``silent = True`` makes the server drop queries, to test timeouts. ``glue`` controls whether SRV
    answers carry the pods' A records in the additional section (CoreDNS does).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, cluster_domain: str = "cluster.local") -> None:
        self.host = host
        self.port = port
        self.cluster_domain = cluster_domain
        self.zone = Zone()
        self.silent = False
        self.glue = True
        self.queries: list[tuple[str, str, str]] = []  # (protocol, name, type), for tests that count traffic
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    # records

    def service_name(self, service: str, namespace: str = "default") -> str:
        return f"{service}.{namespace}.svc.{self.cluster_domain}."

    def set_headless_service(
        self,
        service: str,
        pods: dict[str, str],
        port: int,
        namespace: str = "default",
        port_name: str = "http",
    ) -> None:
        """Publish ``pods`` ({pod name: IP}) behind ``service``; an empty dict is a Service with no ready pods.

        An IPv6 pod IP is published as an AAAA record (an IPv6-only pod has no A record), an IPv4 one as an A record.
        """
        base = self.service_name(service, namespace)
        self.remove_service(service, namespace)
        for pod, ip in pods.items():
            (self.zone.aaaa if ":" in ip else self.zone.a)[f"{pod}.{base}"] = [ip]
        if pods:
            v4 = sorted(ip for ip in pods.values() if ":" not in ip)
            v6 = sorted(ip for ip in pods.values() if ":" in ip)
            if v4:
                self.zone.a[base] = v4
            if v6:
                self.zone.aaaa[base] = v6
            self.zone.srv[f"_{port_name}._tcp.{base}"] = [Srv(f"{pod}.{base}", port) for pod in pods]

    def remove_service(self, service: str, namespace: str = "default") -> None:
        base = self.service_name(service, namespace)
        for table in (self.zone.a, self.zone.aaaa, self.zone.srv):
            for name in [n for n in table if n == base or n.endswith("." + base)]:
                del table[name]

    # lifecycle

    async def start(self) -> Self:
        loop = asyncio.get_running_loop()
        # Bind UDP first (port 0 picks one), then TCP on the same number; retry if TCP finds it taken.
        for _ in range(20):
            transport, _protocol = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self.host, self.port)
            )
            port = transport.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, port)
            except OSError:
                transport.close()
                if self.port:
                    raise
                continue
            self._udp = transport
            self.port = port
            return self
        raise OSError(f"no port free for both UDP and TCP on {self.host}")

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
            self._tcp = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # answering

    def answer(self, data: bytes, protocol: str) -> bytes | None:
        try:
            request = DNSRecord.parse(data)
        except Exception:  # a garbled packet gets no answer, like a real server
            return None
        if self.silent or not request.questions:
            return None
        question = request.q
        name = str(question.qname).lower()
        qtype = QTYPE[question.qtype]
        self.queries.append((protocol, name, qtype))
        reply = request.reply()
        if qtype == "SRV" and name in self.zone.srv:
            for srv in self.zone.srv[name]:
                rdata = SRV(srv.priority, srv.weight, srv.port, srv.target)
                reply.add_answer(RR(name, QTYPE.SRV, rdata=rdata, ttl=_TTL))
                if self.glue:
                    for ip in self.zone.a.get(srv.target.lower(), []):
                        reply.add_ar(RR(srv.target, QTYPE.A, rdata=A(ip), ttl=_TTL))
                    for ip in self.zone.aaaa.get(srv.target.lower(), []):
                        reply.add_ar(RR(srv.target, QTYPE.AAAA, rdata=AAAA(ip), ttl=_TTL))
        elif qtype == "A" and name in self.zone.a:
            for ip in self.zone.a[name]:
                reply.add_answer(RR(name, QTYPE.A, rdata=A(ip), ttl=_TTL))
        elif qtype == "AAAA" and name in self.zone.aaaa:
            for ip in self.zone.aaaa[name]:
                reply.add_answer(RR(name, QTYPE.AAAA, rdata=AAAA(ip), ttl=_TTL))
        elif name not in self.zone.names():
            reply.header.rcode = RCODE.NXDOMAIN
        packed: bytes = reply.pack()
        if protocol == "udp" and len(packed) > _udp_limit(request):
            # Keep the question so the client matches the reply, drop the records and ask it to use TCP.
            truncated = DNSRecord(DNSHeader(id=request.header.id, qr=1, aa=1, ra=1, tc=1), q=request.q)
            packed = truncated.pack()
        return packed

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # a TCP client may send several length-prefixed queries on one connection
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                reply = self.answer(await reader.readexactly(length), "tcp")
                if reply is not None:
                    writer.write(struct.pack("!H", len(reply)) + reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed the connection
        finally:
            writer.close()


def _udp_limit(request: DNSRecord) -> int:
    for rr in request.ar:
        if isinstance(rr, EDNS0) or rr.rtype == QTYPE.OPT:
            return max(int(rr.rclass), _PLAIN_UDP_LIMIT)
    return _PLAIN_UDP_LIMIT


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: FakeClusterDns) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # a selector transport is not a subclass

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        reply = self.server.answer(data, "udp")
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)
