#!/bin/bash
# The kernel's own slack in `trace info --json` (slab_slack) against an awk
# sum over the capture's text: bytes_req and bytes_alloc of every successful
# kmalloc and kmem_cache_alloc event (and their _node forms), by class of
# bytes_req.   slab_slack_awk.sh KMBENCH CAPTURE(.xz)
set -euo pipefail
kmbench=$1
capture=$2
python=${KMBENCH_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

case $capture in
  *.xz) xz -dc "$capture" ;;
  *) cat "$capture" ;;
esac | awk '
  function cls(r,  c) {
    if (r <= 16) return "le16"
    if (r > 4096) return "large"
    for (c = 32; c < r; c *= 2) {}
    return "le" c
  }
  {
    ev = ""; ptr = ""; req = ""; got = ""
    for (i = 1; i <= NF; i++) {
      if (ev == "" && $i ~ /^(kmalloc|kmalloc_node|kmem_cache_alloc|kmem_cache_alloc_node):$/) ev = $i
      else if (ev != "" && $i ~ /^ptr=/) ptr = substr($i, 5)
      else if (ev != "" && $i ~ /^bytes_req=/) req = substr($i, 11)
      else if (ev != "" && $i ~ /^bytes_alloc=/) got = substr($i, 13)
    }
    if (ev == "" || ptr ~ /^(0x)?0+$/ || req == "") next
    if (got == "") got = req  # a kernel that does not print bytes_alloc: charged as asked
    c = cls(req + 0)
    n[c]++; r[c] += req; a[c] += got
  }
  END { for (c in n) printf "%s %d %d %d\n", c, n[c], r[c], a[c] }
' > "$work/awk.txt"

"$kmbench" trace info "$capture" --json > "$work/info.json"
"$python" - "$work/awk.txt" "$work/info.json" <<'PY'
import json, sys
awk = {}
for line in open(sys.argv[1]):
    c, n, r, a = line.split()
    awk[c] = (int(n), int(r), int(a))
info = json.load(open(sys.argv[2]))
slack = info.get("slab_slack")
if slack is None:
    sys.exit("trace info: slab_slack not recorded")
got = {c["class"]: (c["allocs"], c["bytes_req"], c["bytes_alloc"]) for c in slack["classes"]}
total = tuple(sum(v[i] for v in awk.values()) for i in range(3))
t = slack["total"]
print(f"awk:        {total[0]} slab allocations, bytes_req {total[1]}, bytes_alloc {total[2]}, "
      f"slack {total[2] - total[1]}")
print(f"trace info: {t['allocs']} slab allocations, bytes_req {t['bytes_req']}, bytes_alloc {t['bytes_alloc']}")
if got != awk or total != (t["allocs"], t["bytes_req"], t["bytes_alloc"]):
    for c in sorted(set(got) | set(awk)):
        print(f"  {c}: awk {awk.get(c)} trace info {got.get(c)}")
    sys.exit("kernel slack differs from the awk count")
PY
