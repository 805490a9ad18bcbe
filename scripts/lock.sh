#!/usr/bin/env bash
# Refresh requirements.lock: the image's Python dependencies pinned with their hashes, for the Dockerfile's
# `pip install --require-hashes`. It resolves setup.cfg's install_requires and the extras the image installs (s3),
# (and pyproject.toml's build
# requirement, setuptools) with pip-tools for Python 3.11, the image's Python, and records the hash of every file
# the index has for each pin, so one lock serves every platform the image is built for.
#
#   scripts/lock.sh             keep the current pins that still fit setup.cfg; resolve only what changed
#   scripts/lock.sh --upgrade   move every pin to the newest version setup.cfg allows (the scheduled refresh)
#   scripts/lock.sh --upgrade-package aiohttp   move one
#
# Scheduled use (a weekly CI job): run `scripts/lock.sh --upgrade`, then `pytest tests/test_lock.py` and the
# image build, and propose the diff for review. tests/test_lock.py fails whenever setup.cfg and the lock disagree.
# Needs python3.11 (or LOCK_PYTHON) and the package index; installs pip-tools into a throw-away virtualenv.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${LOCK_PYTHON:-python3.11}"
PIP_TOOLS_VERSION=7.6.2

version="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ "$version" != "3.11" ]]; then
    echo "lock.sh: $PYTHON is Python $version; the image runs 3.11 (set LOCK_PYTHON)" >&2
    exit 2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The lock comes from the package index alone: no machine's local wheel folders, extra indexes or constraint
# files (pip's configuration files are not read), so its hashes are those of the index's own files.
export PIP_CONFIG_FILE=/dev/null
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_CONSTRAINT
"$PYTHON" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --disable-pip-version-check "pip-tools==$PIP_TOOLS_VERSION"

# pip-compile reads the project's metadata through its build backend: build it in a copy, not in the checkout.
mkdir "$tmp/src"
cp -r pyproject.toml setup.cfg setup.py README.md actors "$tmp/src/"
if [[ -f requirements.lock ]]; then cp requirements.lock "$tmp/src/"; fi
(
    cd "$tmp/src"
    CUSTOM_COMPILE_COMMAND="scripts/lock.sh" "$tmp/venv/bin/pip-compile" --quiet --generate-hashes \
        --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links --all-build-deps --extra s3 \
        --output-file requirements.lock "$@" pyproject.toml
)
cp "$tmp/src/requirements.lock" requirements.lock
echo "lock.sh: requirements.lock written; check it with: pytest tests/test_lock.py" >&2
