#!/usr/bin/env bash
# Builds the checkpoint fuzzer (safetensors parser + torch.save loader) with clang (libFuzzer +
# ASan + UBSan) directly against core/*.c core/ops/*.c (tensors, device dispatch) core/io/*.c and runs it for a time budget.
#   usage: spec/fuzz/fuzz_checkpoint.sh [seconds=20]
#   env:   CC (default clang-14, else clang), FSVC_FUZZ_DIR (default <repo>/build-fuzz/checkpoint),
#          FSVC_FUZZ_JOBS (parallel fuzzing processes, default 1)
# The seed corpus is the torch.save fixtures of spec/data plus small safetensors files written by
# fsvc itself on each run. Exits non-zero if the fuzzer finds a crash, leak, timeout or OOM; the
# reproducer is left in $FSVC_FUZZ_DIR/artifacts.
set -euo pipefail

# shellcheck source=spec/fuzz/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fuzz_init fuzz_checkpoint.sh checkpoint "$@"

openblas_inc=""
for d in /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas; do
  [ -d "$d" ] && openblas_inc="-I$d" && break
done
libs="-lopenblas -lm -fopenmp -lz"
cflags="-std=gnu11 -g -O1 -I$root/core/include -I$root/core $openblas_inc -fopenmp -DFSVC_HAVE_ZLIB=1"

echo "== building fuzzer with $CC"
# shellcheck disable=SC2086
"$CC" $cflags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -fno-omit-frame-pointer "$root/spec/fuzz/fuzz_checkpoint.c" "$root"/core/*.c "$root"/core/ops/*.c "$root"/core/io/*.c \
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
"$CC" $cflags "$out/make_seeds.c" "$root"/core/*.c "$root"/core/ops/*.c "$root"/core/io/*.c $libs -o "$out/make_seeds"
"$out/make_seeds" "$out/seeds"
ls -l "$out/seeds"

fuzz_run fuzz_checkpoint 16384
