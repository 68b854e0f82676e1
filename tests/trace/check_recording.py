#!/usr/bin/python3
"""Records tests/trace/record_target.c with the LD_PRELOAD recorder and checks
the .kmt against what the program does.

usage: check_recording.py KMBENCH RECORDER TARGET WORKDIR
"""
import collections
import json
import os
import subprocess
import sys

kmbench, recorder, target, work = sys.argv[1:5]
os.makedirs(work, exist_ok=True)
out = os.path.join(work, "rec.kmt")
if os.path.exists(out):
    os.remove(out)
env = dict(os.environ, LD_PRELOAD=recorder, KMBENCH_RECORD_OUT=out)
subprocess.run([target], env=env, check=True)

dump = subprocess.run([kmbench, "trace", "dump", out], check=True, capture_output=True, text=True).stdout
ops = collections.Counter()
objects_by = collections.defaultdict(set)
streams = set()
stream = None
align = {}
calls = collections.defaultdict(set)   # (kind, size) -> the calls that made them
sites = collections.defaultdict(set)   # (kind, size) -> their call sites
strings = {}
reallocs = 0                           # frees made by realloc: each a realloc of a live block
for line in dump.splitlines():
    w = line.split()
    if w and w[0] == "string":
        strings[int(w[1])] = line.split(" ", 2)[2][1:-1].replace('\\"', '"').replace("\\\\", "\\")
    elif w and w[0] == "stream":
        stream = int(w[1])
        streams.add(stream)
    elif stream is not None and len(w) >= 4 and w[0].isdigit():
        kind, obj, size = w[1], int(w[2]), int(w[3])
        ops[(kind, size)] += 1
        objects_by[(kind, size)].add((obj, stream))
        for f in w[4:]:
            if f.startswith("align="):
                align[size] = int(f[6:])
            elif f.startswith("call="):
                calls[(kind, size)].add(f[5:])
                reallocs += kind == "free" and f == "call=realloc"
            elif f.startswith("site="):
                sites[(kind, size)].add(strings[int(f[5:])])

def expect(cond, what):
    if not cond:
        print("FAILED:", what)
        print(dump[:3000])
        sys.exit(1)

expect(ops[("alloc", 12345)] == 100, "100 allocations of 12345 bytes")
expect(ops[("free", 12345)] == 100, "100 frees of 12345 bytes")
alloc_streams = {s for _, s in objects_by[("alloc", 12345)]}
free_streams = {s for _, s in objects_by[("free", 12345)]}
expect(alloc_streams != free_streams and len(free_streams) == 1, "frees of 12345 on the worker thread's stream")
expect(ops[("alloc", 777)] == 50 and ops[("free", 777)] == 50, "50 malloc/free pairs of 777")
expect(ops[("alloc", 3333)] == 1 and ops[("free", 3333)] == 1, "posix_memalign")
expect(ops[("alloc", 4444)] == 1 and ops[("free", 4444)] == 1, "aligned_alloc")
expect(ops[("alloc", 5555)] == 1 and ops[("free", 5555)] == 0, "memalign never freed")
expect(align.get(3333) == 12 and align.get(4444) == 8 and align.get(5555) == 6, "alignments kept")
expect(ops[("alloc", 3333)] == 1, "posix_memalign")
expect(ops[("alloc", 2221)] == 1 and ops[("free", 2221)] == 1, "realloc frees the old block")
expect(ops[("alloc", 2223)] == 1 and ops[("free", 2223)] == 1, "realloc's new block")
expect(ops[("alloc", 3333)] == 1, "posix_memalign")
expect(ops[("page_alloc", 4 * 4096)] == 1 and ops[("page_free", 4 * 4096)] == 1, "anonymous mmap/munmap in pages")
expect(ops[("alloc", 3 * 1211)] == 1 and ops[("free", 3 * 1211)] == 1, "calloc")
expect(len(streams) >= 2, "one stream per thread")

# Each op keeps the call that made it, and its caller named from the program's symbols.
for (kind, size), call in [(("alloc", 777), "malloc"), (("free", 777), "free"), (("alloc", 3 * 1211), "calloc"),
                           (("free", 2221), "realloc"), (("alloc", 2223), "realloc"),
                           (("alloc", 3333), "posix_memalign"), (("alloc", 4444), "aligned_alloc"),
                           (("alloc", 5555), "memalign"), (("page_alloc", 4 * 4096), "mmap"),
                           (("page_free", 4 * 4096), "munmap")]:
    expect(calls[(kind, size)] == {call}, f"{kind} of {size} made by {call}, got {calls[(kind, size)]}")
expect(sites[("alloc", 12345)] and all(s.startswith("main+0x") for s in sites[("alloc", 12345)]),
       f"allocations of 12345 named main+0x...: {sites[('alloc', 12345)]}")
expect(sites[("free", 12345)] and all(s.startswith("worker+0x") for s in sites[("free", 12345)]),
       f"their frees named worker+0x...: {sites[('free', 12345)]}")
expect(all(s.startswith("main+0x") for s in sites[("alloc", 2223)]), f"realloc in main: {sites[('alloc', 2223)]}")

info = json.loads(subprocess.run([kmbench, "trace", "info", "--json", out], check=True,
                                 capture_output=True, text=True).stdout)
expect(info["source"] == "ldpreload", "source")
expect(info["null_frees"] >= 1, "free(NULL) counted")
expect(info["counters"]["recorder.dropped_records"] == 0, "no dropped records")

# The replay joins each realloc of a live block (its free and its allocation)
# into one realloc: the backend's own where it has one (glibc), else allocate,
# copy and free (slab); --realloc split keeps them apart.
expect(reallocs >= 40, f"the program's 40 reallocs of a live block are recorded: {reallocs}")
expect(info.get("reallocs", {}).get("of_live_blocks") == reallocs,
       f"trace info counts {info.get('reallocs')} reallocs, the dump {reallocs} of a live block")
for backend, mode, joined, own in (("system", "backend", reallocs, reallocs), ("slab", "backend", reallocs, 0),
                                   ("system", "copy", reallocs, 0), ("system", "split", 0, 0)):
    cell = os.path.join(work, f"replay-{backend}-{mode}.json")
    subprocess.run([kmbench, "replay", out, "--backend", backend, "--realloc", mode, "--drain", "--json", cell],
                   check=True, capture_output=True)
    with open(cell) as f:
        r = json.load(f)
    what = f"{backend} --realloc {mode}"
    expect(r["reallocs"]["joined"] == joined, f"{what}: {r['reallocs']['joined']} reallocs joined, not {joined}")
    expect(r["reallocs"]["backend_own"] == own, f"{what}: {r['reallocs']['backend_own']} by the backend's own")
    expect(r["reallocs"]["failed"] == 0, f"{what}: no realloc fails")
    expect(r["accounting_check"]["ok"] and r["accounting_check"]["drained"], f"{what}: drained, accounting ok")
print("recording checked:", sum(ops.values()), "ops,", reallocs, "reallocs")
