"""`kmbench compare RUN_A RUN_B`: per group and metric, the ratio of medians
B/A with a 95% bootstrap confidence interval and a Mann-Whitney U test over
repetitions, judged together (Benjamini-Hochberg, equivalence margin:
stats.py), then one verdict line. Two runs without a group that has
successful cells in both are refused (exit 2): there is no verdict to pass."""
import argparse
import json
import math
import sys

from runs import METRICS, BadInput, Run, check_output_file, compare_runs, fail_bad_input, write_output
from stats import DEFAULT_ALPHA, DEFAULT_MARGIN, verdict_line


def main():
    ap = argparse.ArgumentParser(prog="kmbench compare")
    ap.add_argument("run_a")
    ap.add_argument("run_b")
    ap.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    ap.add_argument("--margin", type=float, default=DEFAULT_MARGIN * 100,
                    help="equivalence margin in percent (default 3)")
    ap.add_argument("--json")
    a = ap.parse_args()
    if not 0 <= a.margin < 100 or not 0 < a.alpha < 1:
        ap.error(f"--margin {a.margin} must lie in [0, 100) and --alpha {a.alpha} in (0, 1)")
    try:
        if a.json:
            check_output_file("--json", a.json)
        run_a, run_b = Run(a.run_a), Run(a.run_b)
    except BadInput as e:
        fail_bad_input(e)
    margin = a.margin / 100
    rows = compare_runs(run_a, run_b, a.alpha, margin)
    print(f"A: {a.run_a}  ({run_a.machine_line()})")
    print(f"B: {a.run_b}  ({run_b.machine_line()})")
    width = max([len(r["group"]) for r in rows] + [5])
    print(f"{'group':<{width}}  {'metric':<22} {'median A':>11} {'median B':>11} {'B/A':>7}  {'95% CI':>15} {'p':>7} {'p adj':>7}  verdict")
    for r in rows:
        if r["metric"] == "*":
            print(f"{r['group']:<{width}}  {'*':<22} {'':>11} {'':>11} {'':>7}  {'':>15} {'':>7} {'':>7}  {r['verdict']}")
            continue
        if r.get("ratio") is None:
            print(f"{r['group']:<{width}}  {r['metric']:<22} {'':>11} {'':>11} {'':>7}  {'':>15} {'':>7} {'':>7}  "
                  f"{r['verdict']} (n={r['n_a']} vs {r['n_b']})")
            continue
        ci = f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]" if all(map(math.isfinite, r["ci"])) else "—"
        print(f"{r['group']:<{width}}  {r['metric']:<22} {r['median_a']:>11.4g} {r['median_b']:>11.4g} "
              f"{r['ratio']:>7.3f}  {ci:>15} {r['p']:>7.4f} {r['p_adj']:>7.4f}  {r['verdict']} ({r['better']} is better)")
    line = verdict_line(rows, [k for k, *_ in METRICS], a.alpha, margin)
    print(line)
    if not any(r["metric"] != "*" for r in rows):
        # The table above says why for each group; --json is not written (an earlier file stays as it was).
        fail_bad_input(f"{a.run_a} and {a.run_b}: the runs share no group with successful cells in both, "
                       "nothing to compare")
    if a.json:
        text = json.dumps({"run_a": a.run_a, "run_b": a.run_b, "alpha": a.alpha, "margin": margin, "rows": rows,
                           "verdict": line}, indent=1)
        try:
            write_output("--json", a.json, text)
        except BadInput as e:
            fail_bad_input(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
