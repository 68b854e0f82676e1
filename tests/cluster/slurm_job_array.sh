#!/usr/bin/env bash
# The Slurm job-array recipe of results/README.md ("Spreading a matrix over a
# cluster") on a private one-node Slurm: this script starts munged, slurmctld
# and slurmd with their keys, sockets, state, logs and ports inside one
# temporary directory (a system Slurm or MUNGE, if any, is left alone), submits
# the matrix as a three-task array plus the dependent merge job, resubmits one
# shard to resume it, and checks the merged run against an unsharded run.
#   slurm_job_array.sh KMBENCH MATRIX
# Exits 77 (ctest: skipped) with one line saying why where Slurm cannot start.
set -euo pipefail
SKIP=77
km=$(readlink -f "$1")
matrix_src=$(readlink -f "$2")
shards=3

skip() { echo "SKIPPED: $*"; exit $SKIP; }
fail() { echo "FAIL: $*" >&2; exit 1; }
say() { echo "[$(date +%T)] $*"; }

# Run from inside a Slurm job, its settings must not reach this cluster.
for v in $(compgen -e); do
  case $v in SLURM_* | SBATCH_* | SALLOC_* | SRUN_* | SQUEUE_* | SINFO_* | SCONTROL_*) unset "$v" ;; esac
done

[ "$(id -u)" -eq 0 ] || skip "not root: this private Slurm runs its daemons and jobs as root"
for b in munged munge unmunge slurmctld slurmd sbatch squeue sinfo scontrol scancel; do
  command -v "$b" > /dev/null || skip "$b not found (Debian: apt-get install slurm-wlm munge)"
done

tmp=$(mktemp -d /tmp/kmbench-slurm.XXXXXX)
chmod 711 "$tmp" # munged wants every directory above its socket searchable by all
# Every process of this cluster (daemons, job steps, batch scripts) carries the
# marker in its environment: the cleanup finds what is left by it.
export KMBENCH_SLURM_TEST=$tmp
munged_pid="" ctld_pid="" slurmd_pid=""
submitted=()

alive() { # PID: running (not a zombie)
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}
stop() { # PID: SIGTERM, up to 10 s, then SIGKILL
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 100); do alive "$pid" || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
leftovers() { # the cluster's processes but this script, its daemons and their children
  local p pid ppid
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    tr '\0' '\n' 2> /dev/null < "$p/environ" | grep -qxF "KMBENCH_SLURM_TEST=$tmp" || continue
    ppid=$(sed 's/.*) //' "$p/stat" 2> /dev/null | cut -d' ' -f2) || continue
    case " $$ $BASHPID $munged_pid $ctld_pid $slurmd_pid " in *" $pid "* | *" $ppid "*) continue ;; esac
    echo "$pid"
  done
  return 0
}
cleanup() {
  local rc=$? i pids
  trap - EXIT INT TERM
  if [ ${#submitted[@]} -gt 0 ] && alive "${ctld_pid:-0}"; then
    timeout 10 scancel "${submitted[@]}" 2>/dev/null || true
  fi
  for i in $(seq 50); do
    pids=$(leftovers)
    [ -n "$pids" ] || break
    [ "$i" -lt 50 ] || kill -KILL $pids 2>/dev/null || true
    sleep 0.2
  done
  stop "$slurmd_pid"
  stop "$ctld_pid"
  stop "$munged_pid"
  pids=$(leftovers)
  [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
  if [ "$rc" -ne 0 ] && [ "$rc" -ne $SKIP ]; then
    for f in "$tmp"/log/*.log "$tmp"/work/logs/*.out; do
      [ -f "$f" ] && { echo "--- tail of ${f#"$tmp"/}"; tail -n 15 "$f"; }
    done
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

why() { # FILE...: the last fatal, else error, else any line of a daemon's output and log
  local all l p
  # (slurmd logs errors about the PMIx MPI plugins at every start: not the reason.)
  all=$(cat "$@" 2> /dev/null | grep -v -e '^$' -e 'pmix' -e 'PMIx') || true
  for p in 'fatal' 'error' '.'; do
    l=$(grep -iE "$p" <<< "$all" | tail -n 1) || true
    [ -z "$l" ] || break
  done
  echo "${l:-it wrote nothing}"
}

mkdir -p "$tmp"/{munge,state,spool,run,log,work}
start=$SECONDS

# MUNGE: its own key, socket, pid, seed and log file.
m=$tmp/munge
dd if=/dev/urandom of="$m/munge.key" bs=1024 count=1 status=none
chmod 400 "$m/munge.key"
munged -F --socket="$m/munge.socket" --key-file="$m/munge.key" --pid-file="$m/munged.pid" \
  --seed-file="$m/munged.seed" --log-file="$tmp/log/munged.log" > "$tmp/log/munged.out" 2>&1 &
munged_pid=$!
for _ in $(seq 100); do [ -S "$m/munge.socket" ] && break; alive $munged_pid || break; sleep 0.1; done
if ! munge -n -S "$m/munge.socket" 2>/dev/null | unmunge -S "$m/munge.socket" > /dev/null 2>&1; then
  skip "munged did not start or does not answer: $(why "$tmp"/log/munged.{out,log})"
fi

# Two free ports outside the defaults (6817, 6818) and the ephemeral range.
read -r ctld_port slurmd_port < <(/usr/bin/python3 - <<'PY'
import random, socket
ports = []
while len(ports) < 2:
    p = random.randrange(17000, 29000)
    try:
        with socket.socket() as s:
            s.bind(("", p))
    except OSError:
        continue
    if p not in ports:
        ports.append(p)
print(*ports)
PY
)

host=$(hostname -s)
cpus=$(nproc)
export SLURM_CONF=$tmp/slurm.conf
cat > "$SLURM_CONF" <<EOF
ClusterName=kmbench-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$m/munge.socket
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/run/slurmctld.pid
SlurmdPidFile=$tmp/run/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SchedulerType=sched/builtin
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$host NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

slurmctld -D > "$tmp/log/slurmctld.out" 2>&1 &
ctld_pid=$!
slurmd -D -N "$host" > "$tmp/log/slurmd.out" 2>&1 &
slurmd_pid=$!

# The node idle, within 60 s.
state="" t0=$SECONDS
while [ $((SECONDS - t0)) -lt 60 ]; do
  alive $ctld_pid || skip "slurmctld exited at start: $(why "$tmp"/log/slurmctld.{out,log})"
  alive $slurmd_pid || skip "slurmd exited at start: $(why "$tmp"/log/slurmd.{out,log})"
  state=$(timeout 10 sinfo -h -n "$host" -o %T 2>/dev/null) || state=""
  [ "$state" = idle ] && break
  sleep 0.5
done
if [ "$state" != idle ]; then
  reason=$(timeout 10 sinfo -h -n "$host" -o %E 2>/dev/null) || reason=""
  skip "node $host not idle after 60 s (state: ${state:-unknown}, reason: ${reason:-none}; slurmd: $(why "$tmp"/log/slurmd.{out,log}))"
fi
say "Slurm up in $((SECONDS - start)) s: node $host ($cpus CPUs), ports $ctld_port/$slurmd_port"

# job_states JOBID: "TASK STATE EXITCODE" per job (or array task), from slurmctld.
job_states() {
  timeout 10 scontrol -o show job "$1" | /usr/bin/python3 -c '
import sys
for line in sys.stdin:
    f = dict(w.split("=", 1) for w in line.split() if "=" in w)
    print(f.get("ArrayTaskId", "-"), f.get("JobState", "?"), f.get("ExitCode", "?"))'
}
# wait_job JOBID SECONDS: until the job (every task of an array) has ended.
wait_job() {
  local id=$1 limit=$2 t0=$SECONDS states
  while :; do
    states=$(job_states "$id") || fail "scontrol show job $id failed"
    if [ -n "$states" ] && ! grep -qE ' (PENDING|CONFIGURING|RUNNING|COMPLETING|REQUEUED|RESIZING|SUSPENDED|STOPPED) ' <<< "$states "; then
      return 0
    fi
    [ $((SECONDS - t0)) -lt "$limit" ] || fail "job $id not done after $limit s: $(tr '\n' ';' <<< "$states")"
    sleep 0.5
  done
}
# expect_ok JOBID COUNT: COUNT tasks, each COMPLETED with exit code 0:0.
expect_ok() {
  local states
  states=$(job_states "$1")
  [ "$(wc -l <<< "$states")" -eq "$2" ] || fail "job $1: expected $2 task(s), got: $(tr '\n' ';' <<< "$states")"
  ! grep -vqE '^[^ ]+ COMPLETED 0:0$' <<< "$states" || fail "job $1 did not succeed: $(tr '\n' ';' <<< "$states")"
}

# The submission directory, laid out like the source tree the recipe runs in.
w=$tmp/work
cd "$w"
mkdir -p build/harness logs
ln -s "$km" build/harness/kmbench
cp "$matrix_src" array.toml
tcpus=$((cpus < 4 ? cpus : 4))
# results/README.md's matrix.sbatch, with at most this node's CPU count and a short time limit.
cat > matrix.sbatch <<EOF
#!/bin/bash
#SBATCH --job-name=kmbench
#SBATCH --cpus-per-task=$tcpus
#SBATCH --exclusive
#SBATCH --time=00:10:00
#SBATCH --output=logs/kmbench-%A_%a.out
EOF
cat >> matrix.sbatch <<'EOF'
set -euo pipefail
cd "$SLURM_SUBMIT_DIR"
matrix=${MATRIX:-harness/matrix/matrices/full.toml}
run=${RUN:-results/runs/$(basename "$matrix" .toml)-$SLURM_ARRAY_JOB_ID}
build/harness/kmbench run "$matrix" "$@" \
  --shard "$SLURM_ARRAY_TASK_ID/${SHARDS:-$SLURM_ARRAY_TASK_COUNT}" \
  -o "$run/shard-$SLURM_ARRAY_TASK_ID" --resume
EOF

# The array and, after it, the merge job (results/README.md's commands).
array=$(MATRIX=array.toml sbatch --parsable --array=1-$shards matrix.sbatch) || fail "sbatch of the array"
submitted+=("$array")
run=results/runs/array-$array
merge=$(sbatch --parsable --dependency=afterany:$array --output=logs/merge-%j.out --wrap \
  "build/harness/kmbench merge results/runs/array-$array/shard-* -o results/runs/array-$array/merged &&
   build/harness/kmbench plot results/runs/array-$array/merged") || fail "sbatch of the merge"
submitted+=("$merge")
say "submitted array $array (tasks 1-$shards) and merge job $merge"
wait_job "$merge" 180
expect_ok "$array" $shards
expect_ok "$merge" 1
for k in $(seq $shards); do
  [ -s "logs/kmbench-${array}_$k.out" ] || fail "no output file logs/kmbench-${array}_$k.out"
  grep -q "cells: .* 0 failed" "logs/kmbench-${array}_$k.out" || fail "shard $k: $(tail -n 1 "logs/kmbench-${array}_$k.out")"
done
grep -q "^merged $shards run(s) into $run/merged" "logs/merge-$merge.out" || fail "merge: $(cat "logs/merge-$merge.out")"
[ -s "$run/merged/report/report.html" ] || fail "the merge job wrote no report"
say "array and merge done: $(grep "^merged " "logs/merge-$merge.out")"

# The same matrix without shards, outside Slurm.
build/harness/kmbench run array.toml -o whole > whole.log 2>&1 || { cat whole.log; fail "the unsharded run"; }

# The merged run holds the unsharded run's cells: same ids, order, status and
# identifying cells.csv columns, and every shard.
/usr/bin/python3 - whole "$run/merged" $shards <<'PY' || fail "the merged run differs from the unsharded run"
import csv, json, sys
whole, merged, shards = sys.argv[1], sys.argv[2], int(sys.argv[3])
def index(d):
    return json.load(open(d + "/index.json"))
def rows(d):
    keys = ("cell_id", "status", "backend", "source_kind", "source", "label", "params",
            "threads", "placement", "topology", "mode", "repetition")
    return sorted(tuple(r[k] for k in keys) for r in csv.DictReader(open(d + "/cells.csv")))
a, b = index(whole), index(merged)
ids_a = sorted(c["id"] for c in a["cells"])
ids_b = sorted(c["id"] for c in b["cells"])
assert ids_a == ids_b, (ids_a, ids_b)
assert a["order"] == b["order"], "run orders differ"
assert all(c["status"] == "ok" for c in b["cells"]), [c for c in b["cells"] if c["status"] != "ok"]
assert sorted(s["shard"] for s in b["shards"]) == [f"{k}/{shards}" for k in range(1, shards + 1)], b["shards"]
assert sum(s["cells"] for s in b["shards"]) == len(ids_a), b["shards"]
assert b["summary"]["ok"] == len(ids_a) and b["summary"]["cells"] == len(ids_a), b["summary"]
assert rows(whole) == rows(merged), "cells.csv rows differ"
print(f"merged run: {len(ids_b)} cells from {len(b['shards'])} shards, the unsharded run's cells")
PY

# kmbench compare reads the merged run (exit status 0 and a verdict line).
build/harness/kmbench compare whole "$run/merged" > compare.out 2>&1 || { cat compare.out; fail "kmbench compare exited non-zero"; }
grep -q '^VERDICT B vs A: ' compare.out || { cat compare.out; fail "kmbench compare printed no verdict"; }

# Resuming a shard, as results/README.md says: one cell of shard 2 lost (a task
# killed in the middle of it), shard 2 alone resubmitted into the same run, an
# option after the script's name passed on to kmbench run.
s2=$run/shard-2
keep=$(cd "$s2/cells" && ls -- *.json | head -n 1)
lost=$(cd "$s2/cells" && ls -- *.json | sed -n 2p)
[ -n "$lost" ] || fail "shard 2 has fewer than two cells"
cp "$s2/cells/$keep" kept.json
rm "$s2/cells/$lost"
again=$(RUN=$run SHARDS=$shards MATRIX=array.toml sbatch --parsable --array=2 matrix.sbatch --retry-failed) || fail "sbatch of the resumed shard"
submitted+=("$again")
wait_job "$again" 120
expect_ok "$again" 1
grep -q "(1 ran, 1 skipped), 0 failed" "logs/kmbench-${again}_2.out" ||
  fail "the resumed shard: $(tail -n 1 "logs/kmbench-${again}_2.out")"
[ -f "$s2/cells/$lost" ] || fail "the resumed shard did not write ${lost%.json}"
cmp -s kept.json "$s2/cells/$keep" || fail "the resumed shard ran ${keep%.json} again"
say "shard 2 resumed: ran ${lost%.json} only"

say "PASS in $((SECONDS - start)) s"
