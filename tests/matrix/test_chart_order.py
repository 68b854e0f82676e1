#!/usr/bin/python3
"""Charts take the backend order and the op kinds from the run's index
("backends", "op_kinds", written by `kmbench run`); a run written before the
index listed them falls back to the order the cells give.
    test_chart_order.py PLOTS_DIR WORK_DIR"""
import json
import os
import subprocess
import sys

plots, work = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, plots)
import charts  # noqa: E402
import runs  # noqa: E402

run_dir = os.path.join(work, "run")
subprocess.run(["rm", "-rf", work], check=True)
subprocess.run([sys.executable, os.path.join(here, "make_fixture_run.py"), run_dir], check=True)
index_path = os.path.join(run_dir, "index.json")
with open(index_path) as f:
    index = json.load(f)

failures = []


def expect(what, got, want):
    if got != want:
        failures.append(f"{what}: got {got}, want {want}")


# No "backends" or "op_kinds": the cells' order.
view = charts.View(runs.Run(run_dir))
first_seen = list(dict.fromkeys(e["backend"] for e in index["cells"]))
expect("backends without the index's order", view.backends, first_seen)
kinds = list(dict.fromkeys(k for c in runs.Run(run_dir).ok() for k in c["result"]["latency"]))
expect("op kinds without the index's list", view.op_kinds, kinds)

# With them: the catalogue's order, whatever order the cells came in.
catalogue = ["zz-not-run", "jemalloc", "buddy", "slab", "zones", "system"]
index["backends"] = catalogue
index["op_kinds"] = ["free", "alloc"]
with open(index_path, "w") as f:
    json.dump(index, f)
view = charts.View(runs.Run(run_dir))
expect("backends in the index's order", view.backends, [b for b in catalogue if b in first_seen])
expect("op kinds from the index", view.op_kinds, ["free", "alloc"])
expect("colours follow the order", list(view.colors), view.backends)

for f in failures:
    print("FAIL", f)
print(f"test_chart_order: {'ok' if not failures else f'{len(failures)} failed'}")
sys.exit(1 if failures else 0)
