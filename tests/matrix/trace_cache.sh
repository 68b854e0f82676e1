#!/usr/bin/env bash
# `kmbench run` imports each capture a matrix names once per run, into
# RUN_DIR/traces/HASH.kmt, and rejects a missing or damaged capture before
# any cell runs (exit 2, naming the matrix file, the entry's line and the capture).
#   trace_cache.sh KMBENCH TEST_SOURCE_DIR WORK_DIR
set -euo pipefail
km=$(realpath "$1"); src=$(realpath "$2"); work=$3
py=/usr/bin/python3
sample=$src/../trace/data/ftrace-sample.txt.xz
rm -rf "$work"; mkdir -p "$work"; work=$(realpath "$work"); cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
jq_py() { "$py" -c "import json,sys; d=json.load(open('$1')); print($2)"; }
matrix() {  # matrix FILE PATH_A PATH_B: two [[trace]] entries, the second on line 9
  printf 'backends = ["slab"]\nthreads = 1\nrepetitions = 1\n\n[[trace]]\nlabel = "a"\npath = "%s"\n\n[[trace]]\nlabel = "b"\npath = "%s"\nreplay = { touch = "none" }\n' \
    "$2" "$3" > "$1"
}
cp "$sample" cap.txt.xz

echo "== two entries naming one capture: imported once, both replay it"
matrix two.toml cap.txt.xz cap.txt.xz
"$km" run two.toml -o run1 > run1.out 2> run1.err || { cat run1.err; fail "run"; }
grep -q "cells: 2 (2 ran, 0 skipped), 0 failed" run1.out || fail "cells: $(cat run1.out)"
[ "$(grep -c "imported .*cap.txt.xz" run1.err)" -eq 1 ] || fail "not imported exactly once: $(cat run1.err)"
[ "$(ls run1/traces | wc -l)" -eq 1 ] || fail "cache holds $(ls run1/traces)"
kmt=$(ls run1/traces/*.kmt)
[ "$(jq_py run1/index.json "len(d['traces'])")" = 2 ] || fail "index traces"
[ "$(jq_py run1/index.json "d['traces'][0]['hash'] == d['traces'][1]['hash']")" = True ] || fail "hashes differ"
[ "$(jq_py run1/index.json "'run1/' + d['traces'][1]['kmt']")" = "$kmt" ] || fail "kmt path"
[ "$(jq_py run1/index.json "d['traces'][0]['info']['events']")" = 19999 ] || fail "events"
[ "$(jq_py run1/index.json "d['traces'][0]['info']['counters']['import.events']")" = 19999 ] || fail "counters"
for c in run1/cells/*.r0.json; do
  [ "$(jq_py "$c" "d['command'][2]")" = "$(realpath "$kmt")" ] || fail "$c does not replay the cache"
done

echo "== a resumed run reuses the cache"
rm run1/cells/b.slab.t1.local.real.fast.r0.json
"$km" run two.toml -o run1 --resume > run1b.out 2> run1b.err || { cat run1b.err; fail "resume"; }
grep -q "(1 ran, 1 skipped)" run1b.out || fail "resume: $(cat run1b.out)"
grep -q "imported already" run1b.err && ! grep -q "imported /" run1b.err || fail "re-imported: $(cat run1b.err)"
[ "$(jq_py run1/index.json "d['traces'][0]['reused']")" = True ] || fail "reused"

echo "== shards import what their cells replay; merge keeps every entry and the cache"
"$km" run two.toml -o s1 --shard 1/2 > /dev/null 2>&1 || fail "shard 1"
"$km" run two.toml -o s2 --shard 2/2 > /dev/null 2>&1 || fail "shard 2"
[ "$(jq_py s1/index.json "len(d['traces'])")" = 1 ] || fail "shard 1 traces"
"$km" merge s1 s2 -o merged > /dev/null
[ "$(jq_py merged/index.json "sorted(t['label'] for t in d['traces'])")" = "['a', 'b']" ] || fail "merged traces"
[ -f "merged/$(jq_py merged/index.json "d['traces'][0]['kmt']")" ] || fail "merged cache"

rejected() {  # rejected MATRIX RUN_DIR PATTERN...: exit 2, each pattern in the message
  local m=$1 dir=$2 out rc; shift 2
  set +e; out=$("$km" run "$m" -o "$dir" "${@:2}" 2>&1); rc=$?; set -e
  [ $rc -eq 2 ] || fail "$m: exit $rc: $out"
  grep -qF -- "$1" <<< "$out" || fail "$m: message lacks '$1': $out"
  grep -q "ok  \|FAIL " <<< "$out" && fail "$m: a cell ran: $out"
  return 0
}

echo "== a missing capture is rejected before anything runs"
matrix missing.toml cap.txt.xz nosuch.txt.xz
rejected missing.toml run2 "missing.toml:11: trace file '$work/nosuch.txt.xz' does not exist"
[ ! -e run2 ] || fail "a run directory was made for a missing capture"
mkdir -p adir.txt
matrix dir.toml cap.txt.xz adir.txt
rejected dir.toml run2 "dir.toml:11: trace file '$work/adir.txt' is not a regular file"
[ ! -e run2 ] || fail "a run directory was made for a capture that is a directory"

echo "== a damaged capture is rejected before anything runs"
head -c 40000 "$sample" > truncated.txt.xz
head -c 4096 /dev/urandom > garbage.txt
: > empty.txt
for bad in truncated.txt.xz garbage.txt empty.txt; do
  matrix "bad-$bad.toml" cap.txt.xz "$bad"
  rejected "bad-$bad.toml" run3 "bad-$bad.toml:9: " 
  rejected "bad-$bad.toml" run3 "$work/$bad"
  [ ! -e run3 ] || fail "a run directory was made for $bad"
done

echo "== a capture damaged or changed after the run began: resume refused, nothing lost"
before=$(md5sum run1/index.json run1/cells/*.json)
head -c 40000 "$sample" > cap.txt.xz
rejected two.toml run1 "two.toml:5: cannot import trace capture '$work/cap.txt.xz'" --resume
cp "$src/../trace/data/imperfect.ftrace" cap.txt.xz
rejected two.toml run1 "changed since this run began" --resume
[ "$(md5sum run1/index.json run1/cells/*.json)" = "$before" ] || fail "the run directory changed"
[ "$(ls run1/traces | wc -l)" -eq 1 ] || fail "cache changed"
echo "trace_cache: all checks passed"
