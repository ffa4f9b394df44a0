#!/usr/bin/env bash
# edges.sh: the edges where other fast allocators have failed their users,
# as real programs on build/libmalloc.so (make test runs it after
# common/shimtest/run.sh). Each program is in edges/; those marked "same"
# must print what they print on the system malloc:
#   early        (same) the first calls from a thread a constructor starts
#                before main, and the dynamic linker's (dlopen)
#   tsd_atexit   (same) malloc and free from destructors after the
#                allocator's own, and from an atexit handler after main's
#                teardown (main calls pthread_exit)
#   threads_rss  (same) resident memory steady while 1000 threads come and go
#   burst_idle   a burst of 128 MiB freed, then no call: resident memory back
#                within 8 MiB of the start by itself (smaps_rollup), where
#                glibc keeps most of it
#   aslimit      (same) under ulimit -v 200000 (195 MiB of address space):
#                malloc runs out with ENOMEM, blocks intact, and serves again
#                once they are freed
#   sort, limit  (same) sort under ulimit -v 131072 (128 MiB): the arena
#                index (32 MiB) and the first arena (64 MiB, reserved with
#                no more address space than it keeps) leave room for it
# Prints "edges: N passed, N failed" last.
set -u
export LC_ALL=C
cd "$(dirname "$0")"
lib=$PWD/build/libmalloc.so
bin=build/edges
mkdir -p "$bin"
cc=${CC:-cc}
passed=0 failed=0
pass() { passed=$((passed + 1)); printf 'ok    %-14s %s\n' "$1" "$2"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %-14s %s\n' "$1" "$2"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for p in early tsd_atexit threads_rss burst_idle aslimit; do
  "$cc" -std=gnu17 -O1 -g -Wall -Wextra -Werror "edges/$p.c" -o "$bin/$p" -lpthread -ldl ||
    fail "$p" "did not build"
done

for p in early tsd_atexit threads_rss; do
  [ -x "$bin/$p" ] || continue
  timeout 120 "$bin/$p" >"$tmp/sys.out" 2>&1
  sys=$?
  LIBMALLOC_STATS="$tmp/stats" LD_PRELOAD="$lib" timeout 120 "$bin/$p" >"$tmp/lib.out" 2>&1
  st=$?
  if [ $st -ne $sys ]; then
    fail "$p" "exit status $st on libmalloc.so, $sys on the system malloc"
  elif ! grep -q '^libmalloc (07-tcmalloc-go' "$tmp/stats" 2>/dev/null; then
    fail "$p" "did not run on libmalloc.so"
  elif ! cmp -s "$tmp/sys.out" "$tmp/lib.out"; then
    fail "$p" "output differs from the system malloc's"
    diff "$tmp/sys.out" "$tmp/lib.out" | sed 's/^/      | /'
  else
    pass "$p" "$(head -n 1 "$tmp/lib.out")"
  fi
  rm -f "$tmp/stats"
done

if [ -x "$bin/burst_idle" ]; then
  if LIBMALLOC_STATS="$tmp/stats" LD_PRELOAD="$lib" timeout 60 "$bin/burst_idle" >"$tmp/lib.out" 2>&1 &&
     grep -q '^libmalloc (07-tcmalloc-go' "$tmp/stats"; then
    pass burst_idle "$(cat "$tmp/lib.out")"
  else
    fail burst_idle "$(cat "$tmp/lib.out")"
  fi
fi
# same_limited NAME LIMIT_KB CMD...: CMD under ulimit -v on both mallocs.
same_limited() {
  local name=$1 limit=$2
  shift 2
  (ulimit -v "$limit" && "$@") >"$tmp/sys.out" 2>&1
  local sys=$?
  rm -f "$tmp/stats"
  (ulimit -v "$limit" && LIBMALLOC_STATS="$tmp/stats" LD_PRELOAD="$lib" "$@") >"$tmp/lib.out" 2>&1
  local st=$?
  if [ $st -ne $sys ]; then
    fail "$name" "exit status $st on libmalloc.so, $sys on the system malloc"
    head -n 5 "$tmp/lib.out" | sed 's/^/      | /'
  elif ! grep -q '^libmalloc (07-tcmalloc-go' "$tmp/stats" 2>/dev/null; then
    fail "$name" "did not run on libmalloc.so"
  elif ! cmp -s "$tmp/sys.out" "$tmp/lib.out"; then
    fail "$name" "output differs from the system malloc's"
    diff "$tmp/sys.out" "$tmp/lib.out" | head -n 5 | sed 's/^/      | /'
  else
    pass "$name" "$(head -n 1 "$tmp/lib.out" | cut -c1-60)"
  fi
}
[ -x "$bin/aslimit" ] && same_limited aslimit 200000 "$bin/aslimit"
seq 1 50000 | awk '{ print ($1 * 7919) % 50021 }' >"$tmp/lines"
same_limited "sort, limit" 131072 sort "$tmp/lines"
echo "edges: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
