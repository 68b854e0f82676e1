#!/usr/bin/env bash
# The test command: installs dependencies, builds, runs the whole ctest suite,
# then the sanitizer stages (built by clang): AddressSanitizer+UBSan over the
# unit, conformance, death and concurrency tests, ThreadSanitizer over the
# concurrency tests.
# Each sanitizer tree builds only the test programs its stage runs.
# Exits non-zero on any failure.
#   tools/test.sh            everything
#   tools/test.sh --quick    the Release build's ctest only
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
case "$*" in
  "") ;;
  --quick) quick=1 ;;
  -h|--help) sed -n '2,9s/^# \{0,1\}//p' tools/test.sh; exit 0 ;;
  *) echo "tools/test.sh: unknown arguments '$*' (usage: tools/test.sh [--quick])" >&2; exit 2 ;;
esac
jobs=$(nproc)

tools/install-deps.sh
# Ninja builds the sanitizer stages' many test targets in one schedule (tools/build.sh).
if [ -z "${CMAKE_GENERATOR:-}" ] && command -v ninja >/dev/null; then
  export CMAKE_GENERATOR=Ninja
fi

echo "== Release build and ctest"
stage_start=$SECONDS
tools/build.sh build
ctest --test-dir build --output-on-failure -j"$jobs"
echo "== Release build and ctest took $((SECONDS - stage_start)) s"

[ $quick -eq 1 ] && exit 0

# The test programs (build targets) behind the tests a label selection picks.
targets_for() {
  ctest --test-dir build -N -L "$1" -LE "$2" --show-only=json-v1 | /usr/bin/python3 -c '
import json, os, sys
names = set()
for t in json.load(sys.stdin)["tests"]:
    cmd = t.get("command") or []
    if cmd and cmd[0].startswith(os.path.abspath("build") + "/"):
        names.add(os.path.basename(cmd[0]))
print(" ".join(sorted(names)))'
}

# sanitizer_stage NAME SANITIZER INCLUDE_LABELS EXCLUDE_LABELS [ENV=VALUE...]
sanitizer_stage() {
  local dir=$1 sanitizer=$2 include=$3 exclude=$4
  shift 4
  local targets start=$SECONDS
  targets=$(targets_for "$include" "$exclude")
  # clang compiles the instrumented trees about a third faster than g++ (the
  # Release tree stays g++'s); a tree configured before keeps its compiler.
  CC=clang CXX=clang++ cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DKMBENCH_SANITIZER="$sanitizer" \
    -DKMBENCH_BUILD_BENCHMARKS=OFF -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" \
    -DCMAKE_C_FLAGS_RELEASE="-O1 -DNDEBUG" >/dev/null
  # shellcheck disable=SC2086
  cmake --build "$dir" -j"$jobs" --target $targets
  env "$@" ctest --test-dir "$dir" --output-on-failure -j"$jobs" -L "$include" -LE "$exclude"
  echo "== $dir took $((SECONDS - start)) s"
}

echo "== AddressSanitizer + UndefinedBehaviorSanitizer"
sanitizer_stage build-asan address 'unit|conformance|death|concurrency' 'nosan|e2e|fuzz' \
  ASAN_OPTIONS=detect_leaks=1

echo "== ThreadSanitizer (concurrency tests)"
sanitizer_stage build-tsan thread concurrency 'nosan|notsan' TSAN_OPTIONS=halt_on_error=1
echo "== all test stages passed in $SECONDS s"
