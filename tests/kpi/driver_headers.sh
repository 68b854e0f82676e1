#!/usr/bin/env bash
# A driver build that includes <IOKit/IOLib.h> and <kmbench/kpi.h> compiles
# no backend header: the KPI reaches backends through AnyBackend only.
#   driver_headers.sh CXX SOURCE_ROOT DRIVER_TU
set -euo pipefail
cxx=$1; root=$2; tu=$3
headers=$("$cxx" -std=c++20 -H -fsyntax-only -I"$root/kpi/include" -I"$root" "$tu" 2>&1) || {
  echo "$headers" >&2
  echo "FAIL: the driver translation unit does not compile" >&2
  exit 1
}
backend='allocators/(zones|slab|buddy|bump|system|jemalloc|mimalloc|physmem|nodemem)/|allocators/(all_backends|registry)\.h'
if grep -Eq "$backend" <<<"$headers"; then
  grep -E "$backend" <<<"$headers" >&2
  echo "FAIL: a driver build compiles the backend headers above" >&2
  exit 1
fi
echo "$(grep -c '^\.' <<<"$headers") headers, none a backend's"
