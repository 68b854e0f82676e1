# shellcheck shell=bash
# Sourced by tools/profile-speed.sh and tools/tracedat-speed.sh: the kmbench
# they time, the checks a run needs, a scratch directory, and one timed run.

# speed_setup NAME FILE...: sets $kmbench (KMBENCH, else the build's) and
# $work (removed on exit); exits 2 naming what is missing.
speed_setup() {
  local name=$1 f
  shift
  kmbench=${KMBENCH:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/harness/kmbench}
  for f in "$@"; do [[ -r $f ]] || { echo "$name: cannot read '$f'" >&2; exit 2; }; done
  [[ -x $kmbench ]] || { echo "$name: no kmbench at '$kmbench' (build first, or set KMBENCH)" >&2; exit 2; }
  [[ -x /usr/bin/time ]] || { echo "$name: needs /usr/bin/time (Debian package time)" >&2; exit 2; }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
}

# timed COMMAND...: removes what the run before wrote ($work/out.*), runs
# it (its messages to $work/run.log) and prints "<nanoseconds> <peak KiB>";
# a failed run prints its messages and exits 1.
timed() {
  local t0 t1
  rm -f "$work"/out.*
  t0=$(date +%s%N)
  if ! /usr/bin/time -f %M -o "$work/rss" "$@" > "$work/run.log" 2>&1; then
    echo "failed: $*" >&2
    cat "$work/run.log" >&2
    exit 1
  fi
  t1=$(date +%s%N)
  echo "$((t1 - t0)) $(tail -n 1 "$work/rss")"
}
