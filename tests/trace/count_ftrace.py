#!/usr/bin/python3
"""Counts an ftrace kmem capture independently of kmbench (regular expressions,
dictionaries) and checks `kmbench trace info --json` against the counts.

usage: count_ftrace.py KMBENCH CAPTURE
Rules (docs/kmt-format.md, "trace info"): events in file order; a NULL free is
not a free; a free of an address not live is unmatched; an allocation at a live
address replaces the older block; pages match by pfn and weigh 4096 << order.
"""
import json
import re
import subprocess
import sys

EVENT = re.compile(r"^\s*(.*?)-(\d+|\.\.\.)\s+\[(\d+)\]\s+(?:\S+\s+)?(\d+\.\d+):\s+(\w+):\s*(.*)$")
FIELD = re.compile(r"(\w+)=(\S+)")
SLAB_ALLOC = {"kmalloc", "kmalloc_node", "kmem_cache_alloc", "kmem_cache_alloc_node"}
SLAB_FREE = {"kfree", "kmem_cache_free"}
PAGE_ALLOC = {"mm_page_alloc"}
PAGE_FREE = {"mm_page_free", "mm_page_free_batched"}


def count(path):
    c = dict.fromkeys(["events", "allocs", "frees", "null_frees", "unmatched_frees", "page_allocs",
                       "page_frees", "never_freed", "peak_live_bytes"], 0)
    live = {}
    live_bytes = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = EVENT.match(line)
            if not m:
                continue
            name, fields = m.group(5), dict(FIELD.findall(m.group(6)))
            if name in SLAB_ALLOC or name in PAGE_ALLOC:
                page = name in PAGE_ALLOC
                if page:
                    key = ("pfn", int(fields["pfn"], 0))
                    size = 4096 << int(fields["order"])
                    null = int(fields["page"], 16) == 0
                else:
                    key = ("ptr", int(fields["ptr"], 16))
                    size = int(fields.get("bytes_alloc", fields["bytes_req"]))
                    null = key[1] == 0
                c["events"] += 1
                if null:
                    continue
                c["allocs"] += 1
                c["page_allocs"] += page
                if key in live:
                    live_bytes -= live[key]
                live[key] = size
                live_bytes += size
                c["peak_live_bytes"] = max(c["peak_live_bytes"], live_bytes)
            elif name in SLAB_FREE or name in PAGE_FREE:
                page = name in PAGE_FREE
                key = ("pfn", int(fields["pfn"], 0)) if page else ("ptr", int(fields["ptr"], 16))
                c["events"] += 1
                if not page and key[1] == 0:
                    c["null_frees"] += 1
                    continue
                c["frees"] += 1
                c["page_frees"] += page
                if key in live:
                    live_bytes -= live.pop(key)
                else:
                    c["unmatched_frees"] += 1
    c["never_freed"] = len(live)
    return c


def main():
    kmbench, capture = sys.argv[1], sys.argv[2]
    expected = count(capture)
    got = json.loads(subprocess.run([kmbench, "trace", "info", "--json", capture], check=True,
                                    capture_output=True, text=True).stdout)
    bad = [f"{k}: kmbench {got.get(k)} != independent {v}" for k, v in expected.items() if got.get(k) != v]
    print(json.dumps(expected))
    if bad:
        print("\n".join(bad))
        sys.exit(1)
    if expected["events"] == 0:
        print("no events counted: the capture or the pattern is wrong")
        sys.exit(1)


main()
