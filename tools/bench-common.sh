# shellcheck shell=bash
# Sourced by tools/bench-profile-fidelity.sh and tools/bench-free-order.sh:
# their arguments, the kmbench they run, the head of the matrix they write
# (every backend, THREADS replay threads, REPS repetitions) and the run.

# bench_setup NAME DEFAULT_OUTDIR DEFAULT_REPS [OUTDIR] [CAPTURE...]: sets
# $here, $out, $captures (absolute; default: the ftrace captures in traces/),
# $names (each capture's file name up to its first dot, which labels and
# output files are named by), $reps (REPS), $threads (THREADS, default 2) and
# $kmbench (BUILD's, default build's), then creates OUTDIR. Before anything
# is written, exits 2 naming what is wrong: an OUTDIR that is not a directory
# or looks like a capture (the first argument is always OUTDIR), REPS or
# THREADS not a whole number of 1 or more, a capture that is not a readable
# file, two captures of one name, or no kmbench.
bench_setup() {
  bench_name=$1
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  out=${4:-$2}
  reps=${REPS:-$3}
  threads=${THREADS:-2}
  shift 3
  shift || true
  captures=("$@")
  [ ${#captures[@]} -gt 0 ] || captures=("$here"/traces/*.txt.xz)
  case $out in
    *.txt | *.xz | *.gz | *.zst | *.dat | *.kmt)
      bench_fail "'$out' looks like a capture, but the first argument is the output directory" \
        "(tools/$bench_name.sh [OUTDIR] [CAPTURE...])" ;;
  esac
  [[ ! -e $out || -d $out ]] || bench_fail "OUTDIR '$out' exists and is not a directory"
  [[ $reps =~ ^[1-9][0-9]*$ ]] || bench_fail "REPS must be a whole number of 1 or more, not '$reps'"
  [[ $threads =~ ^[1-9][0-9]*$ ]] || bench_fail "THREADS must be a whole number of 1 or more, not '$threads'"
  local i j
  names=()
  for i in "${!captures[@]}"; do
    [[ -f ${captures[i]} && -r ${captures[i]} ]] || bench_fail "cannot read capture '${captures[i]}'"
    names[i]=$(basename "${captures[i]}")
    names[i]=${names[i]%%.*}
    for ((j = 0; j < i; j++)); do
      [[ ${names[j]} != "${names[i]}" ]] ||
        bench_fail "captures '${captures[j]}' and '${captures[i]}' share the name '${names[i]}'" \
          "(labels and files are named by it): rename one"
    done
  done
  for i in "${!captures[@]}"; do captures[i]=$(realpath "${captures[i]}"); done
  kmbench=${BUILD:-$here/build}/harness/kmbench
  [ -x "$kmbench" ] || bench_fail "no $kmbench (tools/build.sh first)"
  mkdir -p "$out" 2> /dev/null || bench_fail "cannot create OUTDIR '$out'"
}

# bench_fail MESSAGE: the message, and exit 2.
bench_fail() {
  echo "$bench_name: $*" >&2
  exit 2
}

# bench_matrix FILE NAME SEED: writes the matrix's head to FILE.
bench_matrix() {
  cat > "$1" <<TOML
name = "$2"
seed = $3
backends = ["system", "zones", "slab", "buddy", "jemalloc", "mimalloc"]
threads = [$threads]
repetitions = $reps
timeout_s = 300
TOML
}

# bench_run MATRIX: runs it into $out/run.new/run (a run is named after its
# directory), and puts that in place of $out/run when every cell succeeded;
# otherwise $out/run stays as it was and the script exits with kmbench's
# status (2 the matrix is wrong, 1 a cell failed).
bench_run() {
  local rc=0
  rm -rf "$out/run.new"
  mkdir "$out/run.new"
  "$kmbench" run "$1" -o "$out/run.new/run" || rc=$?
  if ((rc != 0)); then
    echo "$bench_name: the run failed; $out/run is kept as it was, the failed run is in $out/run.new/run" >&2
    exit "$rc"
  fi
  rm -rf "$out/run"
  mv "$out/run.new/run" "$out/run"
  rmdir "$out/run.new"
  echo "$bench_name: the run is in $out/run" >&2
}
