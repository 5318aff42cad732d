#!/usr/bin/env bash
# One busted process per spec file, so that a crash or a sticky CUDA error in one file does not
# take the other files' results with it (spec/gpu/device_check.sh, step device_specs):
#
#   bash spec/gpu/run_spec_files.sh FSVC BUSTED FILE...
#
# Prints each file's output, then a line per file ("file: F exit N: <busted's counts>") and
# "summary: N successes; K of M files failed". Exit status: 0 when every file passed.
set -u
fsvc=$1 busted=$2
export FSVC_BIN=$fsvc # specs that start the binary themselves (device_spec.lua)
shift 2
rc=0 ok=0 bad=0 verdicts=""
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for f in "$@"; do
  echo "== $f"
  "$fsvc" "$busted" -o plainTerminal "$f" >"$log" 2>&1
  r=$?
  cat "$log"
  counts=$(grep -E 'successes /' "$log" | tail -n 1 | sed 's/\x1b\[[0-9;]*m//g')
  verdicts+="file: $f exit $r: ${counts:-no counts (crashed?)}"$'\n'
  n=$(printf '%s' "$counts" | sed -n 's/^\([0-9][0-9]*\) success.*/\1/p')
  ok=$((ok + ${n:-0}))
  [ "$r" -eq 0 ] || { rc=1; bad=$((bad + 1)); }
done
printf '%s' "$verdicts"
echo "summary: $ok successes; $bad of $# files failed"
exit $rc
