#!/usr/bin/python3
"""Medians and ratios from Google Benchmark JSON files (--benchmark_format=json
--benchmark_repetitions=N): one row per benchmark, ns per item, and its ratio
to the system backend's row of the same pattern and size (same file)."""
import json
import sys


def medians(path):
    with open(path) as f:
        data = json.load(f)
    rows = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        name = b["run_name"]  # pattern/backend/size
        per_item = 1e9 / b["items_per_second"] if b.get("items_per_second") else b["real_time"]
        rows[name] = per_item
    return rows


def main(paths):
    if not paths:
        print(__doc__)
        return 2
    print(f"{'benchmark':44} {'ns/op':>9} {'x system':>9}")
    for path in paths:
        rows = medians(path)
        for name, ns in rows.items():
            pattern, backend, size = name.split("/")
            base = rows.get(f"{pattern}/system/{size}")
            ratio = f"{ns / base:9.2f}" if base else f"{'-':>9}"
            print(f"{name:44} {ns:9.2f} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
