#!/usr/bin/env bash
# How much each backend's cost depends on which object of a class each free
# takes (docs/profiles.md, "What a profile cannot carry"): each capture as
# recorded and with its frees re-pointed within their classes at random, to
# the oldest live object and to the newest (tools/reorder-frees.py), replayed
# on every backend in one matrix run, side by side and interleaved. Prints the
# median allocator ns/op of each, and each reordering's over the recording's,
# called slower or faster where `kmbench compare`'s test says it differs.
#   tools/bench-free-order.sh [OUTDIR] [CAPTURE...]
# Default: /tmp/kmbench-free-order and the ftrace captures in traces/. REPS
# sets the repetitions (default 9), THREADS the replay threads (default 2),
# BUILD the build directory (default build). The first argument is always
# OUTDIR. The run goes to OUTDIR/run.new/run and replaces OUTDIR/run only when
# every cell succeeded; bad arguments exit 2 before anything is written.
set -euo pipefail
# shellcheck source=tools/bench-common.sh
source "$(dirname "$0")/bench-common.sh"
bench_setup bench-free-order /tmp/kmbench-free-order 9 "$@"
mkdir -p "$out/traces"
matrix=$out/free-order.toml
bench_matrix "$matrix.new" free-order 20261207
for i in "${!captures[@]}"; do
  capture=${captures[i]} name=${names[i]}
  "$kmbench" trace dump "$capture" > "$out/traces/$name.txt"
  for order in recorded random oldest newest; do
    /usr/bin/python3 "$here/tools/reorder-frees.py" --order "$order" "$out/traces/$name.txt" "$out/traces/$name-$order.txt"
    "$kmbench" trace undump "$out/traces/$name-$order.txt" -o "$out/traces/$name-$order.kmt"
    rm "$out/traces/$name-$order.txt"
    printf '\n[[trace]]\npath = "traces/%s-%s.kmt"\nlabel = "%s:%s"\n' "$name" "$order" "$name" "$order" >> "$matrix.new"
  done
  rm "$out/traces/$name.txt"
done
mv "$matrix.new" "$matrix"
bench_run "$matrix"
/usr/bin/python3 - "$out/run/cells.csv" "$here/plots" > "$out/free-order.md.new" <<'PY'
import collections, csv, statistics, sys
sys.path.insert(0, sys.argv[2])
from stats import compare_samples, judge  # the run comparison's own statistics

ns = collections.defaultdict(list)
with open(sys.argv[1]) as f:
    for row in csv.DictReader(f):
        if row["status"] == "ok":
            ns[(row["label"], row["backend"])].append(float(row["allocator_ns_per_op"]))
captures = sorted({label.split(":")[0] for label, _ in ns})
backends = sorted({backend for _, backend in ns})
orders = ("random", "oldest", "newest")
rows = {}
for c in captures:
    for b in backends:
        for o in orders:
            r = compare_samples(ns[(c + ":recorded", b)], ns[(f"{c}:{o}", b)])
            r["better"] = "lower"
            rows[(c, b, o)] = r
judge([r for r in rows.values() if r.get("p") is not None])
mark = {"worse": "slower", "better": "faster"}
print("| capture | backend | recorded ns/op | random | oldest first | newest first |")
print("|---|---|---|---|---|---|")
for c in captures:
    for i, b in enumerate(backends):
        cells = [f"{statistics.median(ns[(c + ':recorded', b)]):.1f}"]
        for o in orders:
            r = rows[(c, b, o)]
            if r.get("ratio") is None:
                cells.append(r["verdict"])
                continue
            cells.append(f"{r['median_b']:.1f} ({r['ratio']:.2f}x{', ' + mark[r['verdict']] if r['verdict'] in mark else ''})")
        print(f"| {c if i == 0 else ''} | {b} | " + " | ".join(cells) + " |")
print(f"\nMedians of {min(len(v) for v in ns.values())} or more repetitions. \"slower\" and \"faster\": a two-sided "
      "Mann-Whitney U test, Benjamini-Hochberg corrected over the table, below 0.05, a 95% bootstrap interval "
      "of the ratio without 1, and more than 3% from 1 (`kmbench compare`'s rule); no word: no difference shown.")
PY
mv "$out/free-order.md.new" "$out/free-order.md"
cat "$out/free-order.md"
