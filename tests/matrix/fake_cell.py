#!/usr/bin/python3
"""A stand-in for `kmbench workload|replay` in the matrix tests.

It takes the same arguments the matrix runner passes and writes a
kmbench.cell/2 object whose numbers come from a seeded generator:
test fixtures, never measurements. For `replay FILE`, the file's name
picks a behaviour: ok, abort, segv, hang, exit3, badjson, nojson (abort.kmt
aborts); any other name is ok.
"""
import argparse
import json
import math
import os
import random
import signal
import sys
import time

BEHAVIOURS = ("ok", "abort", "segv", "hang", "badjson", "nojson", "exit3")
KINDS = ("alloc", "free", "page_alloc", "page_free", "dma_prepare")
SPEED = {"system": 1.0, "zones": 1.6, "slab": 1.8, "buddy": 0.7, "jemalloc": 1.5,
         "jemalloc-notcache": 0.9, "mimalloc": 1.7, "mimalloc-nonuma": 1.6, "bump": 3.0}


def histogram(rng, median_ns, count):
    """Log-spaced buckets around a median: [[upper_bound_ns, count], ...]."""
    samples = [median_ns * math.exp(rng.gauss(0, 0.6)) for _ in range(400)]
    bounds = [2 ** (i / 2) for i in range(2, 60)]
    out = []
    for b in bounds:
        n = sum(1 for s in samples if s <= b) - sum(c for _, c in out)
        if n:
            out.append([round(b), n])
    scale = count / 400.0
    return [[b, max(1, round(n * scale))] for b, n in out], samples


def latency(rng, median_ns, count):
    hist, samples = histogram(rng, median_ns, count)
    samples.sort()
    q = lambda p: round(samples[min(len(samples) - 1, int(p * len(samples)))])
    return {"count": count, "p50_ns": q(0.5), "p90_ns": q(0.9), "p99_ns": q(0.99),
            "p999_ns": q(0.999), "max_ns": round(samples[-1]), "histogram": hist}


# Requests of the fixture program: (class, max_bytes, allocs, requested bytes) and each
# backend's rounding of a request (a fixture's, not the backends' real size classes).
CLASSES = [("le16", 16, 4000, 40000), ("le64", 64, 2500, 120000), ("le512", 512, 900, 300000),
           ("large", None, 40, 400000), ("pages", None, 100, 409600)]
ROUNDING = {"system": 1.10, "zones": 1.25, "slab": 1.20, "buddy": 1.60, "jemalloc": 1.15,
            "jemalloc-notcache": 1.15, "mimalloc": 1.12, "mimalloc-nonuma": 1.12, "bump": 1.0}
# The capture's own slab slack (trace sources): bytes_alloc for the same requests.
KERNEL_ALLOC = {"le16": 64000, "le64": 160000, "le512": 460800, "large": 409600}
SITES = [("tcp_sendmsg+0x1a/0x40", 3000, 96000, 0.25), ("skb_clone+0x2c/0x90", 2500, 300000, 0.5),
         ("alloc_pages_vma+0x88/0x1f0", 100, 409600, 0.0), ("__kmalloc_reserve+0x10/0x80", 1940, 464000, 0.1)]


def fragmentation(backend):
    """internal_fragmentation of the fixture program on a backend."""
    f = ROUNDING.get(backend, 1.0)
    classes = [{"class": c, "max_bytes": m, "allocs": n, "requested_bytes": r, "handed_out_bytes": round(r * f)}
               for c, m, n, r in CLASSES]
    total = {k: sum(c[k] for c in classes) for k in ("allocs", "requested_bytes", "handed_out_bytes")}
    return {"classes": classes, "total": total, "refused_requests": 0, "note": "fixture"}


def kernel_slack():
    classes = [{"class": c, "max_bytes": m, "allocs": n, "bytes_req": r, "bytes_alloc": KERNEL_ALLOC[c]}
               for c, m, n, r in CLASSES if c in KERNEL_ALLOC]
    total = {"allocs": sum(c["allocs"] for c in classes), "bytes_req": sum(c["bytes_req"] for c in classes),
             "bytes_alloc": sum(c["bytes_alloc"] for c in classes)}
    return {"classes": classes, "total": total, "note": "fixture"}


def call_sites(backend):
    f = ROUNDING.get(backend, 1.0)
    handed = [round(b * (f if i % 2 else 1.0)) for i, (_, _, b, _) in enumerate(SITES)]
    sites = [{"site": s, "allocs": n, "bytes": b, "frees": n, "cross_cpu_frees": round(n * x),
              "cross_cpu_fraction": round(n * x) / n, "handed_out_bytes": h, "footprint_share": h / sum(handed),
              "timed_ops": 2 * n, "allocator_ns_per_op": (40.0 + 7 * i) / SPEED.get(backend, 1.0)}
             for i, ((s, n, b, x), h) in enumerate(zip(SITES, handed))]
    return {"sites_total": len(sites), "handed_out_bytes_total": sum(handed), "sites": sites, "note": "fixture"}


def cell_result(backend, kind, name, params, threads, placement, topology, mode, seed):
    rng = random.Random(f"{backend}/{name}/{threads}/{placement}/{seed}/{os.getpid()}")
    speed = SPEED.get(backend, 1.0) * (1 + 0.6 * (threads - 1)) * (0.8 if placement == "remote" else 1.0)
    events = 200000
    ops = 5e6 * speed * rng.uniform(0.95, 1.05)
    dma = name in ("nic", "nvme", "usb32")
    lat = {k: latency(rng, 80 / SPEED.get(backend, 1.0) * (4 if k.startswith("page") else 1), events // 4)
           for k in KINDS if dma or not k.startswith("dma")}
    live = 40 << 20
    foot = int(live * (1.1 + 0.4 * rng.random()) * (1.3 if backend == "buddy" else 1.0))
    timeline = []
    for i in range(20):
        f = min(1.0, (i + 1) / 10)
        timeline.append({"t_ns": i * 1_000_000, "mapped_bytes": int(foot * f), "resident_bytes": int(foot * f * 0.9),
                         "live_bytes": int(live * f * rng.uniform(0.9, 1.0)), "rss_bytes": int(foot * f) + (8 << 20)})
    synthetic = topology != "real"
    alloc_ns = 20 / SPEED.get(backend, 1.0) * rng.uniform(0.95, 1.05)
    return {
        "schema": "kmbench.cell/2", "backend": backend,
        "source": {"kind": kind, "name": name, "params": params, "seed": seed},
        "mode": mode, "threads": threads, "node": -1, "placement": placement,
        "topology": {"kind": "synthetic" if synthetic else "real", "description": topology,
                     "nodes": 2 if synthetic else 1},
        "events": events, "duration_ns": int(events / ops * 1e9), "ops_per_sec": ops,
        "allocator_ns_per_op": alloc_ns,
        "time": {"measured": True, "allocator_ns": alloc_ns * events, "touch_ns": 2.0 * events,
                 "dma_ns": (30.0 if dma else 0.0) * events, "wait_ns": 500.0 * threads,
                 "sampling_ns": 0.5 * events, "pacing_ns": 0.0, "idle_ns": 100.0,
                 "harness_ns": 12.0 * events, "thread_ns": threads * events / ops * 1e9,
                 "allocator_ops": events},
        "faults": {"minor": 3, "major": 0, "minor_per_op": 3 / events},
        "latency": lat,
        "footprint": {"peak_footprint_bytes": foot, "peak_live_bytes": live,
                      "fragmentation": foot / live, "timeline": timeline},
        "final_live_blocks": 0, "noblock_failures": 0, "dependency_wait_ns": 1000 * threads,
        "dma": {"transfers": 5000 if dma else 0, "segments": 9000 if dma else 0,
                "segments_per_transfer": (1.8 if backend != "buddy" else 1.0) if dma else 0.0,
                "bounce_bytes": (4096 * 300 if name == "usb32" else 0), "bounce_copies": 300 if name == "usb32" else 0,
                "iommu_mappings": 0},
        "numa": {"measured": False, "note": "synthetic topology: placement not measured" if synthetic
                 else "single-node machine: placement not measured"},
        "tags": [{"name": "rx-ring", "peak_live_bytes": live // 2, "live_bytes": 0},
                 {"name": "tx-ring", "peak_live_bytes": live // 3, "live_bytes": 0}],
        "accounting_check": {"drained": True, "ok": True, "detail": "fixture"},
        "metrics": {"replay.latency.alloc.p99_ns": lat["alloc"]["p99_ns"]},
        "environment": {"machine": {"cpu_model": "fixture CPU", "online_cpus": 2}, "process_malloc": "libc.so.6"},
        "internal_fragmentation": fragmentation(backend),
        "kernel_slack": kernel_slack() if kind == "trace" else None,
        "call_sites": call_sites(backend) if kind == "trace" else None,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["workload", "replay"])
    ap.add_argument("source")
    ap.add_argument("--backend", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--placement", default="local")
    ap.add_argument("--mode", default="fast")
    ap.add_argument("--topology", default="real")
    ap.add_argument("--param", action="append", default=[])
    ap.add_argument("--backend-param", action="append", default=[])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--node", type=int, default=-1)
    ap.add_argument("--touch")
    ap.add_argument("--speed", type=float)
    ap.add_argument("--sample-ms", type=float)
    ap.add_argument("--drain", action="store_true")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    behaviour = "ok"
    if a.command == "replay":  # a trace's name says how its cell behaves: abort.kmt aborts
        stem = os.path.splitext(os.path.basename(a.source))[0]
        behaviour = stem if stem in BEHAVIOURS else "ok"
    print(f"fake cell: {a.backend} {a.source} behaviour {behaviour}", file=sys.stderr)
    if behaviour == "abort":
        os.abort()
    if behaviour == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if behaviour == "hang":
        time.sleep(3600)
    if behaviour == "exit3":
        sys.exit(3)
    if behaviour == "nojson":
        return
    params = dict(p.split("=", 1) for p in a.param)
    result = cell_result(a.backend, "trace" if a.command == "replay" else "workload",
                         os.path.basename(a.source), params, a.threads, a.placement, a.topology, a.mode, a.seed)
    with open(a.json, "w") as f:
        if behaviour == "badjson":
            f.write("{\"schema\": ")
        else:
            json.dump(result, f)


if __name__ == "__main__":
    main()
