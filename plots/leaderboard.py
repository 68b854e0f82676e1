"""The report's answer to "which backend for this load, and by how much?": every
backend compared with a baseline backend on the same source, threads,
placement, topology and mode, all comparisons judged together (stats.judge);
and from those, one leaderboard per workload or trace."""
import math

import numpy as np

from runs import fmt_num, metric_rows
from stats import judge

SAME_CELL = ("label", "threads", "placement", "topology", "mode")
LEADERBOARD_METRICS = {
    "allocator_ns_per_op": ("allocator_ns_per_op",),
    "alloc_p99_ns": ("latency", "alloc", "p99_ns"),
    "peak_footprint_bytes": ("footprint", "peak_footprint_bytes"),
    "fragmentation": ("footprint", "fragmentation"),
}


def pick_baseline(run, wanted=None):
    """The baseline backend: `wanted` if given (the run must have cells of it: a backend the catalogue
    lists but the matrix did not run is no baseline), else system when the run has cells of it, else the
    run's first backend; None for a run without cells and no `wanted`. Raises ValueError naming the run's
    backends."""
    backends = [b for b in run.backend_order() if any(e["backend"] == b for e in run.entries)]
    if wanted:
        if wanted not in backends:
            raise ValueError(f"--baseline {wanted}: the run has no such backend "
                             f"({'it has ' + ', '.join(backends) if backends else 'it has no cells'})")
        return wanted
    if not backends:
        return None
    return "system" if "system" in backends else backends[0]


def baseline_rows(run, base, alpha, margin):
    """One row per (group, metric) of every other backend against the baseline's group of the same
    source, threads, placement, topology and mode; judged together."""
    groups = run.groups()
    base_of = {tuple(es[0][k] for k in SAME_CELL): g for g, es in groups.items() if es[0]["backend"] == base}
    rows = []
    for group, es in sorted(groups.items()):
        e = es[0]
        base_group = base_of.get(tuple(e[k] for k in SAME_CELL))
        if e["backend"] == base or base_group is None:
            continue
        rows += metric_rows(run, base_group, run, group)
    return judge(rows, alpha, margin)


def ratio_text(row):
    """"1.52× [1.48–1.55]" or the reason there is no ratio."""
    if row is None:
        return "—"
    if row.get("ratio") is None:
        return row["verdict"]
    lo, hi = row["ci"]
    ci = f" [{lo:.2f}–{hi:.2f}]" if math.isfinite(lo) and math.isfinite(hi) else ""
    return f"{row['ratio']:.2f}×{ci}"


def board(run, label, base, by_key):
    """The leaderboard of one source at its largest thread count in its primary placement: a dict with
    the heading's facts and rows ranked by median allocator ns/op (backends without a value last)."""
    placement, topology, mode = run.primary(label)
    threads = max(run.label_threads(label))
    entries = [es[0] for es in run.groups().values()
               if es[0]["label"] == label and es[0]["threads"] == threads and es[0]["placement"] == placement
               and es[0]["topology"] == topology and es[0]["mode"] == mode]
    rows = []
    for e in sorted(entries, key=lambda e: run.backend_key(e["backend"])):
        group = e["group"]
        medians = {k: (float(np.median(v)) if (v := run.values(group, path)) else None)
                   for k, path in LEADERBOARD_METRICS.items()}
        reps = run.groups()[group]
        rows.append({"backend": e["backend"], "group": group, "medians": medians,
                     "ok": sum(1 for x in reps if x["status"] == "ok"), "reps": len(reps),
                     "vs_base_ns": by_key.get((group, "allocator_ns_per_op")),
                     "vs_base_footprint": by_key.get((group, "peak_footprint_bytes"))})
    rows.sort(key=lambda r: (r["medians"]["allocator_ns_per_op"] is None,
                             r["medians"]["allocator_ns_per_op"] or 0.0))
    return {"label": label, "threads": threads, "placement": placement, "topology": topology, "mode": mode,
            "base": base, "rows": rows}


def leaderboards(run, base, rows):
    """One board per source, in the matrix's order."""
    by_key = {(r["group"], r["metric"]): r for r in rows}
    return [board(run, label, base, by_key) for label in run.labels()]


def board_cells(b):
    """The table rows of one board: rank, backend, then the figures as text."""
    out = []
    for rank, r in enumerate(b["rows"], 1):
        m = r["medians"]
        is_base = r["backend"] == b["base"]
        have = m["allocator_ns_per_op"] is not None
        out.append((rank if have else "—", r["backend"] + (" (baseline)" if is_base else ""),
                    fmt_num(m["allocator_ns_per_op"]),
                    "1" if is_base and have else ratio_text(r["vs_base_ns"]),
                    "" if is_base or r["vs_base_ns"] is None else r["vs_base_ns"]["verdict"],
                    fmt_num(m["alloc_p99_ns"]), fmt_num(m["peak_footprint_bytes"], "bytes"),
                    "1" if is_base and have else ratio_text(r["vs_base_footprint"]),
                    fmt_num(m["fragmentation"]), f"{r['ok']}/{r['reps']}"))
    return out
