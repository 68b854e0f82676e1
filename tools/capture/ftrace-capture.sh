#!/usr/bin/env bash
# Captures Linux kmem (and dma, where the kernel has it) tracepoints as ftrace
# text that `kmbench trace import` reads. Needs root. Uses a tracing instance
# of its own, so the system's other tracing settings are left alone.
#
#   tools/capture/ftrace-capture.sh [options] -o OUT -- COMMAND [ARGS...]   trace while COMMAND runs
#   tools/capture/ftrace-capture.sh [options] -o OUT -t SECONDS             trace for SECONDS
#
# Options:
#   -o FILE       output (.gz, .xz or .zst compress it; '-' writes to stdout)
#   -t SECONDS    capture for this long (instead of a command)
#   -b KB         per-CPU ring buffer size (default 8192)
#   -e LIST       event groups: slab,page,dma (default: all three; dma only if present)
#   -f FUNCTION   keep slab events whose call site is in FUNCTION (repeatable)
#   -m MODULE     keep slab events whose call site is in kernel module MODULE (repeatable)
#   -p PID        trace only this process (set_event_pid)
# The capture streams trace_pipe while it runs, so a long capture is not
# limited by the ring buffer; "CPU:N [LOST M EVENTS]" lines record overruns.
set -euo pipefail

out="" seconds="" buffer_kb=8192 groups="slab,page,dma" pid=""
functions=() modules=()
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while getopts "o:t:b:e:f:m:p:h" opt; do
  case $opt in
    o) out=$OPTARG ;;
    t) seconds=$OPTARG ;;
    b) buffer_kb=$OPTARG ;;
    e) groups=$OPTARG ;;
    f) functions+=("$OPTARG") ;;
    m) modules+=("$OPTARG") ;;
    p) pid=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ -n "$out" ] || { echo "ftrace-capture: -o OUT is required" >&2; usage; }
if [ -z "$seconds" ] && [ $# -eq 0 ]; then
  echo "ftrace-capture: give -t SECONDS or a command after --" >&2
  usage
fi
[ "$(id -u)" -eq 0 ] || { echo "ftrace-capture: needs root (tracefs)" >&2; exit 2; }

# tracefs: mount it if nothing provides it yet.
tracefs=""
for d in /sys/kernel/tracing /sys/kernel/debug/tracing; do
  if [ -e "$d/trace_pipe" ]; then tracefs=$d; break; fi
done
if [ -z "$tracefs" ]; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
  [ -e /sys/kernel/tracing/trace_pipe ] && tracefs=/sys/kernel/tracing
fi
[ -n "$tracefs" ] || { echo "ftrace-capture: cannot find or mount tracefs" >&2; exit 1; }

inst="$tracefs/instances/kmbench-$$"
mkdir "$inst"
reader=""
cleanup() {
  [ -n "$reader" ] && kill "$reader" 2>/dev/null || true
  echo 0 > "$inst/tracing_on" 2>/dev/null || true
  rmdir "$inst" 2>/dev/null || true
}
trap cleanup EXIT
echo 0 > "$inst/tracing_on"
echo "$buffer_kb" > "$inst/buffer_size_kb"

events=()
[[ ,$groups, == *,slab,* ]] && events+=(kmem/kmalloc kmem/kmalloc_node kmem/kfree kmem/kmem_cache_alloc
                                        kmem/kmem_cache_alloc_node kmem/kmem_cache_free)
[[ ,$groups, == *,page,* ]] && events+=(kmem/mm_page_alloc kmem/mm_page_free kmem/mm_page_free_batched)
if [[ ,$groups, == *,dma,* ]] && [ -d "$inst/events/dma" ]; then
  for e in "$inst"/events/dma/*/; do events+=("dma/$(basename "$e")"); done
fi

# Call-site filters (slab events carry call_site): functions by name, modules by address range.
filter=""
for f in "${functions[@]}"; do
  filter+="${filter:+ || }call_site.function == $f"
done
for m in "${modules[@]}"; do
  line=$(grep "^$m " /proc/modules || true)
  [ -n "$line" ] || { echo "ftrace-capture: module '$m' is not loaded" >&2; exit 2; }
  size=$(echo "$line" | awk '{print $2}')
  base=$(echo "$line" | awk '{print $6}')
  [ "$base" != "0x0000000000000000" ] || { echo "ftrace-capture: module addresses are hidden (kptr_restrict)" >&2; exit 1; }
  filter+="${filter:+ || }(call_site >= $base && call_site < $(printf '0x%x' $((base + size))))"
done

enabled=0
for e in "${events[@]}"; do
  [ -d "$inst/events/$e" ] || continue
  if [ -n "$filter" ] && grep -q 'call_site' "$inst/events/$e/format"; then
    echo "$filter" > "$inst/events/$e/filter"
  fi
  echo 1 > "$inst/events/$e/enable"
  enabled=$((enabled + 1))
done
[ $enabled -gt 0 ] || { echo "ftrace-capture: none of the events exist on this kernel" >&2; exit 1; }
[ -n "$pid" ] && echo "$pid" > "$inst/set_event_pid"

case $out in
  -) compress=(cat) ;;
  *.gz) compress=(gzip -c) ;;
  *.xz) compress=(xz -T1 -c) ;;
  *.zst) compress=(zstd -q -c) ;;
  *) compress=(cat) ;;
esac
[ "$out" = "-" ] && out=/dev/stdout
tmp=$(mktemp "${TMPDIR:-/tmp}/kmbench-ftrace.XXXXXX")
{
  echo "# kmbench ftrace capture: kernel $(uname -r), host $(uname -n), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# events: ${events[*]}"
  [ -n "$filter" ] && echo "# filter: $filter"
  echo "#P:$(nproc --all)"
} > "$tmp"
cat "$inst/trace_pipe" >> "$tmp" &
reader=$!
echo 1 > "$inst/tracing_on"
status=0
if [ $# -gt 0 ]; then
  "$@" || status=$?
else
  sleep "$seconds"
fi
echo 0 > "$inst/tracing_on"
sleep 0.5  # let the reader drain what is left
kill "$reader" 2>/dev/null || true
wait "$reader" 2>/dev/null || true
reader=""
grep -v '^#' "$inst/trace" >> "$tmp" || true  # anything the reader did not consume
"${compress[@]}" < "$tmp" > "$out"
lines=$(grep -v '^#' "$tmp" | grep -c ': ' || true)  # the header's own lines are comments
rm -f "$tmp"
echo "ftrace-capture: $lines event lines -> $out" >&2
exit $status
