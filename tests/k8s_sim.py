"""Helpers for the Kubernetes packaging tests: render ``deploy/``, read it, and run it as a simulated cluster.

The simulated cluster takes the *rendered* manifests at their word: for every pod a Deployment or StatefulSet
declares it starts one ``python -m actors serve`` process with the env Kubernetes would give that container
(ConfigMap, Secret and downward-API references resolved here, ``$(VAR)`` expanded like the kubelet does), on its
own loopback address 127.0.x.y and the manifest's container port. A :class:`FakeClusterDns` answers what cluster
DNS would: ``<svc>.<ns>.svc.<domain>`` (A, and SRV for each named port of a headless Service, listing only ready
pods as ``publishNotReadyAddresses: false`` does) and ``<pod>.<svc>.<ns>.svc.<domain>`` (A).

What the simulation has to change, and only this (see :data:`SIM_OVERRIDES`): pods share one network namespace
here, so each binds its own address (``MR_HOST``) instead of 0.0.0.0; the resolver is pointed at the fake DNS
(``MR_DNS_NAMESERVER``/``MR_DNS_PORT``, what the pod's resolv.conf does in a cluster); the emptyDir mounts become
per-pod temporary directories (``MR_SPOOL_DIR``, ``MR_STATE_DIR``, ``TMPDIR``). The preStop sleep is skipped: the
sim unpublishes a pod before it sends SIGTERM, which is what the sleep is there to wait for.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from actors.core.config import Settings, Timeouts
from actors.core.envvars import declared, env_name
from actors.inputs.s3 import LIBRARY_VARIABLES

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
WORKLOADS = ("Deployment", "StatefulSet")
# Env names only the simulation sets: they replace what the pod's network namespace, resolv.conf and
# emptyDir mounts give a real pod (see the module docstring).
SIM_OVERRIDES = ("MR_HOST", "MR_DNS_NAMESERVER", "MR_DNS_PORT", "TMPDIR")
# ... and every setting whose value is an emptyDir mount path (MR_SPOOL_DIR, MR_STATE_DIR) gets a per-pod directory.
_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)|\$\$")


# ---------------------------------------------------------------- tools and rendering


def tool(name: str) -> str | None:
    """A command from PATH or from this interpreter's environment (pip-installed wheels put binaries there)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which(name, path=path)


def render(directory: Path = DEPLOY) -> list[dict[str, Any]]:
    """``kubectl kustomize directory`` as a list of objects."""
    import yaml

    kubectl = tool("kubectl")
    if kubectl is None:
        raise FileNotFoundError("kubectl")
    out = subprocess.run([kubectl, "kustomize", str(directory)], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions, or a plain Service selector map) against labels."""
    plain = {k: v for k, v in selector.items() if k not in ("matchLabels", "matchExpressions")}
    wanted = {**plain, **selector.get("matchLabels", {})}
    if any(labels.get(k) != v for k, v in wanted.items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


# ---------------------------------------------------------------- what the code reads


def settings_read() -> set[str]:
    """Every environment variable the actors read: the declared settings, the two ``Settings.from_env`` consults,
    and the object store client's credentials chain (actors/inputs/s3.py)."""
    names = {env_name(f) for cls in (Settings, Timeouts) for f in declared(cls)}
    return names | {"HOSTNAME", "KUBERNETES_SERVICE_HOST"} | set(LIBRARY_VARIABLES)


# ---------------------------------------------------------------- pods and their env


@dataclass
class PodSpec:
    """One pod a workload declares: its name, labels, owning workload and (first) container."""

    name: str
    namespace: str
    workload: dict[str, Any]
    labels: dict[str, str]
    container: dict[str, Any]
    ordinal: int | None  # StatefulSet pods only

    @property
    def role(self) -> str:
        return str(self.workload["metadata"]["name"])

    def port(self, name: str = "http") -> int:
        return next(int(p["containerPort"]) for p in self.container["ports"] if p.get("name") == name)


def declared_pods(objects: list[dict[str, Any]], replicas: dict[str, int] | None = None) -> list[PodSpec]:
    """The pods the workloads declare; ``replicas`` overrides a workload's count, as ``kubectl scale`` does."""
    pods = []
    for workload in [o for o in objects if o["kind"] in WORKLOADS]:
        meta, spec = workload["metadata"], workload["spec"]
        template = spec["template"]
        count = (replicas or {}).get(meta["name"], spec.get("replicas", 1))
        for i in range(count):
            stateful = workload["kind"] == "StatefulSet"
            # A Deployment's pod is "<name>-<replicaset hash>-<random>", e.g. master-6d5c8b7f9-q2xkw.
            name = f"{meta['name']}-{i}" if stateful else f"{meta['name']}-6d5c8b7f9-q2xk{'wxyz'[i % 4]}"
            pods.append(PodSpec(name, meta.get("namespace", "default"), workload, template["metadata"]["labels"],
                                template["spec"]["containers"][0], i if stateful else None))
    return pods


def _data_of(obj: dict[str, Any]) -> dict[str, str]:
    if obj["kind"] == "Secret":
        plain = {k: base64.b64decode(v).decode() for k, v in obj.get("data", {}).items()}
        return {**plain, **obj.get("stringData", {})}
    return dict(obj.get("data", {}))


def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: defined names are replaced, undefined ones left as written, ``$$`` is ``$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR_REF.sub(replace, value)


def container_env(pod: PodSpec, objects: list[dict[str, Any]], pod_ip: str) -> dict[str, str]:
    """The env the kubelet gives ``pod``'s container: HOSTNAME, envFrom, then env in order with ``$(VAR)``."""
    fields = {"metadata.name": pod.name, "metadata.namespace": pod.namespace, "status.podIP": pod_ip,
              "spec.nodeName": "sim-node", "spec.serviceAccountName": "default"}
    env: dict[str, str] = {"HOSTNAME": pod.name}
    for source in pod.container.get("envFrom", []):
        if "configMapRef" in source:
            kind, ref = "ConfigMap", source["configMapRef"]
        else:
            kind, ref = "Secret", source["secretRef"]
        env.update({source.get("prefix", "") + k: v for k, v in _data_of(one(objects, kind, ref["name"])).items()})
    for var in pod.container.get("env", []):
        if "value" in var:
            env[var["name"]] = _expand(var["value"], env)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            env[var["name"]] = fields[source["fieldRef"]["fieldPath"]]
        elif "secretKeyRef" in source or "configMapKeyRef" in source:
            kind, ref = ("Secret", source["secretKeyRef"]) if "secretKeyRef" in source else (
                "ConfigMap", source["configMapKeyRef"])
            env[var["name"]] = _data_of(one(objects, kind, ref["name"]))[ref["key"]]
        else:
            raise AssertionError(f"{pod.name}: unsupported valueFrom {source}")
    return env


def reducer_count_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Pods whose MR_REDUCER_COUNT differs from the reducer StatefulSet's replicas (the partitions they expect)."""
    replicas = one(objects, "StatefulSet", "reducer")["spec"]["replicas"]
    problems = []
    for workload in [o for o in objects if o["kind"] in WORKLOADS]:
        env = container_env(declared_pods([workload])[0], objects, "10.0.0.1")
        count = Settings.from_env(env).reducer_count
        if count != replicas:
            problems.append(f"{workload['metadata']['name']}: MR_REDUCER_COUNT={count}, reducer replicas {replicas}")
    return problems


# ---------------------------------------------------------------- the simulated cluster


@dataclass
class SimPod:
    spec: PodSpec
    ip: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    ready: bool = False

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class SimCluster:
    """The rendered manifests as processes on loopback plus fake cluster DNS. Use ``async with``."""

    objects: list[dict[str, Any]]
    workdir: Path
    dns: Any  # tests.dnsserver.FakeClusterDns
    pods: dict[str, SimPod] = field(default_factory=dict)
    block: int = field(default_factory=lambda: random.randrange(40, 240, 4))  # 127.0.<block+role>.<ordinal+1>
    cluster_domain: str = "cluster.local"
    startup_timeout: float = 20.0

    # addresses and DNS

    def _ip(self, pod: PodSpec) -> str:
        roles = [o["metadata"]["name"] for o in self.objects if o["kind"] in WORKLOADS]
        return f"127.0.{self.block + roles.index(pod.role)}.{(pod.ordinal or 0) + 1}"

    def services_for(self, pod: PodSpec) -> list[dict[str, Any]]:
        return [s for s in find(self.objects, "Service")
                if s["spec"].get("selector") and matches(s["spec"]["selector"], pod.labels)]

    def publish(self) -> None:
        """Rewrite the zone from the ready pods, like the endpoints controller and CoreDNS do."""
        for service in find(self.objects, "Service"):
            meta, spec = service["metadata"], service["spec"]
            name, namespace = meta["name"], meta.get("namespace", "default")
            backing = [p for p in self.pods.values() if p in self._backends(service)]
            published = [p for p in backing if p.ready or spec.get("publishNotReadyAddresses")]
            if spec.get("clusterIP") == "None":
                for port in spec["ports"]:
                    self.dns.set_headless_service(name, {p.spec.name: p.ip for p in published},
                                                  _target_port(port, published), namespace, port["name"])
            else:
                # A ClusterIP Service: one stable A record; the sim's "virtual IP" is the ready pod's address.
                self.dns.remove_service(name, namespace)
                if published:
                    self.dns.zone.a[self.dns.service_name(name, namespace)] = [published[0].ip]

    def _backends(self, service: dict[str, Any]) -> list[SimPod]:
        return [p for p in self.pods.values() if matches(service["spec"]["selector"], p.spec.labels)]

    # processes

    def add(self, pod: PodSpec) -> SimPod:
        ip = self._ip(pod)
        env = container_env(pod, self.objects, ip)
        # emptyDir mounts become per-pod directories; a setting naming a mount path is pointed at its directory.
        volumes = {v["name"]: v for v in pod.workload["spec"]["template"]["spec"].get("volumes", [])}
        mounts: dict[str, str] = {}
        for mount in pod.container.get("volumeMounts", []):
            assert "emptyDir" in volumes[mount["name"]], f"the sim only knows emptyDir volumes: {mount}"
            local = self.workdir / pod.name / mount["name"]
            local.mkdir(parents=True)
            mounts[mount["mountPath"]] = str(local)
        env.update({k: mounts[v] for k, v in env.items() if v in mounts})
        env.update({
            # The simulation's overrides (SIM_OVERRIDES): shared network namespace, resolver, emptyDirs.
            "MR_HOST": ip,
            "MR_DNS_NAMESERVER": self.dns.host,
            "MR_DNS_PORT": str(self.dns.port),
            "TMPDIR": mounts.get("/tmp", str(self.workdir / pod.name)),
            # What the kubelet adds to every container.
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": "443",
            # What the image's ENV adds.
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        })
        sim = SimPod(pod, ip, pod.port(), env, self.workdir / pod.name / "log.txt")
        self.pods[pod.name] = sim
        return sim

    async def start(self, pod: SimPod) -> None:
        with pod.log_path.open("wb") as log:
            pod.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "actors", "serve", env=pod.env, cwd=str(self.workdir),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    async def wait_ready(self, pods: list[SimPod]) -> None:
        """Poll each pod's readiness probe (path and port from the manifest) and publish it once it passes."""
        deadline = time.monotonic() + self.startup_timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            pending = list(pods)
            while pending:
                for pod in list(pending):
                    assert pod.process is not None
                    if pod.process.returncode is not None:
                        raise AssertionError(f"{pod.spec.name} exited with {pod.process.returncode}:\n{pod.log()}")
                    probe = pod.spec.container["readinessProbe"]["httpGet"]
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with session.get(f"{pod.url}{probe['path']}") as response:
                            if response.status == 200:
                                pod.ready = True
                                pending.remove(pod)
                                self.publish()
                if pending and time.monotonic() > deadline:
                    logs = "\n".join(f"--- {p.spec.name}\n{p.log()}" for p in pending)
                    raise AssertionError(f"not ready within {self.startup_timeout}s: {logs}")
                await asyncio.sleep(0.05)

    async def scale(self, workload: str, replicas: int, settings: dict[str, str] | None = None) -> list[SimPod]:
        """``kubectl scale statefulset/<workload> --replicas=N`` upwards: start the new ordinals.

        With ``settings``, the ConfigMap change that goes with it (MR_REDUCER_COUNT for reducers, which
        deploy/reducer-count copies from the replicas) is applied as ``kubectl apply -k`` would: the regenerated
        ConfigMap has a new name, so every existing pod is replaced by one with the new env, and the new ordinals
        start with it.
        """
        (sts,) = [o for o in self.objects if o["kind"] in WORKLOADS and o["metadata"]["name"] == workload]
        sts["spec"]["replicas"] = replicas
        existing = list(self.pods.values())
        if settings:
            for config in find(self.objects, "ConfigMap"):
                config["data"].update(settings)
        pods = [p for p in declared_pods(self.objects) if p.role == workload]
        new = [self.add(p) for p in pods if p.name not in self.pods]
        for pod in new:
            await self.start(pod)
        await self.wait_ready(new)
        if settings:
            await self.replace(existing)
        return new

    async def replace(self, pods: list[SimPod], grace: float = 30.0) -> None:
        """Replace pods by new ones from the current manifests (a rollout): unpublish, SIGTERM, start, wait ready."""
        for pod in pods:
            pod.ready = False
        self.publish()
        for pod in pods:
            assert pod.process is not None
            with contextlib.suppress(ProcessLookupError):
                pod.process.send_signal(signal.SIGTERM)
        for pod in pods:
            assert pod.process is not None
            code = await asyncio.wait_for(pod.process.wait(), grace)
            assert code == 0, f"{pod.spec.name} exited with {code} when replaced:\n{pod.log()}"
        for generation in itertools.count(1):  # the old pod's files (logs, emptyDirs) move aside
            if not any((self.workdir / f"{p.spec.name}~{generation}").exists() for p in pods):
                break
        for pod in pods:
            (self.workdir / pod.spec.name).rename(self.workdir / f"{pod.spec.name}~{generation}")
        fresh = [self.add(p) for p in declared_pods(self.objects) if p.name in {q.spec.name for q in pods}]
        for pod in fresh:
            await self.start(pod)
        await self.wait_ready(fresh)

    async def stop(self, grace: float = 30.0) -> dict[str, int | None]:
        """SIGTERM every pod, as the kubelet does; SIGKILL what outlives the grace period. Exit codes by pod."""
        for pod in self.pods.values():
            pod.ready = False
            if pod.process is not None and pod.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    pod.process.send_signal(signal.SIGTERM)
        self.publish()
        codes: dict[str, int | None] = {}
        for pod in self.pods.values():
            if pod.process is None:
                continue
            try:
                codes[pod.spec.name] = await asyncio.wait_for(pod.process.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pod.process.pid, signal.SIGKILL)
                await pod.process.wait()
                codes[pod.spec.name] = None  # needed SIGKILL
        return codes

    async def __aenter__(self) -> SimCluster:
        started = [self.add(p) for p in declared_pods(self.objects)]
        try:
            for pod in started:
                await self.start(pod)
            await self.wait_ready(started)
        except BaseException:
            await self.stop(grace=5)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(grace=5)
        for pod in self.pods.values():  # the process group too: nothing the actor started may outlive it
            if pod.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pod.process.pid, signal.SIGKILL)


def _target_port(port: dict[str, Any], pods: list[SimPod]) -> int:
    """The endpoint port for a Service port: a numeric targetPort, or the named container port of the pods."""
    target = port.get("targetPort", port["port"])
    if isinstance(target, int):
        return target
    if not pods:
        return int(port["port"])
    return pods[0].spec.port(target)


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="k8s-sim-") as directory:
        yield Path(directory)


# ---------------------------------------------------------------- a stand-in kubectl for the demo script

FAKE_KUBECTL = '''
"""A stand-in kubectl for scripts/demo-port-forward.sh: logs each call; port-forward proxies to the sim master."""
import asyncio, os, sys

args = sys.argv[1:]
with open(os.environ["FAKE_KUBECTL_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
# The namespace's phase lives in a file next to the log: absent (no namespace), "Active" or "Terminating".
phase = os.environ.get("FAKE_KUBECTL_NAMESPACE", os.environ["FAKE_KUBECTL_LOG"] + ".namespace")
if args[:1] == ["kustomize"]:
    os.execv(os.environ["FAKE_KUBECTL_REAL"], ["kubectl", *args])
elif args[:2] == ["config", "current-context"]:
    print("simulated")
elif args[:2] == ["get", "nodes"]:
    print(os.environ.get("FAKE_KUBECTL_IMAGES", "docker.io/library/mapreduce-actors:latest registry.k8s.io/pause:3.9"))
elif args[:2] == ["get", "namespace"]:
    if os.path.exists(phase):
        print(open(phase).read(), end="")
elif args[:1] == ["wait"]:
    if os.environ.get("FAKE_KUBECTL_STUCK"):
        print("error: timed out waiting for the condition on " + args[-2], file=sys.stderr)
        sys.exit(1)
    os.remove(phase)
    print(args[-2] + " condition met")
elif args[:1] == ["apply"]:
    if not os.path.exists(phase):
        open(phase, "w").write("Active")
elif args[:2] == ["delete", "namespace"]:
    if os.path.exists(phase):
        os.remove(phase)
elif "port-forward" in args:
    with open(os.environ["FAKE_KUBECTL_LOG"] + ".pids", "a") as pids:
        pids.write(f"{os.getpid()}\\n")
    local = int(args[args.index("port-forward") + 2].split(":")[0])
    host, port = os.environ["FAKE_KUBECTL_TARGET"].rsplit(":", 1)

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def handle(reader, writer):
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True)

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", local)
        print(f"Forwarding from 127.0.0.1:{local} -> {port}", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())
elif "rollout" in args:
    print(f"{args[-2] if args[-1].startswith('--') else args[-1]} successfully rolled out")
'''
