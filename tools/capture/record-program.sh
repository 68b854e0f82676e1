#!/usr/bin/env bash
# Records a user-space program's allocations with the LD_PRELOAD recorder and
# keeps the recording of its busiest process (the one with the most
# operations: cc1plus under g++, git itself) as OUT.
#   tools/capture/record-program.sh [-b BUILD_DIR] OUT.kmt -- COMMAND [ARG...]
# Every process the command starts writes its own recording; the others are
# listed and dropped.
set -euo pipefail
build=build
if [[ ${1:-} == -b ]]; then
  build=$2
  shift 2
fi
if [[ $# -lt 3 || $2 != -- ]]; then
  echo "usage: $0 [-b BUILD_DIR] OUT.kmt -- COMMAND [ARG...]" >&2
  exit 2
fi
out=$1
shift 2
root=$(cd "$(dirname "$0")/../.." && pwd)
recorder=$root/$build/tools/capture/recorder/libkmbench_recorder.so
kmbench=$root/$build/harness/kmbench
for f in "$recorder" "$kmbench"; do
  [[ -e $f ]] || { echo "$0: $f is missing: build the project first (tools/build.sh)" >&2; exit 2; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
LD_PRELOAD=$recorder KMBENCH_RECORD_OUT="$tmp/rec.%p.kmt" "$@"
best= best_ops=-1
for f in "$tmp"/rec.*.kmt; do
  [[ -e $f ]] || { echo "$0: the command wrote no recording" >&2; exit 1; }
  ops=$("$kmbench" trace info --json "$f" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["ops"])')
  echo "$(basename "$f"): $ops ops"
  if (( ops > best_ops )); then best=$f best_ops=$ops; fi
done
cp "$best" "$out"
echo "kept $(basename "$best") as $out ($best_ops ops)"
