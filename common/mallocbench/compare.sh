#!/usr/bin/env bash
# common/mallocbench/compare.sh BUILD [NAME=LIB ...]: the real-malloc stages
# side by side with the system malloc and, where installed, jemalloc,
# tcmalloc and mimalloc, each as the program's malloc (LD_PRELOAD), on the
# same three programs:
#
#   replay_malloc   every committed trace (common/traces/), each in a process
#                   of its own: utilization by resident memory, throughput
#   threads_malloc  1, 2 and 4 threads, each churning its own blocks (local)
#                   and handing every block to another thread to free (cross)
#   burst_malloc    256 MB allocated and freed but for one block in 1000:
#                   resident memory at the peak, after the free, and 5 s later
#
# NAME=LIB[@ALIGN] pairs are the stages' libraries (stage.mk passes the
# stage's own and those named in BENCH_STAGES). Tables on screen; the rows in
# BUILD/mallocbench.csv (one header per section). Ratios are against the
# system malloc in the same run: above 1 is better (faster, or for
# utilization, more of the footprint used). The programs are built here with
# $CC -O2 into BUILD/mallocbench/.
#
# Environment: MALLOCBENCH_REPS (timed runs per measurement, default 5),
# MALLOCBENCH_OPS (threads_malloc's mallocs, default 2000000),
# MALLOCBENCH_MB (burst size, default 256), MALLOCBENCH_SKIP="traces threads
# burst" (any of them).
set -u
here=$(cd "$(dirname "$0")" && pwd)
common=$(dirname "$here")
build=$1
shift
out=$build/mallocbench
mkdir -p "$out"
csv=$build/mallocbench.csv
cc=${CC:-cc}
reps=${MALLOCBENCH_REPS:-5}
ops=${MALLOCBENCH_OPS:-2000000}
mb=${MALLOCBENCH_MB:-256}
skip=" ${MALLOCBENCH_SKIP:-} "

for p in replay_malloc threads_malloc burst_malloc; do
  if [ ! -x "$out/$p" ] || [ "$here/$p.c" -nt "$out/$p" ] || [ "$common/trace.c" -nt "$out/$p" ]; then
    srcs=("$here/$p.c")
    [ $p != threads_malloc ] && srcs+=("$common/trace.c")
    "$cc" -std=c17 -O2 -g -Wall -Wextra -D_DEFAULT_SOURCE -I"$common" "${srcs[@]}" \
      -o "$out/$p" -lpthread -lm || { echo "mallocbench: $p did not build"; exit 1; }
  fi
done

# The allocators: the system malloc, the stages, then the others installed.
names=(system) libs=("") aligns=(16)
for pair in "$@"; do
  # NAME=LIB[@ALIGN]: ALIGN is what the stage promises its smallest blocks
  # (stage.mk's SHLIB_MIN_ALIGN; 16, glibc's, when not given).
  name=${pair%%=*} lib=${pair#*=} align=16
  if [ "${lib%@*}" != "$lib" ]; then align=${lib##*@} lib=${lib%@*}; fi
  if [ -f "$lib" ]; then names+=("$name"); libs+=("$lib"); aligns+=("$align")
  else echo "mallocbench: $name: $lib is not built: left out"; fi
done
for entry in "jemalloc libjemalloc.so.2" "tcmalloc libtcmalloc_minimal.so.4 libtcmalloc.so.4" \
             "mimalloc libmimalloc.so.2"; do
  set -- $entry
  name=$1
  shift
  lib=""
  for so in "$@"; do
    lib=$(ldconfig -p 2>/dev/null | awk -v n="$so" '$1 == n { print $NF; exit }')
    [ -n "$lib" ] && break
  done
  # They align requests under 16 bytes to 8 only (C allows it).
  if [ -n "$lib" ]; then names+=("$name"); libs+=("$lib"); aligns+=(8)
  else echo "mallocbench: $name: not installed: left out"; fi
done

# run I CMD...: CMD with allocator I as its malloc.
run() {
  local i=$1
  shift
  if [ -n "${libs[$i]}" ]; then LD_PRELOAD=${libs[$i]} "$@"; else "$@"; fi
}

# table FILE: the CSV section FILE as a table, rows by its first column,
# columns by allocator, each cell FMT of the value column VAL, with the ratio
# to the system's (inverted when LOWER is 1: lower is better).
table() {
  awk -F, -v val="$2" -v fmt="$3" -v lower="${4:-0}" -v order="${names[*]}" '
    BEGIN { na = split(order, alloc, " ") }
    !($1 in seen) { seen[$1] = 1; rows[++nr] = $1 }
    { v[$1, $2] = $val }
    END {
      printf "%-22s", ""
      for (a = 1; a <= na; a++) printf " %17s", alloc[a]
      printf "\n"
      for (r = 1; r <= nr; r++) {
        printf "%-22s", rows[r]
        base = v[rows[r], "system"]
        for (a = 1; a <= na; a++) {
          if (!((rows[r], alloc[a]) in v)) { printf " %17s", "-"; continue }
          x = v[rows[r], alloc[a]]
          ratio = (base > 0 && x > 0) ? (lower ? base / x : x / base) : 0
          if (ratio > 0) { prod[a] += log(ratio); cnt[a]++ }
          printf " %17s", sprintf(fmt " (%.2f)", x, ratio)
        }
        printf "\n"
      }
      printf "%-22s", "geometric mean ratio"
      for (a = 1; a <= na; a++)
        printf " %17s", cnt[a] ? sprintf("%.2f", exp(prod[a] / cnt[a])) : "-"
      printf "\n"
    }' "$1"
}

machine="$(uname -m), $(getconf _NPROCESSORS_ONLN) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "== mallocbench: ${names[*]} as the program's malloc, on $machine"
: >"$csv"

if [ "${skip#* traces }" = "$skip" ]; then
  t_csv=$out/traces.csv
  : >"$t_csv"
  for i in "${!names[@]}"; do
    for tr in "$common"/traces/*.rep; do
      run "$i" "$out/replay_malloc" --label "${names[$i]}" --reps "$reps" --align "${aligns[$i]}" \
        --csv "$t_csv" "$tr" \
        >/dev/null || echo "mallocbench: ${names[$i]} failed on $(basename "$tr")"
    done
  done
  echo
  echo "== traces: utilization, peak live / peak resident memory (ratio to the system malloc's)"
  awk -F, '{ printf "%s,%s,%.1f\n", $1, $2, 100 * $6 }' "$t_csv" >"$out/t_util.csv"
  table "$out/t_util.csv" 3 "%.1f%%"
  echo
  echo "== traces: million ops per second, median of $reps (ratio to the system malloc's)"
  awk -F, '{ printf "%s,%s,%.3f\n", $1, $2, $7 / 1e6 }' "$t_csv" >"$out/t_rate.csv"
  table "$out/t_rate.csv" 3 "%.2f"
  { echo "trace,allocator,ops,peak_live,peak_footprint,utilization,ops_per_sec"; cat "$t_csv"; } >>"$csv"
fi

if [ "${skip#* threads }" = "$skip" ]; then
  th_csv=$out/threads.csv
  : >"$th_csv"
  for i in "${!names[@]}"; do
    for mode in local cross; do
      for n in 1 2 4; do
        run "$i" "$out/threads_malloc" --threads $n --mode $mode --ops "$ops" --reps "$reps" \
          --label "${names[$i]}" --csv "$th_csv" >/dev/null ||
          echo "mallocbench: ${names[$i]} failed threads-$mode with $n threads"
      done
    done
  done
  echo
  echo "== threads: million mallocs + frees per second, median of $reps (ratio to the system malloc's)"
  awk -F, '{ printf "%s-%s,%s,%.2f\n", $1, $3, $2, $6 / 1e6 }' "$th_csv" >"$out/th_rate.csv"
  table "$out/th_rate.csv" 3 "%.2f"
  { echo "case,allocator,threads,ops,seconds,ops_per_sec"; cat "$th_csv"; } >>"$csv"
fi

if [ "${skip#* burst }" = "$skip" ]; then
  b_csv=$out/burst.csv
  : >"$b_csv"
  for i in "${!names[@]}"; do
    run "$i" "$out/burst_malloc" --mb "$mb" --label "${names[$i]}" --csv "$b_csv" >/dev/null
  done
  "$out/burst_malloc" --mb "$mb" --label "system+trim" --trim --csv "$b_csv" >/dev/null
  echo
  echo "== burst: $mb MB allocated, all but one block in 1000 freed; resident MB"
  printf '%-14s %8s %8s %11s %11s\n' allocator start peak "after free" "after 5 s"
  awk -F, '{ printf "%-14s %8.0f %8.0f %11.0f %11.0f\n", $2, $3 / 1024, $4 / 1024, $5 / 1024, $8 / 1024 }' "$b_csv"
  { echo "case,allocator,start_kb,peak_kb,freed_kb,after_0.5s_kb,after_2s_kb,after_5s_kb"; cat "$b_csv"; } >>"$csv"
fi
echo
echo "mallocbench: rows in $csv"
