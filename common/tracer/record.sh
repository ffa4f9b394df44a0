#!/usr/bin/env bash
# common/tracer/record.sh: records a program's allocations as a trace.
#
#   record.sh OUT.rep CMD [ARGS...]
#
# Runs CMD with build/libtracer.so preloaded (building it first if needed),
# then writes OUT.rep in common/trace.h's format: '#' lines saying how it was
# made, the four header numbers (heap hint = the trace's peak live bytes,
# ids, ops, weight 1), then the ops. CMD's own output goes where it would.
#
# Environment: TRACER_MAX_OPS=N stops recording after N ops (default 30000,
# so that committed traces stay small; 0 records everything).
set -eu
if [ $# -lt 2 ]; then
  echo "usage: $0 OUT.rep CMD [ARGS...]" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
out=$1
shift
make -s -C "$here" build/libtracer.so
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
status=0
TRACER_OUT=$raw TRACER_MAX_OPS=${TRACER_MAX_OPS:-30000} \
  LD_PRELOAD=$here/build/libtracer.so "$@" || status=$?
# Header: ids are 0..max, and the heap hint is the peak of live bytes.
# The command on one comment line, however many lines it had.
cmd=$(printf '%s ' "$@" | tr '\n' ' ' | tr -s ' ')
awk -v cmd="$cmd" -v when="$(date -u +%Y-%m-%d)" -v status="$status" '
  { line[NR] = $0
    if ($1 == "a") { size[$2] = $3; live += $3 }
    else if ($1 == "r") { live += $3 - size[$2]; size[$2] = $3 }
    else if ($1 == "f") { live -= size[$2]; delete size[$2] }
    if (live > peak) peak = live
    if ($2 + 1 > ids) ids = $2 + 1 }
  END {
    printf "# recorded from: %s\n", cmd
    printf "# by common/tracer/record.sh on %s (exit status %d); blocks the\n", when, status
    printf "# program had not freed when recording stopped stay live\n"
    printf "%d\n%d\n%d\n1\n", peak, ids, NR
    for (i = 1; i <= NR; i++) print line[i] }' "$raw" >"$out"
echo "record.sh: $out: $(grep -c '^[afr] ' "$out") ops" >&2
