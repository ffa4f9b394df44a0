#!/usr/bin/env bash
# common/replay.sh: the traces part of `make bench` for a stage with a
# replay program (REPLAY in its Makefile; the program is replay.h's
# replay_main).
#
#   replay.sh STAGE BIN BUILD TRACE.rep...
#
#   1. BIN on every trace: the stage's allocators with their own footprint
#      count, the system malloc with glibc's mallinfo2: BUILD/traces.csv.
#   2. BIN --rss: the same with the footprint measured as resident memory
#      for everyone, then BIN's system side again under each other malloc
#      (common/mallocs.sh: other stages' libmalloc.so from BENCH_PRELOAD,
#      then jemalloc, tcmalloc, mimalloc where installed), preloaded:
#      BUILD/traces-rss.csv.
#   3. One table of step 2's rows: a row per trace, a column per
#      allocator, utilization and Mops/s; the averages, and the geometric
#      mean of the rates.
#
# Environment: REPLAY_REPS=N timed passes per replay (default 5).
set -u
if [ $# -lt 4 ]; then
  echo "usage: $0 STAGE REPLAY_BINARY BUILD_DIR TRACE.rep..." >&2
  exit 2
fi
stage=$1 bin=$2 build=$3
shift 3
traces=("$@")
reps=(--reps "${REPLAY_REPS:-5}")
csv=$build/traces.csv rss_csv=$build/traces-rss.csv
# shellcheck source=mallocs.sh
. "$(dirname "$0")/mallocs.sh"

# ---- 1. Each allocator's own count --------------------------------------
"$bin" "${reps[@]}" --csv "$csv" "${traces[@]}" || exit 1

# ---- 2. Resident memory for all, and the other mallocs ------------------
"$bin" "${reps[@]}" --rss --csv "$rss_csv" "${traces[@]}" || exit 1
others=$(malloc_list)
while IFS='|' read -r name lib; do
  [ -n "$name" ] || continue
  if ! preloadable "$bin" "$lib"; then
    echo "$name: $lib cannot be preloaded into $bin: skipped"
    continue
  fi
  echo
  echo "== $name (LD_PRELOAD=$lib)"
  # (--align 8: a preloaded malloc may give the smallest requests 8-byte
  # blocks; glibc's 16 is checked in step 1.)
  LD_PRELOAD=$lib "$bin" "${reps[@]}" --rss --only system --label "$name" \
    --align 8 --append --csv "$rss_csv" "${traces[@]}" </dev/null ||
    echo "$name: a replay failed (see above)"
done <<<"$others"

# ---- 3. Side by side ---------------------------------------------------
echo
echo "== $stage: every trace on every allocator, footprint as resident memory (peak live / peak RSS growth), and Mops/s"
awk -F, '
  NR == 1 { next }
  !($2 in seen_t) { seen_t[$2] = 1; tr[++nt] = $2 }
  !($3 in seen_a) { seen_a[$3] = 1; al[++na] = $3 }
  { u[$2, $3] = $7; r[$2, $3] = $10 }
  END {
    printf "%-20s", "trace"
    for (a = 1; a <= na; a++) printf " | %-15.15s", al[a]
    printf "\n"
    for (t = 1; t <= nt; t++) {
      printf "%-20s", tr[t]
      for (a = 1; a <= na; a++)
        if ((tr[t], al[a]) in u) {
          printf " | %5.1f%% %7.2f", 100 * u[tr[t], al[a]], r[tr[t], al[a]] / 1e6
          us[a] += u[tr[t], al[a]]; ln[a] += log(r[tr[t], al[a]] > 0 ? r[tr[t], al[a]] : 1); k[a]++
        } else printf " | %15s", "-"
      printf "\n"
    }
    printf "%-20s", "average / geomean"
    for (a = 1; a <= na; a++)
      if (k[a]) printf " | %5.1f%% %7.2f", 100 * us[a] / k[a], exp(ln[a] / k[a]) / 1e6
      else printf " | %15s", "-"
    printf "\n"
  }' "$rss_csv"
cat <<EOF
utilization: peak live payload / peak footprint; here the footprint is resident memory
  (smaps_rollup Rss after each op, minus before the first), the one measure every malloc
  can be given; each allocator's own count for the stage is in $csv
Mops/s: million trace ops per second, the median of the timed passes (wall time: moves
  from run to run on a shared machine); the last row averages utilization and takes the
  geometric mean of the rates
CSV: $rss_csv
EOF
exit 0
