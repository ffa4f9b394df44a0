#!/usr/bin/env bash
# common/mutants.sh: a stage's known-bad variants, each one a small named bug
# that its tests must catch.
#
#   mutants.sh STAGE LIBCOMMON TESTS...     (run by `make mutants` in a stage)
#
# A mutant is a patch file NN-name/mutants/NAME.patch: a unified diff of the
# stage's sources (made with `diff -u a/fl.c b/fl.c`, applied with patch -p1),
# whose first line says what the bug is, the way a student makes it:
#
#     The split leaves a remainder below the 32-byte minimum chunk.
#     --- a/fl.c
#     +++ b/fl.c
#     @@ ...
#
# For each mutant: the stage's sources are copied to build/mutants/NAME/, the
# patch applied there (the stage's own files are never touched), the test
# programs built against it in one flavour (checked: ALLOC_DEBUG, so the
# checker and the misuse checks run), and run one after the other until one
# fails. A mutant is caught when a test fails, crashes, aborts or hangs
# (timeout); it is missed when every test passes: a gap in the tests. A
# mutant that does not build is an error, not a catch. A patch that no
# longer applies (the source under it changed) is an error with
# MUTANTS_STRICT=1, which CI sets: the shipped patches must match the
# shipped source. Otherwise it is skipped with a note: a student who
# changes the allocator in an exercise breaks the context of the patches
# that touch those lines, and `make test` should still judge the change. One line per mutant says which, and which test cases
# caught it. Prints "mutants: N passed, N failed" last (passed: caught).
#
# The environment gives the compiler and flags (common/stage.mk sets them):
# CC, CFLAGS, CPPFLAGS, LDFLAGS, LDLIBS, ALLOC (the allocator's sources).
# MUTANT=NAME runs one. Each test run has MUTANT_TIMEOUT seconds (default 120).
# The tests run with one fixed seed (MUTANT_SEED, default 0x5eed), so that a
# catch by a randomized case is the same on every run and every machine.
set -u
stage=$1 libcommon=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
shift 2
tests=("$@")
common=$(cd "$(dirname "$0")" && pwd)
timeout_s=${MUTANT_TIMEOUT:-120}
seed=${MUTANT_SEED:-0x5eed}
caught=0 missed=0 errors=0 stale=0
shopt -s nullglob
patches=(mutants/*.patch)
[ ${#patches[@]} -gt 0 ] || { echo "$stage: no mutants (mutants/*.patch)"; echo "mutants: 0 passed, 0 failed"; exit 0; }

for patch in "${patches[@]}"; do
  name=$(basename "$patch" .patch)
  [ -n "${MUTANT:-}" ] && [ "$MUTANT" != "$name" ] && continue
  what=$(head -n 1 "$patch")
  dir=build/mutants/$name
  rm -rf "$dir"
  mkdir -p "$dir"
  cp ./*.c ./*.h "$dir"/
  if ! patch -s -p1 -d "$dir" --no-backup-if-mismatch <"$patch" >"$dir/patch.log" 2>&1; then
    if [ "${MUTANTS_STRICT:-0}" = 1 ]; then
      errors=$((errors + 1))
      printf '  ERROR   %-32s the patch no longer applies (see %s/patch.log)\n' "$name" "$dir"
    else
      stale=$((stale + 1))
      printf '  skip    %-32s the source it patches has changed (an exercise?): not run\n' "$name"
    fi
    continue
  fi
  built=1
  for t in "${tests[@]}"; do
    # shellcheck disable=SC2086
    if ! $CC $CFLAGS $CPPFLAGS -I"$dir" -I"$common" "$dir/$t.c" \
        $(for s in $ALLOC; do printf '%s ' "$dir/$s"; done) "$libcommon" \
        $LDFLAGS -o "$dir/$t" $LDLIBS >"$dir/build.log" 2>&1; then
      built=0
      break
    fi
  done
  if [ $built -eq 0 ]; then
    errors=$((errors + 1))
    printf '  ERROR   %-32s does not build (see %s/build.log)\n' "$name" "$dir"
    continue
  fi
  by=""
  for t in "${tests[@]}"; do
    log=$dir/$t.log
    # (The braces' redirection silences bash's own "Segmentation fault".)
    { TEST_SEED=$seed TEST_VERBOSE=2 timeout "$timeout_s" "$dir/$t" >"$log" 2>&1; status=$?; } 2>/dev/null
    [ $status -eq 0 ] && continue
    cases=$(grep -oE '^FAIL [^ ]+' "$log" | cut -c6- | head -n 3 | paste -sd, -)
    last=$(grep -E '^run  ' "$log" | tail -n 1 | cut -c6-)
    # Failed checks first: a run that then hangs or crashes was caught by
    # them already.
    if [ -n "$cases" ]; then
      by="$t: $cases"
      [ $status -eq 124 ] && by="$by (then hung)"
    elif [ $status -eq 124 ]; then
      by="$t: hung in $last (timeout ${timeout_s} s)"
    elif [ $status -gt 128 ]; then
      by="$t: killed by signal $((status - 128)) in $last"
    else
      by="$t: exit $status in $last"
    fi
    break
  done
  if [ -n "$by" ]; then
    caught=$((caught + 1))
    printf '  caught  %-32s by %s\n' "$name" "$by"
  else
    missed=$((missed + 1))
    printf '  MISSED  %-32s every test passed: %s\n' "$name" "$what"
  fi
done
total=$((caught + missed + errors))
note=""
[ $stale -gt 0 ] && note=", $stale skipped (their source changed)"
echo "$stage: $caught of $total mutants caught$note"
echo "mutants: $caught passed, $((missed + errors)) failed, $stale skipped"
[ $((missed + errors)) -eq 0 ]
