#!/bin/bash
# Instructions per alloc+free pair through the KPI and through the backend's
# own called pair, counted by callgrind: a figure the machine's noise does not
# move, to read beside bench-kpi.sh's nanoseconds.
#   tools/kpi-instructions.sh [BACKEND-SPEC] [SIZE] [PATTERN]   (default slab 64 lifo)
# SIZE is 16, 64, 256 or 4096, PATTERN lifo or batch; a backend or size or
# pattern the benchmark does not have exits 2 before anything runs.
# BUILD names the build directory (default build); jemalloc and mimalloc (and
# their variants) run bench_kpi_jemalloc and bench_kpi_mimalloc.
# Each case runs in a process of its own; the count is the inclusive cost of
# the pair's two calls over their number of calls, so the loop and the
# benchmark library are left out.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$here/build}
fail() { echo "kpi-instructions: $*" >&2; exit 2; }
(($# <= 3)) || fail "usage: tools/kpi-instructions.sh [BACKEND-SPEC] [SIZE] [PATTERN]"
spec=${1:-slab}
size=${2:-64}
pattern=${3:-lifo}
case $size in 16 | 64 | 256 | 4096) ;; *) fail "SIZE must be 16, 64, 256 or 4096, not '$size'" ;; esac
case $pattern in lifo | batch) ;; *) fail "PATTERN must be lifo or batch, not '$pattern'" ;; esac
name=${spec%%,*}
case $name in
  jemalloc* | mimalloc*) bench=$build/kpi/bench_kpi_${name%%-*} ;;
  *) bench=$build/kpi/bench_kpi ;;
esac
[[ -x $bench ]] || fail "no $bench (build with KMBENCH_BUILD_BENCHMARKS=ON)"
# The benchmark checks the backend and its parameters, naming the known ones.
err=$(KMBENCH_BACKEND=$spec "$bench" --benchmark_list_tests 2>&1 > /dev/null) || fail "BACKEND-SPEC '$spec': $err"
command -v valgrind > /dev/null || fail "needs valgrind (tools/install-deps.sh)"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "| $spec, $size B, $pattern | instructions per pair |"
echo "|---|---|"
for c in own.call IOMalloc.xnu IOMalloc.strict OSMalloc.xnu OSMalloc.strict; do
  KMBENCH_BACKEND=$spec valgrind --tool=callgrind --callgrind-out-file="$out/$c" "$bench" \
    --benchmark_filter="^pair/$c/$pattern/$size/real_time/threads:1\$" --benchmark_min_time=0.2 > "$out/$c.log" 2>&1 ||
    { echo "kpi-instructions: $c failed under valgrind:" >&2; cat "$out/$c.log" >&2; exit 1; }
  # Annotated into a file first: the reader below stops at the end of the loop's calls.
  callgrind_annotate --inclusive=yes --tree=calling "$out/$c" > "$out/$c.txt" 2> "$out/$c.log" ||
    { echo "kpi-instructions: callgrind_annotate failed on $c:" >&2; cat "$out/$c.log" >&2; exit 1; }
  # The calls the benchmark loop makes: lines "  N (P%)  >   ???:FUNCTION (Kx) [...]" under the loop.
  /usr/bin/python3 -c '
import re, sys
case = sys.argv[1]
inside, calls = False, []
for line in open(sys.argv[3]):
    if re.search(r"\*\s+\S*void \(anonymous namespace\)::" + sys.argv[2] + "<", line):
        inside = True
        continue
    if inside:
        m = re.match(r"\s*([\d,]+) .*?>\s+.*\(([\d,]+)x\)", line)
        if not m:
            break
        calls.append((int(m.group(2).replace(",", "")), int(m.group(1).replace(",", ""))))
# The allocation and the free are the two calls made most often (the rest: setup, timing).
calls.sort(reverse=True)
if len(calls) < 2 or calls[0][0] != calls[1][0] or (len(calls) > 2 and calls[2][0] * 10 > calls[0][0]):
    sys.exit(f"kpi-instructions: {case}: no allocation and free pair under the loop")
total = sum(cost / n for n, cost in calls[:2])
print(f"| {case} | {total:.0f} |")' "$c" "$pattern" "$out/$c.txt"
done
