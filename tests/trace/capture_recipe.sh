#!/usr/bin/env bash
# Runs the Linux capture recipe around a small command and imports the result.
# Skips (exit 77) where it cannot run: not root, or no tracefs.
set -euo pipefail
kmbench=$1 script=$2 work=$3
[ "$(id -u)" -eq 0 ] || { echo "not root: skipped"; exit 77; }
[ -e /sys/kernel/tracing/trace_pipe ] || [ -e /sys/kernel/debug/tracing/trace_pipe ] || \
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || { echo "no tracefs: skipped"; exit 77; }
mkdir -p "$work"
rm -f "$work/cap.txt.gz"
"$script" -o "$work/cap.txt.gz" -b 1024 -- ls -R /usr/include > /dev/null
"$kmbench" trace info "$work/cap.txt.gz" --json > "$work/info.json"
grep -q '"source": "ftrace"' "$work/info.json"
events=$(sed -n 's/^  "events": \([0-9]*\),$/\1/p' "$work/info.json")
echo "captured $events kmem events"
[ "${events:-0}" -gt 0 ]
