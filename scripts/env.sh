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
# A script sourced without arguments sees its caller's ("$@" of demo.sh, say): callers that take arguments of
# their own source this file with an explicit (possibly empty) extras argument, and anything that is not a list
# of extras names is refused rather than handed to pip.
extras=${1:-}
if [[ ! "$extras" =~ ^[A-Za-z0-9_]*(,[A-Za-z0-9_]+)*$ ]]; then
  echo "scripts/env.sh: '$extras' is not a list of extras (such as 'test'); a script that sources env.sh" \
       "with arguments of its own must source it as: . scripts/env.sh \"\"" >&2
  return 2  # sourced (the only way to use this file): stops the caller, not an interactive shell
fi
# The editable install also compiles the native kernel (setup.py) and copies it next to its source: a changed
# C source or header under actors/jobs/wordcount/ needs a reinstall as much as changed metadata does.
fresh() {
  [ -f "$1" ] && [ ! "$ROOT/setup.cfg" -nt "$1" ] && [ ! "$ROOT/pyproject.toml" -nt "$1" ] \
    && [ ! "$ROOT/setup.py" -nt "$1" ] || return 1
  local source
  for source in "$ROOT"/actors/jobs/wordcount/*.c "$ROOT"/actors/jobs/wordcount/*.h; do
    [ ! "$source" -nt "$1" ] || return 1
  done
}
stamp="$VENV/.installed${extras:+-$extras}"
installed=false
if fresh "$stamp"; then
  installed=true
elif [ -z "$extras" ]; then
  # Any fresh install with extras also installed the package itself.
  for other in "$VENV"/.installed-*; do
    if fresh "$other"; then installed=true; fi
  done
fi
# Reinstall only when the package's metadata or native kernel changed since the last install.
if [ "$installed" = false ]; then
  echo "installing mapreduce-actors${extras:+[$extras]} into $VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT${extras:+[$extras]}"
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
