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
#   3. If valgrind is installed: instructions per request, two ways. Each
#      case and allocator runs under callgrind with --reps 1: a warm-up,
#      which is not counted, then one repetition, which is. (Not --once: a
#      cold run is another measure, as glibc shows with 184 instructions
#      per malloc cold and 80 warm in 01-bump's small-16-64.)
#        whole loop: every instruction between bench_start and bench_stop,
#          the allocator's and the bench loop's around it;
#        allocator only: only those inside the allocator's entry points and
#          their callees (Stanford CS107's measure), in a second run with
#          --toggle-collect on each entry point: the stage's are BENCH_ENTRY,
#          the system side's the malloc API. That run is checked against
#          the first one's call graph, and left out, with a note, when they
#          disagree (an entry point that calls another: the toggles cancel).
#      Divided by the ops, that gives BUILD/bench-instr.csv
#          stage,case,allocator,ops,instructions,instr_per_op,ratio_vs_system,
#          alloc_instructions,alloc_instr_per_op,alloc_ratio_vs_system
#      (one line a row), where a ratio is the system's instr/op over this
#      one's, so that, as in bench.csv, above 1 is better; the alloc_ fields
#      are empty when that figure was left out. The callgrind files stay in
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
#   BENCH_PRELOAD='n=path ..' more mallocs to run the system side on, before
#                             jemalloc, tcmalloc and mimalloc: the earlier
#                             stages' libmalloc.so (stage.mk passes those the
#                             Makefile names in BENCH_STAGES), each row named n
#   BENCH_ENTRY='f g ...'     the stage's entry points, for the allocator-only
#                             count (stage.mk passes the Makefile's); list
#                             those the bench calls and none that another
#                             listed one calls; empty: whole loop only
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
[ -n "${BENCH_CC:-}" ] && echo "== $stage built by $BENCH_CC (release flavour: -O2)"
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
# The earlier stages' libraries come first, named after their stage, given
# by path ("path|" in the soname field: no ldconfig lookup).
stage_libs=()
for entry in ${BENCH_PRELOAD:-}; do
  stage_libs+=("${entry%%=*}|path:${entry#*=}|")
done
preloaded=() # "name|path" of each malloc that ran
for entry in "${stage_libs[@]}" "${others[@]}"; do
  IFS='|' read -r name sonames package <<<"$entry"
  if [ "${sonames#path:}" != "$sonames" ]; then
    lib=${sonames#path:}
    if [ ! -f "$lib" ]; then
      echo "$name: $lib is not built: skipped"
      continue
    fi
  # shellcheck disable=SC2086 # sonames is a list
  elif ! lib=$(find_lib $sonames); then
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

# The system side's entry points: the malloc API under every name that the
# libraries export for it. Callgrind names a function by one of the
# symbols at its address, and which one depends on the library and on its
# debug symbols (glibc's malloc is also __libc_malloc, tcmalloc's is also
# tc_malloc, mimalloc's mi_malloc), so each alias is listed: aliases are
# one function, whose toggles never stack. Internal functions (glibc's
# _int_malloc, jemalloc's slow paths) are not listed: they are callees, and
# counted as such.
system_entry() {
  local prefix fn
  for prefix in "" __libc_ tc_ mi_ je_; do
    for fn in malloc free calloc realloc aligned_alloc posix_memalign memalign; do
      printf '%s%s ' "$prefix" "$fn"
    done
  done
}

# The total that a callgrind output file reports ("totals:", or "summary:"
# in older versions).
callgrind_total() {
  awk '/^totals:/ { t = $2 } /^summary:/ { s = $2 } END { print (t != "") ? t : s }' "$1"
}

# The check of the allocator-only count, read from the whole-loop run's
# call graph. Prints two things, "|"-separated:
#   - the inclusive cost of every call into an entry point from a function
#     that is not one (the outermost calls), summed: the same count by
#     another road;
#   - "A calls B" for each entry point A from which another, B, is reached
#     (directly or through other functions): there the toggles cancel
#     (collection flips off on entering B), and the toggled count misses
#     B's instructions.
# Callgrind's format: "fn=" and "cfn=" name the caller and the callee (as
# "(id) name" the first time and "(id)" after), and the line after
# "calls=N target" is "line cost", the callee's cost with its callees'.
graph_check() {
  awk -v entries="$2" '
    BEGIN { n = split(entries, e, " "); for (i = 1; i <= n; i++) is_entry[e[i]] = 1 }
    function name_of(s,   id) {
      if (s !~ /^\(/) return s
      id = substr(s, 2, index(s, ")") - 2)
      if (index(s, ") ") > 0) names[id] = substr(s, index(s, ") ") + 2)
      return names[id]
    }
    /^fn=/ { fn = name_of(substr($0, 4)) }
    /^cfn=/ { cfn = name_of(substr($0, 5)) }
    /^calls=/ {
      if (getline <= 0) exit
      if ((cfn in is_entry) && !(fn in is_entry)) sum += $2
      if (fn != cfn && !((fn, cfn) in edge)) { edge[fn, cfn] = 1; adj[fn] = adj[fn] SUBSEP cfn }
    }
    END {
      printf "%.0f", sum
      for (a in is_entry) {            # a walk from each entry point
        split("", seen); top = 0; stack[++top] = a; seen[a] = 1
        while (top > 0) {
          u = stack[top--]; m = split(adj[u], next_fn, SUBSEP)
          for (j = 2; j <= m; j++) {
            v = next_fn[j]
            if (v in seen) continue
            seen[v] = 1; stack[++top] = v
            if (v in is_entry) printf "|%s calls %s", a, v
          }
        }
      }
      printf "\n"
    }' "$1"
}

instructions() {
  echo
  local scale cases case out ops instr entry name lib only label entries
  local alloc check nested toggles f tolerance
  scale=$(awk -v a="${BENCH_CALLGRIND_SCALE:-0.1}" -v b="${BENCH_SCALE:-1}" 'BEGIN { printf "%g", a * b }')
  cases=$("$bin" --list) || return 1
  local cg=$build/callgrind
  mkdir -p "$cg"
  local rows=$cg/rows.txt # case allocator ops instructions alloc-instructions
  : >"$rows"
  echo "== $stage: instructions per request, counted by callgrind (--scale $scale, one repetition after the warm-up)"
  if [ -z "${BENCH_ENTRY:-}" ]; then
    echo "allocator only: the stage declares no entry points (BENCH_ENTRY in its Makefile): whole loop only"
  fi
  for case in $cases; do
    for entry in "stage|" "system|" "${preloaded[@]}"; do
      IFS='|' read -r name lib <<<"$entry"
      only=system label=()
      [ "$name" = stage ] && only=stage
      [ -n "$lib" ] && label=(--label "$name")
      out=$cg/$case.$name
      # (a) The whole loop: bench_start and bench_stop toggle collection
      #     (a client request); everything between them is counted.
      if ! env ${lib:+LD_PRELOAD=$lib} valgrind --tool=callgrind --collect-atstart=no \
        --callgrind-out-file="$out.out" "$bin" --reps 1 --case "$case" --only "$only" \
        "${label[@]}" --scale "$scale" --csv "$out.csv" >"$out.log" 2>&1; then
        echo "$case/$name: the callgrind run failed (see $out.log): skipped"
        continue
      fi
      instr=$(callgrind_total "$out.out")
      ops=$(awk -F, 'NR == 2 { print $4 }' "$out.csv")
      if [ -z "$instr" ] || [ -z "$ops" ]; then
        echo "$case/$name: no instruction total or op count (see $out.out, $out.csv): skipped"
        continue
      fi
      # (b) The allocator only, as CS107 counts it: collection flips on when
      #     an entry point is entered and off when it returns
      #     (--toggle-collect). The client requests must not flip it as
      #     well (entering malloc inside bench_start..bench_stop would switch
      #     it off), so this is a run of its own: with --allocator-only,
      #     bench_start and bench_stop switch instrumentation on and off
      #     instead, and outside the timed repetition callgrind sees
      #     nothing, not even the setup's calls to the same functions.
      #     Its arguments are (a)'s, --csv included: without the CSV's
      #     FILE, the heap's history before the case differs, and a malloc
      #     that sizes its caches on that history does other work in it
      #     (tcmalloc: 10% fewer instructions in 02-pool-fixed's fill-64).
      alloc=-
      entries=${BENCH_ENTRY:-}
      [ "$name" != stage ] && entries=$(system_entry)
      if [ -n "${BENCH_ENTRY:-}" ]; then
        toggles=()
        for f in $entries; do toggles+=(--toggle-collect="$f"); done
        if ! env ${lib:+LD_PRELOAD=$lib} valgrind --tool=callgrind --instr-atstart=no \
          --collect-atstart=no "${toggles[@]}" --callgrind-out-file="$out.alloc.out" \
          "$bin" --allocator-only --reps 1 --case "$case" --only "$only" "${label[@]}" \
          --scale "$scale" --csv "$out.alloc.csv" >"$out.alloc.log" 2>&1; then
          echo "$case/$name: the allocator-only callgrind run failed (see $out.alloc.log): left out"
        else
          alloc=$(callgrind_total "$out.alloc.out")
          # (c) The check, against (a)'s call graph: no entry point may
          #     reach another, and the outermost calls into them must cost
          #     what the toggles counted: exactly (to 0.5%) for the stage
          #     and glibc, whose counts repeat run to run, to 5% for a
          #     preloaded malloc with time-driven work (jemalloc's decay);
          #     and the allocator alone cannot cost more than the whole
          #     loop. Otherwise the figure is left out, not printed wrong.
          tolerance=0.005
          [ -n "$lib" ] && tolerance=0.05
          IFS='|' read -r check nested <<<"$(graph_check "$out.out" "$entries")"
          if [ -n "$nested" ]; then
            echo "$case/$name: allocator only left out: ${nested//|/, } (directly or not; both are entry points, and callgrind's toggles cancel inside the inner one); the call graph counts $(awk -v c="$check" -v o="$ops" 'BEGIN { printf "%.2f", c / o }') instr/op"
            alloc=-
          elif [ "$check" = 0 ]; then
            echo "$case/$name: allocator only left out: the timed repetition calls none of its entry points under those names (see callgrind_annotate $out.out)"
            alloc=-
          elif [ -z "$alloc" ] ||
            ! awk -v a="$alloc" -v c="$check" -v t="$tolerance" 'BEGIN { exit !(a - c <= c * t && c - a <= c * t) }'; then
            echo "$case/$name: allocator only left out: toggled count ${alloc:-none}, call graph $check, over $(awk -v t="$tolerance" 'BEGIN { print t * 100 }')% apart (see $out.alloc.out, $out.out)"
            alloc=-
          elif [ "$alloc" -gt "$instr" ]; then
            echo "$case/$name: allocator only left out: $alloc instructions, more than the whole loop's $instr in the other run (this malloc's work varies run to run by more than the loop costs)"
            alloc=-
          fi
        fi
      fi
      printf '%s %s %s %s %s\n' "$case" "$name" "$ops" "$instr" "$alloc" >>"$rows"
    done
  done
  awk -v stage="$stage" -v out="$instr_csv" '
    { c[NR] = $1; a[NR] = $2; ops[NR] = $3; ins[NR] = $4; al[NR] = $5
      ipo[NR] = $4 / $3; if ($2 == "system") sys[$1] = ipo[NR]
      if ($5 != "-") { apo[NR] = $5 / $3; if ($2 == "system") asys[$1] = apo[NR] }
      if (length($1) > w) w = length($1) }
    # The system per op over this per op: above 1, fewer than the system.
    function ratio(ref, x) { return (ref != "" && x > 0) ? sprintf("%.6g", ref / x) : "" }
    function shown(r) { return r == "" ? "-" : sprintf("%.2f", r) }
    END {
      print "stage,case,allocator,ops,instructions,instr_per_op,ratio_vs_system,alloc_instructions,alloc_instr_per_op,alloc_ratio_vs_system" > out
      if (w < 4) w = 4
      printf "%-" w "s  %-10s %10s   %-30s   %s\n", "", "", "", "---------- whole loop ----------", "-------- allocator only --------"
      printf "%-" w "s  %-10s %10s   %12s %10s %7s   %12s %10s %7s\n", "case", "allocator", "ops", "instructions", "instr/op", "ratio", "instructions", "instr/op", "ratio"
      for (i = 1; i <= NR; i++) {
        r = ratio(sys[c[i]], ipo[i])
        has = (i in apo)
        ar = has ? ratio(asys[c[i]], apo[i]) : ""
        printf "%s,%s,%s,%s,%s,%.6g,%s,%s,%s,%s\n", stage, c[i], a[i], ops[i], ins[i], ipo[i], r,
          has ? al[i] : "", has ? sprintf("%.6g", apo[i]) : "", ar > out
        printf "%-" w "s  %-10s %10d   %12d %10.2f %7s   %12s %10s %7s\n", c[i], a[i], ops[i], ins[i], ipo[i], shown(r),
          has ? al[i] : "-", has ? sprintf("%.2f", apo[i]) : "-", shown(ar)
      }
    }' "$rows"
  rm -f "$rows"
  local declared=${BENCH_ENTRY:-"none declared (BENCH_ENTRY in the Makefile)"}
  cat <<EOF
whole loop: every instruction between bench_start and bench_stop, over the ops: the allocator
  and the bench loop around it (drawing a size or a slot, storing the pointer, bench_keep),
  which costs both sides about the same: the two instr/op columns differ by the loop
allocator only: the instructions inside the allocator's entry points and what they call, in
  the same timed repetition, over the same ops: Stanford CS107's measure (callgrind
  --toggle-collect on each entry point), checked against the call graph of the whole loop
  stage: $declared
  system and preloaded: malloc, free, calloc, realloc and the aligned allocs, under each
  library's names for them
ratio: the system's instr/op over this one's (above 1: fewer instructions than the system malloc)
instruction counts are repeatable run to run (exactly for the stage and glibc; a malloc with
time-driven work, like jemalloc's decay, moves by a few %); wall times on a shared 2-core machine are not
instructions: $instr_csv; per function: callgrind_annotate --inclusive=yes
  $cg/<case>.<allocator>.out (whole loop) or .alloc.out (allocator only)
EOF
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
