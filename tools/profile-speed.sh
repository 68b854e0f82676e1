#!/bin/bash
# Times `kmbench trace profile` of a capture against `kmbench trace import` of
# the same capture, the two in turn so both see the same machine state, and
# prints the median of the run-by-run ratios (profile / import) with a 95%
# bootstrap interval, the medians of each and their peak resident memory.
#   tools/profile-speed.sh CAPTURE [RUNS]        (default 21 runs of each)
# A compressed capture is refused (decompress it first: the times would
# include the decoding and the size be the compressed one). The page cache is
# warmed first; quote the ratio, not the absolute times. Bad arguments, and a
# capture kmbench cannot read, exit 2.
set -euo pipefail
(($# >= 1 && $# <= 2)) || { echo "usage: tools/profile-speed.sh CAPTURE [RUNS]" >&2; exit 2; }
capture=$1
runs=${2:-21}
# shellcheck source=tools/speed-common.sh
source "$(dirname "$0")/speed-common.sh"
speed_setup profile-speed "$runs" "$capture"
speed_input profile-speed "$capture" uncompressed
cat "$capture" > /dev/null  # warm the page cache
timed "$kmbench" trace import "$capture" -o "$work/out.kmt" > /dev/null  # and the binary
for _ in $(seq "$runs"); do
  imported=$(timed "$kmbench" trace import "$capture" -o "$work/out.kmt")
  profiled=$(timed "$kmbench" trace profile "$capture" -o "$work/out.kprof.json")
  echo "$imported $profiled"
done > "$work/times"  # a failed run stops the script with its status
/usr/bin/python3 -c '
import random, statistics, sys
size = int(sys.argv[1])
rows = [tuple(map(int, line.split())) for line in sys.stdin]
if not rows:
    sys.exit("no run finished")
imp, prof = (statistics.median(r[i] for r in rows) / 1e9 for i in (0, 2))
ratios = [r[2] / r[0] for r in rows]
ratio = statistics.median(ratios)
# A 95% bootstrap interval of that median (2000 resamples, fixed seed).
rng = random.Random(1)
boot = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(2000))
lo, hi = boot[49], boot[1949]
imp_rss, prof_rss = (max(r[i] for r in rows) / 1024 for i in (1, 3))
print(f"{len(rows)} runs of each, {size / 1e6:.0f} MB, {sys.argv[2]} cores: import median {imp * 1e3:.1f} ms "
      f"(peak {imp_rss:.0f} MiB), profile median {prof * 1e3:.1f} ms (peak {prof_rss:.0f} MiB); "
      f"profile / import, run by run: median {ratio:.3f} (95% interval {lo:.3f} to {hi:.3f})")
' "$(stat -c %s "$capture")" "$(nproc)" < "$work/times"
