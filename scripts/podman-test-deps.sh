#!/usr/bin/env bash
# Install what tests/test_image_podman.py needs; idempotent, safe to run before every test run.
#   podman (rootful) with conmon, crun and runc (the test uses the first OCI runtime that can start a container
#   here: crun 1.8 refuses a hybrid cgroup v1/v2 host, runc runs on it), netavark + aardvark-dns (the podman
#   network and its DNS) and iptables (netavark's firewall and port forwarding); debootstrap (the test builds a
#   local stand-in for the Dockerfile's base image, since no container registry is reachable).
# Usage: scripts/podman-test-deps.sh   (as root; as any other user it only says what it would need)
# Not run by scripts/test.sh: the image test is slow (see tests/test_image_podman.py) and skips without podman.
set -euo pipefail

log() { printf 'podman-test-deps: %s\n' "$*" >&2; }

PACKAGES=(podman conmon crun runc netavark aardvark-dns iptables debootstrap)

if [[ "$(id -u)" != 0 ]]; then
    log "not root: nothing installed (the image test runs only as root); as root: apt-get install ${PACKAGES[*]}"
    exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        apt-get update >/dev/null
        apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi
log "ready: $(podman --version), $(debootstrap --version 2>/dev/null || echo debootstrap)"
