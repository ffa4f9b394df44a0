#!/usr/bin/env bash
# common/bench_compare.sh STAGE NAME...: the other stages whose libmalloc.so
# a stage's `make bench` runs beside its own (BENCH_COMPARE in its
# Makefile), as BENCH_PRELOAD words "NAME=PATH" on stdout for bench.sh and
# replay.sh (common/mallocs.sh). Run from the stage's folder. A stage's
# code never depends on another's folder; only its bench runs their built
# libraries, as a program would (LD_PRELOAD).
#
# For each NAME: the stage's own name means its build/libmalloc.so (the
# make rule built it); another stage's ../NAME/build/libmalloc.so is built
# with make -C ../NAME when it is missing; a NAME that is not in this tree
# yet is left out, with a note on stderr that says so.
set -u
self=$1
shift
for name in "$@"; do
  if [ "$name" = "$self" ]; then
    dir=.
  elif [ -d "../$name" ]; then
    dir=../$name
    if [ ! -f "$dir/build/libmalloc.so" ] &&
      ! make -C "$dir" build/libmalloc.so >/dev/null 2>&1; then
      echo "bench: $name: make -C ../$name build/libmalloc.so failed: left out" >&2
      continue
    fi
  else
    echo "bench: $name is not in this tree yet: left out of the comparison (its columns join when ../$name exists)" >&2
    continue
  fi
  printf '%s=%s ' "$name" "$(cd "$dir" && pwd)/build/libmalloc.so"
done
echo
