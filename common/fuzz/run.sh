#!/usr/bin/env bash
# common/fuzz/run.sh: runs a stage's libFuzzer harness (built by the make
# rules in common/stage.mk from the stage's fuzz_NAME.c and common/fuzz.c).
#
#   run.sh --have CC                  exit 0 when CC can build a libFuzzer
#                                     program (clang with compiler-rt)
#   run.sh BIN REGRESS SEEDS WORK     fuzz, with the environment saying how:
#     FUZZ_RUNS=N      a fixed number of runs, seeded (-seed=1): the short
#                      run of `make test` (the same inputs every time)
#     FUZZ_SECONDS=S   fuzz for S seconds instead (`make fuzz-NN SECONDS=S`)
#     REPRO=FILE       replay one input (a crash's reproducer) and stop
#
# The corpus: WORK (new inputs, under build/, thrown away by make clean),
# then REGRESS (NN-name/fuzz/: the committed inputs that once crashed) and
# SEEDS (made from the committed traces by trace2fuzz). A crash leaves its
# input as BIN's folder/crash-<hash>; this script copies it into REGRESS,
# so that it is replayed by every later run once the bug is fixed (commit
# it with the fix), and prints the command that replays it.
# Prints "fuzz: N passed, N failed[, N skipped]" last.
set -u
if [ "${1:-}" = "--have" ]; then
  cc=${2:-clang}
  command -v "$cc" >/dev/null 2>&1 || exit 1
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }' >"$tmp/f.c"
  "$cc" -fsanitize=fuzzer "$tmp/f.c" -o "$tmp/f" >/dev/null 2>&1
  exit $?
fi

bin=$1 regress=$2 seeds=$3 work=$4
dir=$(dirname "$bin")
mkdir -p "$work"
opts=(-artifact_prefix="$dir/" -print_final_stats=0 -detect_leaks=1)
export ASAN_OPTIONS=abort_on_error=0:detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

if [ -n "${REPRO:-}" ]; then
  echo "fuzz: replaying $REPRO"
  if "$bin" "${opts[@]}" "$REPRO"; then
    echo "fuzz: $REPRO runs clean: 1 passed, 0 failed"
    exit 0
  fi
  echo "fuzz: $REPRO still fails: 0 passed, 1 failed"
  exit 1
fi

corpus=("$work")
[ -d "$regress" ] && corpus+=("$regress")
[ -d "$seeds" ] && corpus+=("$seeds")
if [ -n "${FUZZ_SECONDS:-}" ]; then
  opts+=(-max_total_time="$FUZZ_SECONDS")
  what="$FUZZ_SECONDS s"
else
  opts+=(-runs="${FUZZ_RUNS:-500}" -seed=1)
  what="${FUZZ_RUNS:-500} runs"
fi
before=$(ls "$dir" | grep -c '^crash-\|^leak-\|^timeout-\|^oom-')
"$bin" "${opts[@]}" "${corpus[@]}" 2>"$dir/fuzz.log"
status=$?
tail -n 3 "$dir/fuzz.log" | grep -E '^(#|Done)' | tail -n 1
if [ $status -eq 0 ]; then
  echo "fuzz: $(basename "$bin"), $what, every input clean: 1 passed, 0 failed"
  exit 0
fi
grep -E 'ERROR|fuzz [0-9]|SUMMARY|==[0-9]+==' "$dir/fuzz.log" | head -n 15
for f in $(ls -t "$dir" | grep -E '^(crash|leak|timeout|oom)-' | head -n $(( $(ls "$dir" | grep -c '^crash-\|^leak-\|^timeout-\|^oom-') - before ))); do
  mkdir -p "$regress"
  cp "$dir/$f" "$regress/$f"
  echo "fuzz: the failing input is kept as $regress/$f; replay it with"
  echo "      make -C $(basename "$PWD") fuzz REPRO=$regress/$f   (commit it with the fix)"
done
echo "fuzz: $(basename "$bin"), $what: 0 passed, 1 failed (log: $dir/fuzz.log)"
exit 1
