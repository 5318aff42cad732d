# Shared steps of the libFuzzer scripts in this folder (build_and_run.sh, fuzz_checkpoint.sh).
# Source it, then call fuzz_init before building and fuzz_run to fuzz; both exit the script on
# failure: 2 for bad arguments, 1 when the fuzzer finds a problem.

# fuzz_init SCRIPT SUBDIR [seconds=20]
#   Checks the time budget and FSVC_FUZZ_JOBS, then sets budget, root (the repository), out
#   (FSVC_FUZZ_DIR, default <repo>/build-fuzz/SUBDIR), jobs and CC (default clang-14, else clang),
#   and makes out's seeds, corpus and artifacts folders. SCRIPT names the caller in messages.
fuzz_init() {
  fuzz_script=$1
  budget=${3:-20}
  case "$budget" in ''|*[!0-9]*) echo "$fuzz_script: time budget must be whole seconds, got '$budget'" >&2; exit 2;; esac
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  out=${FSVC_FUZZ_DIR:-$root/build-fuzz/$2}
  jobs=${FSVC_FUZZ_JOBS:-1}
  case "$jobs" in ''|*[!0-9]*|0) echo "$fuzz_script: FSVC_FUZZ_JOBS must be a positive integer" >&2; exit 2;; esac
  if [ -z "${CC:-}" ]; then
    if command -v clang-14 >/dev/null; then CC=clang-14; else CC=clang; fi
  fi
  mkdir -p "$out/seeds" "$out/corpus" "$out/artifacts"
}

# fuzz_run FUZZER MAX_LEN
#   Runs $out/FUZZER for $budget seconds on $out/corpus and $out/seeds with $jobs processes;
#   exits 1 (after listing the reproducers in $out/artifacts) if it finds a crash, leak,
#   timeout or OOM.
fuzz_run() {
  local fuzzer=$1 max_len=$2 status=0
  local parallel=()
  echo "== fuzzing for ${budget}s (corpus $out/corpus, artifacts $out/artifacts)"
  # with -jobs libFuzzer writes each job's output to fuzz-N.log in the current folder
  if [ "$jobs" -gt 1 ]; then parallel=(-jobs="$jobs" -workers="$jobs"); fi
  (cd "$out" && "./$fuzzer" -max_total_time="$budget" -timeout=10 -rss_limit_mb=2048 \
    -max_len="$max_len" -print_final_stats=1 "${parallel[@]}" \
    -artifact_prefix="$out/artifacts/" "$out/corpus" "$out/seeds") || status=$?
  if [ "$status" -ne 0 ]; then
    echo "$fuzz_script: FUZZER FOUND A PROBLEM (exit $status); reproducers:" >&2
    ls -l "$out/artifacts" >&2 || true
    echo "reproduce with: $out/$fuzzer <artifact>" >&2
    exit 1
  fi
  echo "== fuzzing finished without crashes"
}
