"""The statistics behind every verdict kmbench prints: two samples of one
metric (repetitions of a cell group) are compared by the ratio of their
medians, a percentile bootstrap interval of that ratio and a two-sided
Mann-Whitney U test; a set of such comparisons is judged together, with the
Benjamini-Hochberg correction and an equivalence margin.

A comparison's verdict is one of:
  better / worse    the corrected p is below alpha, the interval excludes 1
                    and the median ratio lies outside the margin;
  same within ±M%   the whole interval lies inside [1 - M, 1 + M];
  differs by < ±M%  significant after correction, but the median ratio lies
                    inside the margin (too small to act on);
  no significant difference   anything else (the data cannot tell).
"""
import math

import numpy as np
from scipy import stats

DEFAULT_ALPHA = 0.05
DEFAULT_MARGIN = 0.03
CORRECTION = "Benjamini-Hochberg"


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
    ma = np.median(a[rng.integers(0, len(a), (resamples, len(a)))], axis=1)
    mb = np.median(b[rng.integers(0, len(b), (resamples, len(b)))], axis=1)
    ok = ma != 0
    ratios = mb[ok] / ma[ok]
    if len(ratios) == 0:
        return (math.nan, math.nan)
    lo, hi = np.percentile(ratios, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return (float(lo), float(hi))


def mann_whitney_p(a, b):
    """Two-sided Mann-Whitney U p-value (exact for small samples without ties); 1 when every value is equal."""
    if np.ptp(np.concatenate([np.asarray(a, float), np.asarray(b, float)])) == 0:
        return 1.0
    return float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def smallest_p(n_a, n_b):
    """The smallest two-sided p the exact Mann-Whitney test can give for these sample sizes: how much
    evidence n repetitions can hold at most."""
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def compare_samples(a, b):
    """Ratio of medians b/a, its 95% interval and the raw p-value; no verdict (judge() gives it)."""
    out = {"n_a": len(a), "n_b": len(b)}
    if len(a) == 0 or len(b) == 0:
        out.update(ratio=None, ci=None, p=None, verdict="missing: no successful repetition")
        return out
    if len(a) < 2 or len(b) < 2:
        out.update(ratio=None, ci=None, p=None, verdict="too few repetitions")
        return out
    med_a, med_b = float(np.median(a)), float(np.median(b))
    out.update(median_a=med_a, median_b=med_b, ratio=med_b / med_a if med_a != 0 else math.nan,
               ci=bootstrap_ratio_ci(a, b), p=mann_whitney_p(a, b))
    return out


def bh_adjust(pvalues):
    """Benjamini-Hochberg adjusted p-values (step-up), in the input's order; None stays None."""
    idx = sorted((i for i, p in enumerate(pvalues) if p is not None), key=lambda i: pvalues[i])
    m = len(idx)
    adjusted = [None] * len(pvalues)
    running = 1.0
    for rank in range(m, 0, -1):
        i = idx[rank - 1]
        running = min(running, pvalues[i] * m / rank)
        adjusted[i] = running
    return adjusted


def margin_text(margin):
    return f"±{margin * 100:g}%"


def verdict_of(row, better, alpha, margin):
    """The verdict word of one compared row whose p_adj is set (see the module's text)."""
    ratio, (lo, hi), p_adj = row["ratio"], row["ci"], row["p_adj"]
    if not (math.isfinite(ratio) and math.isfinite(lo) and math.isfinite(hi)):
        return "no significant difference"
    if p_adj < alpha and not (lo <= 1.0 <= hi):
        if abs(ratio - 1.0) > margin:
            return "better" if (ratio > 1) == (better == "higher") else "worse"
        return f"differs by < {margin_text(margin)}"
    if 1.0 - margin <= lo and hi <= 1.0 + margin:
        return f"same within {margin_text(margin)}"
    return "no significant difference"


def judge(rows, alpha=DEFAULT_ALPHA, margin=DEFAULT_MARGIN):
    """Sets p_adj (Benjamini-Hochberg over every row with a p-value) and the verdict of each such row.
    Each row carries "better" ("higher" or "lower"). Returns rows."""
    compared = [r for r in rows if r.get("p") is not None]
    for r, p_adj in zip(compared, bh_adjust([r["p"] for r in compared])):
        r["p_adj"] = p_adj
        r["verdict"] = verdict_of(r, r["better"], alpha, margin)
    return rows


def verdict_counts(rows, metrics):
    """metric → counts of each kind of verdict, in `metrics` order."""
    counts = {}
    for r in rows:
        if r.get("metric") in (None, "*"):
            continue
        c = counts.setdefault(r["metric"], dict.fromkeys(("better", "worse", "same", "small", "unclear",
                                                          "few", "missing"), 0))
        v = r["verdict"]
        c["better" if v == "better" else "worse" if v == "worse" else "same" if v.startswith("same")
          else "small" if v.startswith("differs") else "few" if v == "too few repetitions"
          else "missing" if v.startswith("missing") else "unclear"] += 1
    return {k: counts[k] for k in metrics if k in counts}


def verdict_line(rows, metrics, alpha=DEFAULT_ALPHA, margin=DEFAULT_MARGIN, what="B vs A"):
    """The one line a reviewer reads first: the overall verdict, then the counts per metric and how
    they were decided."""
    counts = verdict_counts(rows, metrics)
    if not counts:
        return f"VERDICT {what}: nothing to compare (no group has successful cells in both)"
    m = margin_text(margin)
    parts = []
    for key, c in counts.items():
        s = f"{key}: {c['better']} better, {c['worse']} worse, {c['same']} same within {m}"
        for n, word in ((c["small"], f"differ by < {m}"), (c["unclear"], "no significant difference"),
                        (c["few"], "too few repetitions"), (c["missing"], "missing")):
            if n:
                s += f", {n} {word}"
        parts.append(s)
    worse = sum(c["worse"] for c in counts.values())
    better = sum(c["better"] for c in counts.values())
    head = ("REGRESSION" if worse and not better else "IMPROVEMENT" if better and not worse
            else "MIXED" if better and worse else "NO DIFFERENCE")
    tested = sum(1 for r in rows if r.get("p") is not None)
    sizes = [(r["n_a"], r["n_b"]) for r in rows if r.get("p") is not None]
    floor = ""
    if sizes:
        n_a, n_b = max(sizes, key=lambda s: smallest_p(*s))  # the comparison with the least evidence
        floor = f"; with {n_a} and {n_b} repetitions no p is below {smallest_p(n_a, n_b):.4f}"
    return (f"VERDICT {what}: {head} — " + "; ".join(parts) +
            f" (Mann-Whitney U two-sided, {CORRECTION} over {tested} comparisons at {alpha:g}; "
            f"a difference counts beyond {m}; 95% bootstrap interval of the median ratio{floor})")
