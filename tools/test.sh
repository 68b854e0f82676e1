#!/usr/bin/env bash
# The test command: installs dependencies, builds, runs the whole ctest suite,
# then the sanitizer builds (ASan+UBSan over everything, TSan over the
# concurrency tests). Exits non-zero on any failure.
#   tools/test.sh            everything
#   tools/test.sh --quick    the Release build's ctest only
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
jobs=$(nproc)

tools/install-deps.sh

echo "== Release build and ctest"
tools/build.sh build
ctest --test-dir build --output-on-failure -j"$jobs"

[ $quick -eq 1 ] && exit 0

echo "== AddressSanitizer + UndefinedBehaviorSanitizer"
tools/build.sh build-asan -DKMBENCH_SANITIZER=address -DKMBENCH_BUILD_BENCHMARKS=OFF
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -j"$jobs" -LE nosan

echo "== ThreadSanitizer (concurrency tests)"
tools/build.sh build-tsan -DKMBENCH_SANITIZER=thread -DKMBENCH_BUILD_BENCHMARKS=OFF
TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build-tsan --output-on-failure -j"$jobs" -L concurrency \
  -LE 'nosan|notsan'
echo "== all test stages passed"
