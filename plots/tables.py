"""The report's internal fragmentation and call-site tables, built from the
cells' `internal_fragmentation`, `kernel_slack` and `call_sites` objects
(results/README.md). A cell without them (a workload for the kernel column,
a run written before they existed) shows "not recorded", never zero.

Both figures are properties of the requests (and, for handed-out bytes, of
the backend's size classes), not of timing: one successful cell per backend
stands for its group."""
import html

NOT_RECORDED = "<span class='missing'>not recorded</span>"
TOP_SITES = 10


def esc(s):
    return html.escape(str(s))


def fmt_bytes(v):
    for u, s in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(v) >= u:
            return f"{v / u:.2f} {s}"
    return f"{v:.0f} B"


def slack_text(handed, requested):
    """'H (+x%)': handed-out bytes and their slack over the request."""
    if handed is None or requested is None:
        return NOT_RECORDED
    pct = f" (+{100.0 * (handed - requested) / requested:.1f}%)" if requested else ""
    return esc(fmt_bytes(handed) + pct)


def class_label(c):
    if c["class"] == "pages":
        return "pages"
    if c.get("max_bytes"):
        return f"≤ {fmt_bytes(c['max_bytes'])}"
    return "> 4 KiB"


def representative_cells(run, label):
    """backend → one successful cell of the label (the largest thread count first)."""
    out = {}
    cells = sorted((c for c in run.ok() if c["cell"]["label"] == label),
                   key=lambda c: (-c["cell"]["threads"], c["cell"]["repetition"]))
    for c in cells:
        out.setdefault(c["cell"]["backend"], c["result"])
    return out


def backends_of(run, label):
    present = {e["backend"] for e in run.entries if e["label"] == label}
    return [b for b in run.backend_order() if b in present]


def kernel_classes(results):
    """class → the kernel's {allocs, bytes_req, bytes_alloc}, from any cell that recorded it."""
    for r in results.values():
        ks = r.get("kernel_slack")
        if isinstance(ks, dict):
            return {c["class"]: c for c in ks.get("classes", [])}, ks.get("total")
    return None, None


def fragmentation_rows(run, label):
    """(head, rows, kernel total, per-backend totals) for one label."""
    backends = backends_of(run, label)
    results = representative_cells(run, label)
    frag = {b: (results.get(b) or {}).get("internal_fragmentation") for b in backends}
    frag = {b: f if isinstance(f, dict) else None for b, f in frag.items()}
    kernel, kernel_total = kernel_classes(results)
    order, requested = [], {}
    for f in frag.values():
        for c in (f or {}).get("classes", []):
            if c["class"] not in requested:
                order.append(c)
                requested[c["class"]] = (c["allocs"], c["requested_bytes"])
    for c in (kernel or {}).values():
        if c["class"] not in requested:
            order.append(c)
            requested[c["class"]] = (None, None)
    rank = ["le16", "le32", "le64", "le128", "le256", "le512", "le1024", "le2048", "le4096", "large", "pages"]
    order.sort(key=lambda c: rank.index(c["class"]) if c["class"] in rank else len(rank))
    head = ["size class", "allocations", "requested", "Linux (bytes_alloc)"] + backends
    rows = []
    for c in order:
        allocs, req = requested[c["class"]]
        k = (kernel or {}).get(c["class"])
        kcell = slack_text(k["bytes_alloc"], k["bytes_req"]) if k else NOT_RECORDED
        if kernel is not None and k is None:
            kcell = "<span class='sub'>none (not a slab allocation)</span>" if c["class"] == "pages" else "—"
        row = [esc(class_label(c)), esc(allocs if allocs is not None else "—"),
               esc(fmt_bytes(req)) if req is not None else "—", kcell]
        for b in backends:
            bc = {x["class"]: x for x in (frag[b] or {}).get("classes", [])}.get(c["class"])
            row.append(slack_text(bc["handed_out_bytes"], bc["requested_bytes"]) if bc else NOT_RECORDED)
        rows.append(row)
    totals = {}  # backend → slack over the object requests (pages apart, as the kernel's)
    for b, f in frag.items():
        objs = [c for c in (f or {}).get("classes", []) if c["class"] != "pages"]
        totals[b] = sum(c["handed_out_bytes"] - c["requested_bytes"] for c in objs) if f else None
    return head, rows, kernel_total, totals


def fragmentation_section(run, table):
    parts = ["<h2>Internal fragmentation</h2><p class='sub'>Requested bytes against the bytes each backend "
             "hands out for the same requests (its usable size: zones element, slab buffer, buddy block, "
             "jemalloc sallocx, mimalloc mi_usable_size, glibc malloc_usable_size), by class of the "
             "requested size, every allocation of the program counted once; measured after the timed "
             "pass. Linux: the capture's own bytes_req and bytes_alloc of its kmalloc and "
             "kmem_cache_alloc events (what <code>perf kmem stat</code> calls fragmentation); pages are "
             "not slab allocations. Brackets: slack over the request.</p>"]
    for label in run.labels():
        head, rows, kernel_total, totals = fragmentation_rows(run, label)
        if not rows:
            parts.append(f"<h3>{esc(label)}</h3><p>{NOT_RECORDED}</p>")
            continue
        parts.append(f"<h3>{esc(label)}</h3>")
        if kernel_total:
            slack = kernel_total["bytes_alloc"] - kernel_total["bytes_req"]
            theirs = [f"{esc(b)} {esc(fmt_bytes(t))}" if t is not None else f"{esc(b)} {NOT_RECORDED}"
                      for b, t in totals.items()]
            parts.append(f"<p class='slack'>Linux paid {esc(fmt_bytes(slack))} of slack on "
                         f"{esc(kernel_total['allocs'])} slab requests of "
                         f"{esc(fmt_bytes(kernel_total['bytes_req']))}; on the same object requests the "
                         f"backends paid: {', '.join(theirs) or 'not recorded'}.</p>")
        parts.append(table(head, rows, num_cols=tuple(range(1, len(head)))))
    return "".join(parts)


def site_rows(run, label):
    """(backends, the label's sites by name, each backend's site entries by name) from its
    representative cells."""
    backends = backends_of(run, label)
    results = representative_cells(run, label)
    sites, per_backend = {}, {}
    for b in backends:
        cs = (results.get(b) or {}).get("call_sites")
        if not isinstance(cs, dict):
            continue
        per_backend[b] = {}
        for s in cs.get("sites", []):
            sites.setdefault(s["site"], s)
            per_backend[b][s["site"]] = s
    return backends, sites, per_backend


def site_cell(entry):
    """A backend's figures for one site: allocator ns/op and footprint share."""
    if entry is None:
        return NOT_RECORDED
    ns, share = entry.get("allocator_ns_per_op"), entry.get("footprint_share")
    ns_text = f"{ns:.1f} ns" if isinstance(ns, (int, float)) else "ns not timed"
    share_text = f"{100.0 * share:.2f}%" if isinstance(share, (int, float)) else "share not recorded"
    return esc(f"{ns_text} · {share_text}")


def site_table(table, backends, ranked, per_backend):
    head = (["call site", "allocations", "bytes", "freed on another CPU"] +
            [f"{b}: ns/op · footprint share" for b in backends])
    rows = []
    for s in ranked:
        frees = s.get("frees") or 0
        cross = (f"{100.0 * s['cross_cpu_frees'] / frees:.1f}% of {frees}" if frees else "no frees")
        row = [f"<code>{esc(s['site'])}</code>", esc(s["allocs"]), esc(fmt_bytes(s["bytes"])), esc(cross)]
        row += [site_cell(per_backend.get(b, {}).get(s["site"])) for b in backends]
        rows.append(row)
    return table(head, rows, num_cols=tuple(range(1, len(head))))


def call_site_section(run, table):
    parts = ["<h2>Call sites</h2><p class='sub'>The capture's call sites, top by allocations and by bytes "
             "requested; freed on another CPU: frees recorded on a different CPU than their allocation "
             "(a property of the trace); ns/op: the mean time of the backend's own calls for the site's "
             "allocations and frees in the timed pass (timer floor taken off); footprint share: the bytes a "
             "backend hands out for the site's allocations over all it hands out (every allocation counted "
             "once).</p>"]
    shown = 0
    for label in run.labels():
        backends, sites, per_backend = site_rows(run, label)
        if not sites:
            continue
        shown += 1
        by_count = sorted(sites.values(), key=lambda s: (-s["allocs"], s["site"]))[:TOP_SITES]
        by_bytes = sorted(sites.values(), key=lambda s: (-s["bytes"], s["site"]))[:TOP_SITES]
        parts.append(f"<h3>{esc(label)}: by allocations</h3>" + site_table(table, backends, by_count, per_backend))
        parts.append(f"<h3>{esc(label)}: by bytes</h3>" + site_table(table, backends, by_bytes, per_backend))
    if not shown:
        parts.append(f"<p>{NOT_RECORDED}: no cell of this run names call sites (workloads have none).</p>")
    return "".join(parts)
