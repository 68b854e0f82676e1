#!/usr/bin/python3
"""Writes a run directory of fixture cells (fake_cell.py numbers, not
measurements) with several backends, two sources, two thread counts, one
group that always failed and one that failed once: input for the plot and
report tests.   make_fixture_run.py OUT_DIR [--trace]
--trace adds a trace source ("capture", kernel slack and call sites) whose
system cells were written before cells recorded fragmentation."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_cell import cell_result  # noqa: E402

BACKENDS = ["system", "zones", "slab", "buddy", "jemalloc"]
SOURCES = [("nic", {"packets": "20000"}), ("churn", {})]


def main():
    out = sys.argv[1]
    sources = SOURCES + ([("capture", {})] if "--trace" in sys.argv[2:] else [])
    os.makedirs(os.path.join(out, "cells"), exist_ok=True)
    env = {"machine": {"cpu_model": "Fixture CPU @ 2.0GHz", "online_cpus": 2, "memory_bytes": 8 << 30,
                       "kernel": "Linux fixture", "hostname": "fixture",
                       "cpu_mhz": 2096.006, "cpu_mhz_source": "/proc/cpuinfo \"cpu MHz\"", "caches": None,
                       "load_avg": [0.5, 0.25, 0.125], "cpu_governor": {"performance": [0], "powersave": [1]},
                       "smt": {"active": False, "control": "notsupported"},
                       "transparent_hugepages": {"enabled": "madvise", "defrag": "never"},
                       "kernel_cmdline": "root=/dev/fixture isolcpus=1",
                       "not_read": {"caches": "no cpu0/cache/index* (fixture)"}},
           "versions": {"kmbench": {"version": "0.1.0", "note": "Release"}},
           "process_malloc": "libc.so.6", "git": {"sha": "0" * 40, "dirty": False}}
    matrix = {"name": "fixture", "path": "fixture.toml", "hash": "f1x", "text": "# fixture matrix\n"}
    entries, order = [], []
    for label, params in sources:
        kind = "trace" if label == "capture" else "workload"
        for backend in BACKENDS:
            for threads in (1, 2):
                group = f"{label}.{backend}.t{threads}.local.real.fast"
                for rep in range(5):
                    cid = f"{group}.r{rep}"
                    order.append(cid)
                    failed = (backend == "buddy" and label == "churn" and threads == 2) or \
                             (backend == "zones" and label == "nic" and threads == 1 and rep == 3)
                    cell = {"id": cid, "group": group, "backend": backend, "source_kind": kind,
                            "source": label, "label": label, "params": [[k, v] for k, v in params.items()],
                            "threads": threads, "placement": "local", "topology": "real", "mode": "fast",
                            "repetition": rep, "timeout_s": 60, "line": 1}
                    result = None if failed else cell_result(backend, kind, label, params, threads,
                                                             "local", "real", "fast", rep)
                    if result and kind == "trace" and backend == "system":  # as an older run wrote it
                        for key in ("internal_fragmentation", "kernel_slack", "call_sites"):
                            del result[key]
                    doc = {"schema": "kmbench.run-cell/1",
                           "run": {"run_id": os.path.basename(os.path.normpath(out)), "matrix": matrix, "seed": 1,
                                   "shard": "1/1"},
                           "cell": cell, "command": [], "status": "failed" if failed else "ok",
                           "failure": "killed by signal 11 (SIGSEGV)" if failed else None,
                           "stderr": "fixture: segmentation fault\n" if failed else None,
                           "stderr_file": None, "started_utc": "2026-01-01T00:00:00Z",
                           "wall_s": 0.5, "cpu_s": 0.4, "environment": env,
                           "topology": {"kind": "real", "nodes": 1}, "result": result}
                    with open(os.path.join(out, "cells", cid + ".json"), "w") as f:
                        json.dump(doc, f)
                    entries.append({"id": cid, "group": group, "status": doc["status"],
                                    "file": f"cells/{cid}.json", "backend": backend, "label": label,
                                    "source_kind": kind, "threads": threads, "placement": "local",
                                    "topology": "real", "mode": "fast", "repetition": rep, "wall_s": 0.5,
                                    "failure": doc["failure"]})
    index = {"schema": "kmbench.run/1", "run_id": os.path.basename(os.path.normpath(out)),
             "created_utc": "2026-01-01T00:00:00Z", "matrix": matrix, "seed": 1, "order": order,
             "shards": [{"shard": "1/1", "cells": len(order)}], "environment": env,
             "topology": {"real_nodes": 1, "used": {"real": {"kind": "real", "nodes": 1}}},
             "cells": entries,
             "summary": {"cells": len(entries), "ok": sum(e["status"] == "ok" for e in entries),
                         "failed": sum(e["status"] == "failed" for e in entries), "pending": 0,
                         "matrix_cells": len(entries)}}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f, indent=1)


if __name__ == "__main__":
    main()
