#!/usr/bin/env bash
# Records a user-space program's allocations with the LD_PRELOAD recorder and
# keeps the recording of its busiest process (the one with the most
# operations: cc1plus under g++, git itself) as OUT.
#   tools/capture/record-program.sh [-b BUILD_DIR] OUT.kmt -- COMMAND [ARG...]
# BUILD_DIR holds the built recorder and kmbench (default: the repository's
# build; a relative one is taken from the current directory).
# Every process the command starts writes its own recording; the others are
# listed and dropped. OUT (not a directory, in one that exists and can be
# written), BUILD_DIR and COMMAND are checked before the command runs: exit 2
# naming the one at fault. OUT is replaced only by a complete recording of a
# command that succeeded: when the command fails (exit 1, its status said) the
# recording goes to OUT.failed and OUT is left as it was; when no process
# recorded an operation nothing is written, and the exit status is 1.
set -euo pipefail
fail() { echo "$0: $1" >&2; exit "${2:-2}"; }
build=$(cd "$(dirname "$0")/../.." && pwd)/build
if [[ ${1:-} == -b ]]; then
  [[ $# -ge 2 ]] || fail "-b needs a BUILD_DIR"
  build=$2
  shift 2
fi
if [[ $# -lt 3 || $2 != -- ]]; then
  echo "usage: $0 [-b BUILD_DIR] OUT.kmt -- COMMAND [ARG...]" >&2
  exit 2
fi
out=$1
shift 2
[[ ! -d $out ]] || fail "$out: is a directory (OUT is the .kmt file to write)"
[[ ! -e $out || -f $out ]] || fail "$out: not a regular file"
[[ -d $(dirname -- "$out") ]] || fail "$out: no such directory $(dirname -- "$out")"
command -v -- "$1" > /dev/null || fail "command not found: $1"
[[ -d $build ]] || fail "-b $build: no such directory"
build=$(cd "$build" && pwd)  # the command's processes may change directory
recorder=$build/tools/capture/recorder/libkmbench_recorder.so
kmbench=$build/harness/kmbench
for f in "$recorder" "$kmbench"; do
  [[ -e $f ]] || fail "$f is missing: build the project first (tools/build.sh)"
done
# The recordings go to $tmp; the one kept is copied to $part, beside OUT (a
# symlink's target), which then becomes OUT or OUT.failed.
tmp="" part=""
trap '[[ -z $tmp ]] || rm -rf -- "$tmp"; [[ -z $part ]] || rm -f -- "$part"' EXIT
tmp=$(mktemp -d)
real=$(readlink -f -- "$out")
part=$(mktemp --suffix=.part "$real.XXXXXX" 2>/dev/null) || fail "$out: cannot write in $(dirname -- "$real")"

status=0
LD_PRELOAD=$recorder KMBENCH_RECORD_OUT="$tmp/rec.%p.kmt" "$@" || status=$?
failed=""
(( status == 0 )) || failed="the command failed (exit status $status)"
best="" best_ops=0 n=0
for f in "$tmp"/rec.*.kmt; do
  [[ -e $f ]] || break
  n=$((n + 1))
  if ! ops=$("$kmbench" trace info --json "$f" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["ops"])'); then
    echo "$(basename "$f"): cannot be read, dropped"
    continue
  fi
  echo "$(basename "$f"): $ops ops"
  if (( ops > best_ops )); then best=$f best_ops=$ops; fi
done
[[ -n $best ]] || fail "${failed:+$failed; }no operation recorded (recordings written: $n): nothing written, $out left as it was" 1

dest=$real name=$out
[[ -z $failed ]] || dest=$out.failed name=$out.failed
if [[ -f $dest ]]; then mode=$(stat -c %a -- "$dest"); else mode=$(printf '%o' $((0666 & ~0$(umask)))); fi
if ! { cp -- "$best" "$part" && chmod "$mode" "$part" && mv -fT -- "$part" "$dest"; }; then
  tmp=""  # kept, and named
  fail "cannot write $name: the recording is kept in $best"
fi
part=""
echo "kept $(basename "$best") as $name ($best_ops ops)"
[[ -z $failed ]] || fail "$failed: $out is left as it was" 1
