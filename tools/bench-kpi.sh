#!/bin/bash
# The KPI's cost per alloc+free pair on every backend, beside each backend's
# own sized pair, and the table of ratios and budgets (kpi/bench/kpi_table.py).
#   tools/bench-kpi.sh [OUTDIR] [REPETITIONS]     (default /tmp/kmbench-kpi, 5)
# BUILD names the build directory (default build). Every figure of a backend
# comes from one bench_kpi run, so its ratios are measured side by side. Each
# backend's OUTDIR/BACKEND.json is replaced only once its run has succeeded;
# bad arguments exit 2 before anything runs or is written.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
fail() { echo "bench-kpi: $*" >&2; exit 2; }
(($# <= 2)) || fail "usage: tools/bench-kpi.sh [OUTDIR] [REPETITIONS]"
out=${1:-/tmp/kmbench-kpi}
reps=${2:-5}
build=${BUILD:-$here/build}
[[ $reps =~ ^[1-9][0-9]*$ ]] || fail "REPETITIONS must be a whole number of 1 or more, not '$reps'"
[[ ! -e $out || -d $out ]] || fail "OUTDIR '$out' exists and is not a directory"
for exe in bench_kpi bench_kpi_jemalloc bench_kpi_mimalloc; do
  [[ -x $build/kpi/$exe ]] || fail "no $build/kpi/$exe (build with KMBENCH_BUILD_BENCHMARKS=ON)"
done
mkdir -p "$out" 2> /dev/null || fail "cannot create OUTDIR '$out'"
run() {  # EXECUTABLE BACKEND-SPEC FILE
  echo "bench-kpi: $2" >&2
  # The budgets' cases run paired (own.call and the KPI round by round, see
  # bench_kpi.cpp), with the inlined own pair beside them; repetitions are
  # interleaved at random, so that a slow spell of the machine falls on every
  # case alike. The unpaired pair/* cases and the recording ones are left out
  # (a recording, once started, stays on: kpi/README.md measures them on their own).
  KMBENCH_BACKEND=$2 "$1" --benchmark_filter='^(paired/|pair/own/)' --benchmark_repetitions="$reps" \
    --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true \
    --benchmark_min_time=0.05 --benchmark_out="$out/$3.json.new" --benchmark_out_format=json > /dev/null ||
    { echo "bench-kpi: $2: $1 failed (exit $?); $out/$3.json is kept as it was" >&2; exit 1; }
  mv "$out/$3.json.new" "$out/$3.json"
}
run "$build/kpi/bench_kpi" "zones,cache=on" zones
run "$build/kpi/bench_kpi" slab slab
run "$build/kpi/bench_kpi" buddy buddy
run "$build/kpi/bench_kpi" system system
run "$build/kpi/bench_kpi_jemalloc" jemalloc jemalloc
run "$build/kpi/bench_kpi_mimalloc" mimalloc mimalloc
/usr/bin/python3 "$here/kpi/bench/kpi_table.py" "$out"/{zones,slab,buddy,jemalloc,mimalloc,system}.json
