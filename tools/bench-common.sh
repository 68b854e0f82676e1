# shellcheck shell=bash
# Sourced by tools/bench-profile-fidelity.sh and tools/bench-free-order.sh:
# their arguments, the kmbench they run, and the head of the matrix they
# write (every backend, THREADS replay threads, REPS repetitions).

# bench_setup NAME DEFAULT_OUTDIR DEFAULT_REPS [OUTDIR] [CAPTURE...]: sets
# $here, $out, $captures (default: the ftrace captures in traces/), $reps
# (REPS), $threads (THREADS, default 2) and $kmbench (BUILD's, default
# build's); exits 2 when kmbench is not built.
bench_setup() {
  local name=$1
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  # shellcheck disable=SC2034  # the sourcing script's
  out=${4:-$2}
  reps=${REPS:-$3}
  shift 3
  shift || true
  captures=("$@")
  [ ${#captures[@]} -gt 0 ] || captures=("$here"/traces/*.txt.xz)
  threads=${THREADS:-2}
  kmbench=${BUILD:-$here/build}/harness/kmbench
  [ -x "$kmbench" ] || { echo "$name: no $kmbench (tools/build.sh first)" >&2; exit 2; }
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
