"""The rendered deploy/ manifests run as a simulated cluster: one actor process per declared pod, fake cluster DNS.

See tests/k8s_sim.py for what is taken from the manifests and the few things the simulation has to override.
Needs kubectl and PyYAML (``scripts/k8s-test-deps.sh``); skips without them.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.dnsserver import FakeClusterDns

from .k8s_sim import FAKE_KUBECTL, ROOT, SimCluster, reducer_count_problems, render, tool, workdir
from .support import alive, make_text

pytest.importorskip("yaml", reason="PyYAML is missing: run scripts/k8s-test-deps.sh")
pytestmark = pytest.mark.timeout(180)

ORIGINAL = "hello hello hello hello world world world"


VOCABULARY = (*(f"w{i}" for i in range(20_000)), "straße", "naïve", "日本", "ok")


def big_text(size: int, seed: int = 7) -> str:
    """About ``size`` bytes with a Zipf vocabulary, ragged lines and a few unicode words."""
    return make_text(random.Random(seed), size // 5, VOCABULARY, range(1, 26), zipf=True).decode() + "\n"


async def _json(response: aiohttp.ClientResponse) -> Any:
    body = await response.text()
    assert response.content_type == "application/json", body
    import json

    return json.loads(body)


async def run_job(session: aiohttp.ClientSession, master: str, text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """POST the text as an upload to /v1/jobs, wait for the result; answer (status, result)."""
    async with session.post(f"{master}/v1/jobs", data=text.encode(),
                            headers={"Content-Type": "application/octet-stream"}) as response:
        submitted = await _json(response)
        assert response.status == 202, submitted
    async with session.get(f"{master}/v1/jobs/{submitted['id']}/result", params={"wait": "60"}) as response:
        result = await _json(response)
        assert response.status == 200, result
    async with session.get(f"{master}/v1/jobs/{submitted['id']}") as response:
        status = await _json(response)
    return status, result


async def test_the_manifests_run_as_a_cluster(tmp_path_factory: pytest.TempPathFactory) -> None:
    if tool("kubectl") is None:
        pytest.skip("kubectl is missing: run scripts/k8s-test-deps.sh")
    objects = render()
    timings: dict[str, float] = {}
    began = time.monotonic()
    with workdir() as directory:
        async with FakeClusterDns() as dns, SimCluster(objects, directory, dns) as cluster:
            timings["start"] = time.monotonic() - began
            pods = cluster.pods
            for pod in pods.values():  # every emptyDir setting points into the sim's directory, not the host's
                for key in ("MR_SPOOL_DIR", "MR_STATE_DIR", "TMPDIR"):
                    assert key not in pod.env or pod.env[key].startswith(str(directory)), (pod.spec.name, key)
            assert sorted(pods) == ["mapper-0", "mapper-1", "mapper-2", "master-6d5c8b7f9-q2xkw",
                                    "reducer-0", "reducer-1"]
            master = next(p for name, p in pods.items() if name.startswith("master-"))
            token = master.env["MR_TOKEN"]
            auth = {"Authorization": f"Bearer {token}"}
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=90)) as session:
                # Every pod knows who it is from the downward API: name, and the ordinal parsed from it.
                for name, pod in pods.items():
                    async with session.get(f"{pod.url}/healthz") as response:
                        health = await _json(response)
                    assert health["name"] == name and health["role"] == pod.spec.role
                    if pod.spec.ordinal is not None:
                        assert health["ordinal"] == pod.spec.ordinal

                # The master finds the StatefulSets' pods through the fake cluster DNS's SRV records.
                async with session.get(f"{master.url}/v1/cluster") as response:
                    seen = await _json(response)
                assert [m["name"] for m in seen["mappers"]] == ["mapper-0", "mapper-1", "mapper-2"]
                assert [r["name"] for r in seen["reducers"]] == ["reducer-0", "reducer-1"]
                assert [r["url"] for r in seen["reducers"]] == [pods["reducer-0"].url, pods["reducer-1"].url]
                assert any(q[2] == "SRV" for q in dns.queries)

                # The original example, through the original trigger.
                t = time.monotonic()
                async with session.get(f"{master.url}/compute", params={"text": ORIGINAL}) as response:
                    counts = await _json(response)
                assert response.status == 200 and counts == {"hello": 4, "world": 3}
                timings["compute"] = time.monotonic() - t

                # Internal endpoints refuse a caller without the token, and nothing changes.
                await check_token_required(session, cluster, auth)

                # A multi-MB text, uploaded to the master (spooled in its MR_SPOOL_DIR emptyDir).
                text = big_text(4 * 1024 * 1024)
                assert len(text) > 3_000_000
                t = time.monotonic()
                status, result = await run_job(session, master.url, text)
                timings["4MB job"] = time.monotonic() - t
                assert result["result"] == dict(collections.Counter(text.split()))
                assert status["partitions"] == 2 and status["state"] == "done"
                assert status["mappers"] == ["mapper-0", "mapper-1", "mapper-2"]

                # Reducers 2 -> 3, the documented way: replicas and MR_REDUCER_COUNT together (kubectl apply -k).
                # reducer-2 starts, becomes ready, enters DNS; every other pod is replaced onto the new count.
                t = time.monotonic()
                (added,) = await cluster.scale("reducer", 3, settings={"MR_REDUCER_COUNT": "3"})
                assert added.spec.name == "reducer-2" and added.ip.endswith(".3")
                assert {name: p.env["MR_REDUCER_COUNT"] for name, p in pods.items()} == dict.fromkeys(pods, "3")
                assert reducer_count_problems(cluster.objects) == []
                timings["scale"] = time.monotonic() - t
                second = big_text(300_000, seed=11)
                status, result = await run_job(session, master.url, second)
                assert status["partitions"] == 3, status
                assert result["result"] == dict(collections.Counter(second.split()))
                assert status["reducers"] == ["reducer-0", "reducer-1", "reducer-2"], status

            # SIGTERM, as the kubelet sends it: every actor drains and exits 0 well inside the grace period.
            t = time.monotonic()
            codes = await cluster.stop(grace=25)
            timings["stop"] = time.monotonic() - t
            assert codes == {name: 0 for name in pods}, {n: (c, pods[n].log()[-2000:]) for n, c in codes.items()}
            for pod in pods.values():
                assert "actor_stopped" in pod.log(), pod.log()[-2000:]
        # Leak checks: every process is gone, and so is its process group.
        for pod in cluster.pods.values():
            assert pod.process is not None and pod.process.returncode is not None
            assert not alive(pod.process.pid)
    print("k8s sim timings:", {k: round(v, 2) for k, v in timings.items()})


async def check_token_required(session: aiohttp.ClientSession, cluster: SimCluster, auth: dict[str, str]) -> None:
    pods = cluster.pods
    master = next(p for name, p in pods.items() if name.startswith("master-"))
    reducer = pods["reducer-0"]

    async def reducer_state() -> Any:
        async with session.get(f"{reducer.url}/internal/v1/state", headers=auth) as response:
            assert response.status == 200
            return await _json(response)

    async def jobs() -> Any:
        async with session.get(f"{master.url}/v1/jobs") as response:
            return await _json(response)

    # The /compute job just finished; let its clean-up (the master releasing reducer state) settle first.
    before_state = await reducer_state()
    deadline = time.monotonic() + 10
    while before_state["jobs"] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        before_state = await reducer_state()
    before_jobs = await jobs()
    attempts = [
        ("POST", f"{pods['mapper-0'].url}/internal/v1/assign", {}),
        ("POST", f"{reducer.url}/internal/v1/shuffle", {}),
        ("POST", f"{reducer.url}/internal/v1/finalize", {}),
        ("GET", f"{reducer.url}/internal/v1/state", {}),
        ("GET", f"{master.url}/internal/v1/inputs/anything", {}),
        ("POST", f"{reducer.url}/internal/v1/shuffle", {"Authorization": "Bearer not-the-token"}),
    ]
    for method, url, headers in attempts:
        async with session.request(method, url, data=b"\xa0", headers={**headers,
                                   "Content-Type": "application/cbor"}) as response:
            body = await response.text()
            assert response.status == 401, (method, url, response.status, body)
    assert await reducer_state() == before_state
    assert await jobs() == before_jobs


DEMO = ROOT / "scripts" / "demo-port-forward.sh"
DEV = ROOT / "deploy" / "overlays" / "dev"


def demo_env(tmp_path: Path, **extra: str) -> tuple[dict[str, str], Path]:
    """The environment for the demo script with the stand-in kubectl; answers (env, the kubectl call log)."""
    fake = tmp_path / "kubectl.py"
    fake.write_text(FAKE_KUBECTL)
    log = tmp_path / "kubectl.log"
    # The mapreduce command the demo drives the master with: this checkout's, whatever is on PATH.
    env = {**os.environ, "KUBECTL": f"{sys.executable} {fake}", "FAKE_KUBECTL_LOG": str(log),
           "FAKE_KUBECTL_REAL": tool("kubectl") or "", "MAPREDUCE": f"{sys.executable} -m actors",
           "PYTHONPATH": str(ROOT), **extra}
    env.pop("MR_URL", None)
    env.pop("MR_API_TOKEN", None)
    return env, log


def calls_of(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_demo_script_help_calls_no_kubectl(tmp_path: Path) -> None:
    env, log = demo_env(tmp_path)
    for flag in ("--help", "-h"):
        done = subprocess.run(["bash", str(DEMO), flag], env=env, capture_output=True, text=True, timeout=30,
                              check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("Usage: scripts/demo-port-forward.sh") and "CURRENT CONTEXT" in done.stdout
    refused = subprocess.run(["bash", str(DEMO), "--bogus"], env=env, capture_output=True, text=True, timeout=30,
                             check=False)
    assert refused.returncode == 2 and "unknown option --bogus" in refused.stderr
    assert calls_of(log) == []  # neither a deployment nor a deletion, nor even a look at the cluster


def test_demo_script_refuses_a_missing_image_before_deploying(tmp_path: Path) -> None:
    if tool("kubectl") is None:
        pytest.skip("kubectl is missing")
    env, log = demo_env(tmp_path, FAKE_KUBECTL_IMAGES="registry.k8s.io/pause:3.9 docker.io/library/other:latest")
    done = subprocess.run(["bash", str(DEMO)], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "image mapreduce-actors:latest is on no node" in done.stderr
    calls = calls_of(log)
    assert any(c.startswith("get nodes") for c in calls), calls
    assert not [c for c in calls if c.startswith(("apply", "delete"))], calls


def test_demo_script_waits_for_a_terminating_namespace_bounded(tmp_path: Path) -> None:
    if tool("kubectl") is None:
        pytest.skip("kubectl is missing")
    env, log = demo_env(tmp_path, FAKE_KUBECTL_STUCK="1", NAMESPACE_WAIT="7")
    Path(f"{log}.namespace").write_text("Terminating")
    done = subprocess.run(["bash", str(DEMO)], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "namespace mapreduce is still terminating after 7s" in done.stderr
    calls = calls_of(log)
    assert "wait --for=delete namespace/mapreduce --timeout=7s" in calls, calls
    assert not [c for c in calls if c.startswith(("apply", "delete"))], calls  # not deployed, not ours to delete


async def run_demo(env: dict[str, str]) -> str:
    demo = await asyncio.create_subprocess_exec("bash", str(DEMO), env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(demo.communicate(), 60)
    output = out.decode()
    assert demo.returncode == 0, output
    return output


async def test_demo_script_against_the_simulated_cluster(tmp_path: Path) -> None:
    """scripts/demo-port-forward.sh end to end, with a stand-in kubectl whose port-forward reaches the sim master
    (the dev overlay's pods, which the script applies), driven by the mapreduce command: first after a terminating
    namespace of the same name has gone (this run creates the namespace and deletes it), then into a namespace
    that already exists (which it leaves in place)."""
    if tool("kubectl") is None:
        pytest.skip("kubectl is missing")
    with workdir() as directory:
        async with FakeClusterDns() as dns, SimCluster(render(DEV), directory, dns) as cluster:
            master = next(p for name, p in cluster.pods.items() if name.startswith("master-"))
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                local_port = s.getsockname()[1]
            env, log = demo_env(tmp_path, LOCAL_PORT=str(local_port),
                                FAKE_KUBECTL_TARGET=f"{master.ip}:{master.port}")
            namespace = Path(f"{log}.namespace")
            namespace.write_text("Terminating")
            output = await run_demo(env)
            first = calls_of(log)
            namespace.write_text("Active")
            again = await run_demo({**env, "FAKE_KUBECTL_LOG": str(tmp_path / "again.log"),
                                    "FAKE_KUBECTL_NAMESPACE": str(namespace)})
            codes = await cluster.stop(grace=25)
            assert set(codes.values()) == {0}
    assert '\n{"hello": 4, "world": 3}\n' in output  # `mapreduce submit --wait --json` of the original example
    lines = output.splitlines()
    listing = lines.index("== the master's jobs: mapreduce jobs")
    words = ["and", "brown", "fox", "jumps", "lazy", "over", "quick", "sleeps"]  # 2000 each, ties by word
    assert lines[listing - 10:listing] == ["6000\tthe", "4000\tdog", *(f"2000\t{w}" for w in words)], output
    assert any(line.startswith("[" + "#" * 24 + "] done: ") and line.endswith("(100%)") for line in lines), output
    job_id = next(line for line in lines if line.startswith("== job ")).split()[2].rstrip(":")
    assert f"job {job_id} (wordcount): done" in lines and "partitions: 2" in lines, output
    assert "curl" not in output and "Traceback" not in output
    assert "== kubectl context: simulated" in output
    # The image check read the dev overlay; the terminating namespace was waited for, bounded, before the apply.
    assert any(c.startswith("kustomize ") and c.endswith("/deploy/overlays/dev") for c in first), first
    apply = next(i for i, c in enumerate(first) if c.startswith("apply -k "))
    assert first[apply].endswith("/deploy/overlays/dev")
    assert "wait --for=delete namespace/mapreduce --timeout=120s" in first[:apply]
    assert any("rollout status statefulset/reducer" in c for c in first)
    assert any("port-forward service/master" in c for c in first)
    assert first[-1].startswith("delete namespace mapreduce")  # the trap deleted the namespace this run created
    forwarders = [int(pid) for pid in Path(f"{log}.pids").read_text().split()]
    assert forwarders and not [pid for pid in forwarders if alive(pid)], "the port-forward outlived the demo"
    # The second run found the namespace in place, used it and left it there.
    second = calls_of(tmp_path / "again.log")
    assert any(c.startswith("apply -k ") for c in second) and '{"hello": 4, "world": 3}' in again
    assert f"job {job_id} (wordcount): done" not in again  # its own newest job, not the first run's
    assert not [c for c in second if c.startswith(("delete", "wait"))], second
    assert "leaving it in place afterwards" in again and "keeping namespace mapreduce" in again
    assert namespace.read_text() == "Active"
