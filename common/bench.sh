#!/usr/bin/env bash
# common/bench.sh: the driver behind `make bench`.
#
#   bench.sh STAGE BIN BUILD
#
# STAGE is the stage's name (01-bump), BIN its bench program (built in the
# release flavour, see bench.h), BUILD the stage's build folder. Steps:
#
#   1. BIN against the system malloc: its table on screen, and a fresh
#      BUILD/bench.csv.
#   2. For each of jemalloc, tcmalloc and mimalloc that is installed: BIN's
#      system side again with that malloc preloaded (LD_PRELOAD), rows named
#      after it appended to BUILD/bench.csv; their ratio is against the
#      glibc "system" rows of step 1. Then a summary of all the rows.
#   3. If valgrind is installed: instructions per request. Each case and
#      allocator runs under callgrind with --reps 1: a warm-up, which is not
#      counted, then one repetition, whose instructions between bench_start
#      and bench_stop are. (Not --once: a cold run is another measure, as
#      glibc shows with 184 instructions per malloc cold and 80 warm in
#      01-bump's small-16-64.) Divided by the ops, that gives
#      BUILD/bench-instr.csv
#          stage,case,allocator,ops,instructions,instr_per_op,ratio_vs_system
#      where the ratio is the system's instr/op over this one's, so that, as
#      in bench.csv, above 1 is better. The callgrind files stay in
#      BUILD/callgrind/ for callgrind_annotate.
#   4. If gnuplot is installed: BUILD/bench.png, one group of bars per case.
#
# Every tool beyond bash and awk is optional: a missing one is skipped with a
# one-line note. Wall times on a shared 2-core machine move from run to run;
# instruction counts do not, which is why step 3 exists.
#
# Environment:
#   BENCH_REPS=N              timed repetitions (the program's --reps)
#   BENCH_SCALE=F             multiplies every case's ops (--scale)
#   BENCH_NO_CALLGRIND=1      skip step 3
#   BENCH_CALLGRIND_SCALE=F   ops under callgrind, as a share of the normal
#                             run (default 0.1: callgrind is ~50x slower)
set -u

if [ $# -ne 3 ]; then
  echo "usage: $0 STAGE BENCH_BINARY BUILD_DIR" >&2
  exit 2
fi
stage=$1 bin=$2 build=$3
if [ ! -x "$bin" ]; then
  echo "bench: $bin is not built (make -C <stage> build/release/<bench>)" >&2
  exit 1
fi
mkdir -p "$build"
csv=$build/bench.csv

# Two benches writing one build folder at once would interleave their rows
# (the second's fresh bench.csv lands under the first's --append runs):
# the second waits for the first.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$build/.bench.lock"
  if ! flock -n 9; then
    echo "bench: another bench is writing $build; waiting for it"
    flock 9
  fi
fi
instr_csv=$build/bench-instr.csv

run_args=()
[ -n "${BENCH_REPS:-}" ] && run_args+=(--reps "$BENCH_REPS")
[ -n "${BENCH_SCALE:-}" ] && run_args+=(--scale "$BENCH_SCALE")

# ---- The machine: a reader needs it to judge the figures ----------------
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
echo "== $stage bench on $(uname -m), $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') CPUs (${cpu:-unknown CPU}), load average ${load:-?}"

# ---- 1. Against the system malloc ---------------------------------------
"$bin" --csv "$csv" "${run_args[@]}" || {
  echo "bench: $bin failed" >&2
  exit 1
}

# ---- 2. The same system side under other mallocs -------------------------

# The path of the first installed library among the sonames given, for this
# machine's word size, from the dynamic linker's cache.
find_lib() {
  local ldconfig soname path
  ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
  [ -x "$ldconfig" ] || return 1
  for soname in "$@"; do
    path=$("$ldconfig" -p 2>/dev/null | awk -v n="$soname" '$1 == n { print $NF; exit }')
    if [ -n "$path" ]; then
      printf '%s\n' "$path"
      return 0
    fi
  done
  return 1
}

# name | sonames | the Debian package that installs it
others=(
  "jemalloc|libjemalloc.so.2|libjemalloc2"
  "tcmalloc|libtcmalloc_minimal.so.4 libtcmalloc.so.4|libtcmalloc-minimal4"
  "mimalloc|libmimalloc.so.2|libmimalloc2.0"
)
preloaded=() # "name|path" of each malloc that ran
for entry in "${others[@]}"; do
  IFS='|' read -r name sonames package <<<"$entry"
  # shellcheck disable=SC2086 # sonames is a list
  if ! lib=$(find_lib $sonames); then
    echo "$name: not installed (apt-get install $package): skipped"
    continue
  fi
  # The dynamic linker ignores a library it cannot load (wrong word size)
  # with a message and runs on glibc: that row would be glibc under
  # another name. Try it first.
  if LD_PRELOAD=$lib "$bin" --list 2>&1 >/dev/null | grep -q 'cannot be preloaded'; then
    echo "$name: $lib cannot be preloaded into $bin: skipped"
    continue
  fi
  echo
  echo "== $name (LD_PRELOAD=$lib): the system side again, now on $name"
  if LD_PRELOAD=$lib "$bin" --only system --label "$name" --append --csv "$csv" "${run_args[@]}"; then
    preloaded+=("$name|$lib")
  else
    echo "$name: the run failed: skipped"
  fi
done

if [ ${#preloaded[@]} -gt 0 ]; then
  echo
  echo "== $stage: million ops per second, and in brackets the ratio to the system malloc (above 1: faster)"
  awk -F, '
    NR == 1 { next }
    !($2 in seen_case) { seen_case[$2] = 1; cases[++nc] = $2 }
    !($3 in seen_alloc) { seen_alloc[$3] = 1; allocs[++na] = $3 }
    { cell[$2, $3] = sprintf("%.1f (%s)", $6 / 1e6, $7 == "" ? "-" : sprintf("%.2f", $7)) }
    END {
      w = 4
      for (c = 1; c <= nc; c++) if (length(cases[c]) > w) w = length(cases[c])
      printf "%-" w "s", "case"
      for (a = 1; a <= na; a++) printf "  %18s", allocs[a]
      printf "\n"
      for (c = 1; c <= nc; c++) {
        printf "%-" w "s", cases[c]
        for (a = 1; a <= na; a++)
          printf "  %18s", ((cases[c], allocs[a]) in cell) ? cell[cases[c], allocs[a]] : "-"
        printf "\n"
      }
    }' "$csv"
fi
echo "wall times: $csv"

# ---- 3. Instructions per request, under callgrind ------------------------
instructions() {
  echo
  local scale cases case out ops instr entry name lib only label
  scale=$(awk -v a="${BENCH_CALLGRIND_SCALE:-0.1}" -v b="${BENCH_SCALE:-1}" 'BEGIN { printf "%g", a * b }')
  cases=$("$bin" --list) || return 1
  local cg=$build/callgrind
  mkdir -p "$cg"
  local rows=$cg/rows.txt # case allocator ops instructions, one run a line
  : >"$rows"
  echo "== $stage: instructions per request, counted by callgrind between bench_start and bench_stop (--scale $scale, one repetition after the warm-up)"
  for case in $cases; do
    for entry in "stage|" "system|" "${preloaded[@]}"; do
      IFS='|' read -r name lib <<<"$entry"
      only=system label=()
      [ "$name" = stage ] && only=stage
      [ -n "$lib" ] && label=(--label "$name")
      out=$cg/$case.$name
      if ! env ${lib:+LD_PRELOAD=$lib} valgrind --tool=callgrind --collect-atstart=no \
        --callgrind-out-file="$out.out" "$bin" --reps 1 --case "$case" --only "$only" \
        "${label[@]}" --scale "$scale" --csv "$out.csv" >"$out.log" 2>&1; then
        echo "$case/$name: the callgrind run failed (see $out.log): skipped"
        continue
      fi
      # Callgrind writes the collected total as "totals:" (and older
      # versions as "summary:"); the ops are those the run reported.
      instr=$(awk '/^totals:/ { t = $2 } /^summary:/ { s = $2 } END { print (t != "") ? t : s }' "$out.out")
      ops=$(awk -F, 'NR == 2 { print $4 }' "$out.csv")
      if [ -z "$instr" ] || [ -z "$ops" ]; then
        echo "$case/$name: no instruction total or op count (see $out.out, $out.csv): skipped"
        continue
      fi
      printf '%s %s %s %s\n' "$case" "$name" "$ops" "$instr" >>"$rows"
    done
  done
  awk -v stage="$stage" -v out="$instr_csv" '
    { key[NR] = $1 SUBSEP $2; c[NR] = $1; a[NR] = $2; ops[NR] = $3; ins[NR] = $4
      ipo[NR] = $4 / $3; if ($2 == "system") sys[$1] = ipo[NR]
      if (length($1) > w) w = length($1) }
    END {
      print "stage,case,allocator,ops,instructions,instr_per_op,ratio_vs_system" > out
      if (w < 4) w = 4
      printf "%-" w "s  %-10s %12s %14s %12s %7s\n", "case", "allocator", "ops", "instructions", "instr/op", "ratio"
      for (i = 1; i <= NR; i++) {
        r = (c[i] in sys && ipo[i] > 0) ? sprintf("%.6g", sys[c[i]] / ipo[i]) : ""
        printf "%s,%s,%s,%s,%s,%.6g,%s\n", stage, c[i], a[i], ops[i], ins[i], ipo[i], r > out
        printf "%-" w "s  %-10s %12d %14d %12.2f %7s\n", c[i], a[i], ops[i], ins[i], ipo[i], r == "" ? "-" : sprintf("%.2f", r)
      }
    }' "$rows"
  rm -f "$rows"
  echo "ratio: the system's instr/op over this one's (above 1: fewer instructions than the system malloc)"
  echo "instruction counts are repeatable run to run (exactly for the stage and glibc; a malloc with"
  echo "time-driven work, like jemalloc's decay, moves by a few %); wall times on a shared 2-core machine are not"
  echo "instructions: $instr_csv; per-function detail: callgrind_annotate $cg/<case>.<allocator>.out"
}

if [ "${BENCH_NO_CALLGRIND:-}" = 1 ]; then
  echo "instructions per request: skipped (BENCH_NO_CALLGRIND=1)"
elif ! command -v valgrind >/dev/null 2>&1; then
  echo "instructions per request: valgrind not installed (apt-get install valgrind): skipped"
else
  instructions || echo "instructions per request: $bin --list failed: skipped"
fi

# ---- 4. A chart ---------------------------------------------------------
chart() {
  local dat=$build/bench-plot.dat png=$build/bench.png
  # One line per case, one column per allocator (Mops/s); "-" when absent.
  awk -F, '
    NR == 1 { next }
    !($2 in seen_case) { seen_case[$2] = 1; cases[++nc] = $2 }
    !($3 in seen_alloc) { seen_alloc[$3] = 1; allocs[++na] = $3 }
    $6 != "" { v[$2, $3] = $6 / 1e6 }
    END {
      printf "case"
      for (a = 1; a <= na; a++) printf " %s", allocs[a]
      printf "\n"
      for (c = 1; c <= nc; c++) {
        printf "%s", cases[c]
        for (a = 1; a <= na; a++)
          printf " %s", ((cases[c], allocs[a]) in v) ? v[cases[c], allocs[a]] : "-"
        printf "\n"
      }
    }' "$csv" >"$dat"
  local ncol spread
  ncol=$(head -n 1 "$dat" | awk '{ print NF }')
  # Rates a hundredfold apart would flatten the small bars: log scale then.
  spread=$(awk 'NR > 1 { for (i = 2; i <= NF; i++) if ($i != "-") {
             if (lo == "" || $i < lo) lo = $i; if ($i > hi) hi = $i } }
           END { print (lo > 0 && hi / lo > 100) ? "log" : "linear" }' "$dat")
  local terminal="pngcairo size 900,500"
  gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1 || terminal="png size 900,500"
  if gnuplot >"$build/gnuplot.log" 2>&1 <<EOF; then
set terminal $terminal
set output '$png'
set title "$stage: million ops per second per case (higher is faster)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set datafile missing '-'
set key outside right top
set ylabel "Mops/s"
set grid ytics
$([ "$spread" = log ] && echo "set logscale y")
plot for [i=2:$ncol] '$dat' using i:xtic(1) title columnheader(i)
EOF
    echo "chart: $png$([ "$spread" = log ] && echo " (log scale: the rates are over 100x apart)")"
  else
    echo "chart: gnuplot failed (see $build/gnuplot.log)"
  fi
}

if command -v gnuplot >/dev/null 2>&1; then
  chart
else
  echo "chart: gnuplot not installed (apt-get install gnuplot-nox): skipped"
fi
exit 0
