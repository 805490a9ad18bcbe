#!/usr/bin/env bash
# Runs the whole test suite: creates the virtualenv with the test tools, lints, type-checks, then pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k reducer -x).
# scripts/test.sh --quick: ruff, then only the unit, property and in-process tests (no process, browser, k8s or
# slow test; tests/tiers.py marks them) on two pytest-xdist workers when there are two cores: under a minute on a
# quiet 2-core machine (docs/testing.md). Another -n after --quick overrides it (-n 0: one process). CI runs the
# whole suite, in one process: its process tests time actors and children of their own.
set -euo pipefail
quick=false
if [ "${1:-}" = "--quick" ]; then
  quick=true
  shift
fi
# A run the caller narrows (-k, -m, a test path or node id) may rightly collect nothing; options alone (-q, -p ...,
# what CI passes) do not narrow it, so the whole suite collecting nothing stays a failure.
filtered=0
for arg in "$@"; do
  case "$arg" in -k | -k* | -m | -m* | tests/* | *.py | *::*) filtered=1 ;; esac
done
. "$(dirname "$0")/env.sh" test
cd "$ROOT"
if $quick; then
  echo "== ruff" >&2
  ruff check actors tests scripts
  echo "== pytest (quick tier)" >&2
  # What is left is CPU-bound Python in one event loop per test: two workers on two cores take about half the time.
  workers=$(python -c 'import os; print(min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                             else os.cpu_count() or 1))')
  if [ "$workers" -gt 1 ]; then
    set -- -n "$workers" --dist worksteal "$@"
  fi
  # The native code's fuzz tests at a third of their examples; the whole suite and scripts/asan_kernel.sh run 300.
  export MR_KERNEL_FUZZ_EXAMPLES=${MR_KERNEL_FUZZ_EXAMPLES:-100}
  # Bytecode and pytest's rewritten test modules cached in the virtualenv, not in the tree, even where
  # PYTHONDONTWRITEBYTECODE is set: rewriting every test module again cost each worker 5 of its 8 s of collection.
  export PYTHONPYCACHEPREFIX="$VENV/pycache"
  unset PYTHONDONTWRITEBYTECODE
  set -- -m "not process and not browser and not k8s and not slow" -q "$@"
fi
if ! $quick && [ -f scripts/k8s-test-deps.sh ]; then
  bash scripts/k8s-test-deps.sh
fi
# tests/test_page.py drives the status page in headless Chromium; install it when missing (root + apt-get only,
# else those tests skip and say why).
if ! $quick && ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing chromium (the status page's browser test)" >&2
  chromium_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null 2>&1
  }
  chromium_install || { apt-get update -qq >/dev/null 2>&1 && chromium_install; } \
    || echo "chromium could not be installed: the status page's browser tests will skip" >&2
fi
if ! $quick; then
  echo "== ruff" >&2
  ruff check actors tests scripts
  echo "== mypy --strict actors tests scripts" >&2
  mypy actors tests scripts
  echo "== import contracts" >&2
  lint-imports
  echo "== native kernel under AddressSanitizer/UBSan" >&2
  bash scripts/asan_kernel.sh "$VENV/bin/python"
  echo "== pytest" >&2
fi
set +e
python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  # pytest's "no tests collected": fine for a filtered run, a failure for the whole suite.
  echo "pytest collected no tests" >&2
  [ "$filtered" -gt 0 ] && exit 0
  exit 1
fi
exit "$rc"
