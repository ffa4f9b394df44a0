# shellcheck shell=bash
# common/mallocs.sh: the other mallocs a bench runs beside the system's,
# sourced by bench.sh and replay.sh (bash).
#
#   malloc_list    prints "name|path" of each malloc to preload, one a line,
#                  and a note on stderr for each one left out:
#                  first the BENCH_PRELOAD entries ("name=path" words: other
#                  stages' libmalloc.so, from common/bench_compare.sh), then
#                  jemalloc, tcmalloc and mimalloc where installed.
#   preloadable BIN LIB   true when LIB really loads into BIN: the dynamic
#                  linker ignores a library it cannot load (wrong word size)
#                  with a message and runs on glibc, and that row would be
#                  glibc under another name.

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

malloc_list() {
  local word name lib entry sonames package
  for word in ${BENCH_PRELOAD:-}; do
    name=${word%%=*} lib=${word#*=}
    if [ -f "$lib" ]; then
      printf '%s|%s\n' "$name" "$lib"
    else
      echo "$name: $lib is not built: skipped" >&2
    fi
  done
  # name | sonames | the Debian package that installs it
  for entry in "jemalloc|libjemalloc.so.2|libjemalloc2" \
    "tcmalloc|libtcmalloc_minimal.so.4 libtcmalloc.so.4|libtcmalloc-minimal4" \
    "mimalloc|libmimalloc.so.2|libmimalloc2.0"; do
    IFS='|' read -r name sonames package <<<"$entry"
    # shellcheck disable=SC2086 # sonames is a list
    if lib=$(find_lib $sonames); then
      printf '%s|%s\n' "$name" "$lib"
    else
      echo "$name: not installed (apt-get install $package): skipped" >&2
    fi
  done
}

preloadable() {
  ! LD_PRELOAD=$2 "$1" --help 2>&1 >/dev/null | grep -q 'cannot be preloaded'
}
