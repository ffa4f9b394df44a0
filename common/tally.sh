#!/usr/bin/env bash
# common/tally.sh: runs one test command and records what it counted.
#
#   tally.sh RESULTS LABEL CMD [ARGS...]   run CMD, add "LABEL<TAB>P<TAB>F<TAB>S"
#                                          to RESULTS, print one line
#   tally.sh --total NAME RESULTS...       sum the files, print
#                                          "NAME: N passed, N failed, N skipped",
#                                          exit 1 if anything failed
#
# A command reports its counts with a last line "... N passed, N failed[, N
# skipped]" (common/test.c and common/misuse.sh print one). A command that
# exits non-zero although it counted no failure (a crash, a Valgrind error
# after the summary, a leak) counts as one failure more. The full output goes
# to build/logs/<label>.log and is shown when the run failed.
set -u

if [ "${1:-}" = "--total" ]; then
  name=$2
  shift 2
  cat "$@" 2>/dev/null | awk -F'\t' -v name="$name" '
    { p += $2; f += $3; s += $4 }
    END { printf "%s: %d passed, %d failed, %d skipped\n", name, p, f, s; exit (f > 0) }'
  exit $?
fi

results=$1 label=$2
shift 2
logdir=$(dirname "$results")/logs
mkdir -p "$logdir"
log="$logdir/$(printf '%s' "$label" | tr -c 'A-Za-z0-9_.-' '_').log"

"$@" >"$log" 2>&1
status=$?

summary=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
passed=$(printf '%s\n' "$summary" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
failed=$(printf '%s\n' "$summary" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
skipped=$(printf '%s\n' "$summary" | grep -oE '[0-9]+ skipped' | grep -oE '[0-9]+')
passed=${passed:-0} failed=${failed:-0} skipped=${skipped:-0}

note=""
if [ -z "$summary" ]; then
  # No counts: the command is one check, judged by its exit status.
  if [ $status -eq 0 ]; then passed=1; else failed=1; fi
elif [ $status -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1
  note=" (exit status $status after its summary: see the log)"
fi

printf '%s\t%d\t%d\t%d\n' "$label" "$passed" "$failed" "$skipped" >>"$results"
if [ "$failed" -eq 0 ]; then
  printf '  ok    %-44s %d passed, %d skipped\n' "$label" "$passed" "$skipped"
else
  printf '  FAIL  %-44s %d passed, %d failed%s\n' "$label" "$passed" "$failed" "$note"
  echo "  ---- last lines of $log ----"
  tail -n 40 "$log" | sed 's/^/  | /'
fi
exit 0
