#!/usr/bin/env bash
# Builds the native word-count kernel and result encoder with AddressSanitizer and UBSan into a temporary copy of
# the package and runs tests/test_kernel.py and tests/test_resultjson.py (the hypothesis fuzz included, hostile
# peer offsets against every native entry point that reads them) against them. Called by scripts/test.sh; about
# a minute.
# Skips, saying why, when there is no C compiler or no Python headers (the package then uses its Python path).
# Usage: scripts/asan_kernel.sh [python]   (default: .venv/bin/python, else python3; needs pytest and hypothesis)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${1:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=python3
# A relative path (.venv/bin/python) would not be found after the cd below; the venv's symlink is kept as it is.
case $PY in */*) PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY") ;; esac
CC=${CC:-gcc}

if ! command -v "$CC" >/dev/null 2>&1; then
  echo "asan_kernel: skipped: no C compiler ($CC) on this machine" >&2
  exit 0
fi
include=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("include"))')
if [ ! -f "$include/Python.h" ]; then
  echo "asan_kernel: skipped: no Python headers ($include/Python.h; install python3-dev)" >&2
  exit 0
fi
libasan=$("$CC" -print-file-name=libasan.so)
if [ ! -f "$libasan" ]; then
  echo "asan_kernel: skipped: $CC has no AddressSanitizer runtime (libasan.so)" >&2
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A copy of the sources without any in-place build, so the sanitized module is the one imported.
mkdir -p "$work/tests"
cp -r "$ROOT/actors" "$work/"
find "$work/actors" \( -name '*.so' -o -name '__pycache__' \) -prune -exec rm -rf {} +
cp "$ROOT/setup.cfg" "$ROOT/pyproject.toml" "$work/"
cp "$ROOT/tests/__init__.py" "$ROOT/tests/test_kernel.py" "$ROOT/tests/test_partition.py" \
  "$ROOT/tests/test_resultjson.py" "$work/tests/"
suffix=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
# The same sources setup.py builds: the kernel is one extension of every _wc_*.c, the encoder one file.
wordcount=actors/jobs/wordcount
build() {
  local module=$1
  shift
  echo "asan_kernel: building $wordcount/$module from $* with -fsanitize=address,undefined" >&2
  "$CC" -shared -fPIC -g -O1 -Wall -Wextra -Werror -fsanitize=address,undefined -fno-sanitize-recover=all \
    -fno-omit-frame-pointer -I"$include" "$@" -o "$work/$wordcount/$module$suffix"
}
build _wordcount "$ROOT"/$wordcount/_wc_*.c
build _resultjson "$ROOT/$wordcount/_resultjson.c"

cd "$work"
# detect_leaks=0: CPython itself leaks at exit. PYTHONMALLOC=malloc: no pymalloc arenas hiding overflows from ASan.
# --capture=no: a sanitizer report goes to stderr just before the process aborts; captured, it would be lost.
export LD_PRELOAD=$libasan ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 PYTHONMALLOC=malloc PYTHONDONTWRITEBYTECODE=1 \
  MR_REQUIRE_NATIVE_KERNEL=1 MR_KERNEL_FUZZ_EXAMPLES=${MR_KERNEL_FUZZ_EXAMPLES:-300}
"$PY" -c 'import sys, actors.jobs.wordcount._wordcount as k, actors.jobs.wordcount._resultjson as r
assert all(m.__file__.startswith(sys.argv[1]) for m in (k, r)), (k.__file__, r.__file__)' "$work"
"$PY" -m pytest -q -p no:cacheprovider --capture=no -k native --durations=8 tests/test_kernel.py tests/test_resultjson.py
echo "asan_kernel: the sanitized kernel and result encoder passed" >&2
