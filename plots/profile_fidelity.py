#!/usr/bin/python3
"""The profile fidelity table: for each capture (labels NAME-real and
NAME-synth in one run, tools/bench-profile-fidelity.sh), the synthesized
stream's peak live bytes and each backend's peak footprint against the real
capture's, and whether the backends rank the same by allocator ns/op wherever
the real capture's 95% intervals separate them.

    /usr/bin/python3 plots/profile_fidelity.py RUN_DIR [--json OUT]
"""
import argparse
import json
import os
import sys
from itertools import combinations

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runs import BadInput, Run, check_output_file, dig, fail_bad_input, write_output  # noqa: E402
from stats import bootstrap_median_ci  # noqa: E402

LIVE_LIMIT = 0.10
FOOTPRINT_LIMIT = 0.15


def median(xs):
    s = sorted(xs)
    n = len(s)
    return (s[n // 2] + s[(n - 1) // 2]) / 2


def figure(run, cell, path):
    """One figure of an ok cell the table needs, or BadInput naming the cell file and the field: null or
    missing (allocator time in a run made with --no-latency), or a peak of 0 bytes, which no ratio can
    be taken of."""
    v = dig(cell["result"], path)
    where = f"{run.file_of(cell)}: result.{'.'.join(path)}"
    if v is None:
        why = " (a run made with --no-latency times no calls)" if path == ("allocator_ns_per_op",) else ""
        raise BadInput(f"{where}: is null or missing, and the profile fidelity table needs it{why}")
    if path != ("allocator_ns_per_op",) and v <= 0:
        raise BadInput(f"{where}: is {v:g}, not a peak above 0 bytes (the table divides by it)")
    return v


def samples(run, label):
    """backend -> {metric: [values over repetitions]} for one label."""
    out = {}
    for c in run.ok():
        if c["cell"]["label"] != label:
            continue
        m = out.setdefault(c["cell"]["backend"], {"ns": [], "live": [], "footprint": []})
        m["ns"].append(figure(run, c, ("allocator_ns_per_op",)))
        m["live"].append(figure(run, c, ("footprint", "peak_live_bytes")))
        m["footprint"].append(figure(run, c, ("footprint", "peak_footprint_bytes")))
    return out


def separated_pairs(real):
    """Backend pairs whose real-capture 95% intervals of ns/op do not overlap, faster first."""
    ci = {b: bootstrap_median_ci(m["ns"]) for b, m in real.items() if len(m["ns"]) >= 3}
    pairs = []
    for a, b in combinations(sorted(ci), 2):
        if ci[a][1] < ci[b][0]:
            pairs.append((a, b))
        elif ci[b][1] < ci[a][0]:
            pairs.append((b, a))
    return pairs


def capture_rows(run, name):
    real, synth = samples(run, name + "-real"), samples(run, name + "-synth")
    if not real or not synth:
        raise BadInput(f"{run.dir}: {name}-{'real' if not real else 'synth'} has no successful cells")
    backends = [b for b in run.backend_order() if b in real and b in synth]
    if not backends:
        raise BadInput(f"{run.dir}: {name}-real and {name}-synth share no backend with successful cells")
    live_real = median([v for b in backends for v in real[b]["live"]])
    live_synth = median([v for b in backends for v in synth[b]["live"]])
    rows = []
    for b in backends:
        fr, fs = median(real[b]["footprint"]), median(synth[b]["footprint"])
        rows.append({"backend": b, "ns_real": median(real[b]["ns"]), "ns_synth": median(synth[b]["ns"]),
                     "footprint_real": fr, "footprint_synth": fs, "footprint_ratio": fs / fr})
    pairs = separated_pairs(real)
    kept = [(a, b) for a, b in pairs if median(synth[a]["ns"]) < median(synth[b]["ns"])]
    return {"capture": name, "live_real": live_real, "live_synth": live_synth,
            "live_ratio": live_synth / live_real, "backends": rows,
            "separated_pairs": len(pairs), "pairs_kept": len(kept),
            "pairs_flipped": [f"{a}<{b}" for a, b in pairs if (a, b) not in kept]}


def capture_names(run):
    """The captures of a run: each NAME of labels NAME-real and NAME-synth; BadInput when it has none, or
    a label of the one kind without its other half."""
    labels = run.labels()
    names = [lbl[: -len("-real")] for lbl in labels if lbl.endswith("-real")]
    synths = [lbl[: -len("-synth")] for lbl in labels if lbl.endswith("-synth")]
    for name, has, lacks in [(n, "real", "synth") for n in names] + [(n, "synth", "real") for n in synths]:
        if f"{name}-{lacks}" not in labels:
            raise BadInput(f"{run.dir}: label {name}-{has} has no {name}-{lacks} beside it (a capture pair is "
                           "NAME-real and NAME-synth: tools/bench-profile-fidelity.sh writes them)")
    if not names:
        raise BadInput(f"{run.dir}: no capture pairs found (no labels NAME-real and NAME-synth: "
                       "tools/bench-profile-fidelity.sh writes them)")
    return names


def mib(v):
    return f"{v / 2**20:.1f}"


def print_table(results):
    print("| capture | peak live MiB, real → synth | backend | peak footprint MiB, real → synth (ratio) "
          "| ns/op real → synth |")
    print("|---|---|---|---|---|")
    for r in results:
        first = True
        for row in r["backends"]:
            live = (f"{mib(r['live_real'])} → {mib(r['live_synth'])} ({r['live_ratio']:.3f})" if first else "")
            ok = "" if abs(row["footprint_ratio"] - 1) <= FOOTPRINT_LIMIT else " ✗"
            print(f"| {r['capture'] if first else ''} | {live} | {row['backend']} | "
                  f"{mib(row['footprint_real'])} → {mib(row['footprint_synth'])} ({row['footprint_ratio']:.3f}){ok} | "
                  f"{row['ns_real']:.1f} → {row['ns_synth']:.1f} |")
            first = False
    print()
    for r in results:
        live_ok = abs(r["live_ratio"] - 1) <= LIVE_LIMIT
        fp_ok = all(abs(x["footprint_ratio"] - 1) <= FOOTPRINT_LIMIT for x in r["backends"])
        print(f"- {r['capture']}: peak live {'within' if live_ok else 'NOT within'} 10%; "
              f"footprints {'all within' if fp_ok else 'NOT all within'} 15%; ranking kept for "
              f"{r['pairs_kept']} of {r['separated_pairs']} backend pairs the real capture separates"
              + (f" (flipped: {', '.join(r['pairs_flipped'])})" if r["pairs_flipped"] else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--json", help="also write the figures as JSON here")
    args = ap.parse_args()
    try:
        if args.json:
            check_output_file("--json", args.json)
        run = Run(args.run_dir)
        results = [capture_rows(run, n) for n in capture_names(run)]
    except BadInput as e:
        fail_bad_input(e)
    print_table(results)
    if args.json:
        try:
            write_output("--json", args.json, json.dumps(results, indent=1))
        except BadInput as e:
            fail_bad_input(e)


if __name__ == "__main__":
    main()
