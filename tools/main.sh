#!/usr/bin/env bash
# The main job: installs dependencies, builds, runs the default benchmark
# matrix, makes the charts and the report, then prints where they are.
#   tools/main.sh [RUN_DIR]      (default: results/runs/<date-time>-default)
# Exits 1 when a cell failed (the report still shows the others and says which).
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-results/runs/$(date -u +%Y%m%d-%H%M%S)-default}

tools/install-deps.sh
tools/build.sh build
set +e
build/harness/kmbench run harness/matrix/matrices/default.toml -o "$run"
status=$?
set -e
if [ $status -gt 1 ]; then
  exit $status  # the matrix or an option was rejected: nothing ran
fi
build/harness/kmbench plot "$run"
echo "kmbench: results in $run (index.json, cells/, benchmark.json, cells.csv)"
echo "kmbench: report at $run/report/report.html"
if [ $status -ne 0 ]; then
  echo "kmbench: some cells failed; the report's Failures section lists them with their stderr"
fi
exit $status
