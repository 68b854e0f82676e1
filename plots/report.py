"""`kmbench plot RUN_DIR [-o OUT_DIR] [--compare OTHER_RUN]`: the charts (PNG
and SVG) and one self-contained HTML page (images embedded, no network) a
reviewer can open: environment, summary and failure tables, internal fragmentation
and call sites (tables.py), verdicts."""
import argparse
import base64
import html
import math
import os
import sys

import numpy as np

from leaderboard import baseline_rows, board_cells, leaderboards, pick_baseline
from runs import METRICS, BadInput, Run, compare_runs, fail_bad_input, fmt_num, output_dir, write_output
from stats import CORRECTION, DEFAULT_ALPHA, DEFAULT_MARGIN, margin_text, verdict_line
from tables import call_site_section, fragmentation_section

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1200px;
color:#1d1d1f;line-height:1.4;padding:0 16px}
h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:2px solid #e0e0e0;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0;font-size:0.86em}th,td{border:1px solid #d8d8d8;padding:3px 7px;
text-align:left;vertical-align:top}th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.missing{color:#a00000;font-style:italic}.better{color:#116611;font-weight:600}.worse{color:#a00000;font-weight:600}
.verdict{font-size:1.05em;background:#f7f7fa;border-left:5px solid #4060c0;padding:8px 12px;margin:8px 0}
figure{margin:18px 0}figure img{max-width:100%;border:1px solid #e4e4e4}figcaption{font-size:0.85em;color:#555}
pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:0.8em}.sub{color:#555}
.ok{color:#116611}.bad{color:#a00000}
"""


def esc(s):
    return html.escape(str(s))


def table(head, rows, num_cols=()):
    out = ["<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"]
    for r in rows:
        cells = []
        for i, v in enumerate(r):
            cls = ' class="num"' if i in num_cols else ""
            cells.append(f"<td{cls}>{v}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out) + "</table>"


def environment_section(run):
    env = run.environment
    m = env.get("machine", {})
    git = env.get("git", {})
    idx = run.index
    rows = [
        ("CPU", esc(m.get("cpu_model", "?"))),
        ("online CPUs", esc(m.get("online_cpus", "?"))),
        ("memory", esc(fmt_num(m.get("memory_bytes"), "bytes"))),
        ("kernel", esc(m.get("kernel", "?"))),
        ("host", esc(m.get("hostname", "?"))),
        *((esc(label), esc(text)) for label, text in run.machine_state()),
        ("git", esc(f"{git.get('sha', 'unknown')}{' (with uncommitted changes)' if git.get('dirty') else ''}")),
        ("matrix", esc(f"{idx.get('matrix', {}).get('name', '?')} — {idx.get('matrix', {}).get('path', '?')} "
                       f"(hash {idx.get('matrix', {}).get('hash', '?')})")),
        ("seed", esc(idx.get("seed", "?"))),
        ("shards", esc(", ".join(s.get("shard", "?") for s in idx.get("shards", [])))),
        ("topology", esc(f"{idx.get('topology', {}).get('real_nodes', '?')} real NUMA node(s); used: " +
                         ", ".join(f"{k} ({v.get('kind')}, {v.get('nodes')} nodes)"
                                   for k, v in idx.get("topology", {}).get("used", {}).items()))),
        ("runner's malloc", esc(env.get("process_malloc", "?"))),
    ]
    served = {}
    for c in run.ok():
        served.setdefault(c["cell"]["backend"], set()).add(
            (c["result"].get("environment") or {}).get("process_malloc", "not recorded"))
    for b, owners in sorted(served.items()):
        rows.append((f"malloc in {esc(b)} cells", esc(", ".join(sorted(owners)))))
    versions = env.get("versions", {})
    vrows = [(esc(k), esc(v.get("version", "")), esc(v.get("note", ""))) for k, v in versions.items()]
    return ("<h2>Environment</h2>" + table(["", ""], rows) + "<h3>Versions</h3>" +
            table(["component", "version", "note"], vrows))


def summary_section(run):
    groups = run.groups()
    rows = []
    bounded_groups = 0  # groups whose peak footprint is the peak live bytes in some repetition
    for group, es in groups.items():
        e = es[0]
        ok = [x for x in es if x["status"] == "ok"]
        vals = run.values(group, ("ops_per_sec",))
        if vals:
            q1, med, q3 = np.percentile(vals, [25, 50, 75])
            tput = f"{fmt_num(med)} <span class='sub'>[{fmt_num(q1)}–{fmt_num(q3)}]</span>"
        else:
            reasons = sorted({x.get("failure") or x["status"] for x in es})
            tput = f"<span class='missing'>missing ({esc('; '.join(reasons))})</span>"
        def med_of(path, unit=""):
            v = run.values(group, path)
            return fmt_num(float(np.median(v)), unit) if v else "<span class='missing'>missing</span>"
        bounded = sum(1 for c in run.ok() if c["cell"]["group"] == group
                      and c["result"].get("footprint", {}).get("peak_footprint_from_live") is True)
        footprint = med_of(("footprint", "peak_footprint_bytes"), "bytes")
        if bounded:
            footprint += f" <span class='sub' title='{bounded} repetition(s): no sample caught the live peak'>*</span>"
            bounded_groups += 1
        rows.append((esc(e["label"]), esc(e["backend"]), esc(e["threads"]), esc(e["placement"]),
                     esc(e["topology"]), esc(e["mode"]),
                     f"<span class='{'ok' if len(ok) == len(es) else 'bad'}'>{len(ok)}/{len(es)}</span>",
                     med_of(("allocator_ns_per_op",)), tput, med_of(("faults", "minor_per_op")),
                     med_of(("latency", "alloc", "p99_ns")), med_of(("latency", "free", "p99_ns")),
                     footprint, med_of(("footprint", "fragmentation"))))
    rows.sort(key=lambda r: r[:4])
    bounded_note = (f" A peak footprint marked * ({bounded_groups} group(s)) comes in some repetition from the "
                    "peak live bytes: with several replay threads no sample caught the live peak, and the backend "
                    "held at least those bytes then (docs/REPLAY.md)." if bounded_groups else "")
    return ("<h2>Results</h2><p class='sub'>Medians over successful repetitions of the timed pass; "
            "allocator time is inside the backends' own calls (the figure that ranks them), throughput is "
            "the whole pass's (harness included); throughput brackets are the quartiles. A group without a successful repetition is <span class='missing'>missing</span>, "
            "never zero." + bounded_note + "</p>" +
            table(["source", "backend", "threads", "placement", "topology", "mode", "ok",
                   "allocator [ns/op]", "throughput [ops/s]", "minor faults/op", "alloc p99 [ns]",
                   "free p99 [ns]", "peak footprint", "fragmentation"], rows,
                  num_cols=(7, 8, 9, 10, 11, 12, 13)))


def failures_section(run):
    failed = [c for c in run.cells if c.get("status") == "failed"]
    pending = [e for e in run.entries if e["status"] == "pending"]
    if not failed and not pending:
        return "<h2>Failures</h2><p class='ok'>Every cell succeeded.</p>"
    rows = []
    for c in failed:
        err = c.get("stderr") or ""
        detail = (f"<details><summary>stderr ({len(err)} bytes)</summary><pre>{esc(err[-4000:])}</pre></details>"
                  if err else "<span class='sub'>no stderr</span>")
        rows.append((esc(c["cell"]["id"]), esc(c.get("failure", "")), detail))
    for e in pending:
        rows.append((esc(e["id"]), "not run (run interrupted or another shard)", ""))
    return (f"<h2>Failures</h2><p class='bad'>{len(failed)} failed, {len(pending)} not run. "
            "They appear as missing in the charts and tables.</p>" + table(["cell", "failure", "stderr"], rows))


def leaderboard_section(run, boards, margin):
    head = ["rank", "backend", "allocator [ns/op]", "ns/op vs baseline [95% CI]", "ns/op verdict", "alloc p99 [ns]",
            "peak footprint", "footprint vs baseline", "fragmentation", "ok"]
    parts = [f"<h2>Leaderboards</h2><p class='sub'>One per workload or trace, at its largest thread count: "
             f"backends ranked by median allocator time per operation (inside the backends' own calls). "
             f"Ratios are medians over the baseline's ({esc(boards[0]['base'] if boards else '')}) with a 95% "
             f"bootstrap interval; below 1 is faster or smaller. Verdicts: see Verdicts below "
             f"(margin {esc(margin_text(margin))}).</p>"]
    for b in boards:
        topo = "" if b["topology"] == "real" else f", topology {b['topology']}"
        parts.append(f"<h3>{esc(b['label'])} — {esc(b['threads'])} thread{'s' if b['threads'] > 1 else ''}, "
                     f"{esc(b['placement'])} placement, {esc(b['mode'])} mode{esc(topo)}</h3>")
        rows = []
        for cells in board_cells(b):
            verdict = cells[4]
            cls = verdict if verdict in ("better", "worse") else "missing" if verdict.startswith("missing") else ""
            rows.append(tuple(esc(c) for c in cells[:4]) + (f"<span class='{cls}'>{esc(verdict)}</span>",) +
                        tuple(esc(c) for c in cells[5:]))
        parts.append(table(head, rows, num_cols=(0, 2, 3, 5, 6, 7, 8)))
    return "".join(parts)


def verdicts_section(run, base, rows, alpha, margin):
    """Every backend against the baseline, the rows judged together."""
    line = verdict_line(rows, [k for k, *_ in METRICS], alpha, margin, what=f"backends vs {base}")
    trs = []
    for r in rows:
        e = run.cell_of(r["group"])
        if r.get("ratio") is None:
            ratio = ci = p = p_adj = "—"
        else:
            ratio = f"{r['ratio']:.3f}"
            ci = f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]" if all(map(math.isfinite, r["ci"])) else "—"
            p, p_adj = f"{r['p']:.4f}", f"{r['p_adj']:.4f}"
        cls = r["verdict"] if r["verdict"] in ("better", "worse") else "missing" if r["verdict"].startswith(
            "missing") else ""
        trs.append((esc(e["label"]), esc(e["backend"]), esc(e["threads"]), esc(e["placement"]), esc(r["metric"]),
                    ratio, ci, p, p_adj, f"<span class='{cls}'>{esc(r['verdict'])}</span>"))
    return (f"<h2>Verdicts: each backend against {esc(base)}</h2><div class='verdict'>{esc(line)}</div>"
            f"<p class='sub'>p: two-sided Mann-Whitney U over repetitions; p adj: {CORRECTION} over all "
            f"{sum(1 for r in rows if r.get('p') is not None)} comparisons on this page. better/worse needs "
            f"p adj below {alpha:g}, an interval without 1 and a ratio beyond {esc(margin_text(margin))}; "
            f"\"same within {esc(margin_text(margin))}\" means the whole 95% interval lies inside the margin.</p>" +
            table(["source", "backend", "threads", "placement", "metric", f"ratio to {base}", "95% CI", "p",
                   "p adj", "verdict"], trs, num_cols=(5, 6, 7, 8)), line)


def compare_section(run, other, alpha, margin):
    """This run against the earlier run `other` (a Run, read and checked with this one), judged together."""
    rows = compare_runs(other, run, alpha, margin)
    line = verdict_line(rows, [k for k, *_ in METRICS], alpha, margin, what=f"this run vs {other.run_id}")
    trs = []
    for r in rows:
        if r.get("metric") == "*" or r.get("ratio") is None:
            trs.append((esc(r["group"]), esc(r.get("metric", "")), "—", "—", "—", "—",
                        f"<span class='missing'>{esc(r['verdict'])}</span>"))
            continue
        ci = f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]" if all(map(math.isfinite, r["ci"])) else "—"
        cls = r["verdict"] if r["verdict"] in ("better", "worse") else ""
        trs.append((esc(r["group"]), esc(r["metric"]), f"{r['ratio']:.3f}", ci, f"{r['p']:.4f}",
                    f"{r['p_adj']:.4f}", f"<span class='{cls}'>{esc(r['verdict'])}</span>"))
    return (f"<h2>Compared with run {esc(other.run_id)}</h2><div class='verdict'>{esc(line)}</div>" +
            table(["group", "metric", "ratio this/other", "95% CI", "p", "p adj", "verdict"], trs,
                  num_cols=(2, 3, 4, 5)), line)


def embed(path):
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")


def main():
    ap = argparse.ArgumentParser(prog="kmbench plot")
    ap.add_argument("run")
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--compare")
    ap.add_argument("--baseline", help="the backend every other is compared with (default: system)")
    ap.add_argument("--margin", type=float, default=DEFAULT_MARGIN * 100,
                    help="equivalence margin in percent (default 3)")
    ap.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    a = ap.parse_args()
    if not 0 <= a.margin < 100 or not 0 < a.alpha < 1:
        ap.error(f"--margin {a.margin} must lie in [0, 100) and --alpha {a.alpha} in (0, 1)")
    margin = a.margin / 100
    charts_dir = os.path.join(a.out, "charts")
    try:
        run = Run(a.run)
        other = Run(a.compare) if a.compare else None  # checked, as the run is, before anything is written
        base = pick_baseline(run, a.baseline)
        output_dir("-o", a.out)
        output_dir("-o", charts_dir)
    except (BadInput, ValueError) as e:
        fail_bad_input(e)
    from charts import all_charts  # matplotlib only once the input is known good
    charts = all_charts(run, charts_dir)
    rows = baseline_rows(run, base, a.alpha, margin) if base else []
    boards = leaderboards(run, base, rows) if base else []
    verdicts, line = verdicts_section(run, base, rows, a.alpha, margin) if base else ("", None)
    compare_html, compare_line = compare_section(run, other, a.alpha, margin) if other else ("", None)
    s = run.index.get("summary", {})
    head = (f"{s.get('ok', 0)} of {s.get('cells', 0)} cells succeeded, {s.get('failed', 0)} failed, "
            f"{s.get('pending', 0)} not run")
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>kmbench report — {esc(run.run_id)}</title><style>{CSS}</style></head><body>",
             f"<h1>kmbench report — {esc(run.run_id)}</h1>",
             f"<p class='sub'>{esc(run.machine_line())}<br>{esc(head)}; matrix "
             f"{esc(run.index.get('matrix', {}).get('name', '?'))}, seed {esc(run.index.get('seed', '?'))}, "
             f"created {esc(run.index.get('created_utc', '?'))}</p>"]
    for l in (line, compare_line):
        if l:
            parts.append(f"<div class='verdict'>{esc(l)}</div>")
    if boards:
        parts.append(leaderboard_section(run, boards, margin))
    parts.append("<h2>Charts</h2>")
    for c in charts:
        parts.append(f"<figure><img alt='{esc(c.title)}' src='{embed(c.png)}'><figcaption><b>{esc(c.title)}.</b> "
                     f"{esc(c.caption)} (SVG: charts/{esc(os.path.basename(c.svg))})</figcaption></figure>")
    if not charts:
        parts.append("<p class='missing'>This run has no cells.</p>")
    parts += [summary_section(run), fragmentation_section(run, table), call_site_section(run, table),
              verdicts, compare_html, failures_section(run), environment_section(run),
              "<h2>Matrix file</h2><pre>" + esc(run.index.get("matrix", {}).get("text", "")) + "</pre>",
              "</body></html>"]
    out = os.path.join(a.out, "report.html")
    try:
        write_output("-o", out, "\n".join(parts))
    except BadInput as e:
        fail_bad_input(e)
    print(f"report: {out}")
    print(f"charts: {charts_dir} ({len(charts)} charts, PNG and SVG)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
