#!/usr/bin/env bash
# Records the example drivers through the KPI (KMBENCH_RECORD) and writes their
# recordings as .kmt files: traces/kpi-rx-driver.kmt and traces/kpi-dma-driver.kmt.
#   tools/capture/record-examples.sh [BUILD_DIR] [OUT_DIR]     (default: build, traces)
# The defaults are the repository's; directories given are taken from the
# current directory. Both, and the built programs, are checked before anything
# runs (exit 2 naming the one at fault); an example that fails exits 1. Each
# .kmt is replaced only by a complete new one (kmbench trace import's rule).
set -euo pipefail
fail() { echo "$0: $1" >&2; exit "${2:-2}"; }
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
out=${2:-$root/traces}
[[ -d $build ]] || fail "BUILD_DIR $build: no such directory"
[[ -d $out ]] || fail "OUT_DIR $out: no such directory"
build=$(cd "$build" && pwd) out=$(cd "$out" && pwd)
for f in "$build/harness/kmbench" "$build"/examples/{rx_driver/kmbench_example_rx_driver,dma_driver/kmbench_example_dma_driver}; do
  [[ -x $f ]] || fail "$f is missing: build the project first (tools/build.sh)"
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for example in rx_driver dma_driver; do
  name=kpi-${example/_/-}
  KMBENCH_BACKEND=slab KMBENCH_RECORD="$tmp/$name.kmr" "$build/examples/$example/kmbench_example_$example" ||
    fail "$example failed (exit status $?)" 1
  "$build/harness/kmbench" trace import "$tmp/$name.kmr" -o "$out/$name.kmt" || fail "$name: import failed" 1
done
