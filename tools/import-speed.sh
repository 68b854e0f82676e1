#!/bin/bash
# Times `kmbench trace import` of an ftrace text capture against `wc -l` on the
# same file, and the import on one thread (--threads 1), alternating the three
# so all see the same machine state, and prints the medians, their ratios, the
# median of the run-by-run ratios (import / wc -l) with a 95% bootstrap
# interval, and the import's MB/s.
#   tools/import-speed.sh CAPTURE.txt [RUNS]        (default 15 runs)
# CAPTURE.txt is the text itself: a compressed one is refused (decompress it
# first), as wc -l and the MB/s would be of the compressed bytes. Make a large
# capture with tools/capture/ftrace-capture.sh. The page cache is warmed
# first; the ratio is the figure to quote, not the absolute times. Bad
# arguments, and a capture kmbench cannot read, exit 2.
set -euo pipefail
(($# >= 1 && $# <= 2)) || { echo "usage: tools/import-speed.sh CAPTURE.txt [RUNS]" >&2; exit 2; }
capture=$1
runs=${2:-15}
# shellcheck source=tools/speed-common.sh
source "$(dirname "$0")/speed-common.sh"
speed_check import-speed "$runs" "$capture"
speed_input import-speed "$capture" text
out=$(mktemp --suffix=.kmt)
times=$(mktemp)
trap 'rm -f "$out" "$times"' EXIT

now() { date +%s%N; }
cat "$capture" > /dev/null  # warm the page cache
for _ in $(seq "$runs"); do
  t0=$(now); "$kmbench" trace import "$capture" -o "$out" -q; t1=$(now)
  wc -l "$capture" > /dev/null; t2=$(now)
  "$kmbench" trace import "$capture" -o "$out" -q --threads 1; t3=$(now)
  echo "$((t1 - t0)) $((t2 - t1)) $((t3 - t2))"
done > "$times"  # a failed import stops the script with its status
/usr/bin/python3 -c '
import random, statistics, sys
size = int(sys.argv[1])
rows = [tuple(map(int, line.split())) for line in sys.stdin]
imp, wc, one = (statistics.median(r[i] for r in rows) / 1e9 for i in range(3))
ratios = [r[0] / r[1] for r in rows]
rng = random.Random(1)  # a 95% bootstrap interval of the run-by-run median (2000 resamples)
boot = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(2000))
print(f"{len(rows)} runs, {size / 1e6:.0f} MB, {sys.argv[2]} cores: import median {imp * 1e3:.1f} ms "
      f"({size / 1e6 / imp:.0f} MB/s), wc -l median {wc * 1e3:.1f} ms; import / wc -l = {imp / wc:.2f}x "
      f"(run by run: median {statistics.median(ratios):.2f}x, 95% interval {boot[49]:.2f} to {boot[1949]:.2f}); "
      f"on one thread (--threads 1) {one * 1e3:.1f} ms = {one / wc:.2f}x")
' "$(stat -c %s "$capture")" "$(nproc)" < "$times"
