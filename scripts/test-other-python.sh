#!/usr/bin/env bash
# Runs the address-policy and URL tests, and the quick pure unit tests, on the other ends of the supported Python
# range than the main one (scripts/test.sh): the distribution's own python3.11 (Debian's is 3.11.2, the oldest
# patch level around) and the newest python3.13 found (pyenv, PATH or apt). Each gets a virtualenv of its own
# (.venv-other/<version>) and a fresh copy of the tree, so its build output never mixes with the main one's.
# Extra arguments replace the test list (e.g. scripts/test-other-python.sh tests/test_urls.py).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
MAIN=${PYTHON:-python3}
TESTS=(tests/test_urls.py tests/test_hostile_urls.py tests/test_pin.py tests/test_sources.py tests/test_messages.py
       tests/test_wire.py tests/test_splits.py tests/test_partition.py tests/test_keys.py tests/test_columns.py)
[ "$#" -gt 0 ] && TESTS=("$@")

version_of() { "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])'; }

apt_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1; }
}

# The oldest: the distribution's python3.11 with venv and headers (the C kernel is optional, but built where it can).
oldest() {
  if [ ! -x /usr/bin/python3.11 ] || ! /usr/bin/python3.11 -c 'import ensurepip' 2>/dev/null; then
    apt_install python3.11 python3.11-venv python3.11-dev || true
  fi
  [ -x /usr/bin/python3.11 ] && /usr/bin/python3.11 -c 'import ensurepip' 2>/dev/null && echo /usr/bin/python3.11
}

# The newest: a real python3.13 binary (not a pyenv shim, which may point at nothing), else the distribution's.
newest() {
  local root candidate
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  for candidate in "$root"/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13; do
    [ -x "$candidate" ] && { echo "$candidate"; return 0; }
  done
  if apt-cache policy python3.13 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    apt_install python3.13 python3.13-venv python3.13-dev && [ -x /usr/bin/python3.13 ] && echo /usr/bin/python3.13
  fi
}

main_version=$(version_of "$MAIN")
declare -A seen=(["$main_version"]=1)
interpreters=()
for found in "$(oldest || true)" "$(newest || true)"; do
  [ -n "$found" ] || continue
  version=$(version_of "$found")
  [ -z "${seen[$version]:-}" ] || continue
  seen[$version]=1
  interpreters+=("$found")
done
if [ "${#interpreters[@]}" -eq 0 ]; then
  # A machine with one Python only (no pyenv, no other apt package) must not block every submission: say so
  # loudly instead. The main suite has run on $MAIN already.
  echo "WARNING: no second Python interpreter: neither the distribution's python3.11 (apt) nor a python3.13" \
       "(pyenv, PATH, apt) differs from the main $MAIN $main_version; the other-interpreter tests did not run" >&2
  exit 0
fi

copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
status=0
for python in "${interpreters[@]}"; do
  version=$(version_of "$python")
  venv="$ROOT/.venv-other/$version"
  echo "== tests on Python $version ($python)" >&2
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  # A fresh copy of the tree (tracked and new files, not ignored ones) for each interpreter.
  rm -rf "${copy:?}/tree" && mkdir "$copy/tree"
  git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$copy/tree"
  "$venv/bin/python" -m pip install -qq --disable-pip-version-check -e "$copy/tree[test]"
  set +e
  (cd "$copy/tree" && "$venv/bin/python" -m pytest -q -p no:cacheprovider "${TESTS[@]}")
  rc=$?
  set -e
  if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests on Python $version" >&2  # a wrong test list: a failure, not a pass
    rc=1
  fi
  [ "$rc" -eq 0 ] || status=$rc
done
exit "$status"
