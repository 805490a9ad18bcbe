"""Image smoke test: build the repo's ``Dockerfile`` with podman and run a cluster of its containers.

It builds the image, starts a master, a mapper and a reducer container on a podman network of their own (static
discovery by container name, resolved by the network's DNS, aardvark-dns), publishes only the master's port on
127.0.0.1, drives jobs through the master — the original ``/compute`` example, a ``POST /v1/jobs`` text job and an
uploaded body, each compared with ``collections.Counter(text.split())`` — and checks that ``podman stop``
(SIGTERM to the entrypoint, PID 1) drains every container to exit 0. The containers run as in the pods of
``deploy/``: read-only root filesystem, every capability dropped, no-new-privileges, a writable tmpfs only for
the spool (and the master's state directory). Containers, network and the image it built are removed even when
the test fails.

What it proves and what it does not: no container registry is reachable where it was written, so the
Dockerfile's base ``python:3.11-slim-bookworm`` cannot be pulled. The test builds a **stand-in** for it instead: a
minimal Debian bookworm root filesystem made with ``debootstrap --variant=minbase`` with Debian's python3.11,
python3-venv, python3-pip and python-is-python3 (so ``python`` exists, as in the official image), imported with
``podman import`` as ``localhost/mr-standin-python:3.11`` and passed as ``--build-arg PYTHON_IMAGE=...``. So it
proves the Dockerfile's own steps (``python -m venv``, ``requirements.lock`` installed from PyPI with
``--require-hashes``, the package built with the locked setuptools, ``pip check``, ``compileall``, the OCI labels,
the non-root user, the spool directory, the exec-form entrypoint and its SIGTERM drain) and the actors working across
containers — with a Debian python (3.11.2, /usr/bin) instead of the official image's (/usr/local/bin). It says
nothing about the official image's contents or digest.

How the stand-in reaches PyPI: ``pip install`` runs inside the build, so the build must reach the package index
the way the host's pip does. The build uses ``--network=host``, and the stand-in carries the host's CA bundle (the
one the host's pip is told to use: ``PIP_CERT``, else the system bundle) with ``PIP_CERT`` pointing at it, because
TLS to PyPI may be re-signed by an egress proxy that only the host's bundle trusts (it is here).

Cached between runs under ``/var/tmp/mr-standin`` (``MR_STANDIN_CACHE``): the debootstrapped root filesystem; and
the stand-in image is kept in podman's store, labelled with a key of its recipe and the CA bundle, and re-imported
only when that key changes. A cold run pays debootstrap (Debian's mirror, ``MR_STANDIN_MIRROR``), a warm one only
the image build (its layers are not kept) and the cluster.

What this sandbox needed, handled generically so the test runs the same on an ordinary root machine:
- no CAP_SYS_RESOURCE: rootful podman sets RLIMIT_NOFILE to 1048576 in every container, which then fails with
  "setrlimit RLIMIT_NOFILE: Operation not permitted"; every build and run here passes ``--ulimit`` values at or
  below the test process's own hard limits (lowering a limit needs no privilege);
- a hybrid cgroup v1/v2 host (a controller on the v2 hierarchy): crun 1.8 refuses it ("cgroups in hybrid mode not
  supported"), runc runs. The test probes the OCI runtimes (podman's default, then runc, then crun) with the
  stand-in and uses the first that starts a container; if none does it skips with each one's error.
- an ``--internal`` podman network gets no port forwarding, so the network is an ordinary bridge; the actors only
  talk to each other by name, and the test only to the published 127.0.0.1 port.

Runs only as root with podman installed (``scripts/podman-test-deps.sh`` installs it and the rest); otherwise
it skips, saying why. Marked ``slow``: deselect it with ``-m "not slow"``.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import hashlib
import json
import os
import resource
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors import __version__

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "genesis-kjv.txt"

STANDIN_TAG = "localhost/mr-standin-python:3.11"
STANDIN_LABEL = "mr.standin.key"
CACHE = Path(os.environ.get("MR_STANDIN_CACHE", "/var/tmp/mr-standin"))
MIRROR = os.environ.get("MR_STANDIN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
INCLUDE = ("python3", "python3-venv", "python3-pip", "python-is-python3", "ca-certificates")
RECIPE = f"stand-in v1: debootstrap --variant=minbase --include={','.join(INCLUDE)} {SUITE}"
CA_IN_IMAGE = "/etc/ssl/certs/ca-certificates.crt"

DRAIN = 10  # MR_TIMEOUT_DRAIN in the containers; podman stop waits longer before it kills
SPLIT = 64 * 1024  # the smallest split size the master accepts: the sample text becomes several splits

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _log(message: str) -> None:
    print(f"[image-podman {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _require_podman() -> str:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("needs root: the image test runs rootful podman (and debootstrap for the stand-in base image)")
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("podman is missing: run scripts/podman-test-deps.sh as root")
    info = subprocess.run([podman, "info", "--format", "{{.Host.OCIRuntime.Name}}"], capture_output=True,
                          text=True, timeout=120)
    if info.returncode != 0:
        pytest.skip(f"podman info fails, podman cannot work here: {info.stderr.strip()[-500:]}")
    return podman


def _run(cmd: list[str], *, timeout: float, check: bool = True, env: dict[str, str] | None = None,
         stdin: Any = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, stdin=stdin)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)!r} exited {result.returncode}:\n{result.stdout[-3000:]}\n"
                             f"{result.stderr[-3000:]}")
    return result


def _ulimits() -> list[str]:
    """``--ulimit`` values podman can set without CAP_SYS_RESOURCE: never above this process's hard limits."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    # RLIMIT_NPROC counts every process of the container's user (uid 10001) on the host: a few are enough.
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", "nproc=4096:4096"]


def _host_ca_bundle() -> Path | None:
    """The CA bundle the host's pip uses (``PIP_CERT``), else the system bundle; None when there is neither."""
    for candidate in (os.environ.get("PIP_CERT", ""), os.environ.get("SSL_CERT_FILE", ""), CA_IN_IMAGE):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@contextlib.contextmanager
def _cache_lock() -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _discard(path: Path) -> None:
    """Remove a (possibly half-made) rootfs: unmount what an interrupted debootstrap left mounted in it first."""
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{path}/")), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", mount], capture_output=True, timeout=60, check=False)
    shutil.rmtree(path, ignore_errors=True)


def _standin_rootfs() -> Path:
    """The debootstrapped root filesystem, made once per recipe and kept under CACHE."""
    key = hashlib.sha256(f"{RECIPE} {MIRROR}".encode()).hexdigest()[:12]
    rootfs = CACHE / f"rootfs-{key}"
    if (rootfs / ".mr-standin-complete").is_file():
        return rootfs
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        pytest.skip("debootstrap is missing (needed once, to build the stand-in base image): "
                    "run scripts/podman-test-deps.sh as root")
    staging = CACHE / f"staging-{key}-{os.getpid()}"
    _discard(staging)
    _log(f"debootstrap {SUITE} into {staging} (cold cache)")
    started = time.monotonic()
    try:
        _run([debootstrap, "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE, str(staging), MIRROR],
             timeout=1200)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (staging / junk).glob("*"):
                if item.is_file():
                    item.unlink()
        check = _run(["chroot", str(staging), "python", "-c", "import ensurepip, sys, venv; print(sys.version)"],
                     timeout=60)
        (staging / ".mr-standin-complete").write_text(f"{RECIPE}\n{MIRROR}\n{check.stdout}")
        _discard(rootfs)
        staging.rename(rootfs)
    finally:
        _discard(staging)
    _log(f"debootstrap done in {time.monotonic() - started:.1f} s")
    return rootfs


def _standin_image(podman: str) -> str:
    """``localhost/mr-standin-python:3.11``: imported from the rootfs unless podman already has this recipe's."""
    with _cache_lock():
        ca = _host_ca_bundle()
        ca_bytes = ca.read_bytes() if ca is not None else b""
        key = hashlib.sha256(RECIPE.encode() + b"\0" + ca_bytes).hexdigest()[:16]
        have = _run([podman, "image", "inspect", "--format", f'{{{{index .Labels "{STANDIN_LABEL}"}}}}',
                     STANDIN_TAG], timeout=60, check=False)
        if have.returncode == 0 and have.stdout.strip() == key:
            return STANDIN_TAG
        rootfs = _standin_rootfs()
        _log(f"podman import {rootfs} as {STANDIN_TAG}")
        if ca is not None:
            (rootfs / CA_IN_IMAGE.lstrip("/")).write_bytes(ca_bytes)
        changes = ["ENV LANG=C.UTF-8", f"LABEL {STANDIN_LABEL}={key}", 'CMD ["python3"]']
        if ca is not None:
            changes.insert(1, f"ENV PIP_CERT={CA_IN_IMAGE}")
        tar = subprocess.Popen(["tar", "--numeric-owner", "--exclude=./.mr-standin-complete", "-C", str(rootfs),
                                "-cf", "-", "."], stdout=subprocess.PIPE)
        try:
            cmd = [podman, "import", *[arg for change in changes for arg in ("--change", change)], "-", STANDIN_TAG]
            _run(cmd, timeout=600, stdin=tar.stdout)
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            assert tar.wait(timeout=60) == 0, "tar of the stand-in rootfs failed"
        return STANDIN_TAG


def _runtime(podman: str, image: str, ulimits: list[str]) -> list[str]:
    """Global podman arguments choosing an OCI runtime that can start a container here; skips if none can."""
    candidates: list[list[str]] = [[]]
    for name in ("runc", "crun"):
        if shutil.which(name):
            candidates.append(["--runtime", name])
    errors = []
    for candidate in candidates:
        probe = _run([podman, *candidate, "run", "--rm", "--pull=never", "--network=none", *ulimits, image,
                      "python", "-c", "print('ok')"], timeout=120, check=False)
        if probe.returncode == 0 and probe.stdout.strip() == "ok":
            _log(f"OCI runtime: {candidate[1] if candidate else 'podman default'}")
            return candidate
        errors.append(f"{candidate[1] if candidate else 'default runtime'}: {probe.stderr.strip()[-300:]}")
        _log(f"cannot start a container with {errors[-1]}")
    pytest.skip("podman cannot start a container here with any OCI runtime: " + " | ".join(errors))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


def _http(method: str, url: str, body: bytes | None = None, content_type: str = "application/json",
          timeout: float = 90) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", content_type)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


class _Podman:
    """Runs podman with the chosen runtime and ulimits; remembers what it made so :meth:`cleanup` removes it."""

    def __init__(self, podman: str, runtime: list[str], ulimits: list[str]) -> None:
        self.podman, self.runtime, self.ulimits = podman, runtime, ulimits
        self.containers: list[str] = []
        self.networks: list[str] = []
        self.images: list[str] = []

    def __call__(self, *args: str, timeout: float = 120, check: bool = True,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return _run([self.podman, *self.runtime, *args], timeout=timeout, check=check, env=env)

    def build(self, tag: str, base: str) -> None:
        self.images.append(tag)
        self("build", "--pull=never", "--layers=false", "--network=host", *self.ulimits,
             "--build-arg", f"PYTHON_IMAGE={base}", "--tag", tag, "--file", str(ROOT / "Dockerfile"), str(ROOT),
             timeout=1200)

    def network(self, name: str) -> None:
        self.networks.append(name)
        self("network", "create", name)

    def start(self, name: str, image: str, network: str, env: dict[str, str], *extra: str) -> None:
        """One actor container, hardened like the pods in deploy/; env values go through podman's environment."""
        self.containers.append(name)
        env_args = [arg for key in env for arg in ("--env", key)]
        self("run", "--detach", "--pull=never", "--name", name, "--hostname", name, "--network", network,
             "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges", *self.ulimits,
             "--mount", "type=tmpfs,destination=/var/spool/mapreduce,chown", *env_args, *extra, image,
             env={**os.environ, **env})

    def state(self, name: str) -> tuple[str, int]:
        out = self("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name).stdout.split()
        return out[0], int(out[1])

    def logs(self, name: str) -> str:
        result = self("logs", name, check=False)
        return result.stdout + result.stderr

    def cleanup(self, dump_logs: bool) -> None:
        for name in self.containers:
            if dump_logs:
                _log(f"logs of {name}:\n{self.logs(name)[-4000:]}")
            self("rm", "--force", "--time", "0", name, check=False)
        for network in self.networks:
            self("network", "rm", "--force", network, check=False)
        for image in self.images:
            self("rmi", "--force", image, check=False, timeout=300)


def _wait_ready(pod: _Podman, master: str, names: list[str], deadline_s: float = 120) -> None:
    deadline = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < deadline:
        for name in names:
            state, code = pod.state(name)
            assert state == "running", f"{name} is {state} (exit {code}):\n{pod.logs(name)[-4000:]}"
        try:
            ready, _ = _http("GET", f"{master}/readyz", timeout=5)
            status, last = _http("GET", f"{master}/v1/cluster?wait_mappers=1&wait_reducers=1", timeout=15)
            if ready == 200 and status == 200 and last["mappers"] and last["reducers"]:
                return
        except (OSError, ValueError) as exc:  # not listening yet, or the port is held but not forwarded yet
            last = repr(exc)
        time.sleep(0.5)
    raise AssertionError(f"the master never saw its mapper and reducer: {last}")


def _run_job(master: str, body: bytes, query: str = "", content_type: str = "application/json") -> dict[str, Any]:
    status, job = _http("POST", f"{master}/v1/jobs{query}", body, content_type)
    assert status == 202, (status, job)
    status, done = _http("GET", f"{master}/v1/jobs/{job['id']}/result?wait=60", timeout=90)
    assert status == 200 and done["state"] == "done", (status, done)
    status, info = _http("GET", f"{master}/v1/jobs/{job['id']}")
    assert status == 200, (status, info)
    assert info["progress"]["splits_total"] >= 2, "the sample should be cut into several splits"
    return dict(done["result"])


def test_image_runs_a_master_mapper_and_reducer_on_a_podman_network() -> None:
    started = time.monotonic()
    podman = _require_podman()
    ulimits = _ulimits()
    base = _standin_image(podman)
    runtime = _runtime(podman, base, ulimits)
    _log(f"stand-in ready in {time.monotonic() - started:.1f} s")

    run_id = secrets.token_hex(4)
    prefix = f"mr-smoke-{run_id}"
    image, network = f"localhost/mr-actors-smoke:{run_id}", prefix
    master_name, mapper_name, reducer_name = f"{prefix}-master", f"{prefix}-mapper-0", f"{prefix}-reducer-0"
    names = [reducer_name, mapper_name, master_name]
    pod = _Podman(podman, runtime, ulimits)
    ok = False
    try:
        phase = time.monotonic()
        pod.build(image, base)
        _log(f"image built in {time.monotonic() - phase:.1f} s")
        labels = json.loads(pod("image", "inspect", "--format", "{{json .Labels}}", image).stdout)
        assert labels["org.opencontainers.image.version"] == __version__, labels
        assert labels["org.opencontainers.image.base.name"] == base, labels

        pod.network(network)
        dns = pod("network", "inspect", "--format", "{{.DNSEnabled}}", network).stdout.strip()
        if dns != "true":
            pytest.skip(f"podman network {network} has no DNS (aardvark-dns missing?): run "
                        "scripts/podman-test-deps.sh as root")

        phase = time.monotonic()
        common = {"MR_TOKEN": secrets.token_hex(16), "MR_DISCOVERY": "static",
                  "MR_MAPPERS": f"http://{mapper_name}:8081", "MR_REDUCERS": f"http://{reducer_name}:8082",
                  "MR_TIMEOUT_DRAIN": str(DRAIN), "MR_LOG_LEVEL": "INFO"}
        pod.start(reducer_name, image, network, {**common, "TYPE": "reducer"})
        pod.start(mapper_name, image, network, {**common, "TYPE": "mapper"})
        port = _free_port()
        pod.start(master_name, image, network, {**common, "TYPE": "master", "MR_STATE_DIR": "/var/lib/mapreduce"},
                  "--mount", "type=tmpfs,destination=/var/lib/mapreduce,chown", "--publish", f"127.0.0.1:{port}:8080")
        master = f"http://127.0.0.1:{port}"
        _wait_ready(pod, master, names)
        _log(f"cluster ready in {time.monotonic() - phase:.1f} s")

        # The original example, through the original trigger.
        status, counts = _http("GET", f"{master}/compute?text=hello+hello+hello+hello+world+world+world")
        assert (status, counts) == (200, {"hello": 4, "world": 3})

        # A text job (held by the master, served to the mapper in byte ranges at its advertised name) ...
        text = SAMPLE.read_text(encoding="utf-8")
        expected = dict(collections.Counter(text.split()))
        body = json.dumps({"job": "wordcount", "input": {"text": text}, "split_size": SPLIT}).encode()
        assert _run_job(master, body) == expected
        # ... and an uploaded body (spooled on the master's tmpfs: the root filesystem is read-only).
        assert _run_job(master, text.encode(), f"?job=wordcount&split_size={SPLIT}",
                        "application/octet-stream") == expected

        # podman stop sends SIGTERM to PID 1, the actor itself: it must drain and exit 0 before the kill.
        for name in (master_name, mapper_name, reducer_name):
            begun = time.monotonic()
            pod("stop", "--time", str(DRAIN + 20), name, timeout=DRAIN + 60)
            state, code = pod.state(name)
            took = time.monotonic() - begun
            assert (state, code) == ("exited", 0), f"{name} stopped as {state} {code} after {took:.1f} s"
            assert took < DRAIN + 15, f"{name} took {took:.1f} s to stop"
            assert '"event": "actor_stopped"' in pod.logs(name), f"{name} did not log its drain"
        ok = True
        _log(f"passed in {time.monotonic() - started:.1f} s")
    finally:
        pod.cleanup(dump_logs=not ok)
