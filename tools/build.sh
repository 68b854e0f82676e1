#!/usr/bin/env bash
# Configures and builds one kmbench build tree.
#   tools/build.sh [BUILD_DIR] [extra cmake args...]    (default: build, Release)
set -euo pipefail
cd "$(dirname "$0")/.."
# Ninja schedules every target's compiles together; make, given several targets,
# builds them one after another. A tree configured before keeps its generator.
if [ -z "${CMAKE_GENERATOR:-}" ] && command -v ninja >/dev/null; then
  export CMAKE_GENERATOR=Ninja
fi
dir=${1:-build}
shift || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
