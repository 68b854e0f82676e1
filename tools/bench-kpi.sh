#!/bin/bash
# The KPI's cost per alloc+free pair on every backend, beside each backend's
# own sized pair, and the table of ratios and budgets (kpi/bench/kpi_table.py).
#   tools/bench-kpi.sh [OUTDIR] [REPETITIONS]     (default /tmp/kmbench-kpi, 5)
# BUILD names the build directory (default build). Every figure of a backend
# comes from one bench_kpi run, so its ratios are measured side by side.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-/tmp/kmbench-kpi}
reps=${2:-5}
build=${BUILD:-$here/build}
mkdir -p "$out"
run() {  # EXECUTABLE BACKEND-SPEC FILE
  [[ -x $1 ]] || { echo "bench-kpi: no $1 (build with KMBENCH_BUILD_BENCHMARKS=ON)" >&2; exit 2; }
  echo "bench-kpi: $2" >&2
  # The budgets' cases run paired (own.call and the KPI round by round, see
  # bench_kpi.cpp), with the inlined own pair beside them; repetitions are
  # interleaved at random, so that a slow spell of the machine falls on every
  # case alike. The unpaired pair/* cases and the recording ones are left out
  # (a recording, once started, stays on: kpi/README.md measures them on their own).
  KMBENCH_BACKEND=$2 "$1" --benchmark_filter='^(paired/|pair/own/)' --benchmark_repetitions="$reps" \
    --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true \
    --benchmark_min_time=0.05 --benchmark_out="$out/$3.json" --benchmark_out_format=json > /dev/null
}
run "$build/kpi/bench_kpi" "zones,cache=on" zones
run "$build/kpi/bench_kpi" slab slab
run "$build/kpi/bench_kpi" buddy buddy
run "$build/kpi/bench_kpi" system system
run "$build/kpi/bench_kpi_jemalloc" jemalloc jemalloc
run "$build/kpi/bench_kpi_mimalloc" mimalloc mimalloc
/usr/bin/python3 "$here/kpi/bench/kpi_table.py" "$out"/{zones,slab,buddy,jemalloc,mimalloc,system}.json
