"""The numbers a reader sees come from the cell files they cite: the
leaderboards' medians and ratios, the allocator chart's boxes and dots, and
the report built by `kmbench plot` (with --baseline and --compare), checked
against values read straight from a fixture run's cell files.
Run by ctest (plots.report_numbers) as:
    KMBENCH=path/to/kmbench python3 -m pytest tests/plots/test_report_numbers.py"""
import glob
import json
import os
import subprocess

import numpy as np
import pytest

import charts
import leaderboard
import runs


def cell_values(fixture_run, path):
    """group → the metric over its successful repetitions, read from the cell files alone."""
    out = {}
    for name in glob.glob(os.path.join(fixture_run, "cells", "*.json")):
        with open(name) as f:
            doc = json.load(f)
        if doc["status"] != "ok":
            continue
        v = doc["result"]
        for k in path:
            v = v[k]
        out.setdefault(doc["cell"]["group"], []).append(v)
    return out


def test_leaderboard_medians_and_ratios_come_from_the_cells(fixture_run):
    run = runs.Run(fixture_run)
    rows = leaderboard.baseline_rows(run, "system", 0.05, 0.03)
    boards = leaderboard.leaderboards(run, "system", rows)
    assert [b["label"] for b in boards] == ["nic", "churn"]
    ns = cell_values(fixture_run, ("allocator_ns_per_op",))
    foot = cell_values(fixture_run, ("footprint", "peak_footprint_bytes"))
    for b in boards:
        assert b["threads"] == 2
        base_group = f"{b['label']}.system.t2.local.real.fast"
        ranked = [r["medians"]["allocator_ns_per_op"] for r in b["rows"] if r["medians"]["allocator_ns_per_op"]]
        assert ranked == sorted(ranked)
        for r in b["rows"]:
            if r["group"] not in ns:  # the always-failing group: ranked last, no figures
                assert r["medians"]["allocator_ns_per_op"] is None and r is b["rows"][-1]
                assert r["ok"] == 0
                continue
            assert r["medians"]["allocator_ns_per_op"] == pytest.approx(np.median(ns[r["group"]]))
            assert r["medians"]["peak_footprint_bytes"] == pytest.approx(np.median(foot[r["group"]]))
            if r["backend"] != "system":
                assert r["vs_base_ns"]["ratio"] == pytest.approx(np.median(ns[r["group"]]) / np.median(ns[base_group]))


def test_baseline_must_be_a_backend_of_the_run(fixture_run):
    run = runs.Run(fixture_run)
    assert leaderboard.pick_baseline(run) == "system"
    assert leaderboard.pick_baseline(run, "slab") == "slab"
    with pytest.raises(ValueError, match="--baseline nosuch: the run has no such backend"):
        leaderboard.pick_baseline(run, "nosuch")


def test_allocator_chart_draws_the_cells_values(fixture_run, tmp_path, monkeypatch):
    figures = {}

    def keep(fig, view, out_dir, name, heading, title, caption):
        figures[name] = fig
        return charts.Chart(name, title, "", "", caption)

    monkeypatch.setattr(charts, "finish", keep)
    view = charts.View(runs.Run(fixture_run))
    charts.allocator(view, str(tmp_path))
    ns = cell_values(fixture_run, ("allocator_ns_per_op",))
    for label in ("nic", "churn"):
        ax = figures[f"allocator_{label}"].axes[0]
        medians = sorted(round(line.get_ydata()[0], 6) for line in ax.lines
                         if line.get_gid() == "median")
        want = sorted(round(float(np.median(v)), 6) for g, v in ns.items() if g.startswith(label + "."))
        assert medians == want
        dots = sorted(round(float(y), 6) for c in ax.collections for _, y in c.get_offsets())
        assert dots == sorted(round(float(x), 6) for g, v in ns.items() if g.startswith(label + ".") for x in v)


def plot(*args):
    kmbench = os.environ.get("KMBENCH")
    if not kmbench:
        pytest.skip("KMBENCH (the kmbench binary) not set")
    return subprocess.run([kmbench, "plot", *args], capture_output=True, text=True)


def test_report_shows_the_leaderboard_and_an_a_a_compare(fixture_run, tmp_path):
    out = tmp_path / "report"
    done = plot(fixture_run, "-o", str(out), "--compare", fixture_run, "--baseline", "zones", "--margin", "5")
    assert done.returncode == 0, done.stderr
    page = (out / "report.html").read_text()
    assert "<h2>Leaderboards</h2>" in page
    assert "VERDICT backends vs zones:" in page
    assert "Benjamini-Hochberg" in page and "±5%" in page
    assert f"VERDICT this run vs {os.path.basename(fixture_run)}: NO DIFFERENCE" in page  # a run against itself
    ns = cell_values(fixture_run, ("allocator_ns_per_op",))
    assert f"<td class=\"num\">{runs.fmt_num(float(np.median(ns['nic.slab.t2.local.real.fast'])))}</td>" in page


def test_report_rejects_an_unknown_baseline(fixture_run, tmp_path):
    done = plot(fixture_run, "-o", str(tmp_path / "r"), "--baseline", "nosuch")
    assert done.returncode == 2
    assert "--baseline nosuch: the run has no such backend (it has system, zones, slab, buddy, jemalloc)" in done.stderr
    assert not (tmp_path / "r" / "report.html").exists()
