#!/usr/bin/env bash
# test_programs.sh: real programs on build/libmalloc.so, each compared with
# the same run on the system malloc. Part of `make test` (make run-scripts).
#
# Each check passes when the program exits normally on libmalloc.so, prints
# exactly what it prints on the system malloc, and really ran on this
# allocator: with FL_STATS=FILE the library writes its figures there at exit,
# and the check requires that line (a silently ignored LD_PRELOAD would
# otherwise pass every comparison).
#
#   sort        a generated file of 60,000 lines, each placement policy
#   ls -lR      /usr/include (hundreds of directories, thousands of names)
#   python3     PYTHONMALLOC=malloc (every object through malloc), building
#               and tearing down dicts, lists and strings
#   threads_fl  4 threads, cross-thread frees, a fork from a busy thread
#   api_fl      the documented edge cases (malloc(0), realloc(p, 0), EINVAL,
#               ENOMEM, alignments), line by line
#
# Prints "test_programs: N passed, N failed" last; exits 1 on any failure.
set -u
cd "$(dirname "$0")"
lib=$PWD/build/libmalloc.so
bin=build/release
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
export LC_ALL=C

# check NAME CMD...: runs CMD on the system malloc and on libmalloc.so.
check() {
  local name=$1
  shift
  timeout 120 "$@" >"$tmp/sys.out" 2>"$tmp/sys.err"
  local sys_status=$?
  rm -f "$tmp/stats"
  FL_STATS=$tmp/stats LD_PRELOAD=$lib timeout 120 "$@" >"$tmp/fl.out" 2>"$tmp/fl.err"
  local fl_status=$?
  local why=""
  if [ $fl_status -ne $sys_status ]; then
    why="exit status $fl_status on libmalloc.so, $sys_status on the system malloc"
  elif ! grep -q '^libmalloc (04-freelist' "$tmp/stats" 2>/dev/null; then
    why="did not run on libmalloc.so (no FL_STATS line)"
  elif ! cmp -s "$tmp/sys.out" "$tmp/fl.out"; then
    why="output differs from the system malloc's"
  fi
  if [ -z "$why" ]; then
    passed=$((passed + 1))
    printf 'ok    %-34s %s\n' "$name" "$(head -n 1 "$tmp/stats")"
  else
    failed=$((failed + 1))
    printf 'FAIL  %-34s %s\n' "$name" "$why"
    diff "$tmp/sys.out" "$tmp/fl.out" | head -n 10 | sed 's/^/      | /'
    head -n 10 "$tmp/fl.err" | sed 's/^/      ! /'
  fi
}

[ -f "$lib" ] || { echo "test_programs: $lib is not built"; echo "test_programs: 0 passed, 1 failed"; exit 1; }

# A file to sort: 60,000 lines of words and numbers (seeded: the same file
# every run).
awk 'BEGIN { srand(4); for (i = 0; i < 60000; i++)
  printf "%d %s%c%c%c\n", int(rand() * 1e6), "w", 97 + int(rand() * 26),
         97 + int(rand() * 26), 97 + int(rand() * 26) }' >"$tmp/lines.txt"
check "sort (first fit)" sort "$tmp/lines.txt"
FL_POLICY=next check "sort -n (next fit)" sort -n "$tmp/lines.txt"
FL_POLICY=best check "sort -k2 -r (best fit)" sort -k2 -r "$tmp/lines.txt"
check "ls -lR /usr/include" ls -lR /usr/include

# The real interpreter, not a pyenv-style shim script.
py=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
if [ -n "$py" ]; then
  PYTHONMALLOC=malloc check "python3 (PYTHONMALLOC=malloc)" "$py" -c '
import hashlib
d = {}
for i in range(150000):
    d["key%d" % i] = [i, str(i) * (i % 7), (i, i * 2)]
rows = sorted(d.items(), key=lambda kv: kv[1][1], reverse=True)
text = "".join(k + v[1] for k, v in rows[:20000])
for i in range(0, 150000, 2):
    del d["key%d" % i]
grow = []
for i in range(2000):
    grow.append(bytearray(i * 13))
print(len(d), len(text), sum(len(b) for b in grow),
      hashlib.sha256(text.encode()).hexdigest()[:16])
'
else
  echo "skip  python3: not installed"
fi

check "threads_fl (4 threads + fork)" $bin/threads_fl

# api_fl: every line "yes" on libmalloc.so; the same as the system's except
# lines marked [2.38] (behaviour that changed in glibc 2.38).
rm -f "$tmp/stats"
FL_STATS=$tmp/stats LD_PRELOAD=$lib $bin/api_fl >"$tmp/api_fl.out" 2>&1
$bin/api_fl >"$tmp/api_sys.out" 2>&1
if grep -q ' NO$' "$tmp/api_fl.out" || ! grep -q '^libmalloc' "$tmp/stats"; then
  failed=$((failed + 1))
  echo "FAIL  api_fl: an edge case answered wrongly on libmalloc.so:"
  grep ' NO$' "$tmp/api_fl.out" | sed 's/^/      | /'
elif ! diff <(grep -v '\[2.38\]' "$tmp/api_sys.out") <(grep -v '\[2.38\]' "$tmp/api_fl.out") >/dev/null; then
  failed=$((failed + 1))
  echo "FAIL  api_fl: differs from the system malloc:"
  diff "$tmp/api_sys.out" "$tmp/api_fl.out" | sed 's/^/      | /'
else
  passed=$((passed + 1))
  echo "ok    api_fl ($(wc -l <"$tmp/api_fl.out") edge cases, as glibc documents them)"
fi

echo "test_programs: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
