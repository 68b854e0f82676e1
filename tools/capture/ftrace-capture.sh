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
#   -t SECONDS    capture for this long, a positive number (not with a command)
#   -b KB         per-CPU ring buffer size (default 8192)
#   -e LIST       event groups: slab,page,dma (default: all three; dma only if present)
#   -f FUNCTION   keep slab events whose call site is in FUNCTION (repeatable)
#   -m MODULE     keep slab events whose call site is in kernel module MODULE (repeatable)
#   -p PID        trace only this process (set_event_pid)
# The capture streams trace_pipe while it runs, so a long capture is not
# limited by the ring buffer; "CPU:N [LOST M EVENTS]" lines record overruns.
# Options, the command and OUT (not a directory, in one that exists and can be
# written) are checked before tracing starts: exit 2 naming the one at fault.
# The capture is written beside OUT and renamed to it when complete, and only
# when the command succeeded: when it fails (exit 1, its status said) the
# capture goes to OUT.failed and OUT is left as it was (with -o - it goes to
# stdout). An interrupted capture leaves nothing behind.
set -euo pipefail

out="" seconds="" timed="" buffer_kb=8192 groups="slab,page,dma" pid=""
functions=() modules=()
usage() { sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; }
fail() { echo "ftrace-capture: $1" >&2; exit "${2:-2}"; }
bad_usage() { echo "ftrace-capture: $1" >&2; usage >&2; exit 2; }
while getopts "o:t:b:e:f:m:p:h" opt; do
  case $opt in
    o) out=$OPTARG ;;
    t) seconds=$OPTARG timed=1 ;;
    b) buffer_kb=$OPTARG ;;
    e) groups=$OPTARG ;;
    f) functions+=("$OPTARG") ;;
    m) modules+=("$OPTARG") ;;
    p) pid=$OPTARG ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ -n "$out" ] || bad_usage "-o OUT is required"
if [ -n "$timed" ]; then
  [ $# -eq 0 ] || bad_usage "give -t SECONDS or a command after --, not both"
  [[ $seconds =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ && $seconds =~ [1-9] ]] ||
    fail "-t $seconds: not a positive number of seconds"
elif [ $# -eq 0 ]; then
  bad_usage "give -t SECONDS or a command after --"
else
  command -v -- "$1" > /dev/null || fail "command not found: $1"
fi
[[ $buffer_kb =~ ^[1-9][0-9]*$ ]] || fail "-b $buffer_kb: not a positive number of KB"
[[ -z $pid || $pid =~ ^[1-9][0-9]*$ ]] || fail "-p $pid: not a process id"
IFS=, read -ra group_list <<< "$groups"
[ ${#group_list[@]} -gt 0 ] || fail "-e: no event group given (slab, page or dma)"
for g in "${group_list[@]}"; do
  case $g in
    slab|page|dma) ;;
    *) fail "-e $groups: unknown event group '$g' (slab, page or dma)" ;;
  esac
done
if [ "$out" != - ]; then
  [ ! -d "$out" ] || fail "-o $out: is a directory"
  [ ! -e "$out" ] || [ -f "$out" ] || fail "-o $out: not a regular file (-o - writes to stdout)"
  [ -d "$(dirname -- "$out")" ] || fail "-o $out: no such directory $(dirname -- "$out")"
fi
[ "$(id -u)" -eq 0 ] || fail "needs root (tracefs)"
[[ -z $pid || -d /proc/$pid ]] || fail "-p $pid: no such process"

# Call-site filters (slab events carry call_site): functions by name, modules by address range.
filter=""
for f in "${functions[@]}"; do
  awk -v f="$f" '$3 == f && $2 ~ /^[tTwW]$/ { found = 1; exit } END { exit !found }' /proc/kallsyms ||
    fail "-f $f: not a traceable kernel function (not in /proc/kallsyms)"
  filter+="${filter:+ || }call_site.function == $f"
done
for m in "${modules[@]}"; do
  line=$(grep "^$m " /proc/modules || true)
  [ -n "$line" ] || fail "-m $m: module '$m' is not loaded"
  size=$(echo "$line" | awk '{print $2}')
  base=$(echo "$line" | awk '{print $6}')
  [ "$base" != "0x0000000000000000" ] || fail "-m $m: module addresses are hidden (kptr_restrict)" 1
  filter+="${filter:+ || }(call_site >= $base && call_site < $(printf '0x%x' $((base + size))))"
done

# The capture is gathered in $tmp and written compressed to $part, beside OUT
# (a symlink's target), which then becomes OUT or OUT.failed: both are made
# now, so a bad OUT costs no capture.
inst="" reader="" tmp="" part="" real=""
cleanup() {
  if [ -n "$reader" ]; then  # the instance cannot go while trace_pipe is open
    kill "$reader" 2>/dev/null || true
    wait "$reader" 2>/dev/null || true
  fi
  if [ -n "$inst" ]; then
    echo 0 > "$inst/tracing_on" 2>/dev/null || true
    rmdir "$inst" 2>/dev/null || true
  fi
  [ -z "$tmp" ] || rm -f -- "$tmp"
  [ -z "$part" ] || rm -f -- "$part"
}
trap cleanup EXIT
tmp=$(mktemp "${TMPDIR:-/tmp}/kmbench-ftrace.XXXXXX")
if [ "$out" != - ]; then
  real=$(readlink -f -- "$out")
  part=$(mktemp --suffix=.part "$real.XXXXXX" 2>/dev/null) || fail "-o $out: cannot write in $(dirname -- "$real")"
fi

# tracefs: mount it if nothing provides it yet.
tracefs=""
for d in /sys/kernel/tracing /sys/kernel/debug/tracing; do
  if [ -e "$d/trace_pipe" ]; then tracefs=$d; break; fi
done
if [ -z "$tracefs" ]; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
  [ -e /sys/kernel/tracing/trace_pipe ] && tracefs=/sys/kernel/tracing
fi
[ -n "$tracefs" ] || fail "cannot find or mount tracefs" 1

mkdir "$tracefs/instances/kmbench-$$" || fail "cannot make a tracing instance in $tracefs/instances" 1
inst="$tracefs/instances/kmbench-$$"
echo 0 > "$inst/tracing_on"
echo "$buffer_kb" 2>/dev/null > "$inst/buffer_size_kb" || fail "-b $buffer_kb: the kernel refused this buffer size"

events=()
[[ ,$groups, == *,slab,* ]] && events+=(kmem/kmalloc kmem/kmalloc_node kmem/kfree kmem/kmem_cache_alloc
                                        kmem/kmem_cache_alloc_node kmem/kmem_cache_free)
[[ ,$groups, == *,page,* ]] && events+=(kmem/mm_page_alloc kmem/mm_page_free kmem/mm_page_free_batched)
if [[ ,$groups, == *,dma,* ]] && [ -d "$inst/events/dma" ]; then
  for e in "$inst"/events/dma/*/; do events+=("dma/$(basename "$e")"); done
fi

enabled=0
for e in "${events[@]}"; do
  [ -d "$inst/events/$e" ] || continue
  if [ -n "$filter" ] && grep -q 'call_site' "$inst/events/$e/format"; then
    echo "$filter" 2>/dev/null > "$inst/events/$e/filter" || fail "the kernel refused the filter '$filter' on $e"
  fi
  echo 1 > "$inst/events/$e/enable"
  enabled=$((enabled + 1))
done
[ $enabled -gt 0 ] || fail "-e $groups: none of these events exist on this kernel"
if [ -n "$pid" ]; then
  echo "$pid" 2>/dev/null > "$inst/set_event_pid" || fail "-p $pid: the kernel refused this pid"
fi

case $out in
  *.gz) compress=(gzip -c) ;;
  *.xz) compress=(xz -T1 -c) ;;
  *.zst) compress=(zstd -q -c) ;;
  *) compress=(cat) ;;
esac
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
lines=$(grep -v '^#' "$tmp" | grep -c ': ' || true)  # the header's own lines are comments

kept() { echo "ftrace-capture: cannot write $1: the capture is kept in $tmp" >&2; tmp=""; exit 2; }
if [ "$out" = - ]; then
  dest=stdout
  "${compress[@]}" < "$tmp" || kept "$dest"
else
  dest=$real
  [ $status -eq 0 ] || dest=$out.failed
  if [ -f "$dest" ]; then mode=$(stat -c %a -- "$dest"); else mode=$(printf '%o' $((0666 & ~0$(umask)))); fi
  { "${compress[@]}" < "$tmp" > "$part" && chmod "$mode" "$part" && mv -fT -- "$part" "$dest"; } || kept "$dest"
  part=""
fi
if [ $status -ne 0 ]; then
  [ "$out" = - ] || echo "ftrace-capture: $out is left as it was" >&2
  fail "the command failed (exit status $status): its capture, $lines event lines, went to $dest" 1
fi
[ "$out" != - ] || out=stdout
echo "ftrace-capture: $lines event lines -> $out" >&2
