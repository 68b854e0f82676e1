#!/usr/bin/env bash
# Installs every Debian package kmbench's build, tests, plots and report need.
# Idempotent: does nothing (and needs no network) when all are present.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkgconf g++ clang libclang-rt-14-dev
  # libraries
  libjemalloc-dev libmimalloc-dev libhwloc-dev hwloc libnuma-dev
  libcli11-dev nlohmann-json3-dev libtomlplusplus-dev
  libtracecmd-dev libtraceevent-dev libtracefs-dev libzstd-dev liblzma-dev zlib1g-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev libbenchmark-tools
  # profiling the backends' hot paths (instruction counts)
  valgrind
  # the zones depot lock's fallback test fails membarrier(2) through strace
  strace
  # plots and report (always Debian's /usr/bin/python3)
  python3 python3-matplotlib python3-numpy python3-scipy python3-pytest
  # the report is checked by rendering it in headless Chromium
  chromium
  # trace capture and compressed inputs
  trace-cmd xz-utils zstd gzip hyperfine
  # the size limits check (tools/check-sizes.py) finds functions with it
  universal-ctags
  # ctest cluster.slurm_job_array: the matrix as a Slurm job array on a one-node Slurm
  slurm-wlm munge
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
