"""The charts of a run, each a PNG and an SVG, each titled with its units and
the machine. A group with no successful repetition is drawn as "missing",
never as zero."""
import os
import textwrap
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from runs import dig  # noqa: E402

# A chart of a run whose cells all failed is a panel of "missing" marks; the layout engine may complain.
warnings.filterwarnings("ignore", message="constrained_layout not applied")

MISSING_COLOR = "#b0b0b0"


class Chart:
    """A saved chart: its files and what it shows."""

    def __init__(self, name, title, png, svg, caption):
        self.name, self.title, self.png, self.svg, self.caption = name, title, png, svg, caption


def colors_for(backends):
    """A colour per backend, given in the run's order, so a backend keeps its colour across charts."""
    cmap = plt.get_cmap("tab10")
    return {b: cmap(i % 10) for i, b in enumerate(backends)}


class View:
    """The run's cells arranged by label, backend, threads, placement; backends and op kinds in the
    run's order (runs.Run)."""

    def __init__(self, run):
        self.run = run
        self.entries = run.entries
        self.ok = {c["cell"]["id"]: c for c in run.ok()}
        self.labels = run.labels()
        self.backends = sorted({e["backend"] for e in self.entries}, key=run.backend_key)
        self.op_kinds = run.op_kinds()
        self.colors = colors_for(self.backends)

    def primary(self, label):
        return self.run.primary(label)

    def threads(self, label):
        return self.run.label_threads(label)

    def select(self, label, backend=None, threads=None, placement=None, topology=None, mode=None):
        p, t, m = self.primary(label)
        placement, topology, mode = placement or p, topology or t, mode or m
        return [e for e in self.entries
                if e["label"] == label and e["placement"] == placement and e["topology"] == topology
                and e["mode"] == mode and (backend is None or e["backend"] == backend)
                and (threads is None or e["threads"] == threads)]

    def results(self, entries):
        return [self.ok[e["id"]]["result"] for e in entries if e["id"] in self.ok]

    def values(self, entries, path):
        return [v for v in (dig(r, path) for r in self.results(entries)) if v is not None]

    def topology_note(self, label):
        p, t, m = self.primary(label)
        return "" if t == "real" else f", topology {t}"


def finish(fig, view, out_dir, name, heading, chart_title, caption):
    """Heads the figure with `heading` and the machine, saves it as NAME.png and NAME.svg and
    closes it: the chart as the report shows it."""
    wrapped = "\n".join(textwrap.wrap(heading, max(40, int(fig.get_figwidth() * 13))))  # titles stay on the page
    fig.suptitle(f"{wrapped}\n{view.run.machine_line()}", fontsize=10)
    png = os.path.join(out_dir, name + ".png")
    svg = os.path.join(out_dir, name + ".svg")
    fig.savefig(png, dpi=100)
    fig.savefig(svg)
    plt.close(fig)
    return Chart(name, chart_title, png, svg, caption)


def missing_mark(ax, x, text="missing"):
    ax.annotate(text, (x, 0), xycoords=("data", "axes fraction"), xytext=(0, 6), textcoords="offset points",
                ha="center", va="bottom", rotation=90, color="#a00000", fontsize=8)


def panel(ax, text):
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=11,
            bbox={"boxstyle": "round", "fc": "#f4f4f4", "ec": MISSING_COLOR}, transform=ax.transAxes)


def boxes(view, out_dir, name, path, scale, unit, what, caption, log_ok=True):
    """One chart per source: a metric per backend and thread count, box over repetitions."""
    charts = []
    for label in view.labels:
        threads = view.threads(label)
        fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(view.backends) * len(threads)), 4.2), layout="constrained")
        width = 0.8 / len(threads)
        cmap = plt.get_cmap("viridis")
        for bi, backend in enumerate(view.backends):
            for ti, t in enumerate(threads):
                x = bi + (ti - (len(threads) - 1) / 2) * width
                es = view.select(label, backend, t)
                if not es:
                    continue
                vals = np.array(view.values(es, path)) / scale
                if len(vals) == 0:
                    missing_mark(ax, x)
                    continue
                color = cmap(ti / max(1, len(threads) - 1) * 0.8)
                ax.boxplot([vals], positions=[x], widths=width * 0.8, patch_artist=True, showfliers=False,
                           boxprops={"facecolor": color, "alpha": 0.45},
                           medianprops={"color": "black", "gid": "median"})
                ax.scatter(np.full(len(vals), x), vals, s=10, color=color, zorder=3)
                if len(vals) < len(es):
                    ax.annotate(f"{len(vals)}/{len(es)} ok", (x, vals.max()), xytext=(0, 4),
                                textcoords="offset points", ha="center", fontsize=7, color="#a00000")
        ax.set_xticks(range(len(view.backends)), view.backends)
        shown = [v for v in view.values(view.select(label), path) if v > 0]
        log = log_ok and bool(shown) and max(shown) / min(shown) > 20
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.set_ylabel(f"{what} [{unit}" + (", log]" if log else "]"))
        handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(ti / max(1, len(threads) - 1) * 0.8), alpha=0.6)
                   for ti in range(len(threads))]
        ax.legend(handles, [f"{t} thread{'s' if t > 1 else ''}" for t in threads], fontsize=8, loc="upper left")
        ax.grid(axis="y", alpha=0.3)
        p, _, mode = view.primary(label)
        charts.append(finish(fig, view, out_dir, f"{name}_{label}",
                             f"{what.capitalize()} per backend — {label} ({p} placement, {mode} mode"
                             f"{view.topology_note(label)}) [{unit}; box: quartiles, dots: repetitions]",
                             f"{what.capitalize()} — {label}", caption))
    return charts


def allocator(view, out_dir):
    return boxes(view, out_dir, "allocator", ("allocator_ns_per_op",), 1, "ns per allocation or free",
                 "allocator time",
                 "Time inside the backend's own allocate and free calls per call, timer floor taken off "
                 "(the harness's bookkeeping, touching and waiting are not in it): the figure that ranks "
                 "allocators. 'missing' marks a group with no successful repetition or no timing.")


def throughput(view, out_dir):
    return boxes(view, out_dir, "throughput", ("ops_per_sec",), 1e6, "Mops/s", "throughput",
                 "Operations per second of the whole timed pass (harness, touching and waits included) "
                 "over repetitions; 'missing' marks a cell group with no successful repetition, 'k/n ok' "
                 "a group where some failed.")


SPLIT_PARTS = [("allocator_ns", "allocator", "#1f77b4"), ("touch_ns", "touch and zeroing", "#2ca02c"),
               ("dma_ns", "DMA layer", "#9467bd"), ("wait_ns", "cross-thread wait", "#d62728"),
               ("harness_ns", "harness", "#7f7f7f"), ("sampling_ns", "footprint sampling", "#bcbd22"),
               ("pacing_ns", "pacing", "#17becf"), ("idle_ns", "idle (finished early)", "#e0e0e0")]


def time_split(view, out_dir):
    """Where the timed pass's thread time went, per backend: ns per step, stacked."""
    charts = []
    for label in view.labels:
        t = max(view.threads(label))
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(view.backends)) + 2.2, 4.2), layout="constrained")
        bottoms = np.zeros(len(view.backends))
        per_backend = []
        for backend in view.backends:
            r = median_rep(view, view.select(label, backend, t), ("allocator_ns_per_op",))
            split = (r or {}).get("time") or {}
            events = (r or {}).get("events") or 0
            per_backend.append((split, events) if split.get("measured") and events else None)
        for key, name, color in SPLIT_PARTS:
            vals = np.array([(x[0].get(key) or 0) / x[1] if x else 0.0 for x in per_backend])
            if vals.sum() == 0:
                continue
            ax.bar(range(len(view.backends)), vals, 0.6, bottom=bottoms, color=color, label=name)
            bottoms += vals
        for i, x in enumerate(per_backend):
            if x is None:
                missing_mark(ax, i, "not measured")
        ax.set_xticks(range(len(view.backends)), view.backends)
        ax.set_ylabel("thread time per step [ns]")
        ax.grid(axis="y", alpha=0.3)
        handles, names = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], names[::-1], fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        charts.append(finish(fig, view, out_dir, f"split_{label}",
                             f"Where the time went — {label}, {t} threads{view.topology_note(label)} "
                             f"[thread ns per step, median repetition by allocator time]",
                             f"Where the time went — {label}",
                             "The timed pass's thread time (threads x duration) per step, split: inside the "
                             "backend's calls, writing new blocks (zeroing and --touch), the KPI DMA layer, "
                             "waiting for another thread's step, the harness (loop, accounting, timers), "
                             "stopped for a footprint sample, pacing, and idle after finishing."))
    return charts


def merged_histogram(results, kind):
    acc = {}
    for r in results:
        h = (r.get("latency", {}).get(kind) or {}).get("histogram") or []
        for upper, count in h:
            acc[float(upper)] = acc.get(float(upper), 0) + float(count)
    if not acc:
        return None, None
    xs = np.array(sorted(acc))
    cs = np.array([acc[x] for x in xs])
    return xs, np.cumsum(cs) / cs.sum()


REFERENCE_LEVELS = (("l1_ns", "L1"), ("l2_ns", "L2"), ("llc_ns", "LLC"), ("dram_ns", "DRAM"))


def latency_references(view):
    """[(label, ns)] of the machine's load latencies (index "latency_reference", written by
    `kmbench run`); [] for a run written before the index held them, or when the probe failed."""
    ref = view.run.index.get("latency_reference") or {}
    return [(name, float(ref[key])) for key, name in REFERENCE_LEVELS
            if isinstance(ref.get(key), (int, float)) and ref[key] > 0]


def reference_lines(ax, refs):
    """A labelled vertical line per reference latency, the label at the top of the panel."""
    for name, ns in refs:
        ax.axvline(ns, color="#606060", ls="--", lw=0.8, zorder=0)
        ax.annotate(f"{name} {ns:.3g} ns", (ns, 1.0), xycoords=("data", "axes fraction"), xytext=(2, -2),
                    textcoords="offset points", rotation=90, ha="left", va="top", fontsize=6, color="#606060")


def latency_cdfs(view, out_dir):
    charts = []
    refs = latency_references(view)
    for label in view.labels:
        t = max(view.threads(label))
        kinds = [k for k in view.op_kinds
                 if any((r.get("latency", {}).get(k) or {}).get("count", 0) > 0
                        for r in view.results(view.select(label, threads=t)))]
        cols = min(3, max(1, len(kinds)))
        rows = (max(1, len(kinds)) + cols - 1) // cols
        fig, grid = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.4 * rows), squeeze=False, layout="constrained")
        axes = [list(grid.flat)]
        for ax in axes[0][len(kinds):]:
            ax.set_axis_off()
        if not kinds:
            panel(axes[0][0], "no latency histograms: every cell of this source failed or recorded none")
        missing = []
        for ax, kind in zip(axes[0], kinds):
            for backend in view.backends:
                es = view.select(label, backend, t)
                if not es:
                    continue
                xs, cdf = merged_histogram(view.results(es), kind)
                if xs is None:
                    if not view.results(es):
                        missing.append(backend)
                    continue
                ax.step(xs, cdf, where="post", label=backend, color=view.colors[backend])
            ax.set_xscale("log")
            reference_lines(ax, refs)
            ax.set_ylim(0, 1.02)
            ax.set_xlabel(f"{kind} latency [ns, log]")
            ax.set_ylabel("fraction of operations")
            ax.grid(alpha=0.3, which="both")
            ax.set_title(kind, fontsize=9)
        if kinds:
            axes[0][0].legend(fontsize=7, loc="lower right")
        note = f"; missing: {', '.join(sorted(set(missing)))}" if missing else ""
        charts.append(finish(fig, view, out_dir, f"latency_{label}",
                             f"Latency CDF per operation kind — {label}, {t} threads{view.topology_note(label)} "
                             f"[ns, log scale; all repetitions pooled{note}]",
                             f"Latency CDFs — {label}",
                             "Cumulative distribution of per-operation latency from the cells' histograms "
                             "(bucket upper bounds), repetitions pooled."
                             + (" Dashed lines: this machine's load-to-use latency of L1, L2, the last-level "
                                "cache and DRAM (a pointer chase at the start of the run)." if refs else "")))
    return charts


def median_rep(view, es, path=("ops_per_sec",)):
    rs = [r for r in view.results(es) if dig(r, path) is not None]
    if not rs:
        return None
    rs = sorted(rs, key=lambda r: dig(r, path))
    return rs[len(rs) // 2]


def footprint(view, out_dir):
    charts = []
    for label in view.labels:
        t = max(view.threads(label))
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
        missing = []
        schedule = None  # (ms, MiB left) of a run under --pressure: drawn under the curves
        for backend in view.backends:
            es = view.select(label, backend, t)
            if not es:
                continue
            r = median_rep(view, es)
            if r is None:
                missing.append(backend)
                continue
            tl = r.get("footprint", {}).get("timeline") or []
            if not tl:
                continue
            ts = np.array([p.get("t_ns", 0) for p in tl]) / 1e6
            mapped = np.array([p.get("mapped_bytes", 0) for p in tl], float)
            live = np.array([p.get("live_bytes", 0) for p in tl], float)
            c = view.colors[backend]
            a1.plot(ts, mapped / 2**20, color=c, label=f"{backend} footprint")
            a1.plot(ts, live / 2**20, color=c, ls=":", lw=1)
            schedule = schedule or pressure_schedule(r)
            with np.errstate(divide="ignore", invalid="ignore"):
                # Near-empty moments (start, drain) make the ratio meaningless: shown as gaps.
                frag = np.where(live > 0.05 * live.max(), mapped / live, np.nan)
            a2.plot(ts, frag, color=c, label=backend)
        if schedule is not None and a1.lines:
            top = a1.get_ylim()[1]
            ts, left = schedule
            clipped = np.minimum(left, top * 1.05)
            a1.fill_between(ts, clipped, step="post", color="0.85", zorder=0,
                            label=f"memory left by --pressure {schedule_spec(view, label, t)}")
            a1.set_ylim(0, top * 1.05)
            a1.legend(fontsize=7, loc="upper right")
        a1.set_xlabel("time [ms]")
        a1.set_ylabel("bytes [MiB] (solid: footprint, dotted: live)")
        a2.set_xlabel("time [ms]")
        a2.set_ylabel("fragmentation [footprint ÷ live, log]")
        a2.set_yscale("log")
        for a in (a1, a2):
            a.grid(alpha=0.3)
        if a2.lines:
            a2.legend(fontsize=7)
        note = f"; missing: {', '.join(missing)}" if missing else ""
        if not a1.lines:
            panel(a1, "no footprint timelines in this source's results")
        charts.append(finish(fig, view, out_dir, f"footprint_{label}",
                             f"Footprint and fragmentation over time — {label}, {t} threads "
                             f"[MiB; footprint ÷ live bytes where live ≥ 5% of its peak; median repetition{note}]",
                             f"Footprint over time — {label}",
                             "Backend footprint (mapped bytes) and live bytes over the run, and their ratio, "
                             "for the repetition with the median throughput."))
    return charts


def pressure_schedule(result):
    """(ms, MiB) steps of the memory a --pressure schedule left, from a cell's result; None without one."""
    tl = (result.get("pressure") or {}).get("timeline") or []
    if not tl:
        return None
    ts = np.array([row[0] for row in tl] + [result.get("duration_ns", tl[-1][0])], float) / 1e6
    left = np.array([row[2] for row in tl] + [tl[-1][2]], float) / 2**20
    return ts, left


def schedule_spec(view, label, threads):
    for backend in view.backends:
        for r in view.results(view.select(label, backend, threads)):
            spec = (r.get("pressure") or {}).get("spec")
            if spec:
                return spec
    return ""


def pressure(view, out_dir):
    """Sources replayed under --pressure: failures over the pass by backend, and per backend the
    failures per 1000 allocations and the reclaim p99."""
    charts = []
    for label in view.labels:
        t = max(view.threads(label))
        spec = schedule_spec(view, label, t)
        if not spec:
            continue
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
        names, rates, p99s = [], [], []
        for backend in view.backends:
            rs = [r for r in view.results(view.select(label, backend, t)) if r.get("pressure")]
            if not rs:
                continue
            rs.sort(key=lambda r: r["pressure"]["failures_per_1000"])
            r = rs[len(rs) // 2]
            p = r["pressure"]
            by_kind = p["failures_over_time"]["by_kind"]
            total = np.sum([by_kind[k] for k in ("alloc", "page", "dma")], axis=0)
            bins = len(total)
            x = (np.arange(bins) + 0.5) / bins * 100
            a1.plot(x, total, color=view.colors[backend], label=backend, drawstyle="steps-mid")
            names.append(backend)
            rates.append(p["failures_per_1000"])
            p99s.append(p["reclaim"]["latency"].get("p99_ns", 0) / 1e3)
        if not names:
            plt.close(fig)
            continue
        a1.set_xlabel("timed pass [%]")
        a1.set_ylabel(f"failed allocations per {100 // max(1, len(x))}% of the pass")
        a1.grid(alpha=0.3)
        a1.legend(fontsize=7)
        xs = np.arange(len(names))
        a2.bar(xs, rates, color=[view.colors[b] for b in names])
        a2.set_xticks(xs, names, rotation=30, ha="right", fontsize=8)
        a2.set_ylabel("failures per 1000 allocations (bars)")
        for i, v in enumerate(p99s):
            a2.annotate(f"reclaim p99\n{v:.1f} µs", (i, rates[i]), xytext=(0, 3), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7)
        a2.grid(alpha=0.3, axis="y")
        charts.append(finish(fig, view, out_dir, f"pressure_{label}",
                             f"Under memory pressure ({spec}) — {label}, {t} threads "
                             f"[failures over the timed pass; failures per 1000 allocations and reclaim p99; "
                             f"median repetition by failure rate]",
                             f"Memory pressure — {label}",
                             "Allocations that failed over the timed pass (every kind), and per backend the "
                             "failures per 1000 allocations with the p99 of the reclaim failed blocking "
                             "allocations ran (docs/pressure.md)."))
    return charts


def median_iqr(vals):
    """The median, and how far the first and third quartiles lie below and above it (error bars)."""
    m = float(np.median(vals))
    return m, m - float(np.percentile(vals, 25)), float(np.percentile(vals, 75)) - m


def sweep_order(entries):
    """Sort key of sweep points: per key, numerically when all its values are numbers, else by text."""
    def number(v):
        try:
            return float(v)
        except ValueError:
            return None
    columns = list(zip(*(tuple(v for _, v in e["sweep"]) for e in entries)))
    numeric = [all(number(v) is not None for v in col) for col in columns]
    return lambda point: tuple((number(v), "") if num else (0.0, v) for v, num in zip(point, numeric))


SWEEP_METRICS = [(("allocator_ns_per_op",), 1, "allocator time [ns per call]"),
                 (("footprint", "peak_footprint_bytes"), 2**20, "peak footprint [MiB]")]


def sweeps(view, out_dir):
    """One chart per set of swept keys: each metric against the swept values, one line per workload (and
    backend, threads), median with quartile bars."""
    by_keys = {}
    for e in view.entries:
        if e.get("sweep"):
            by_keys.setdefault(tuple(k for k, _ in e["sweep"]), []).append(e)
    charts = []
    for keys, es in by_keys.items():
        points = sorted(set(tuple(v for _, v in e["sweep"]) for e in es), key=sweep_order(es))
        lines = list(dict.fromkeys((e["base_label"], e["backend"], e["threads"]) for e in es))
        fig, axes = plt.subplots(1, len(SWEEP_METRICS), figsize=(5.2 * len(SWEEP_METRICS), 3.8), squeeze=False,
                                 layout="constrained")
        for ax, (path, scale, unit) in zip(axes[0], SWEEP_METRICS):
            for li, (base, backend, threads) in enumerate(lines):
                xs, meds, lo, hi = [], [], [], []
                for xi, point in enumerate(points):
                    group = [e for e in es if (e["base_label"], e["backend"], e["threads"]) == (base, backend, threads)
                             and tuple(v for _, v in e["sweep"]) == point]
                    vals = np.array(view.values(group, path)) / scale
                    if len(vals) == 0:
                        if group:
                            missing_mark(ax, xi)
                        continue
                    m, below, above = median_iqr(vals)
                    xs.append(xi), meds.append(m), lo.append(below), hi.append(above)
                if xs:
                    ax.errorbar(xs, meds, yerr=[lo, hi], marker="o", capsize=3, color=plt.get_cmap("tab10")(li % 10),
                                label=f"{base} — {backend}, {threads} thread{'s' if threads > 1 else ''}")
            ax.set_xticks(range(len(points)), [",".join(p) for p in points],
                          rotation=30 if len(points) > 6 else 0, ha="right" if len(points) > 6 else "center")
            ax.set_xlabel(", ".join(keys))
            ax.set_ylabel(unit)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7)
        name = "sweep_" + "_".join(keys)
        charts.append(finish(fig, view, out_dir, name,
                             f"What if: {', '.join(keys)} [median over repetitions, bars: quartiles]",
                             f"Sweep of {', '.join(keys)}",
                             "Each line is one workload or trace on one backend, run at every listed value of the "
                             "swept parameters (a list in the matrix's params or backend_params); the other "
                             "settings are the entry's."))
    return charts


def scaling(view, out_dir):
    labels = view.labels
    fig, axes = plt.subplots(1, len(labels), figsize=(4.5 * len(labels), 3.8), squeeze=False, layout="constrained")
    for ax, label in zip(axes[0], labels):
        threads = view.threads(label)
        for backend in view.backends:
            meds, lo, hi, xs = [], [], [], []
            for t in threads:
                es = view.select(label, backend, t)
                if not es:
                    continue
                vals = np.array(view.values(es, ("ops_per_sec",))) / 1e6
                xs.append(t)
                if len(vals) == 0:
                    meds.append(np.nan), lo.append(0), hi.append(0)
                    ax.plot([t], [0], marker="x", color="#a00000", ls="none", clip_on=False)
                    continue
                m, below, above = median_iqr(vals)
                meds.append(m), lo.append(below), hi.append(above)
            if xs and not np.all(np.isnan(meds)):
                ax.errorbar(xs, meds, yerr=[lo, hi], marker="o", capsize=3, label=backend, color=view.colors[backend])
        ax.set_xticks(threads)
        ax.set_xlabel("threads")
        ax.set_ylabel("throughput [Mops/s]")
        ax.set_ylim(bottom=0)
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return [finish(fig, view, out_dir, "scaling",
                   "Scaling with threads [Mops/s; median, bars: quartiles; red x: no successful repetition]",
                   "Scaling with threads",
                   "Median throughput against thread count; a red x marks a missing point (every repetition failed).")]


def numa(view, out_dir):
    """NUMA placement as measured: the share of bytes handed out on the allocating
    thread's node, from each block's simulated physical address."""
    results = [c["result"] for c in view.run.ok()]
    measured = [r for r in results if (r.get("numa") or {}).get("measured")]
    placements = sorted({e["placement"] for e in view.entries})
    labels = [l for l in view.labels
              if any((r.get("numa") or {}).get("measured") for r in view.results(
                  [e for e in view.entries if e["label"] == l]))]
    if not measured or not labels:
        fig, ax = plt.subplots(figsize=(8, 2.8), layout="constrained")
        nodes = view.run.index.get("topology", {}).get("real_nodes", 1)
        notes = sorted({(r.get("numa") or {}).get("note", "") for r in results} - {""})
        why = (f"single-node machine ({nodes} NUMA node), no synthetic multi-node topology in the matrix"
               if nodes < 2 else "placement was not measured")
        panel(ax, f"NUMA placement not measured\n{why}\n" + "\n".join(notes[:3]))
        heading = "NUMA placement [share of bytes on the allocating thread's node]"
    else:
        fig, axes = plt.subplots(1, len(labels), figsize=(4.8 * len(labels), 3.8), squeeze=False,
                                 layout="constrained")
        for ax, label in zip(axes[0], labels):
            es_label = [e for e in view.entries if e["label"] == label]
            t = max(e["threads"] for e in es_label)
            topology = next(e["topology"] for e in es_label if e["topology"] != "real") \
                if any(e["topology"] != "real" for e in es_label) else "real"
            grid = np.full((len(view.backends), len(placements)), np.nan)
            text = np.full(grid.shape, "missing", dtype=object)
            for bi, b in enumerate(view.backends):
                for pi, p in enumerate(placements):
                    es = [e for e in es_label if e["backend"] == b and e["placement"] == p
                          and e["threads"] == t and e["topology"] == topology]
                    rs = [r for r in view.results(es) if (r.get("numa") or {}).get("measured")]
                    if not es:
                        text[bi, pi] = ""
                        continue
                    if not rs:
                        text[bi, pi] = "not measured" if view.results(es) else "missing"
                        continue
                    local = [r["numa"]["local_bytes"] / max(1, r["numa"]["local_bytes"] + r["numa"]["remote_bytes"])
                             for r in rs]
                    rfree = [r["numa"]["remote_frees"] / max(1, r["numa"]["frees"]) for r in rs]
                    grid[bi, pi] = float(np.median(local))
                    text[bi, pi] = f"{100 * grid[bi, pi]:.0f}% local\n{100 * np.median(rfree):.0f}% rem. frees"
            im = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1)
            for (bi, pi), v in np.ndenumerate(grid):
                ax.text(pi, bi, text[bi, pi], ha="center", va="center", fontsize=6.5)
            ax.set_xticks(range(len(placements)), placements)
            ax.set_yticks(range(len(view.backends)), view.backends)
            ax.set_title(f"{label}, {t} threads, {topology}", fontsize=8)
            fig.colorbar(im, ax=ax, shrink=0.8, label="share of bytes on the thread's node")
        heading = ("NUMA placement, measured from simulated physical addresses "
                   "[share of bytes local to the allocating thread; frees of memory on another node]")
    return [finish(fig, view, out_dir, "numa", heading, "NUMA placement",
                   "Share of bytes each backend handed out on the allocating thread's node, per placement, and "
                   "the share of frees made on a node other than the memory's, measured from each block's "
                   "simulated physical address (a synthetic topology's nodes are simulated: the figures are "
                   "placement decisions, not memory latency); or why placement was not measured.")]


def dma(view, out_dir):
    labels = [l for l in view.labels
              if any((dig(r, ("dma", "transfers")) or 0) > 0 for r in view.results(view.select(l)))]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    if not labels:
        panel(a1, "no DMA transfers in this run")
        a2.set_axis_off()
    else:
        width = 0.8 / len(view.backends)
        for bi, backend in enumerate(view.backends):
            for li, label in enumerate(labels):
                t = max(view.threads(label))
                es = view.select(label, backend, t)
                x = li + (bi - (len(view.backends) - 1) / 2) * width
                if not es:
                    continue
                rs = view.results(es)
                if not rs:
                    missing_mark(a1, x), missing_mark(a2, x)
                    continue
                if all((dig(r, ("dma", "segments")) or 0) == 0 for r in rs):
                    # Transfers counted but no physical addresses: segments and bounces not measured.
                    missing_mark(a1, x, "not measured"), missing_mark(a2, x, "not measured")
                    continue
                seg = np.median([dig(r, ("dma", "segments_per_transfer")) or 0 for r in rs])
                bounce = np.median([(dig(r, ("dma", "bounce_bytes")) or 0) /
                                    max(1, dig(r, ("dma", "transfers")) or 1) for r in rs])
                kw = {"color": view.colors[backend], "label": backend if li == 0 else None}
                a1.bar_label(a1.bar(x, seg, width, **kw), fmt="%.2f", fontsize=7)
                a2.bar_label(a2.bar(x, bounce / 1024, width, **kw), fmt="%.1f", fontsize=7)
        for a, yl in ((a1, "segments per transfer"), (a2, "bounce-buffer bytes per transfer [KiB]")):
            a.set_xticks(range(len(labels)), labels)
            a.set_ylabel(yl)
            a.set_ylim(bottom=0, top=max(1.0, a.get_ylim()[1]))
            a.grid(axis="y", alpha=0.3)
        handles = [plt.Rectangle((0, 0), 1, 1, color=view.colors[b]) for b in view.backends]
        a2.legend(handles, view.backends, fontsize=7, loc="upper left")
    return [finish(fig, view, out_dir, "dma",
                   "DMA costs [segments per transfer; bounce KiB per transfer; median over repetitions]",
                   "DMA segments and bounce buffers",
                   "Scatter-gather segments per DMA transfer and bounce-buffer bytes copied per transfer; "
                   "'not measured' marks backends without simulated physical addresses (segments and bounces "
                   "cannot be known there).")]


def tags(view, out_dir):
    labels = [l for l in view.labels if any(r.get("tags") for r in view.results(view.select(l)))]
    fig, axes = plt.subplots(1, max(1, len(labels)), figsize=(5 * max(1, len(labels)), 3.8), squeeze=False, layout="constrained")
    if not labels:
        panel(axes[0][0], "no per-tag accounting in this run")
    for ax, label in zip(axes[0], labels):
        t = max(view.threads(label))
        peaks = {}
        for backend in view.backends:
            for r in view.results(view.select(label, backend, t)):
                for tag in r.get("tags") or []:
                    peaks.setdefault(tag.get("name", "?"), {}).setdefault(backend, []).append(
                        tag.get("peak_live_bytes", 0))
        names = sorted(peaks, key=lambda n: -max(np.median(v) for v in peaks[n].values()))[:8]
        width = 0.8 / len(view.backends)
        for bi, backend in enumerate(view.backends):
            xs = [i + (bi - (len(view.backends) - 1) / 2) * width for i in range(len(names))]
            ys = [np.median(peaks[n][backend]) / 2**20 if backend in peaks[n] else np.nan for n in names]
            ax.bar(xs, ys, width, color=view.colors[backend], label=backend)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("peak live bytes [MiB]")
        ax.set_title(f"{label}, {t} threads", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=6)
    return [finish(fig, view, out_dir, "tags",
                   "Memory per tag [peak live MiB per OSMalloc tag / cache, median over repetitions]",
                   "Memory per tag", "Peak live bytes per allocation tag (largest eight).")]


def all_charts(run, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    view = View(run)
    charts = []
    if not view.entries:
        return charts
    per_source = (allocator, time_split, throughput, scaling, latency_cdfs, footprint, pressure, numa, dma, tags)
    for make in (per_source if view.labels else ()) + (sweeps,):
        charts.extend(make(view, out_dir))
    return charts
