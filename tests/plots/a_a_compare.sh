#!/usr/bin/env bash
# A/A: two runs of the same build on a cut-down default matrix (real cells, five
# repetitions) must compare as "no difference": `kmbench compare` judges every
# group and metric together (Benjamini-Hochberg, ±3% margin), so noise between
# two runs must not read as a verdict.
#   a_a_compare.sh KMBENCH WORK_DIR
set -euo pipefail
km=$1; work=$2
rm -rf "$work"; mkdir -p "$work"; cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

cat > aa.toml <<'TOML'
name = "a-a"
seed = 20261204
backends = ["system", "zones", "slab", "buddy"]
threads = 1
repetitions = 5
timeout_s = 60

[[workload]]
name = "nic"
params = { packets = 5000, queues = 2 }

[[workload]]
name = "churn"
params = { ops = 20000, streams = 2 }
TOML

# A shared VM can slow down as a whole between two runs (a neighbour's load):
# every group then moves together, a real difference between the runs that no
# statistic should hide. So up to three pairs run; one pair reading NO
# DIFFERENCE passes, and each pair's verdict is printed.
for attempt in 1 2 3; do
  rm -rf run_a run_b
  "$km" run aa.toml -o run_a > run_a.log 2>&1 || { cat run_a.log; fail "run A"; }
  "$km" run aa.toml -o run_b > run_b.log 2>&1 || { cat run_b.log; fail "run B"; }
  "$km" compare run_a run_b --json cmp.json > cmp.out || { cat cmp.out; fail "compare exited non-zero"; }
  line=$(grep '^VERDICT B vs A:' cmp.out) || fail "no verdict line"
  echo "pair $attempt: $line"
  [[ $line == "VERDICT B vs A: NO DIFFERENCE — "* ]] && break
  grep -E ' (better|worse) \(' cmp.out || true
  [ $attempt -lt 3 ] || fail "three A/A pairs in a row gave a verdict: $line"
done
# Forty groups' metrics were compared, not skipped.
/usr/bin/python3 - cmp.json <<'PY' || fail "the comparison judged too few rows"
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
judged = [r for r in rows if r.get("p_adj") is not None]
assert len({r["group"] for r in judged}) == 8 and len(judged) >= 40, (len(judged), len(rows))
PY
echo "PASS"
