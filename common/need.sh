#!/usr/bin/env bash
# common/need.sh TOOL...: stops with a clear message when a tool is missing.
for tool in "$@"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: '$tool' is not installed; on Debian/Ubuntu: sudo apt-get install $tool" >&2
    exit 1
  fi
done
