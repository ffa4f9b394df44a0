#!/usr/bin/env bash
# common/lint.sh COMMON FILE...: static checks over one stage's sources.
#   cppcheck (warnings, style, portability), clang-tidy (the checks in
#   .clang-tidy at the top), clang-format in check mode, and the README's
#   copies of the source's layout diagrams (diagrams.sh).
# Each missing tool is skipped with a note; any finding fails the lint.
# EXTRA_CPPFLAGS (the stage's, from common/stage.mk) is added to both
# analysers' flags: a stage whose sources include a generated header names
# its folder there.
set -u
common=$1
shift
[ $# -gt 0 ] || exit 0
status=0
# shellcheck disable=SC2206 # a list of flags
extra=(${EXTRA_CPPFLAGS:-})
cflags=(-std=c17 -I. -I"$common" -D_DEFAULT_SOURCE -DALLOC_DEBUG "${extra[@]}")
if command -v cppcheck >/dev/null; then
  cppcheck -q --std=c11 --enable=warning,style,performance,portability \
    --inline-suppr --error-exitcode=1 --suppress=missingIncludeSystem \
    --suppress=unusedFunction --suppress=constParameterCallback \
    -I. -I"$common" -D_DEFAULT_SOURCE -DALLOC_DEBUG "${extra[@]}" "$@" || status=1
else
  echo "lint: cppcheck not installed (apt-get install cppcheck): skipped"
fi
if command -v clang-tidy >/dev/null; then
  cfiles=$(printf '%s\n' "$@" | grep '\.c$')
  if [ -n "$cfiles" ]; then
    # shellcheck disable=SC2086
    clang-tidy --quiet $cfiles -- "${cflags[@]}" 2>/dev/null | grep -E 'warning:|error:' && status=1
  fi
else
  echo "lint: clang-tidy not installed (apt-get install clang-tidy): skipped"
fi
if command -v clang-format >/dev/null; then
  clang-format --dry-run -Werror "$@" || status=1
else
  echo "lint: clang-format not installed (apt-get install clang-format): skipped"
fi
mds=$(ls ./*.md 2>/dev/null)
if [ -n "$mds" ]; then
  # shellcheck disable=SC2086
  "$common/diagrams.sh" $mds || status=1
fi
[ $status -eq 0 ] && echo "lint: clean ($*)"
exit $status
