"""The report's internal fragmentation and call-site tables show the numbers
of the cell files: each backend's handed-out bytes by size class, the
capture's own slack beside them, the sites' counts, cross-CPU frees, each
backend's ns/op and footprint share; and "not recorded" (never zero) where a cell has no such
figure (workloads for the kernel column, cells written before the fields).
Run by ctest (plots.report_tables) as:
    KMBENCH=path/to/kmbench python3 -m pytest tests/plots/test_report_tables.py"""
import glob
import html
import json
import os
import re
import subprocess

import pytest

import report
import runs
import tables


def one_result(fixture_run_with_trace, label, backend):
    """A successful cell's result, read straight from the files."""
    for name in sorted(glob.glob(os.path.join(fixture_run_with_trace, "cells", f"{label}.{backend}.*.json"))):
        with open(name) as f:
            doc = json.load(f)
        if doc["status"] == "ok":
            return doc["result"]
    return None


def section(page, heading):
    start = page.index(heading)
    end = page.find("<h3>", start + len(heading))
    return page[start:end if end > 0 else len(page)]


def rows_of(html_table):
    """Each row's cells, tags stripped and entities read."""
    return [[html.unescape(re.sub("<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
            for tr in re.findall(r"<tr>(.*?)</tr>", html_table, re.S)]


def test_fragmentation_table_shows_the_cells_bytes(fixture_run_with_trace):
    run = runs.Run(fixture_run_with_trace)
    page = tables.fragmentation_section(run, report.table)
    capture = section(page, "<h3>capture</h3>")
    rows = {r[0]: r for r in rows_of(capture) if r}
    head = ["size class", "allocations", "requested", "Linux"] + tables.backends_of(run, "capture")
    for backend in ("zones", "slab", "buddy", "jemalloc"):
        frag = one_result(fixture_run_with_trace, "capture", backend)["internal_fragmentation"]
        for c in frag["classes"]:
            row = rows[tables.class_label(c)]
            want = tables.fmt_bytes(c["handed_out_bytes"])
            pct = 100.0 * (c["handed_out_bytes"] - c["requested_bytes"]) / c["requested_bytes"]
            assert row[head.index(backend)] == f"{want} (+{pct:.1f}%)"
            assert row[1] == str(c["allocs"])
            assert row[2] == tables.fmt_bytes(c["requested_bytes"])
    kernel = one_result(fixture_run_with_trace, "capture", "slab")["kernel_slack"]
    for c in kernel["classes"]:
        pct = 100.0 * (c["bytes_alloc"] - c["bytes_req"]) / c["bytes_req"]
        assert rows[tables.class_label(c)][3] == f"{tables.fmt_bytes(c['bytes_alloc'])} (+{pct:.1f}%)"
    assert rows["pages"][3] == "none (not a slab allocation)"
    # The system cells of the capture were written before cells had the field.
    assert all(r[head.index("system")] == "not recorded" for r in rows.values())
    total = kernel["total"]
    assert (f"Linux paid {tables.fmt_bytes(total['bytes_alloc'] - total['bytes_req'])} of slack on "
            f"{total['allocs']} slab requests") in capture
    slab = one_result(fixture_run_with_trace, "capture", "slab")["internal_fragmentation"]["classes"]
    slab_slack = sum(c["handed_out_bytes"] - c["requested_bytes"] for c in slab if c["class"] != "pages")
    assert f"slab {tables.fmt_bytes(slab_slack)}" in capture
    assert "system not recorded" in re.sub("<[^>]+>", "", capture)


def test_workloads_have_no_kernel_column_figures(fixture_run_with_trace):
    page = tables.fragmentation_section(runs.Run(fixture_run_with_trace), report.table)
    for label in ("nic", "churn"):
        rows = [r for r in rows_of(section(page, f"<h3>{label}</h3>")) if r]
        assert rows and all(r[3] == "not recorded" for r in rows)
        assert "0 B" not in section(page, f"<h3>{label}</h3>")


def test_call_site_table_shows_counts_cross_cpu_frees_times_and_shares(fixture_run_with_trace):
    run = runs.Run(fixture_run_with_trace)
    page = tables.call_site_section(run, report.table)
    backends = tables.backends_of(run, "capture")
    by_count = rows_of(section(page, "<h3>capture: by allocations</h3>"))
    by_bytes = rows_of(section(page, "<h3>capture: by bytes</h3>"))
    sites = {s["site"]: s for s in one_result(fixture_run_with_trace, "capture", "zones")["call_sites"]["sites"]}
    assert [r[0] for r in by_count if r] == [s["site"] for s in sorted(sites.values(), key=lambda s: -s["allocs"])]
    assert [r[0] for r in by_bytes if r] == [s["site"] for s in sorted(sites.values(), key=lambda s: -s["bytes"])]
    for r in (r for r in by_count if r):
        s = sites[r[0]]
        assert r[1] == str(s["allocs"])
        assert r[2] == tables.fmt_bytes(s["bytes"])
        assert r[3] == f"{100.0 * s['cross_cpu_frees'] / s['frees']:.1f}% of {s['frees']}"
        for b in backends:
            res = one_result(fixture_run_with_trace, "capture", b)
            cell = r[4 + backends.index(b)]
            if res.get("call_sites") is None:
                assert cell == "not recorded"
            else:
                entry = {x["site"]: x for x in res["call_sites"]["sites"]}[r[0]]
                assert cell == f"{entry['allocator_ns_per_op']:.1f} ns · {100.0 * entry['footprint_share']:.2f}%"


def test_a_run_without_sites_says_so(fixture_run):
    page = tables.call_site_section(runs.Run(fixture_run), report.table)
    assert "not recorded" in page and "<table>" not in page


def test_kmbench_plot_puts_both_tables_in_the_report(fixture_run_with_trace, tmp_path):
    kmbench = os.environ.get("KMBENCH")
    if not kmbench:
        pytest.skip("KMBENCH (the kmbench binary) not set")
    done = subprocess.run([kmbench, "plot", fixture_run_with_trace, "-o", str(tmp_path / "r")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "r" / "report.html").read_text()
    assert "<h2>Internal fragmentation</h2>" in page and "<h2>Call sites</h2>" in page
    assert "Linux paid" in page and "<code>skb_clone+0x2c/0x90</code>" in page


def test_a_peak_footprint_set_by_the_peak_live_bytes_is_marked(fixture_run, tmp_path):
    """A group whose peak footprint came, in some repetition, from the peak
    live bytes (no sample caught the live peak) is marked, with a note; a run
    without such a repetition has neither."""
    import shutil
    assert "A peak footprint marked *" not in report.summary_section(runs.Run(fixture_run))
    run_dir = str(tmp_path / "run")
    shutil.copytree(fixture_run, run_dir)
    marked = None
    for name in sorted(glob.glob(os.path.join(run_dir, "cells", "*.json"))):
        with open(name) as f:
            doc = json.load(f)
        if doc["status"] == "ok" and marked is None:
            doc["result"]["footprint"]["peak_footprint_from_live"] = True
            marked = doc["cell"]["group"]
            with open(name, "w") as f:
                json.dump(doc, f)
    assert marked is not None
    page = report.summary_section(runs.Run(run_dir))
    assert "A peak footprint marked * (1 group(s))" in page
    stars = [r for r in re.findall(r"<tr>(.*?)</tr>", page) if "no sample caught the live peak" in r]
    assert len(stars) == 1
    label, backend = marked.split(".")[:2]
    assert f">{label}<" in stars[0] and f">{backend}<" in stars[0]
