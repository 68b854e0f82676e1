#!/usr/bin/env bash
# Records the example drivers through the KPI (KMBENCH_RECORD) and writes their
# recordings as .kmt files: traces/kpi-rx-driver.kmt and traces/kpi-dma-driver.kmt.
#   tools/capture/record-examples.sh [BUILD_DIR] [OUT_DIR]     (default: build, traces)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
out=${2:-traces}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for example in rx_driver dma_driver; do
  name=kpi-${example/_/-}
  KMBENCH_BACKEND=slab KMBENCH_RECORD="$tmp/$name.kmr" "$build/examples/$example/kmbench_example_$example"
  "$build/harness/kmbench" trace import "$tmp/$name.kmr" -o "$out/$name.kmt"
done
