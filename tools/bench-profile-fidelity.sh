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
# shellcheck source=tools/bench-common.sh
source "$(dirname "$0")/bench-common.sh"
bench_setup bench-profile-fidelity /tmp/kmbench-fidelity 5 "$@"
mkdir -p "$out/profiles"
matrix=$out/fidelity.toml
bench_matrix "$matrix" profile-fidelity 20261205
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
