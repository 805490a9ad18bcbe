#!/usr/bin/env bash
# Sourced by the other scripts: creates the project's virtualenv (.venv, or $VENV) once and installs the package.
# Usage: . scripts/env.sh [extras]   e.g. ". scripts/env.sh test"
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "mapreduce-actors needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating virtualenv $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
extras=${1:-}
stamp="$VENV/.installed${extras:+-$extras}"
# Reinstall only when the package's metadata or its native kernel's source changed since the last install: the
# editable install compiles actors/jobs/_wordcount.c once and copies the module next to it (see setup.py).
if [ ! -f "$stamp" ] || [ "$ROOT/setup.cfg" -nt "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ] \
   || [ "$ROOT/setup.py" -nt "$stamp" ] || [ "$ROOT/actors/jobs/_wordcount.c" -nt "$stamp" ]; then
  echo "installing mapreduce-actors${extras:+[$extras]} into $VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT${extras:+[$extras]}"
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
