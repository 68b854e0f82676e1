#!/usr/bin/python3
"""The latency CDF charts draw the machine's load latencies (index.json
"latency_reference", written by `kmbench run`) as labelled vertical lines on
every panel; a run without them draws none and does not fail.
    test_latency_lines.py PLOTS_DIR WORK_DIR"""
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
out_dir = os.path.join(work, "charts")
os.makedirs(out_dir)
index_path = os.path.join(run_dir, "index.json")

figures = []


def keep(fig, view, out_dir, name, heading, chart_title, caption):
    figures.append((name, fig, caption))
    return charts.Chart(name, chart_title, "", "", caption)


charts.finish = keep
failures = []


def panels():
    """(chart name, x of every vertical line, annotation texts) per latency panel drawn."""
    got = []
    for name, fig, _ in figures:
        for ax in fig.axes:
            if not ax.axison:
                continue
            xs = [ln.get_xdata()[0] for ln in ax.get_lines() if len(set(ln.get_xdata())) == 1]
            got.append((name, xs, [t.get_text() for t in ax.texts]))
    return got


# An index without reference latencies: no lines, no error.
charts.latency_cdfs(charts.View(runs.Run(run_dir)), out_dir)
before = panels()
if not before:
    failures.append("no latency panels drawn from the fixture run")
for name, xs, texts in before:
    if xs or texts:
        failures.append(f"{name}: lines {xs} or labels {texts} drawn without latency_reference")

# With them: every panel carries the four lines at the index's values, labelled.
ref = {"l1_ns": 1.2, "l2_ns": 4.5, "llc_ns": 14.0, "dram_ns": 110.0, "buffer_bytes": {"l1": 24576}}
with open(index_path) as f:
    index = json.load(f)
index["latency_reference"] = ref
with open(index_path, "w") as f:
    json.dump(index, f)
figures.clear()
charts.latency_cdfs(charts.View(runs.Run(run_dir)), out_dir)
after = panels()
if len(after) != len(before):
    failures.append(f"{len(after)} panels with references, {len(before)} without")
want = [ref[k] for k in ("l1_ns", "l2_ns", "llc_ns", "dram_ns")]
for name, xs, texts in after:
    if sorted(xs) != want:
        failures.append(f"{name}: vertical lines at {sorted(xs)}, want {want}")
    for label in ("L1 1.2 ns", "L2 4.5 ns", "LLC 14 ns", "DRAM 110 ns"):
        if label not in texts:
            failures.append(f"{name}: no label '{label}' (labels {texts})")
if not all("Dashed lines" in caption for _, _, caption in figures):
    failures.append("a caption does not say what the dashed lines are")

# A failed probe ({"error": ...}) draws nothing either.
index["latency_reference"] = {"error": "latency probe failed: fixture"}
with open(index_path, "w") as f:
    json.dump(index, f)
figures.clear()
charts.latency_cdfs(charts.View(runs.Run(run_dir)), out_dir)
if any(xs or texts for _, xs, texts in panels()):
    failures.append("lines drawn from a failed probe")

for f in failures:
    print("FAIL", f)
print(f"test_latency_lines: {'ok' if not failures else f'{len(failures)} failed'}")
sys.exit(1 if failures else 0)
