"""mDNS discovery with real zeroconf instances on loopback, each test in its own cluster id."""

from __future__ import annotations

import asyncio
import ipaddress
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
from zeroconf import DNSOutgoing, DNSPointer, IPVersion, ServiceInfo  # type: ignore[attr-defined]
from zeroconf.asyncio import AsyncZeroconf
from zeroconf.const import _CLASS_IN, _FLAGS_AA, _FLAGS_QR_RESPONSE, _TYPE_PTR

from actors.core.config import Role, Settings, Timeouts
from actors.core.errors import ConfigError, DiscoveryError
from actors.discovery import Peer, open_discovery
from actors.discovery.mdns import ANSWERED, SILENT, MdnsDiscovery
from actors.discovery.mdns_claims import SERVICE_TYPE, signature

WAIT = 5.0  # bound on every wait below; a healthy loopback needs well under a second
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cluster() -> str:
    # Unique per test and per run, so parallel runs on this machine never see each other's actors.
    return f"t{uuid.uuid4().hex[:12]}"


def settings(cluster: str, role: Role, ordinal: int = 0, port: int = 0, token: str = "") -> Settings:
    return Settings(
        token=token,
        role=role,
        discovery="mdns",
        mdns_cluster=cluster,
        ordinal=ordinal,
        name=f"{role}-{ordinal}",
        port=port,
        advertise_url=f"http://127.0.0.1:{port}",
        timeouts=Timeouts(discovery=2.0),
    )


@asynccontextmanager
async def actors(*configs: Settings) -> AsyncIterator[list[MdnsDiscovery]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(MdnsDiscovery.open(config)) for config in configs]


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
async def test_reducers_and_mapper_see_each_other_by_role_and_ordinal(cluster: str) -> None:
    reducer1, reducer0, mapper0 = (
        settings(cluster, "reducer", 1, 8201),
        settings(cluster, "reducer", 0, 8200),
        settings(cluster, "mapper", 0, 8100),
    )
    async with actors(reducer1, reducer0, mapper0) as discoveries:
        expected_reducers = [
            Peer(0, "reducer", "reducer-0", "http://127.0.0.1:8200"),
            Peer(1, "reducer", "reducer-1", "http://127.0.0.1:8201"),
        ]
        expected_mappers = [Peer(0, "mapper", "mapper-0", "http://127.0.0.1:8100")]
        for discovery in discoveries:
            assert await discovery.wait_for("reducer", 2, WAIT) == expected_reducers
            assert await discovery.wait_for("mapper", 1, WAIT) == expected_mappers


async def test_master_started_after_the_reducers_still_finds_them_quickly(cluster: str) -> None:
    async with actors(settings(cluster, "reducer", 0, 8200), settings(cluster, "reducer", 1, 8201)) as reducers:
        await reducers[0].wait_for("reducer", 2, WAIT)  # the announcements are over before the master starts
        started = time.monotonic()
        async with MdnsDiscovery.open(settings(cluster, "master", port=8080)) as master:
            peers = await master.wait_for("reducer", 2, WAIT)
            elapsed = time.monotonic() - started
            assert [p.url for p in peers] == ["http://127.0.0.1:8200", "http://127.0.0.1:8201"]
            assert elapsed < 2.0, f"browse answered after {elapsed:.2f}s"
            assert await master.peers("mapper") == []
        # A master announces nothing, so the reducers never list it.
        assert [p.role for p in await reducers[1].peers("reducer")] == ["reducer", "reducer"]


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
async def test_a_peer_that_closes_disappears(cluster: str) -> None:
    async with AsyncExitStack() as stack:
        master = await stack.enter_async_context(MdnsDiscovery.open(settings(cluster, "master")))
        await stack.enter_async_context(MdnsDiscovery.open(settings(cluster, "reducer", 0, 8200)))
        async with MdnsDiscovery.open(settings(cluster, "reducer", 1, 8201)):
            await master.wait_for("reducer", 2, WAIT)
        # Its goodbye packets expire the records one second later (RFC 6762 section 10.1).
        peers = await master.wait_until("reducer", lambda ps: [p.ordinal for p in ps] == [0], WAIT, "reducer-1 gone")
        assert peers == [Peer(0, "reducer", "reducer-0", "http://127.0.0.1:8200")]


async def test_a_restarted_reducer_takes_over_its_ordinal(cluster: str) -> None:
    async with MdnsDiscovery.open(settings(cluster, "master")) as master:
        async with MdnsDiscovery.open(settings(cluster, "reducer", 0, 8200)):
            await master.wait_for("reducer", 1, WAIT)
        # A replacement on a new port, announced before the old records have expired anywhere.
        async with MdnsDiscovery.open(settings(cluster, "reducer", 0, 8300)):
            peers = await master.wait_until(
                "reducer", lambda ps: [p.url for p in ps] == ["http://127.0.0.1:8300"], WAIT, "the new reducer-0"
            )
            assert [p.ordinal for p in peers] == [0]


async def test_another_cluster_is_ignored(cluster: str) -> None:
    other = f"{cluster}-b"
    async with AsyncExitStack() as stack:
        # The observers start first: every announcement below reaches them in order on their one listen socket,
        # so once the last of ours is seen, the other cluster's earlier one has been handled too.
        ours = await stack.enter_async_context(MdnsDiscovery.open(settings(cluster, "master")))
        theirs = await stack.enter_async_context(MdnsDiscovery.open(settings(other, "master")))
        await stack.enter_async_context(MdnsDiscovery.open(settings(other, "reducer", 0, 9200)))
        await stack.enter_async_context(MdnsDiscovery.open(settings(cluster, "reducer", 0, 8200)))
        await stack.enter_async_context(MdnsDiscovery.open(settings(cluster, "reducer", 1, 8201)))
        assert [p.url for p in await ours.wait_for("reducer", 2, WAIT)] == [
            "http://127.0.0.1:8200",
            "http://127.0.0.1:8201",
        ]
        assert [p.url for p in await theirs.wait_for("reducer", 1, WAIT)] == ["http://127.0.0.1:9200"]
        assert len(await ours.peers("reducer")) == 2
        assert len(await theirs.peers("reducer")) == 1


async def test_wait_for_gives_up_after_its_timeout(cluster: str) -> None:
    async with open_discovery(settings(cluster, "master")) as master:
        assert isinstance(master, MdnsDiscovery)
        started = time.monotonic()
        with pytest.raises(DiscoveryError, match=r"3 reducer\(s\)"):
            await master.wait_for("reducer", 3, timeout=0.3)
        assert time.monotonic() - started < 1.5


async def test_a_reducer_in_another_process_is_found_and_leaves(cluster: str) -> None:
    # Separate processes each bind 127.0.0.1:5353 with SO_REUSEPORT, the way the local launcher runs actors.
    script = (
        "import asyncio, sys\n"
        "from actors.core.config import Settings, Timeouts\n"
        "from actors.discovery.mdns import MdnsDiscovery\n"
        "async def main():\n"
        f"    s = Settings(role='reducer', discovery='mdns', mdns_cluster={cluster!r}, ordinal=3, port=8203,\n"
        "                 advertise_url='http://127.0.0.1:8203', timeouts=Timeouts(discovery=2.0))\n"
        "    async with MdnsDiscovery.open(s):\n"
        "        print('up', flush=True)\n"
        "        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)\n"
        "asyncio.run(main())\n"
    )
    async with MdnsDiscovery.open(settings(cluster, "master")) as master:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        try:
            assert child.stdout is not None and child.stdin is not None
            assert await asyncio.wait_for(child.stdout.readline(), WAIT) == b"up\n"
            assert await master.wait_for("reducer", 1, WAIT) == [
                Peer(3, "reducer", "reducer-3", "http://127.0.0.1:8203")
            ]
            child.stdin.close()  # the child leaves its context: goodbyes, then exit
            assert await asyncio.wait_for(child.wait(), WAIT) == 0
            assert await master.wait_until("reducer", lambda ps: ps == [], WAIT, "reducer-3 gone") == []
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mdns_cluster": "a.b"}, "letters, digits and dashes"),
        ({"mdns_cluster": "x" * 60}, "too long"),
        ({"mdns_interface": "lo"}, "not an IPv4 address"),
    ],
)
async def test_bad_settings_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        async with MdnsDiscovery.open(Settings(discovery="mdns").replace(**changes)):
            pass


TOKEN = "cluster-secret"


@asynccontextmanager
async def rogue(instance: str, properties: dict[str, str], port: int = 1) -> AsyncIterator[None]:
    """Any local process can announce whatever it likes on the segment: here, a hand-made zeroconf announcement."""
    zeroconf = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    info = ServiceInfo(SERVICE_TYPE, f"{instance}.{SERVICE_TYPE}", port=port, properties=properties,
                       server=f"{instance}-rogue.local.", addresses=[ipaddress.IPv4Address("127.0.0.1").packed])
    try:
        await zeroconf.async_register_service(info, cooperating_responders=True)
        yield
    finally:
        await zeroconf.async_unregister_service(info)
        await zeroconf.async_close()


def claim(cluster: str, ordinal: int, url: str, key: str | None, role: str = "reducer") -> dict[str, str]:
    """TXT properties claiming ``role`` ``ordinal`` at ``url``, signed with ``key`` (None: unsigned)."""
    since, incarnation = str(time.time_ns() + 10**12), "ffffffff"  # "newer" than any real actor
    props = {"cluster": cluster, "role": role, "ordinal": str(ordinal), "url": url, "inc": incarnation,
             "since": since}
    if key is not None:
        props["sig"] = signature(key, cluster, role, str(ordinal), url, incarnation, since)
    return props


async def refused(discovery: MdnsDiscovery, instance: str) -> str:
    """Wait until ``discovery`` has seen and refused the announcement of ``instance``; answer why."""
    key = f"{instance}.{SERVICE_TYPE}".lower()
    await discovery.wait_until("reducer", lambda _: key in discovery.refused, WAIT, f"{instance} refused")
    return discovery.refused[key]


@pytest.mark.parametrize("key", [None, "not-the-cluster-token"], ids=["unsigned", "wrong-key"])
async def test_a_claim_without_the_token_never_takes_a_reducers_traffic(cluster: str, key: str | None) -> None:
    real = Peer(0, "reducer", "reducer-0", "http://127.0.0.1:8200")
    async with actors(settings(cluster, "master", token=TOKEN), settings(cluster, "mapper", 0, 8100, TOKEN),
                      settings(cluster, "reducer", 0, 8200, TOKEN)) as (master, mapper, _):
        assert await master.wait_for("reducer", 1, WAIT) == [real]
        assert await mapper.wait_for("reducer", 1, WAIT) == [real]
        # Same instance name as the real reducer-0, a smaller URL and a later start: only the signature is missing.
        async with rogue(f"{cluster}-reducer-0", claim(cluster, 0, "http://127.0.0.1:1", key)):
            for observer in (master, mapper):
                assert "signature" in await refused(observer, f"{cluster}-reducer-0")
                assert await observer.peers("reducer") == [real]


async def test_a_claim_for_an_absent_ordinal_without_the_token_is_not_listed(cluster: str) -> None:
    async with actors(settings(cluster, "master", token=TOKEN), settings(cluster, "reducer", 0, 8200, TOKEN)) as (
            master, _):
        await master.wait_for("reducer", 1, WAIT)
        async with rogue(f"{cluster}-reducer-1", claim(cluster, 1, "http://127.0.0.1:1", None)):
            assert "signature" in await refused(master, f"{cluster}-reducer-1")
            assert [p.ordinal for p in await master.peers("reducer")] == [0]
            with pytest.raises(DiscoveryError):
                await master.wait_for("reducer", 2, 0.2)


@pytest.mark.parametrize("token", [TOKEN, ""], ids=["signed", "no-token"])
async def test_an_instance_name_that_does_not_match_its_ordinal_is_ignored(cluster: str, token: str) -> None:
    # Even correctly signed (an insider's mistake, or a token holder's trick), reducer-7's name cannot claim 0.
    real = Peer(0, "reducer", "reducer-0", "http://127.0.0.1:8200")
    async with actors(settings(cluster, "master", token=token), settings(cluster, "reducer", 0, 8200, token)) as (
            master, _):
        assert await master.wait_for("reducer", 1, WAIT) == [real]
        async with rogue(f"{cluster}-reducer-7", claim(cluster, 0, "http://127.0.0.1:1", token or None)):
            assert "does not match" in await refused(master, f"{cluster}-reducer-7")
            assert await master.peers("reducer") == [real]
        async with rogue(f"{cluster}-mapper-0", claim(cluster, 0, "http://127.0.0.1:1", token or None)):
            assert "does not match" in await refused(master, f"{cluster}-mapper-0")
            assert await master.peers("reducer") == [real]
            assert await master.peers("mapper") == []


async def test_signed_actors_find_each_other(cluster: str) -> None:
    async with actors(settings(cluster, "master", token=TOKEN), settings(cluster, "reducer", 1, 8201, TOKEN),
                      settings(cluster, "reducer", 0, 8200, TOKEN)) as (master, *_):
        peers = await master.wait_for("reducer", 2, WAIT)
        assert [p.url for p in peers] == ["http://127.0.0.1:8200", "http://127.0.0.1:8201"]
        assert master.refused == {}


async def test_a_replayed_older_signed_record_never_displaces_the_live_one(cluster: str) -> None:
    real = Peer(0, "reducer", "reducer-0", "http://127.0.0.1:8200")
    async with actors(settings(cluster, "master", token=TOKEN), settings(cluster, "reducer", 0, 8200, TOKEN)) as (
            master, _):
        assert await master.wait_for("reducer", 1, WAIT) == [real]
        # A genuine record of an earlier reducer-0 (signed with the token), replayed after it was replaced.
        url, incarnation, since = "http://127.0.0.1:1", "00000000", "1000"
        old = {"cluster": cluster, "role": "reducer", "ordinal": "0", "url": url, "inc": incarnation, "since": since,
               "sig": signature(TOKEN, cluster, "reducer", "0", url, incarnation, since)}
        async with rogue(f"{cluster}-reducer-0", old):
            assert "replay" in await refused(master, f"{cluster}-reducer-0")
            assert await master.peers("reducer") == [real]


async def forge_goodbye(instance: str) -> None:
    """Without the token: the goodbye (a PTR record with TTL 0) that any local process can send for ``instance``."""
    zeroconf = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        await zeroconf.zeroconf.async_wait_for_start()
        goodbye = DNSOutgoing(_FLAGS_QR_RESPONSE | _FLAGS_AA)
        goodbye.add_answer_at_time(DNSPointer(SERVICE_TYPE, _TYPE_PTR, _CLASS_IN, 0, f"{instance}.{SERVICE_TYPE}"), 0)
        for _ in range(3):  # as a real goodbye is repeated
            zeroconf.zeroconf.async_send(goodbye)
    finally:
        await zeroconf.async_close()


@pytest.mark.slow  # real waits past a second: the full suite's, not the quick tier's
async def test_a_forged_goodbye_never_removes_a_verified_reducer(cluster: str) -> None:
    real = Peer(0, "reducer", "reducer-0", "http://127.0.0.1:8200")
    key = f"{cluster}-reducer-0.{SERVICE_TYPE}".lower()
    async with AsyncExitStack() as stack:
        master, mapper = [await stack.enter_async_context(MdnsDiscovery.open(s)) for s in (
            settings(cluster, "master", token=TOKEN), settings(cluster, "mapper", 0, 8100, TOKEN))]
        async with MdnsDiscovery.open(settings(cluster, "reducer", 0, 8200, TOKEN)):
            for observer in (master, mapper):
                assert await observer.wait_for("reducer", 1, WAIT) == [real]
            await forge_goodbye(f"{cluster}-reducer-0")
            for observer in (master, mapper):
                seen: list[list[Peer]] = []  # every view the observer had while it checked the goodbye

                def checked(peers: list[Peer], observer: MdnsDiscovery = observer,
                            seen: list[list[Peer]] = seen) -> bool:
                    seen.append(peers)
                    return peers != [real] or observer.goodbyes.get(key) is not None

                await observer.wait_until("reducer", checked, WAIT, "the goodbye checked")
                assert all(view == [real] for view in seen), seen
                assert observer.goodbyes[key] == ANSWERED  # reducer-0 answered the re-query
                assert await observer.peers("reducer") == [real]
            # The re-query put reducer-0's pointer back, so its own goodbye, when it really leaves, is still seen.
        for observer in (master, mapper):
            assert await observer.wait_until("reducer", lambda ps: ps == [], WAIT, "reducer-0 gone") == []
            assert observer.goodbyes[key] == SILENT


async def test_a_restarted_signed_reducer_replaces_its_ordinal_after_a_forged_goodbye(cluster: str) -> None:
    async with MdnsDiscovery.open(settings(cluster, "master", token=TOKEN)) as master:
        async with MdnsDiscovery.open(settings(cluster, "reducer", 0, 8200, TOKEN)):
            await master.wait_for("reducer", 1, WAIT)
            await forge_goodbye(f"{cluster}-reducer-0")
        # A new incarnation on a new URL, announced before the recheck of the old one's goodbye is over.
        async with MdnsDiscovery.open(settings(cluster, "reducer", 0, 8300, TOKEN)):
            peers = await master.wait_until(
                "reducer", lambda ps: [p.url for p in ps] == ["http://127.0.0.1:8300"], WAIT, "the new reducer-0"
            )
            assert [p.ordinal for p in peers] == [0]
            assert master.refused == {}
