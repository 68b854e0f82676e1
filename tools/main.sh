#!/usr/bin/env bash
# The main job: installs dependencies, builds, runs the default benchmark
# matrix, makes the charts and the report, then prints where they are.
#   tools/main.sh [RUN_DIR]      (default: results/runs/<date-time>-default)
# Exits 1 when a cell failed (the report still shows the others and says which).
set -euo pipefail
usage="usage: tools/main.sh [RUN_DIR]   (a new or empty directory; default results/runs/<date-time>-default)"
case "${1:-}" in
  -h|--help) echo "$usage"; exit 0 ;;
  -*) echo "tools/main.sh: unknown option '$1'" >&2; echo "$usage" >&2; exit 2 ;;
esac
if [ $# -gt 1 ]; then
  echo "tools/main.sh: one RUN_DIR at most, got $#: $*" >&2; echo "$usage" >&2; exit 2
fi
# RUN_DIR is the caller's (relative to where they are), and is checked before
# anything is installed or built.
if [ $# -eq 1 ]; then
  case "$1" in /*) run=$1 ;; *) run=$PWD/$1 ;; esac
  if [ -e "$run" ] && { [ ! -d "$run" ] || [ -n "$(ls -A "$run")" ]; }; then
    echo "tools/main.sh: $1 exists and is not an empty directory: give a new one" \
         "(kmbench run MATRIX -o DIR --resume continues a run)" >&2
    exit 2
  fi
fi
cd "$(dirname "$0")/.."
run=${run:-results/runs/$(date -u +%Y%m%d-%H%M%S)-default}

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
