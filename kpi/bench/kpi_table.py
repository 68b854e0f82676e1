#!/usr/bin/python3
"""The KPI's cost per pair beside the backend's own, from bench_kpi runs.

    kpi/bench/kpi_table.py slab.json zones.json ...

Each file is one bench_kpi run (--benchmark_out, with repetitions; medians
are used). The budgets are checked on the paired/* benchmarks, which time a
round of the backend's own called pair (own.call) and a round of the KPI case
in turn, iteration by iteration, so the two figures of a row see the same
machine. Prints, per backend, size and pattern, the nanoseconds per
alloc+free pair per thread and the ratios the KPI is held to:

  strict IOMalloc/IOFree  <= 1.5 x own.call + 5 ns
  strict OSMalloc/OSFree  <= 2 x own.call + 5 ns
  xnu IOMalloc/IOFree     <= 1.2 x own.call + 2 ns
  2 threads               per-thread cost <= 1.3 x one thread's

own.call is the backend's own sized pair called as a function (as a kext
calls kalloc); own (from pair/own, when run) is the same inlined into the
loop. A budget that is missed is marked with "!". The 2-thread column gives
the KPI's per-thread ratio and, in brackets, the backend's own ratio over the
same pattern, from the same paired runs: where the backend itself does not
scale, neither can a path through it. A 2-thread cell is marked "!" when the
KPI's ratio is above 1.3 and above 1.3 times the backend's own.
"""
import json
import statistics
import sys
from collections import defaultdict

BUDGETS = {
    "IOMalloc.strict": (1.5, 5.0),
    "OSMalloc.strict": (2.0, 5.0),
    "IOMalloc.xnu": (1.2, 2.0),
    "OSMalloc.xnu": (2.0, 5.0),
}
SCALE = 1.3  # 2 threads: per-thread cost over one thread's


def benchmarks(doc):
    """(kind, case, pattern, size, threads, benchmark) for each median or lone run."""
    for b in doc["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        # <kind>/<case>/<pattern>/<size>/real_time/threads:<n>
        parts = (b.get("run_name") or b["name"]).split("/")
        yield parts[0], parts[1], parts[2], int(parts[3]), int(b.get("threads", 1)), b


def load(path):
    """The backend's name, {(case, pattern, size, threads): (own.call ns, KPI ns)} from paired/*,
    and {(pattern, size): ns} of pair/own (inlined), per pair per thread."""
    with open(path) as f:
        doc = json.load(f)
    backend = doc.get("context", {}).get("kmbench_backend", path)
    paired, inlined = defaultdict(list), defaultdict(list)
    for kind, case, pattern, size, threads, b in benchmarks(doc):
        if kind == "paired" and "own_ns" in b and "kpi_ns" in b:
            paired[(case, pattern, size, threads)].append((b["own_ns"], b["kpi_ns"]))
        elif kind == "pair" and case == "own" and threads == 1 and "items_per_second" in b:
            inlined[(pattern, size)].append(1e9 / b["items_per_second"])
    if not paired:
        raise ValueError("no paired/* benchmarks with own_ns and kpi_ns (run bench_kpi with them)")
    med = lambda rows, i: statistics.median(r[i] for r in rows)
    return (backend, {k: (med(v, 0), med(v, 1)) for k, v in paired.items()},
            {k: statistics.median(v) for k, v in inlined.items()})


def main(paths):
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    missed = cells = scale_missed = scale_cells = 0
    print("| backend | size | pattern | own | own.call | case | 1 thread | ratio | budget | 2 threads (own) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        try:
            backend, m, inlined = load(path)
        except (OSError, ValueError, KeyError, IndexError) as e:
            print(f"kpi_table.py: {path}: {e}", file=sys.stderr)
            return 1
        for size in sorted({k[2] for k in m}):
            for pattern in ("lifo", "batch"):
                own = inlined.get((pattern, size))
                own_text = f"{own:.1f}" if own is not None else "-"
                for case, (factor, extra) in BUDGETS.items():
                    one, two = m.get((case, pattern, size, 1)), m.get((case, pattern, size, 2))
                    if one is None:
                        continue
                    call, kpi = one
                    budget = factor * call + extra
                    cells += 1
                    missed += kpi > budget
                    mark = " !" if kpi > budget else ""
                    scale = "-"
                    if two is not None:
                        ratio, own_ratio = two[1] / kpi, two[0] / call
                        over = ratio > SCALE and ratio > SCALE * own_ratio
                        scale_cells += 1
                        scale_missed += over
                        scale = f"{ratio:.2f}x ({own_ratio:.2f}x){' !' if over else ''}"
                    print(f"| {backend} | {size} | {pattern} | {own_text} | {call:.1f} | {case} | {kpi:.1f}{mark} |"
                          f" {kpi / call:.2f}x | {budget:.1f} | {scale} |")
    print(f"\n{missed} of {cells} budgets missed; 2 threads: {scale_missed} of {scale_cells} cells scale worse "
          f"than {SCALE}x and {SCALE}x the backend's own", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
