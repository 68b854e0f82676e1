"""Backend rankings of a run by allocator time, and whether two sources rank
the backends alike (a capture replayed with and without touching, say).

    /usr/bin/python3 plots/rankings.py RUN_DIR [--pair LABEL:OTHER ...]

Cells are ranked together when they differ in backend and repetition only:
a scenario is a source label and each of threads, placement, topology and
mode the run varies ("nic t2"). Without --pair, every source LABEL is paired
with LABEL-touch-none when the run has it. For each scenario: the backends by median allocator ns per call,
with the 95% bootstrap interval of the median, the worst minor page faults
per step of any repetition, and bump's median as a share of mimalloc's. For
each pair: every two backends whose intervals are apart in both sources must
come in the same order; the pairs that do not are listed.
Exits 2 on a run directory it cannot read, one without a cell that has an
allocator time, or a --pair that is not LABEL:OTHER or names a source the run
lacks; 1 when a pair disagrees.
"""
import argparse
import itertools
import sys

import numpy as np

from runs import BadInput, Run, fail_bad_input
from stats import bootstrap_median_ci


DIMENSIONS = ("threads", "placement", "topology", "mode")


def scenarios(run):
    """Index entry -> its scenario: the source label, and each dimension the run
    varies (threads, placement, topology, mode), so that cells ranked together
    differ in backend and repetition only."""
    varied = [d for d in DIMENSIONS if len({str(e[d]) for e in run.entries}) > 1]

    def name(e):
        return " ".join([e["label"]] + [f"t{e[d]}" if d == "threads" else str(e[d]) for d in varied])
    return name, varied


def ranking(run, scenario, name):
    """backend -> (median, (lo, hi), n, worst faults per op) over the scenario's groups."""
    out = {}
    for group, entries in run.groups().items():
        e = entries[0]
        if name(e) != scenario:
            continue
        vals = run.values(group, ("allocator_ns_per_op",))
        faults = run.values(group, ("faults", "minor_per_op"))
        if vals:
            out[e["backend"]] = (float(np.median(vals)), bootstrap_median_ci(vals), len(vals),
                                 max(faults) if faults else float("nan"))
    return out


def pair_option(p):
    """--pair LABEL:OTHER as (LABEL, OTHER), or BadInput naming the option."""
    first, colon, other = p.partition(":")
    if not colon or not first or not other:
        raise BadInput(f"--pair {p}: is not LABEL:OTHER (two source labels joined by a colon, e.g. nic:churn)")
    return first, other


def apart(a, b):
    return a[1][1] < b[1][0] or b[1][1] < a[1][0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--pair", action="append", default=[], metavar="LABEL:OTHER")
    a = ap.parse_args()
    try:
        pairs_asked = [pair_option(p) for p in a.pair]
        run = Run(a.run)
    except BadInput as e:
        fail_bad_input(e)
    if not run.entries:
        fail_bad_input(f"{a.run}: the run has no cells, nothing to rank")
    name, varied = scenarios(run)
    labels = list(dict.fromkeys(name(e) for e in run.entries))
    rankings = {label: ranking(run, label, name) for label in labels}
    if not any(rankings.values()):
        fail_bad_input(f"{a.run}: no cell has an allocator time to rank by (every cell failed or did not run, "
                       "or the run was made with --no-latency)")
    for label in labels:
        r = rankings[label]
        print(f"== {label}: allocator ns per call, median [95% CI] over repetitions; worst minor faults per step")
        for backend, (med, (lo, hi), n, faults) in sorted(r.items(), key=lambda kv: kv[1][0]):
            print(f"  {backend:<18} {med:9.2f}  [{lo:8.2f}, {hi:8.2f}]  n={n}  faults/step {faults:.5f}")
        if "bump" in r and "mimalloc" in r and r["mimalloc"][0] > 0:
            print(f"  bump / mimalloc: {100 * r['bump'][0] / r['mimalloc'][0]:.1f}%")
    def with_label(scenario, label):
        return " ".join([label] + scenario.split(" ")[1:])
    pairs = []
    for first, other in pairs_asked:
        pairs += [(l, with_label(l, other)) for l in labels if l.split(" ")[0] == first] or [(first, other)]
    if not a.pair:
        pairs = [(l, with_label(l, l.split(" ")[0] + "-touch-none")) for l in labels
                 if with_label(l, l.split(" ")[0] + "-touch-none") in rankings]
    disagreements = 0
    for first, other in pairs:
        if first not in rankings or other not in rankings:
            fail_bad_input(f"{a.run}: no source '{first if first not in rankings else other}'")
        x, y = rankings[first], rankings[other]
        common = sorted(set(x) & set(y))
        checked, bad = 0, []
        for p, q in itertools.combinations(common, 2):
            if apart(x[p], x[q]) and apart(y[p], y[q]):
                checked += 1
                if (x[p][0] < x[q][0]) != (y[p][0] < y[q][0]):
                    bad.append(f"{p} vs {q}")
        overlap = len(list(itertools.combinations(common, 2))) - checked
        print(f"== {first} vs {other}: {checked} pairs of backends apart in both, "
              f"{len(bad)} in another order{': ' + ', '.join(bad) if bad else ''}; "
              f"{overlap} pairs overlap in one or both")
        disagreements += len(bad)
    sys.exit(1 if disagreements else 0)


if __name__ == "__main__":
    main()
