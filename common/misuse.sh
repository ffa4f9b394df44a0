#!/usr/bin/env bash
# common/misuse.sh: proves that the memory tools report each deliberate bug.
#
#   misuse.sh VALGRIND_BUILD ASAN_BUILD
#
# Both arguments are builds of one stage's bad_* program: the first annotated
# for Valgrind (build/valgrind/), the second built with ASan (build/asan/).
# `PROGRAM --list` prints one bug a line, tab-separated:
#
#     name <TAB> valgrind-pattern <TAB> asan-pattern <TAB> what it does
#
# A pattern is an extended regular expression that the tool's report must
# contain; "-" says the tool cannot see this bug (the last column says why).
# `PROGRAM name` commits that bug. Each (bug, tool) pair is one check: it
# passes when the tool's output matches the pattern, and fails otherwise,
# which is what happens when the allocator's annotations are missing.
#
# `PROGRAM none` is the control: the same setup, no bug. It must run clean
# under both tools (one check each), and no pattern may match its output: a
# pattern that matches a clean run (for example "definitely lost", which
# every leak summary prints as "definitely lost: 0 bytes") proves nothing,
# and its check fails.
# Prints "misuse: N passed, N failed" last; exits 1 if any check failed.
set -u
vg_bin=$1 asan_bin=$2
passed=0 failed=0
tmp=$(mktemp)

clean_vg=$(mktemp) clean_asan=$(mktemp)
trap 'rm -f "$tmp" "$clean_vg" "$clean_asan"' EXIT

run_tool() { # tool bug output-file; returns the program's exit status
  # (the braces keep bash's own "Aborted" notice out of the way: a bug that
  # the allocator reports ends in abort() on purpose)
  case $1 in
    valgrind) { valgrind --error-exitcode=99 --leak-check=full "$vg_bin" "$2" >"$3" 2>&1; } 2>/dev/null ;;
    asan) { ASAN_OPTIONS=detect_leaks=1 "$asan_bin" "$2" >"$3" 2>&1; } 2>/dev/null ;;
  esac
}

run_one() { # tool bug pattern
  local tool=$1 bug=$2 pattern=$3 clean=$clean_vg
  [ "$tool" = asan ] && clean=$clean_asan
  run_tool "$tool" "$bug" "$tmp"
  if grep -qE -- "$pattern" "$clean"; then
    failed=$((failed + 1))
    printf 'FAIL  %-22s %-9s pattern /%s/ also matches the clean run: it proves nothing\n' "$bug" "$tool" "$pattern"
  elif grep -qE -- "$pattern" "$tmp"; then
    passed=$((passed + 1))
    printf 'ok    %-22s %-9s reported: %s\n' "$bug" "$tool" "$(grep -m1 -oE -- "$pattern" "$tmp")"
  else
    failed=$((failed + 1))
    printf 'FAIL  %-22s %-9s did not report /%s/; its output:\n' "$bug" "$tool" "$pattern"
    sed 's/^/      | /' "$tmp" | tail -n 25
  fi
}

# The control run first: it must be clean, and patterns are checked against it.
for tool in valgrind asan; do
  out=$clean_vg
  [ "$tool" = asan ] && out=$clean_asan
  if run_tool "$tool" none "$out"; then
    passed=$((passed + 1))
    printf 'ok    %-22s %-9s runs clean\n' none "$tool"
  else
    failed=$((failed + 1))
    printf 'FAIL  %-22s %-9s the control run (no bug) is not clean:\n' none "$tool"
    sed 's/^/      | /' "$out" | tail -n 25
  fi
done

list=$("$vg_bin" --list) || { echo "misuse: $vg_bin --list failed"; echo "misuse: 0 passed, 1 failed"; exit 1; }
while IFS=$'\t' read -r bug vg_pat asan_pat what; do
  [ -n "$bug" ] || continue
  echo "--    $bug: $what"
  if [ "$vg_pat" = "-" ]; then echo "      (Valgrind cannot see this one)"; else run_one valgrind "$bug" "$vg_pat"; fi
  if [ "$asan_pat" = "-" ]; then echo "      (ASan cannot see this one)"; else run_one asan "$bug" "$asan_pat"; fi
done <<<"$list"

echo "misuse: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
