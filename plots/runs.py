"""Reading a kmbench run directory (results/README.md) and the statistics
shared by `kmbench compare` and the report.

A missing or failed cell has no value: it is absent from every list here,
never a zero.
"""
import json
import math
import os
import sys

import numpy as np
from scipy import stats

EXIT_BAD_INPUT = 2

# (key, JSON path inside a cell's result, unit, which way is better)
METRICS = [
    ("allocator_ns_per_op", ("allocator_ns_per_op",), "ns", "lower"),
    ("ops_per_sec", ("ops_per_sec",), "ops/s", "higher"),
    ("alloc_p50_ns", ("latency", "alloc", "p50_ns"), "ns", "lower"),
    ("alloc_p99_ns", ("latency", "alloc", "p99_ns"), "ns", "lower"),
    ("free_p99_ns", ("latency", "free", "p99_ns"), "ns", "lower"),
    ("peak_footprint_bytes", ("footprint", "peak_footprint_bytes"), "bytes", "lower"),
    ("fragmentation", ("footprint", "fragmentation"), "footprint/live", "lower"),
]


class BadInput(Exception):
    """A run directory or file that cannot be read; exits 2."""


def fail_bad_input(err):
    print(f"kmbench: {err}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise BadInput(f"{path}: cannot read ({e.strerror})")
    except json.JSONDecodeError as e:
        raise BadInput(f"{path}:{e.lineno}: not valid JSON ({e.msg})")


def dig(obj, path):
    """obj[path[0]][path[1]]... as a float, or None when absent or not a number."""
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    if isinstance(obj, bool) or not isinstance(obj, (int, float)):
        return None
    v = float(obj)
    return v if math.isfinite(v) else None


class Run:
    """One run directory: its index and cell files."""

    def __init__(self, run_dir):
        self.dir = run_dir
        index_path = os.path.join(run_dir, "index.json")
        if not os.path.isfile(index_path):
            raise BadInput(f"{run_dir}: not a run directory (no index.json)")
        self.index = read_json(index_path)
        if self.index.get("schema") != "kmbench.run/1":
            raise BadInput(f"{index_path}: not a kmbench.run/1 index")
        self.cells = []  # cell files (dicts), in index order; pending cells have none
        for entry in self.index.get("cells", []):
            path = os.path.join(run_dir, entry.get("file", ""))
            if entry.get("status") == "pending" or not os.path.isfile(path):
                continue
            cell = read_json(path)
            if cell.get("schema") != "kmbench.run-cell/1":
                raise BadInput(f"{path}: not a kmbench.run-cell/1 file")
            self.cells.append(cell)
        self.entries = self.index.get("cells", [])

    def backend_order(self):
        """The backends in the catalogue's order (index "backends"); a run
        written before the index listed them: in order of first appearance."""
        order = list(self.index.get("backends") or [])
        for e in self.entries:
            if e.get("backend") not in order:
                order.append(e.get("backend"))
        return order

    def backend_key(self, backend):
        order = self.backend_order()
        return (order.index(backend) if backend in order else len(order), backend)

    def op_kinds(self):
        """The op kinds results report latency for, in the replay's order
        (index "op_kinds"); for an older run, those its cells report."""
        kinds = list(self.index.get("op_kinds") or [])
        if not kinds:
            for c in self.ok():
                for k in (c["result"].get("latency") or {}):
                    if k not in kinds:
                        kinds.append(k)
        return kinds

    @property
    def run_id(self):
        return self.index.get("run_id", os.path.basename(os.path.normpath(self.dir)))

    @property
    def environment(self):
        return self.index.get("environment", {})

    def machine_line(self):
        m = self.environment.get("machine", {})
        mem = m.get("memory_bytes")
        mem_text = f", {mem / 2**30:.0f} GiB" if mem else ""
        return (f"{m.get('cpu_model', 'unknown CPU')}, {m.get('online_cpus', '?')} CPUs{mem_text}, "
                f"{m.get('kernel', '')} — run {self.run_id}")

    def machine_state(self):
        """(label, text) rows of the kernel's state when the run began; a fact the
        run could not read says why, one it predates says "not recorded"."""
        m = self.environment.get("machine", {})
        not_read = m.get("not_read", {})

        def row(label, key, fmt):
            if key not in m:
                return (label, "not recorded")
            if m[key] is None:
                return (label, f"not read: {not_read.get(key, 'no reason recorded')}")
            return (label, fmt(m[key]))

        def governor(g):
            if isinstance(g, str):
                return f"{g} (every CPU)"
            return "; ".join(f"{k} on CPUs {cpu_ranges(v)}" for k, v in g.items())

        def smt(s):
            active = {True: "active", False: "inactive", None: "active: unknown"}[s.get("active")]
            return f"{active}, control {s.get('control') or 'unknown'}"

        def caches(cs):
            return "; ".join(f"L{c.get('level', '?')} {c.get('type', '?')} {fmt_num(c.get('size_bytes'), 'bytes')}"
                             f", {c.get('num_sharing', '?')} CPU(s)" for c in cs)

        return [
            row("CPU clock", "cpu_mhz", lambda v: f"{v} MHz ({m.get('cpu_mhz_source') or 'source not recorded'})"),
            row("caches", "caches", caches),
            row("load average at start", "load_avg", lambda v: " ".join(f"{x:.2f}" for x in v) + " (1, 5, 15 min)"),
            row("CPU governor", "cpu_governor", governor),
            row("SMT", "smt", smt),
            row("transparent huge pages", "transparent_hugepages",
                lambda t: f"enabled {t.get('enabled') or 'unknown'}, defrag {t.get('defrag') or 'unknown'}"),
            row("kernel command line", "kernel_cmdline", str),
        ]

    def ok(self):
        return [c for c in self.cells if c.get("status") == "ok" and isinstance(c.get("result"), dict)]

    def groups(self):
        """group id → list of index entries (every repetition, whatever its status)."""
        out = {}
        for e in self.entries:
            out.setdefault(e["group"], []).append(e)
        return out

    def values(self, group, path):
        """Values of one metric over the group's successful repetitions."""
        out = []
        for c in self.ok():
            if c["cell"]["group"] == group:
                v = dig(c["result"], path)
                if v is not None:
                    out.append(v)
        return out

    def cell_of(self, group):
        for e in self.entries:
            if e["group"] == group:
                return e
        return None


def bootstrap_median_ci(a, level=0.95, resamples=4000, seed=1):
    """Percentile bootstrap CI of median(a)."""
    rng = np.random.default_rng(seed)
    a = np.asarray(a, float)
    m = np.median(a[rng.integers(0, len(a), (resamples, len(a)))], axis=1)
    lo, hi = np.percentile(m, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return (float(lo), float(hi))


def bootstrap_ratio_ci(a, b, level=0.95, resamples=4000, seed=1):
    """Percentile bootstrap CI of median(b)/median(a)."""
    rng = np.random.default_rng(seed)
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    ia = rng.integers(0, len(a), (resamples, len(a)))
    ib = rng.integers(0, len(b), (resamples, len(b)))
    ma = np.median(a[ia], axis=1)
    mb = np.median(b[ib], axis=1)
    ok = ma != 0
    ratios = mb[ok] / ma[ok]
    if len(ratios) == 0:
        return (math.nan, math.nan)
    lo, hi = np.percentile(ratios, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return (float(lo), float(hi))


def compare_samples(a, b, better, alpha):
    """Ratio of medians b/a, its 95% CI, the Mann-Whitney U p-value and a verdict word."""
    out = {"n_a": len(a), "n_b": len(b)}
    if len(a) == 0 or len(b) == 0:
        out.update(ratio=None, ci=None, p=None, verdict="missing: no successful repetition")
        return out
    if len(a) < 2 or len(b) < 2:
        out.update(ratio=None, ci=None, p=None, verdict="too few repetitions")
        return out
    med_a, med_b = float(np.median(a)), float(np.median(b))
    ratio = med_b / med_a if med_a != 0 else math.nan
    ci = bootstrap_ratio_ci(a, b)
    if np.ptp(np.concatenate([a, b])) == 0:
        p = 1.0
    else:
        p = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    verdict = "no significant difference"
    if p < alpha and not (ci[0] <= 1.0 <= ci[1]):
        up = ratio > 1
        verdict = "better" if (up == (better == "higher")) else "worse"
    out.update(median_a=med_a, median_b=med_b, ratio=ratio, ci=ci, p=p, verdict=verdict)
    return out


def compare_runs(run_a, run_b, alpha):
    """Rows for every group in either run and every metric with values."""
    rows = []
    ga, gb = run_a.groups(), run_b.groups()
    for group in sorted(set(ga) | set(gb)):
        if group not in ga or group not in gb:
            rows.append({"group": group, "metric": "*", "verdict": f"only in run {'B' if group in gb else 'A'}"})
            continue
        if not run_a.values(group, ("ops_per_sec",)) or not run_b.values(group, ("ops_per_sec",)):
            which = [n for n, r in (("A", run_a), ("B", run_b)) if not r.values(group, ("ops_per_sec",))]
            rows.append({"group": group, "metric": "*",
                         "verdict": f"missing: no successful repetition in run {' and '.join(which)}"})
            continue
        for key, path, unit, better in METRICS:
            a, b = run_a.values(group, path), run_b.values(group, path)
            if not a and not b:
                continue
            r = compare_samples(a, b, better, alpha)
            r.update(group=group, metric=key, unit=unit, better=better)
            rows.append(r)
    return rows


def verdict_line(rows, alpha, what="B vs A"):
    """One line a reviewer reads first."""
    counts = {}
    for r in rows:
        if r.get("metric") == "*":
            continue
        c = counts.setdefault(r["metric"], {"better": 0, "worse": 0, "same": 0, "few": 0, "missing": 0})
        v = r["verdict"]
        c["better" if v == "better" else "worse" if v == "worse" else "few" if v == "too few repetitions"
          else "missing" if v.startswith("missing") else "same"] += 1
    if not counts:
        return f"VERDICT {what}: nothing to compare (no group has successful cells in both)"
    parts = []
    for key, *_ in METRICS:
        if key in counts:
            c = counts[key]
            s = f"{key}: {c['better']} better, {c['worse']} worse, {c['same']} no significant difference"
            if c["few"]:
                s += f", {c['few']} too few repetitions"
            if c["missing"]:
                s += f", {c['missing']} missing"
            parts.append(s)
    worse = sum(c["worse"] for c in counts.values())
    better = sum(c["better"] for c in counts.values())
    head = ("REGRESSION" if worse and not better else "IMPROVEMENT" if better and not worse
            else "MIXED" if better and worse else "NO SIGNIFICANT DIFFERENCE")
    return (f"VERDICT {what}: {head} — " + "; ".join(parts) +
            f" (Mann-Whitney U two-sided, alpha {alpha}, 95% bootstrap CI of the median ratio)")


def cpu_ranges(cpus):
    """[0, 1, 2, 5] → "0-2,5"."""
    out, run = [], []
    for c in sorted(cpus):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [c]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def fmt_num(v, unit=""):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if unit == "bytes":
        for u, s in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if abs(v) >= u:
                return f"{v / u:.2f} {s}"
        return f"{v:.0f} B"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.3g} M"
    if abs(v) >= 1e3:
        return f"{v / 1e3:.3g} k"
    return f"{v:.3g}"
