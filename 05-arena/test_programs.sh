#!/usr/bin/env bash
# test_programs.sh: this stage's checks of build/libmalloc.so beyond the shim
# suite that every stage runs (common/shimtest/run.sh, run just before this
# by `make test`). Each compares a run on the system malloc with a run on
# libmalloc.so, and requires the library's LIBMALLOC_STATS line (the proof
# that the program really ran on it).
#
#   fork_stdio, cache off   the shim suite's fork with threads in getline and
#                           fflush(NULL), with ARENA_TCACHE=0: with the cache
#                           on, getline's buffer comes from the cache and its
#                           thread never waits for an arena lock, so a fork
#                           handler that took the arena locks before stdio's
#                           would not be caught (it hangs with the cache off)
#   threads_fork, cache off 4 threads, cross-thread frees, a fork, every
#                           free going to an arena
#   misfree_arena           bad frees and reallocs, each in a child: every
#                           one the system malloc detects (aborts on), this
#                           stage must detect too
#   aslimit_arena           8 threads under `ulimit -v` limits where only a
#                           few 64 MB heaps fit, or none: never worse than
#                           the system malloc in the same run
#
# The programs are built here, plain (-O1), with $CC, into build/shim05/.
# Prints "test_programs: N passed, N failed" last; exits 1 on any failure.
set -u
cd "$(dirname "$0")"
lib=$PWD/build/libmalloc.so
bin=build/shim05
shim=build/shimtest
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
export LC_ALL=C
cc=${CC:-cc}

pass() { passed=$((passed + 1)); printf 'ok    %-40s %s\n' "$1" "$2"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %-40s %s\n' "$1" "$2"; }

if [ ! -f "$lib" ]; then
  echo "test_programs: $lib is not built"
  echo "test_programs: 0 passed, 1 failed"
  exit 1
fi
mkdir -p "$bin"
for p in misfree_arena aslimit_arena; do
  if [ ! -x "$bin/$p" ] || [ "$p.c" -nt "$bin/$p" ]; then
    "$cc" -std=gnu17 -O1 -g -Wall -Wextra -Werror "$p.c" -o "$bin/$p" -lpthread ||
      fail "$p" "did not build"
  fi
done

ran_on_lib() { grep -q "^libmalloc (05-arena" "$tmp/stats" 2>/dev/null; }

# same NAME ENV... -- CMD...: CMD on the system malloc and on the library
# (ENV on both): the same exit status, the same output.
same() {
  local name=$1
  shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  env "${envs[@]}" timeout 60 "$@" >"$tmp/sys.out" 2>&1
  local sys_status=$?
  rm -f "$tmp/stats"
  env "${envs[@]}" LIBMALLOC_STATS="$tmp/stats" LD_PRELOAD="$lib" timeout 60 "$@" \
    >"$tmp/lib.out" 2>&1
  local lib_status=$?
  if [ $lib_status -ne $sys_status ]; then
    fail "$name" "exit status $lib_status on libmalloc.so, $sys_status on the system malloc"
    head -n 5 "$tmp/lib.out" | sed 's/^/      | /'
  elif ! ran_on_lib; then
    fail "$name" "did not run on libmalloc.so (no LIBMALLOC_STATS line)"
  elif ! cmp -s "$tmp/sys.out" "$tmp/lib.out"; then
    fail "$name" "output differs from the system malloc's"
    diff "$tmp/sys.out" "$tmp/lib.out" | head -n 10 | sed 's/^/      | /'
  else
    pass "$name" "$(head -n 1 "$tmp/lib.out" | cut -c1-60)"
  fi
}

if [ -x "$shim/fork_stdio" ] && [ -x "$shim/threads_fork" ]; then
  same "fork_stdio (cache off)" ARENA_TCACHE=0 -- "$shim/fork_stdio"
  same "threads_fork (cache off)" ARENA_TCACHE=0 -- "$shim/threads_fork"
else
  fail "fork_stdio, threads_fork" "not built (common/shimtest/run.sh builds them first)"
fi

# misfree_arena: one line per case, "NAME abort|crash|none message".
"$bin/misfree_arena" >"$tmp/mis_sys.out" 2>&1
rm -f "$tmp/stats"
LIBMALLOC_STATS="$tmp/stats" LD_PRELOAD="$lib" "$bin/misfree_arena" >"$tmp/mis_lib.out" 2>&1
aborts() { awk '$2 == "abort" { print $1 }' "$1" | sort; }
if ! ran_on_lib; then
  fail "misfree_arena" "did not run on libmalloc.so (no LIBMALLOC_STATS line)"
else
  # The cases where the system malloc aborts but this stage does not abort
  # with its own report.
  ours=$(awk '$2 == "abort" && $3 == "05-arena:" { print $1 }' "$tmp/mis_lib.out" | sort)
  missed=$(comm -23 <(aborts "$tmp/mis_sys.out") <(printf '%s\n' "$ours") | paste -sd, -)
  both=$(comm -12 <(aborts "$tmp/mis_sys.out") <(printf '%s\n' "$ours") | wc -l)
  more=$(comm -13 <(aborts "$tmp/mis_sys.out") <(printf '%s\n' "$ours") | paste -sd, -)
  if [ -n "$missed" ]; then
    fail "misfree_arena" "the system malloc detects, this stage does not: $missed"
    paste -d'\n' "$tmp/mis_sys.out" "$tmp/mis_lib.out" | sed 's/^/      | /'
  else
    pass "misfree_arena" "all $both the system malloc detects${more:+, and $more}"
  fi
fi

# aslimit_arena under a limit: which arenas get made depends on the order in
# which the threads start, on either malloc, and the system malloc itself
# sometimes refuses. The rule: never worse than the system malloc in the
# same run (all eight threads started and every allocation served whenever
# the system managed that).
aslimit() {
  local name="aslimit_arena (ulimit -v $(($1 / 1024)) MB)"
  (ulimit -v "$1"; timeout 60 "$bin/aslimit_arena") >"$tmp/sys.out" 2>&1
  local sys=$?
  rm -f "$tmp/stats"
  (ulimit -v "$1"; LIBMALLOC_STATS="$tmp/stats" LD_PRELOAD="$lib" timeout 60 \
    "$bin/aslimit_arena") >"$tmp/lib.out" 2>&1
  local ours=$?
  if ! ran_on_lib; then
    fail "$name" "did not run on libmalloc.so (no LIBMALLOC_STATS line)"
  elif [ $sys -eq 0 ] && [ $ours -ne 0 ]; then
    fail "$name" "the system malloc served it, this stage did not: $(cat "$tmp/lib.out")"
  else
    pass "$name" "$(cut -c1-48 "$tmp/lib.out") (system: $([ $sys -eq 0 ] && echo the same || echo worse))"
  fi
}
for limit in 204800 102400 61440; do aslimit $limit; done

echo "test_programs: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
