#!/bin/bash
# Times `kmbench trace import` of a trace.dat against the import of its
# `trace-cmd report` text, and against the trace.dat read by libtracecmd
# (KMBENCH_TRACEDAT_READER=libtracecmd), the three in turn so all see the same
# machine state, and prints the medians, the run-by-run ratios and each one's
# peak resident memory (the largest process: the import or its reading child).
#   tools/tracedat-speed.sh CAPTURE.dat CAPTURE.txt [RUNS]      (default 9 runs of each)
# CAPTURE.txt is `trace-cmd report -i CAPTURE.dat > CAPTURE.txt`. The page
# cache is warmed first; quote the ratios, not the absolute times. CAPTURE.dat
# must be a trace.dat and CAPTURE.txt text (not compressed); bad arguments,
# and a capture kmbench cannot read, exit 2.
set -euo pipefail
(($# >= 2 && $# <= 3)) || { echo "usage: tools/tracedat-speed.sh CAPTURE.dat CAPTURE.txt [RUNS]" >&2; exit 2; }
dat=$1
txt=$2
runs=${3:-9}
# shellcheck source=tools/speed-common.sh
source "$(dirname "$0")/speed-common.sh"
speed_setup tracedat-speed "$runs" "$dat" "$txt"
speed_input tracedat-speed "$dat" "a trace.dat"
speed_input tracedat-speed "$txt" text
# One import of "$1" with the reader "$2" (its child's memory counted): "<nanoseconds> <peak KiB>".
import_with() { timed env KMBENCH_TRACEDAT_READER="$2" "$kmbench" trace import "$1" -o "$work/out.kmt" -q; }
cat "$dat" "$txt" > /dev/null  # warm the page cache
import_with "$dat" auto > /dev/null  # and the binary
for _ in $(seq "$runs"); do
  own=$(import_with "$dat" auto)
  text=$(import_with "$txt" auto)
  lib=$(import_with "$dat" libtracecmd)
  echo "$own $text $lib"
done > "$work/times"  # a failed run stops the script with its status
/usr/bin/python3 -c '
import statistics, sys
rows = [tuple(map(int, line.split())) for line in sys.stdin]
if not rows:
    sys.exit("no run finished")
own, text, lib = (statistics.median(r[i] for r in rows) / 1e9 for i in (0, 2, 4))
own_rss, text_rss, lib_rss = (max(r[i] for r in rows) / 1024 for i in (1, 3, 5))
vs_text = statistics.median(r[0] / r[2] for r in rows)
vs_lib = statistics.median(r[0] / r[4] for r in rows)
print(f"{len(rows)} runs of each on {sys.argv[1]} cores: trace.dat {own:.3f} s (peak {own_rss:.0f} MiB), "
      f"its text {text:.3f} s (peak {text_rss:.0f} MiB), trace.dat by libtracecmd {lib:.3f} s (peak {lib_rss:.0f} MiB); "
      f"run by run, trace.dat / text: median {vs_text:.2f}, own reader / libtracecmd: median {vs_lib:.2f}")
' "$(nproc)" < "$work/times"
