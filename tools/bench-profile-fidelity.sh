#!/usr/bin/env bash
# The profile fidelity benchmark (docs/profiles.md): for each capture, a
# profile (`kmbench trace profile`), and the capture and a stream synthesized
# from its profile replayed on every backend in one matrix run, side by side
# and interleaved; plots/profile_fidelity.py turns the run into the table.
#   tools/bench-profile-fidelity.sh [OUTDIR] [CAPTURE...]
# Default: /tmp/kmbench-fidelity and the captures in traces/. REPS sets the
# repetitions (default 5), THREADS the replay threads (default 2), BUILD the
# build directory (default build). The first argument is always OUTDIR. The
# run goes to OUTDIR/run.new/run and replaces OUTDIR/run only when every cell
# succeeded; bad arguments exit 2 before anything is written.
set -euo pipefail
# shellcheck source=tools/bench-common.sh
source "$(dirname "$0")/bench-common.sh"
bench_setup bench-profile-fidelity /tmp/kmbench-fidelity 5 "$@"
mkdir -p "$out/profiles"
matrix=$out/fidelity.toml
bench_matrix "$matrix.new" profile-fidelity 20261205
for i in "${!captures[@]}"; do
  capture=${captures[i]} name=${names[i]}
  "$kmbench" trace profile "$capture" -o "$out/profiles/$name.kprof.json"
  printf '\n[[trace]]\npath = "%s"\nlabel = "%s-real"\n' "$capture" "$name" >> "$matrix.new"
  printf '\n[[profile]]\npath = "profiles/%s.kprof.json"\nlabel = "%s-synth"\n' "$name" "$name" >> "$matrix.new"
done
mv "$matrix.new" "$matrix"
bench_run "$matrix"
/usr/bin/python3 "$here/plots/profile_fidelity.py" "$out/run" > "$out/fidelity.md.new"
mv "$out/fidelity.md.new" "$out/fidelity.md"
cat "$out/fidelity.md"
