"""DNS discovery against a real DNS server on loopback publishing headless-Service records."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actors.core.config import Settings, Timeouts
from actors.core.errors import DiscoveryError
from actors.discovery import Peer
from actors.discovery.dns import DnsDiscovery, cluster_domain_of
from tests.dnsserver import FakeClusterDns, Srv

BASE = "reducer.default.svc.cluster.local."


@pytest.fixture
async def dns_server() -> AsyncIterator[FakeClusterDns]:
    async with FakeClusterDns() as server:
        yield server


def settings_for(server: FakeClusterDns, **changes: object) -> Settings:
    base = Settings(
        discovery="dns",
        dns_nameserver=server.host,
        dns_port=server.port,
        cluster_domain="cluster.local",  # explicit: the machine's own resolv.conf must not matter here
        timeouts=Timeouts(discovery=1.0),
    )
    return base.replace(**changes)


async def test_reducers_come_sorted_by_ordinal_with_pod_ips(dns_server: FakeClusterDns) -> None:
    # Listed out of order, and 10 after 2, so a string sort would be caught.
    pods = {"reducer-10": "10.0.0.12", "reducer-0": "10.0.0.10", "reducer-2": "10.0.0.11"}
    dns_server.set_headless_service("reducer", pods, port=8082)
    peers = await DnsDiscovery(settings_for(dns_server)).peers("reducer")
    assert peers == [
        Peer(0, "reducer", "reducer-0", "http://10.0.0.10:8082"),
        Peer(2, "reducer", "reducer-2", "http://10.0.0.11:8082"),
        Peer(10, "reducer", "reducer-10", "http://10.0.0.12:8082"),
    ]


async def test_scaling_from_two_to_three_reducers_is_seen_on_the_next_call(dns_server: FakeClusterDns) -> None:
    discovery = DnsDiscovery(settings_for(dns_server))
    two = {"reducer-0": "127.0.1.1", "reducer-1": "127.0.1.2"}
    dns_server.set_headless_service("reducer", two, port=8082)
    assert [p.name for p in await discovery.peers("reducer")] == ["reducer-0", "reducer-1"]
    dns_server.set_headless_service("reducer", {**two, "reducer-2": "127.0.1.3"}, port=8082)
    peers = await discovery.peers("reducer")
    assert [(p.ordinal, p.url) for p in peers] == [
        (0, "http://127.0.1.1:8082"),
        (1, "http://127.0.1.2:8082"),
        (2, "http://127.0.1.3:8082"),
    ]


async def test_service_without_ready_pods_or_missing_service_is_empty(dns_server: FakeClusterDns) -> None:
    discovery = DnsDiscovery(settings_for(dns_server))
    dns_server.set_headless_service("reducer", {}, port=8082)
    assert await discovery.peers("reducer") == []  # NXDOMAIN, as CoreDNS answers for no endpoints
    dns_server.zone.a[BASE] = ["10.0.0.1"]  # the name exists but holds no SRV: NOERROR with no answer
    assert await discovery.peers("reducer") == []
    assert await discovery.peers("mapper") == []


async def test_mappers_use_mapper_host_port_name_and_namespace(dns_server: FakeClusterDns) -> None:
    dns_server.set_headless_service("mr-mapper", {"mr-mapper-1": "10.1.0.2"}, 9000, namespace="jobs", port_name="web")
    settings = settings_for(dns_server, mapper_host="mr-mapper", namespace="jobs", port_name="web")
    assert await DnsDiscovery(settings).peers("mapper") == [Peer(1, "mapper", "mr-mapper-1", "http://10.1.0.2:9000")]


async def test_host_with_a_dot_is_a_full_service_name(dns_server: FakeClusterDns) -> None:
    dns_server.set_headless_service("reducer", {"reducer-0": "10.0.0.1"}, port=8082, namespace="other")
    settings = settings_for(dns_server, reducer_host="reducer.other.svc.cluster.local")
    discovery = DnsDiscovery(settings)
    assert discovery.srv_name("reducer") == "_http._tcp.reducer.other.svc.cluster.local."
    assert [p.url for p in await discovery.peers("reducer")] == ["http://10.0.0.1:8082"]


async def test_without_glue_records_each_target_is_resolved(dns_server: FakeClusterDns) -> None:
    dns_server.glue = False
    pods = {f"reducer-{i}": f"10.0.0.{i + 1}" for i in range(3)}
    dns_server.set_headless_service("reducer", pods, port=8082)
    peers = await DnsDiscovery(settings_for(dns_server)).peers("reducer")
    assert [p.url for p in peers] == ["http://10.0.0.1:8082", "http://10.0.0.2:8082", "http://10.0.0.3:8082"]
    a_queries = sorted(name for _, name, qtype in dns_server.queries if qtype == "A")
    assert a_queries == [f"reducer-{i}.{BASE}" for i in range(3)]


async def test_a_target_gone_between_the_queries_is_skipped(dns_server: FakeClusterDns) -> None:
    dns_server.glue = False
    dns_server.set_headless_service("reducer", {"reducer-0": "10.0.0.1", "reducer-1": "10.0.0.2"}, port=8082)
    del dns_server.zone.a[f"reducer-1.{BASE}"]
    assert [p.name for p in await DnsDiscovery(settings_for(dns_server)).peers("reducer")] == ["reducer-0"]


async def test_large_answer_is_truncated_over_udp_and_retried_over_tcp(dns_server: FakeClusterDns) -> None:
    pods = {f"reducer-{i}": f"10.0.{i // 200}.{i % 200 + 1}" for i in range(40)}
    dns_server.set_headless_service("reducer", pods, port=8082)
    peers = await DnsDiscovery(settings_for(dns_server)).peers("reducer")
    assert [p.ordinal for p in peers] == list(range(40))
    assert peers[39].url == "http://10.0.0.40:8082"
    protocols = [proto for proto, _, qtype in dns_server.queries if qtype == "SRV"]
    assert protocols == ["udp", "tcp"]


async def test_duplicate_ordinals_keep_one_deterministic_choice_and_non_pod_targets_are_ignored(
    dns_server: FakeClusterDns,
) -> None:
    srv_name = f"_http._tcp.{BASE}"
    other = "reducer-0.blue.default.svc.cluster.local."
    mine = f"reducer-0.{BASE}"
    dashed = f"10-244-1-5.{BASE}"  # an endpoint with no hostname: not a StatefulSet ordinal
    dns_server.zone.srv[srv_name] = [Srv(mine, 8082), Srv(dashed, 8082), Srv(other, 8082)]
    dns_server.zone.a.update({mine: ["10.0.0.9"], other: ["10.0.0.3"], dashed: ["10.244.1.5"]})
    discovery = DnsDiscovery(settings_for(dns_server))
    first = await discovery.peers("reducer")
    dns_server.zone.srv[srv_name].reverse()
    assert await discovery.peers("reducer") == first == [Peer(0, "reducer", "reducer-0", "http://10.0.0.3:8082")]


async def test_unanswered_query_raises_discovery_error_naming_it_within_the_timeout(dns_server: FakeClusterDns) -> None:
    dns_server.silent = True
    discovery = DnsDiscovery(settings_for(dns_server, timeouts=Timeouts(discovery=0.3)))
    started = time.monotonic()
    with pytest.raises(DiscoveryError, match=r"SRV query for _http\._tcp\.reducer\.default\.svc\.cluster\.local\."):
        await discovery.peers("reducer")
    assert time.monotonic() - started < 2.0


async def test_wait_for_returns_once_enough_reducers_appear(dns_server: FakeClusterDns) -> None:
    dns_server.set_headless_service("reducer", {"reducer-0": "10.0.0.1"}, port=8082)
    discovery = DnsDiscovery(settings_for(dns_server))
    # The second pod becomes ready while wait_for is already waiting.
    asyncio.get_running_loop().call_later(
        0.2,
        dns_server.set_headless_service,
        "reducer",
        {"reducer-0": "10.0.0.1", "reducer-1": "10.0.0.2"},
        8082,
    )
    peers = await discovery.wait_for("reducer", 2, timeout=5.0)
    assert [p.name for p in peers] == ["reducer-0", "reducer-1"]


async def test_wait_for_gives_up_after_its_timeout(dns_server: FakeClusterDns) -> None:
    dns_server.set_headless_service("reducer", {"reducer-0": "10.0.0.1"}, port=8082)
    discovery = DnsDiscovery(settings_for(dns_server))
    started = time.monotonic()
    with pytest.raises(DiscoveryError, match=r"only 1 of 3 reducer\(s\)"):
        await discovery.wait_for("reducer", 3, timeout=0.5)
    assert time.monotonic() - started < 1.5


async def test_wait_for_reports_the_last_error_when_dns_never_answers(dns_server: FakeClusterDns) -> None:
    dns_server.silent = True
    discovery = DnsDiscovery(settings_for(dns_server, timeouts=Timeouts(discovery=0.2)))
    with pytest.raises(DiscoveryError, match="timed out"):
        await discovery.wait_for("reducer", 1, timeout=0.7)


KUBELET_RESOLV_CONF = """\
search mapreduce.svc.corp.example svc.corp.example corp.example
nameserver 10.96.0.10
options ndots:5
"""


@pytest.mark.parametrize(("text", "domain"), [
    (KUBELET_RESOLV_CONF, "corp.example"),
    ("search jobs.svc.cluster.local. svc.cluster.local. cluster.local.\nnameserver 169.254.20.10\n", "cluster.local"),
    ("search svc.old.example\nsearch ns.svc.new.example svc.new.example\n", "new.example"),  # the last line wins
    ("nameserver 10.0.0.2\nsearch example.com\n", None),  # not a pod
    ("search svc.\n", None),
    ("", None),
])
def test_the_cluster_domain_comes_from_the_svc_search_entry(text: str, domain: str | None) -> None:
    assert cluster_domain_of(text) == domain


async def test_the_cluster_domain_is_read_from_resolv_conf_unless_set(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(KUBELET_RESOLV_CONF)
    async with FakeClusterDns(cluster_domain="corp.example") as server:
        server.set_headless_service("reducer", {"reducer-0": "10.0.0.1"}, port=8082)
        auto = DnsDiscovery(settings_for(server, cluster_domain=""), resolv_conf=resolv)
        assert auto.srv_name("reducer") == "_http._tcp.reducer.default.svc.corp.example."
        assert [p.url for p in await auto.peers("reducer")] == ["http://10.0.0.1:8082"]
        pinned = DnsDiscovery(settings_for(server, cluster_domain="other.example"), resolv_conf=resolv)
        assert pinned.srv_name("reducer") == "_http._tcp.reducer.default.svc.other.example."
    missing = DnsDiscovery(settings_for(server, cluster_domain=""), resolv_conf=tmp_path / "absent")
    assert missing.srv_name("reducer") == "_http._tcp.reducer.default.svc.cluster.local."


@pytest.mark.parametrize("glue", [True, False], ids=["glue", "no-glue"])
async def test_ipv6_only_pods_are_found_by_aaaa_and_bracketed(dns_server: FakeClusterDns, glue: bool) -> None:
    dns_server.glue = glue
    dns_server.set_headless_service("reducer", {"reducer-0": "fd00::a", "reducer-1": "10.0.0.2"}, port=8082)
    peers = await DnsDiscovery(settings_for(dns_server)).peers("reducer")
    assert peers == [
        Peer(0, "reducer", "reducer-0", "http://[fd00::a]:8082"),
        Peer(1, "reducer", "reducer-1", "http://10.0.0.2:8082"),
    ]


async def test_a_dual_stack_pod_is_reached_over_its_a_record(dns_server: FakeClusterDns) -> None:
    dns_server.glue = False
    dns_server.set_headless_service("reducer", {"reducer-0": "10.0.0.1"}, port=8082)
    dns_server.zone.aaaa[f"reducer-0.{BASE}"] = ["fd00::1"]
    assert [p.url for p in await DnsDiscovery(settings_for(dns_server)).peers("reducer")] == ["http://10.0.0.1:8082"]
    assert ("udp", f"reducer-0.{BASE}", "AAAA") not in dns_server.queries
