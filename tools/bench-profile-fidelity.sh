#!/usr/bin/env bash
# The profile fidelity benchmark (docs/profiles.md): for each capture, a
# profile (`kmbench trace profile`), and the capture and a stream synthesized
# from its profile replayed on every backend in one matrix run, side by side
# and interleaved; plots/profile_fidelity.py turns the run into the table.
#   tools/bench-profile-fidelity.sh [OUTDIR] [CAPTURE...]
# Default: /tmp/kmbench-fidelity and the captures in traces/. REPS sets the
# repetitions (default 5), THREADS the replay threads (default 2), BUILD the
# build directory (default build).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-/tmp/kmbench-fidelity}
shift || true
captures=("$@")
[ ${#captures[@]} -gt 0 ] || captures=("$here"/traces/*.txt.xz)
reps=${REPS:-5}
threads=${THREADS:-2}
kmbench=${BUILD:-$here/build}/harness/kmbench
[ -x "$kmbench" ] || { echo "bench-profile-fidelity: no $kmbench (tools/build.sh first)" >&2; exit 2; }
mkdir -p "$out/profiles"
matrix=$out/fidelity.toml
cat > "$matrix" <<TOML
name = "profile-fidelity"
seed = 20261205
backends = ["system", "zones", "slab", "buddy", "jemalloc", "mimalloc"]
threads = [$threads]
repetitions = $reps
timeout_s = 300
TOML
for capture in "${captures[@]}"; do
  capture=$(realpath "$capture")
  name=$(basename "$capture"); name=${name%%.*}
  "$kmbench" trace profile "$capture" -o "$out/profiles/$name.kprof.json"
  printf '\n[[trace]]\npath = "%s"\nlabel = "%s-real"\n' "$capture" "$name" >> "$matrix"
  printf '\n[[profile]]\npath = "profiles/%s.kprof.json"\nlabel = "%s-synth"\n' "$name" "$name" >> "$matrix"
done
rm -rf "$out/run"
"$kmbench" run "$matrix" -o "$out/run"
/usr/bin/python3 "$here/plots/profile_fidelity.py" "$out/run" | tee "$out/fidelity.md"
