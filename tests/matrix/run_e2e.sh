#!/usr/bin/env bash
# End to end: `kmbench run` with a stand-in cell program (fake_cell.py): failures
# kept per cell, resume, shards and merge, exports, compare, bad matrix files.
#   run_e2e.sh KMBENCH TEST_SOURCE_DIR WORK_DIR
set -euo pipefail
km=$1; src=$2; work=$3
py=/usr/bin/python3
fake=$src/fake_cell.py
rm -rf "$work"; mkdir -p "$work"; cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
jq_py() { "$py" -c "import json,sys; d=json.load(open('$1')); print($2)"; }
has() { grep -q -- "$3" <<< "$(jq_py "$1" "$2")"; }

# Real .kmt files (the matrix decodes each at load); their names tell fake_cell.py how to behave.
"$km" trace import "$src/../trace/data/ftrace-sample.txt.xz" -o ok.kmt 2> /dev/null
for b in abort segv hang badjson nojson exit3; do cp ok.kmt "$b.kmt"; done
cat > m.toml <<'TOML'
name = "e2e"
seed = 11
backends = ["system"]
threads = [1, 2]
repetitions = 2
timeout_s = 20

[[trace]]
path = "ok.kmt"

[[trace]]
path = "abort.kmt"
repetitions = 1
threads = 1

[[trace]]
path = "segv.kmt"
repetitions = 1
threads = 1

[[trace]]
path = "hang.kmt"
repetitions = 1
threads = 1
timeout_s = 0.5

[[trace]]
path = "badjson.kmt"
repetitions = 1
threads = 1

[[trace]]
path = "nojson.kmt"
repetitions = 1
threads = 1

[[trace]]
path = "exit3.kmt"
repetitions = 1
threads = 1
TOML

echo "== a bad matrix is rejected before anything runs, naming the line"
printf 'backends = ["system"]\nthreads = [1, 0]\n[[trace]]\npath = "ok.kmt"\n' > bad.toml
set +e; out=$("$km" run bad.toml -o badrun --cell-exe "$fake" 2>&1); rc=$?; set -e
[ $rc -eq 2 ] || fail "bad matrix exit $rc: $out"
grep -q "bad.toml:2:" <<< "$out" || fail "no line in: $out"
[ ! -e badrun ] || fail "a run directory was made for a bad matrix"
printf 'backends = ["nosuch"]\n[[trace]]\npath = "ok.kmt"\n' > bad2.toml
set +e; out=$("$km" run bad2.toml -o badrun --cell-exe "$fake" 2>&1); rc=$?; set -e
[ $rc -eq 2 ] && grep -q "bad2.toml:1: unknown backend 'nosuch'" <<< "$out" || fail "unknown backend: $rc $out"

echo "== --list prints the run order"
[ "$("$km" run m.toml --list | wc -l)" -eq 10 ] || fail "--list"

echo "== failures fail their cell, the run goes on"
set +e; "$km" run m.toml -o run1 --cell-exe "$fake" > run1.out 2> run1.err; rc=$?; set -e
[ $rc -eq 1 ] || fail "run with failing cells exit $rc"
[ "$(jq_py run1/index.json "d['summary']['ok']")" = 4 ] || fail "ok count"
[ "$(jq_py run1/index.json "d['summary']['failed']")" = 6 ] || fail "failed count"
c=run1/cells
[ "$(jq_py $c/abort.system.t1.local.real.fast.r0.json "d['failure']")" = "killed by signal 6 (SIGABRT)" ] || fail abort
[ "$(jq_py $c/segv.system.t1.local.real.fast.r0.json "d['failure']")" = "killed by signal 11 (SIGSEGV)" ] || fail segv
has $c/hang.system.t1.local.real.fast.r0.json "d['failure']" "timeout after 0.5 s" || fail hang
has $c/badjson.system.t1.local.real.fast.r0.json "d['failure']" "not valid JSON" || fail badjson
has $c/nojson.system.t1.local.real.fast.r0.json "d['failure']" "without writing" || fail nojson
[ "$(jq_py $c/exit3.system.t1.local.real.fast.r0.json "d['failure']")" = "exit status 3" ] || fail exit3
has $c/abort.system.t1.local.real.fast.r0.json "d['stderr']" "fake cell: system" || fail "stderr not kept"
[ -f $c/abort.system.t1.local.real.fast.r0.stderr ] || fail "stderr file"
has $c/ok.system.t2.local.real.fast.r1.json "d['result']['schema']" "kmbench.cell/2" || fail "result"
has $c/ok.system.t2.local.real.fast.r1.json "d['run']['matrix']['text']" 'name = "e2e"' || fail "matrix text"
jq_py $c/ok.system.t2.local.real.fast.r1.json "d['environment']['machine']['cpu_model']" > /dev/null || fail "machine"
jq_py run1/index.json "d['environment']['git']['sha']" > /dev/null || fail "git sha"
[ "$(jq_py run1/index.json "len(d['order'])")" = 10 ] || fail "order"
[ "$(wc -l < run1/cells.csv)" -eq 11 ] || fail "csv rows"
[ "$(jq_py run1/benchmark.json "len(d['benchmarks'])")" = 4 ] || fail "gbench rows (failed cells must be absent)"
ls $c | grep -q "\.tmp" && fail "temporary files left"

echo "== resume skips completed cells"
set +e; out=$("$km" run m.toml -o run1 --resume --cell-exe "$fake" 2>&1); set -e
grep -q "(0 ran, 10 skipped)" <<< "$out" || fail "resume: $out"
rm $c/ok.system.t1.local.real.fast.r1.json
set +e; out=$("$km" run m.toml -o run1 --resume --cell-exe "$fake" 2>&1); set -e
grep -q "(1 ran, 9 skipped)" <<< "$out" || fail "resume after loss: $out"
set +e; out=$("$km" run m.toml -o run1 --resume --retry-failed --cell-exe "$fake" 2>&1); set -e
grep -q "(6 ran, 4 skipped)" <<< "$out" || fail "retry failed: $out"
set +e; "$km" run m.toml -o run1 --cell-exe "$fake" > /dev/null 2>&1; rc=$?; set -e
[ $rc -eq 2 ] || fail "an existing run without --resume must be refused ($rc)"

echo "== a run whose index is gone keeps its cells; resume checks whose each file is"
cp -r run1 noindex; rm noindex/index.json
before=$(md5sum noindex/cells/*.json)
set +e; out=$("$km" run m.toml -o noindex --cell-exe "$fake" 2>&1); rc=$?; set -e
[ $rc -eq 2 ] && grep -q "holds cell files but no index.json" <<< "$out" || fail "cells without an index: $rc $out"
[ "$(md5sum noindex/cells/*.json)" = "$before" ] || fail "a refused run rewrote the cells"
set +e; out=$("$km" merge run1 -o noindex 2>&1); rc=$?; set -e
[ $rc -eq 2 ] || fail "merge into cell files without an index must be refused ($rc): $out"
cp $c/ok.system.t1.local.real.fast.r0.json $c/ok.system.t1.local.real.fast.r1.json  # another cell's file
set +e; out=$("$km" run m.toml -o run1 --resume --cell-exe "$fake" 2>&1); set -e
grep -q "(1 ran, 9 skipped)" <<< "$out" || fail "resume must run again a cell whose file is another's: $out"
has $c/ok.system.t1.local.real.fast.r1.json "d['cell']['id']" "ok.system.t1.local.real.fast.r1" ||
  fail "the cell run again holds another's id"
cp -r run1 badindex; echo '[]' > badindex/index.json
set +e; out=$("$km" run m.toml -o badindex --resume --cell-exe "$fake" 2>&1); rc=$?; set -e
[ $rc -eq 2 ] && grep -q "badindex/index.json: not a kmbench.run/1 index" <<< "$out" || fail "damaged index: $rc $out"

echo hi > afile
set +e; out=$("$km" run m.toml -o afile --cell-exe "$fake" 2>&1); rc=$?; set -e
[ $rc -eq 2 ] && grep -q -- "-o afile: is not a directory" <<< "$out" || fail "run -o on a file: $rc $out"
[ "$(cat afile)" = hi ] || fail "run -o on a file changed it"

echo "== shards and merge"
set +e
"$km" run m.toml -o s1 --shard 1/2 --cell-exe "$fake" > /dev/null 2>&1
"$km" run m.toml -o s2 --shard 2/2 --cell-exe "$fake" > /dev/null 2>&1
set -e
n1=$(ls s1/cells/*.json | wc -l); n2=$(ls s2/cells/*.json | wc -l)
[ $((n1 + n2)) -eq 10 ] && [ "$n1" -eq 5 ] || fail "shard sizes $n1 $n2"
"$km" merge s1 s2 -o merged > /dev/null
[ "$(jq_py merged/index.json "d['summary']['cells']")" = 10 ] || fail "merged cells"
[ "$(jq_py merged/index.json "len(d['shards'])")" = 2 ] || fail "merged shards"
for d in s1 merged; do
  [ "$(jq_py $d/index.json "0 < d['latency_reference']['l1_ns'] < d['latency_reference']['dram_ns']")" = True ] ||
    fail "$d/index.json: no latency_reference"
done
set +e; "$km" run m.toml -o s1 --resume --shard 2/2 --cell-exe "$fake" > /dev/null 2>&1; rc=$?; set -e
[ $rc -eq 2 ] || fail "resuming with another shard must be refused"

echo "== kmbench compare"
set +e; "$km" run m.toml -o run2 --cell-exe "$fake" > /dev/null 2>&1; set -e
"$km" compare run1 run2 --json cmp.json > cmp.out
grep -q "^VERDICT B vs A:" cmp.out || fail "no verdict line"
grep -Eq "^ok\.system\.t2\.local\.real\.fast +ops_per_sec " cmp.out || fail "no ops_per_sec row"
has cmp.json "d['verdict']" VERDICT || fail "compare json"
set +e; "$km" compare run1 . > /dev/null 2>&1; rc=$?; set -e
[ $rc -eq 2 ] || fail "compare with a non-run must exit 2 ($rc)"

echo "== Google Benchmark's compare.py reads two exports"
"$py" /usr/share/benchmark/compare.py benchmarks run1/benchmark.json run2/benchmark.json > gb.out 2>&1 \
  || { cat gb.out; fail "compare.py failed"; }
grep -q "ok/system/threads:2/local/real/fast" gb.out || fail "compare.py lacks the benchmark"
grep -q "_pvalue" gb.out || fail "compare.py ran no U test"

echo "== a report of a run with failures"
"$km" plot run1 -o report > /dev/null
grep -q "missing" report/report.html || fail "missing cells not shown as missing"
echo "e2e: all checks passed"
