#!/usr/bin/env bash
# The main job: installs dependencies, builds, runs the default benchmark
# matrix and makes the charts and the report, then prints where they are.
#   tools/main.sh [OUT_DIR]      (default: results/runs/<date-time>)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/runs/$(date +%Y%m%d-%H%M%S)}

tools/install-deps.sh
tools/build.sh build
mkdir -p "$out"
build/harness/kmbench version --json > "$out/environment.json"
build/harness/kmbench list > "$out/backends.txt"
build/allocators/bench/bench_backends --benchmark_repetitions=5 \
  --benchmark_report_aggregates_only=true \
  --benchmark_out="$out/bench_backends.json" --benchmark_out_format=json
echo "kmbench: results in $out"
