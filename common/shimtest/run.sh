#!/usr/bin/env bash
# common/shimtest/run.sh LIB STAGE [VARIANT...]: a stage's libmalloc.so
# against real programs and the behaviours that other projects' malloc tests
# check, each compared with the system malloc. Every stage that builds a
# libmalloc.so runs it in `make test` (common/stage.mk, run-scripts).
#
#   LIB      the library to preload (NN-name/build/libmalloc.so)
#   STAGE    its stage name: the library must write a line starting
#            "libmalloc (STAGE" to the file named by LIBMALLOC_STATS at exit,
#            which proves that a program really ran on it (a silently
#            ignored LD_PRELOAD would otherwise pass every comparison)
#   VARIANT  settings to run the real programs under too, each one word of
#            NAME=VALUE[,NAME=VALUE] (04: FL_POLICY=next FL_POLICY=best)
#
# The checks:
#   sort, ls -lR, python3   real programs, output identical to the system
#   sqlite3, perl, cc, git  malloc's (python3 with PYTHONMALLOC=malloc, so
#                           every object goes through malloc); under each
#                           variant as well. sqlite3, perl and git run where
#                           installed (git only in a git checkout)
#   producer/consumer       4 threads in a ring, each freeing the blocks the
#                           previous one allocated (common/mallocbench's
#                           threads_malloc, cross): every block's bytes intact
#   threads_fork            4 threads, cross-thread frees, a fork from a busy
#                           thread whose child must allocate
#   api_edges               the documented edge cases of every function of
#                           the family, line by line as glibc answers them
#   fork_stdio              fork while one thread is in getline and another
#                           in fflush(NULL): no deadlock with stdio's locks
#   fork_signal             _Fork from a signal handler that interrupted malloc
#   free_errno              free leaves errno alone when munmap, madvise or
#                           mprotect fail
#
# The programs are built here, plain (-O1), with $CC, into the folder of LIB's
# build/shimtest/. Prints "shimtest: N passed, N failed" last; exits 1 on any
# failure.
set -u
here=$(cd "$(dirname "$0")" && pwd)
lib=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
stage=$2
shift 2
variants=("$@")
bin=$(dirname "$lib")/shimtest
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
export LC_ALL=C
cc=${CC:-cc}

pass() { passed=$((passed + 1)); printf 'ok    %-40s %s\n' "$1" "$2"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %-40s %s\n' "$1" "$2"; }

[ -f "$lib" ] || { echo "shimtest: $lib is not built"; echo "shimtest: 0 passed, 1 failed"; exit 1; }

# Build the test programs (free_errno exports its munmap/madvise/mprotect
# with -rdynamic, so that the preloaded library's calls bind to them).
mkdir -p "$bin"
for p in threads_fork api_edges fork_stdio fork_signal free_errno; do
  flags=(-std=gnu17 -O1 -g -Wall -Wextra -Werror)
  [ $p = free_errno ] && flags+=(-rdynamic)
  if [ ! -x "$bin/$p" ] || [ "$here/$p.c" -nt "$bin/$p" ]; then
    "$cc" "${flags[@]}" "$here/$p.c" -o "$bin/$p" -lpthread || {
      fail "$p" "did not build"; continue; }
  fi
done
if [ ! -x "$bin/threads_malloc" ] || [ "$here/../mallocbench/threads_malloc.c" -nt "$bin/threads_malloc" ]; then
  "$cc" -std=gnu17 -O1 -g -Wall -Wextra -Werror "$here/../mallocbench/threads_malloc.c" \
    -o "$bin/threads_malloc" -lpthread || fail threads_malloc "did not build"
fi

# ran_on_lib: the library's line is in the stats file.
ran_on_lib() { grep -q "^libmalloc ($stage" "$tmp/stats" 2>/dev/null; }

# check NAME [ENV...] -- CMD...: CMD on the system malloc and on LIB (with
# the ENV settings on both), same exit status and same output.
check() {
  local name=$1
  shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  env "${envs[@]}" timeout 120 "$@" >"$tmp/sys.out" 2>"$tmp/sys.err"
  local sys_status=$?
  rm -f "$tmp/stats"
  env "${envs[@]}" LIBMALLOC_STATS="$tmp/stats" LD_PRELOAD="$lib" timeout 120 "$@" \
    >"$tmp/lib.out" 2>"$tmp/lib.err"
  local lib_status=$?
  local why=""
  if [ $lib_status -ne $sys_status ]; then
    why="exit status $lib_status on libmalloc.so, $sys_status on the system malloc"
  elif ! ran_on_lib; then
    why="did not run on libmalloc.so (no LIBMALLOC_STATS line)"
  elif ! cmp -s "$tmp/sys.out" "$tmp/lib.out"; then
    why="output differs from the system malloc's"
  fi
  if [ -z "$why" ]; then
    pass "$name" "$(head -n 1 "$tmp/lib.out" | cut -c1-70)"
  else
    fail "$name" "$why"
    diff "$tmp/sys.out" "$tmp/lib.out" | head -n 10 | sed 's/^/      | /'
    head -n 10 "$tmp/lib.err" | sed 's/^/      ! /'
  fi
}

# A file to sort: 60,000 lines of words and numbers (the same every run).
awk 'BEGIN { srand(4); for (i = 0; i < 60000; i++)
  printf "%d %s%c%c%c\n", int(rand() * 1e6), "w", 97 + int(rand() * 26),
         97 + int(rand() * 26), 97 + int(rand() * 26) }' >"$tmp/lines.txt"
# The real interpreter, not a pyenv-style shim script.
py=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
cat >"$tmp/dicts.py" <<'PY'
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
PY

# sqlite3: a table of 20,000 rows built by a recursive query, an index, a
# grouping and a sort; perl: a hash of 100,000 keys, deleted by half, sorted.
sql="CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT, g INTEGER);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
INSERT INTO t SELECT i, printf('%0*d', i % 97, i), i % 37 FROM n;
CREATE INDEX tv ON t(v);
SELECT g, count(*), sum(length(v)), max(v) FROM t GROUP BY g ORDER BY g;
SELECT v FROM t ORDER BY v DESC LIMIT 5;"
perl_prog='my %h; $h{"k$_"} = "v" x ($_ % 50) for 1 .. 100000;
delete $h{"k$_"} for grep { $_ % 2 } 1 .. 100000;
my @k = sort { length($h{$b}) <=> length($h{$a}) || $a cmp $b } keys %h;
print scalar(@k), " @k[0 .. 4]\n";'
git_dir=""
if command -v git >/dev/null && git -C "$here" rev-parse --git-dir >/dev/null 2>&1; then
  git_dir=$here
fi

# The real programs: once with the library's defaults, then under each variant.
for v in "" "${variants[@]}"; do
  IFS=, read -r -a envs <<<"$v"
  tag=${v:+ ($v)}
  check "sort$tag" "${envs[@]}" -- sort "$tmp/lines.txt"
  check "sort -n -k2$tag" "${envs[@]}" -- sort -n -k2 "$tmp/lines.txt"
  check "ls -lR /usr/include$tag" "${envs[@]}" -- ls -lR /usr/include
  if [ -n "$py" ]; then
    check "python3 dicts$tag" "${envs[@]}" PYTHONMALLOC=malloc -- "$py" "$tmp/dicts.py"
  else
    echo "skip  python3: not installed"
  fi
  if command -v sqlite3 >/dev/null; then
    check "sqlite3 (20000 rows, index, group by)$tag" "${envs[@]}" -- sqlite3 :memory: "$sql"
  else
    echo "skip  sqlite3: not installed"
  fi
  if command -v perl >/dev/null; then
    check "perl (hash of 100000 keys, sort)$tag" "${envs[@]}" -- perl -e "$perl_prog"
  else
    echo "skip  perl: not installed"
  fi
  check "$cc -O2 -S (compiles api_edges.c)$tag" "${envs[@]}" -- "$cc" -O2 -S -o - "$here/api_edges.c"
  if [ -n "$git_dir" ]; then
    check "git log --stat (this repository)$tag" "${envs[@]}" -- git -C "$git_dir" --no-pager log -n 200 --stat
  else
    echo "skip  git: not installed, or not a git checkout"
  fi
done

check "threads_fork (4 threads + fork)" -- "$bin/threads_fork"

# producer/consumer: the output holds a rate, so only the exit status (1 if
# a block was damaged or a malloc failed) and the stats line are compared.
rm -f "$tmp/stats"
if LIBMALLOC_STATS="$tmp/stats" LD_PRELOAD="$lib" timeout 120 "$bin/threads_malloc" \
     --threads 4 --mode cross --ops 400000 --reps 1 >"$tmp/pc.out" 2>&1 && ran_on_lib; then
  pass "producer/consumer (4 threads, cross frees)" "400000 blocks, each freed by the next thread, intact"
else
  fail "producer/consumer (4 threads, cross frees)" "$(head -n 3 "$tmp/pc.out")"
fi
check "fork_stdio (getline, fflush, fork)" -- "$bin/fork_stdio"
check "fork_signal (_Fork in a handler)" -- "$bin/fork_signal"

# api_edges: every line "yes" on libmalloc.so; the same as the system's except
# lines marked [2.38] (behaviour that changed in glibc 2.38).
rm -f "$tmp/stats"
LIBMALLOC_STATS="$tmp/stats" LD_PRELOAD="$lib" timeout 60 "$bin/api_edges" >"$tmp/api_lib.out" 2>&1
timeout 60 "$bin/api_edges" >"$tmp/api_sys.out" 2>&1
if grep -q ' NO$' "$tmp/api_lib.out" || ! ran_on_lib; then
  fail "api_edges" "an edge case answered wrongly on libmalloc.so:"
  grep ' NO$' "$tmp/api_lib.out" | sed 's/^/      | /'
elif ! diff <(grep -v '\[2.38\]' "$tmp/api_sys.out") <(grep -v '\[2.38\]' "$tmp/api_lib.out") >/dev/null; then
  fail "api_edges" "differs from the system malloc:"
  diff "$tmp/api_sys.out" "$tmp/api_lib.out" | sed 's/^/      | /'
else
  pass "api_edges" "$(wc -l <"$tmp/api_lib.out") edge cases, as glibc documents them"
fi

# free_errno: not compared with the system malloc (whose own munmap calls are
# internal to the C library and cannot be refused from outside): it must
# exit 0 on libmalloc.so, errno kept.
rm -f "$tmp/stats"
LIBMALLOC_STATS="$tmp/stats" LD_PRELOAD="$lib" timeout 60 "$bin/free_errno" >"$tmp/errno.out" 2>"$tmp/errno.err"
status=$?
if [ $status -eq 0 ] && ran_on_lib; then
  pass "free_errno" "$(cat "$tmp/errno.err")"
else
  fail "free_errno" "exit status $status:"
  sed 's/^/      | /' "$tmp/errno.out" | head -n 12
fi

echo "shimtest: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
