# shellcheck shell=bash
# Sourced by tools/import-speed.sh, tools/profile-speed.sh and
# tools/tracedat-speed.sh: the kmbench they time, the checks a run needs, a
# scratch directory, and one timed run.

# speed_check NAME RUNS FILE...: exits 2 naming what is wrong: RUNS not a
# whole number of 1 or more, a FILE that is not a readable file, or no
# kmbench; sets $kmbench (KMBENCH, else the build's).
speed_check() {
  local name=$1 runs=$2 f
  shift 2
  [[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "$name: RUNS must be a whole number of 1 or more, not '$runs'" >&2; exit 2; }
  for f in "$@"; do
    [[ ! -d $f ]] || { echo "$name: '$f' is a directory, not a capture" >&2; exit 2; }
    [[ -f $f && -r $f ]] || { echo "$name: cannot read '$f'" >&2; exit 2; }
  done
  kmbench=${KMBENCH:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/harness/kmbench}
  [[ -x $kmbench ]] || { echo "$name: no kmbench at '$kmbench' (build first, or set KMBENCH)" >&2; exit 2; }
}

# speed_setup NAME RUNS FILE...: speed_check, then sets $work (removed on
# exit); exits 2 naming what is missing.
speed_setup() {
  speed_check "$@"
  [[ -x /usr/bin/time ]] || { echo "$1: needs /usr/bin/time (Debian package time)" >&2; exit 2; }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
}

# speed_kind FILE: what FILE's first bytes make it: xz-, gzip- or
# zstd-compressed, a trace.dat, a .kmt trace, or text.
speed_kind() {
  case $(head -c 10 "$1" | od -An -tx1 | tr -d ' \n') in
    fd377a585a00*) echo xz-compressed ;;
    1f8b*) echo gzip-compressed ;;
    28b52ffd*) echo zstd-compressed ;;
    17084474726163696e67*) echo "a trace.dat" ;;
    4b4d425452414345*) echo "a .kmt trace" ;;
    *) echo text ;;
  esac
}

# speed_input NAME FILE WANT: exits 2 unless FILE is WANT, one of speed_kind's
# words or "uncompressed"; a compressed file is to be decompressed first, as
# the times would include the decoding and the size would be the compressed one.
speed_input() {
  local kind
  kind=$(speed_kind "$2")
  case $kind in
    "$3") return 0 ;;
    *-compressed) echo "$1: '$2' is $kind: decompress it first (the times and sizes are to be the capture's)" >&2 ;;
    *) [[ $3 != uncompressed ]] || return 0; echo "$1: '$2' is $kind, not $3" >&2 ;;
  esac
  exit 2
}

# timed COMMAND...: removes what the run before wrote ($work/out.*), runs
# it (its messages to $work/run.log) and prints "<nanoseconds> <peak KiB>";
# a failed run prints its messages and exits with its status (kmbench: 2 the
# input is at fault, 1 the run failed).
timed() {
  local t0 t1 rc=0
  rm -f "$work"/out.*
  t0=$(date +%s%N)
  /usr/bin/time -f %M -o "$work/rss" "$@" > "$work/run.log" 2>&1 || rc=$?
  if ((rc != 0)); then
    echo "failed: $*" >&2
    cat "$work/run.log" >&2
    exit "$rc"
  fi
  t1=$(date +%s%N)
  echo "$((t1 - t0)) $(tail -n 1 "$work/rss")"
}
