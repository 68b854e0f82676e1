#!/bin/sh
# A version-control load: clone a repository through git's pack protocol (no
# hard links), repack it aggressively and read its whole history with patches,
# 3 times. REPO defaults to the kmbench checkout this script is in.
set -e
repo=${1:-$(cd "$(dirname "$0")/../../.." && pwd)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for _ in 1 2 3; do
  rm -rf "$work/clone"
  git clone -q --no-local "$repo" "$work/clone"
  git -C "$work/clone" gc -q --aggressive
  git -C "$work/clone" log -p > /dev/null
done
