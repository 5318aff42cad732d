#!/usr/bin/env bash
# Builds the checkpoint fuzzer (safetensors parser + torch.save loader) with clang (libFuzzer +
# ASan + UBSan) directly against core/*.c core/io/*.c and runs it for a time budget.
#   usage: spec/fuzz/fuzz_checkpoint.sh [seconds=20]
#   env:   CC (default clang-14, else clang), FSVC_FUZZ_DIR (default <repo>/build-fuzz/checkpoint),
#          FSVC_FUZZ_JOBS (parallel fuzzing processes, default 1)
# The seed corpus is the torch.save fixtures of spec/data plus small safetensors files written by
# fsvc itself on each run. Exits non-zero if the fuzzer finds a crash, leak, timeout or OOM; the
# reproducer is left in $FSVC_FUZZ_DIR/artifacts.
set -euo pipefail

budget=${1:-20}
case "$budget" in ''|*[!0-9]*) echo "fuzz_checkpoint.sh: time budget must be whole seconds, got '$budget'" >&2; exit 2;; esac
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${FSVC_FUZZ_DIR:-$root/build-fuzz/checkpoint}
jobs=${FSVC_FUZZ_JOBS:-1}
case "$jobs" in ''|*[!0-9]*|0) echo "fuzz_checkpoint.sh: FSVC_FUZZ_JOBS must be a positive integer" >&2; exit 2;; esac
if [ -z "${CC:-}" ]; then
  if command -v clang-14 >/dev/null; then CC=clang-14; else CC=clang; fi
fi
mkdir -p "$out/seeds" "$out/corpus" "$out/artifacts"

openblas_inc=""
for d in /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas; do
  [ -d "$d" ] && openblas_inc="-I$d" && break
done
libs="-lopenblas -lm -fopenmp -lz"
cflags="-std=gnu11 -g -O1 -I$root/core/include -I$root/core $openblas_inc -fopenmp"

echo "== building fuzzer with $CC"
# shellcheck disable=SC2086
"$CC" $cflags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -fno-omit-frame-pointer "$root/spec/fuzz/fuzz_checkpoint.c" "$root"/core/*.c "$root"/core/io/*.c \
  $libs -o "$out/fuzz_checkpoint"

echo "== generating seed corpus"
cp "$root"/spec/data/*.pt "$out/seeds/"
cat > "$out/make_seeds.c" <<'CEOF'
#include "fsvc/checkpoint.h"
#include "fsvc/error.h"
#include <stdio.h>
int main(int argc, char **argv) {
  if (argc < 2) return 2;
  char p[4096];
  int64_t s23[] = {2, 3}, s4[] = {4};
  fsvc_dtype dts[] = {FSVC_FLOAT32, FSVC_FLOAT64, FSVC_FLOAT16, FSVC_BFLOAT16, FSVC_INT64};
  const char *names[] = {"f32", "f64", "f16", "bf16", "i64"};
  fsvc_tensor_dict *all = fsvc_tensor_dict_new();
  for (int i = 0; i < 5; i++) {
    fsvc_tensor *t = fsvc_full(i % 2 ? 1 : 2, i % 2 ? s4 : s23, 1.5, dts[i]);
    fsvc_tensor_dict *one = fsvc_tensor_dict_new();
    fsvc_tensor_dict_set(one, names[i], t);
    fsvc_tensor_dict_set(all, names[i], t);
    snprintf(p, sizeof p, "%s/%s.safetensors", argv[1], names[i]);
    if (fsvc_safetensors_save(p, one)) { fprintf(stderr, "%s\n", fsvc_last_error()); return 1; }
    fsvc_tensor_dict_free(one);
    fsvc_tensor_release(t);
  }
  fsvc_tensor_dict_set_meta(all, "config", "{\"hop\": 320, \"name\": \"caf\\u00e9\"}");
  snprintf(p, sizeof p, "%s/all.safetensors", argv[1]);
  if (fsvc_safetensors_save(p, all)) { fprintf(stderr, "%s\n", fsvc_last_error()); return 1; }
  fsvc_tensor_dict_free(all);
  return 0;
}
CEOF
# shellcheck disable=SC2086
"$CC" $cflags "$out/make_seeds.c" "$root"/core/*.c "$root"/core/io/*.c $libs -o "$out/make_seeds"
"$out/make_seeds" "$out/seeds"
ls -l "$out/seeds"

echo "== fuzzing for ${budget}s (corpus $out/corpus, artifacts $out/artifacts)"
parallel=()
# with -jobs libFuzzer writes each job's output to fuzz-N.log in the current folder
[ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")
status=0
(cd "$out" && ./fuzz_checkpoint -max_total_time="$budget" -timeout=10 -rss_limit_mb=2048 \
  -max_len=16384 -print_final_stats=1 "${parallel[@]}" \
  -artifact_prefix="$out/artifacts/" "$out/corpus" "$out/seeds") || status=$?
if [ "$status" -ne 0 ]; then
  echo "fuzz_checkpoint.sh: FUZZER FOUND A PROBLEM (exit $status); reproducers:" >&2
  ls -l "$out/artifacts" >&2 || true
  echo "reproduce with: $out/fuzz_checkpoint <artifact>" >&2
  exit 1
fi
echo "== fuzzing finished without crashes"
