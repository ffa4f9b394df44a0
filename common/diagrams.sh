#!/usr/bin/env bash
# common/diagrams.sh FILE.md...: a README's copy of a layout diagram must equal
# the source's. A diagram lives once, in a source file's comment, between
#
#      * <diagram NAME>
#      *   +--------+------+
#      * </diagram>
#
# and a README that shows it too names it just before its code block:
#
#     <!-- diagram NAME from fl.c -->
#     ```text
#       +--------+------+
#     ```
#
# The source's lines lose their leading " * " (or " *"); the README's block
# must then be the same, line for line. Part of `make lint`. Prints each
# difference; exits 1 if there is one, or if a named diagram is missing.
set -u
status=0
# The lines of diagram NAME in source FILE, comment prefix removed.
from_source() {
  awk -v name="$1" '
    $0 ~ "<diagram " name ">" { on = 1; next }
    on && /<\/diagram>/ { exit }
    on { sub(/^ \* ?/, ""); sub(/^ \*$/, ""); print }' "$2"
}
# The code block after "<!-- diagram NAME from FILE -->" in a markdown file.
from_markdown() {
  awk -v name="$1" '
    $0 ~ "<!-- diagram " name " from " { marked = 1; next }
    marked && !on && /^```/ { on = 1; next }
    on && /^```/ { exit }
    on { print }' "$2"
}
for md in "$@"; do
  dir=$(dirname "$md")
  while read -r _ _ name _ src _; do
    [ -n "${name:-}" ] || continue
    if [ ! -f "$dir/$src" ] || ! grep -q "<diagram $name>" "$dir/$src"; then
      echo "diagrams: $md names diagram '$name' from $src, which has no such diagram"
      status=1
    elif ! diff <(from_source "$name" "$dir/$src") <(from_markdown "$name" "$md") >/dev/null; then
      echo "diagrams: $md: the copy of '$name' differs from $src's (< source, > README):"
      diff <(from_source "$name" "$dir/$src") <(from_markdown "$name" "$md") | sed 's/^/    /'
      status=1
    fi
  done < <(grep -oE '<!-- diagram [A-Za-z0-9_.-]+ from [A-Za-z0-9_./-]+ -->' "$md")
done
exit $status
