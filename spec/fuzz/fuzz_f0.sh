#!/usr/bin/env bash
# Builds the F0 fuzzer (libFuzzer + ASan + UBSan) against core/dsp's Harvest/DIO/StoneMask and
# runs it for a time budget.   usage: spec/fuzz/fuzz_f0.sh [seconds=20]
# Exits non-zero on a crash, leak, timeout or OOM; the reproducer is left in build-fuzz/f0/artifacts.
set -euo pipefail
budget=${1:-20}
case "$budget" in ''|*[!0-9]*) echo "fuzz_f0.sh: time budget must be whole seconds" >&2; exit 2;; esac
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${FSVC_FUZZ_DIR:-$root/build-fuzz/f0}
CC=${CC:-$(command -v clang-14 || command -v clang)}
mkdir -p "$out/corpus" "$out/artifacts"
f0_sources=$(ls "$root"/core/dsp/harvest.c "$root"/core/dsp/dio.c "$root"/core/dsp/stonemask.c \
  "$root"/core/dsp/f0_*.c 2>/dev/null)
# shellcheck disable=SC2086
"$CC" -std=gnu11 -g -O1 -I"$root/core/include" -I"$root/core" \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
  "$root/spec/fuzz/fuzz_f0.c" $f0_sources -lm -o "$out/fuzz_f0"
# seeds: a voiced tone and silence, with a few option bytes in front
python3 - "$out/corpus" <<'PY'
import math, os, struct, sys
d = sys.argv[1]
tone = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 150 * i / 16000))) for i in range(4000))
open(os.path.join(d, "tone"), "wb").write(bytes([1, 15, 90, 4, 0, 0, 0, 0]) + tone)
open(os.path.join(d, "silence"), "wb").write(bytes([3, 15, 90, 4, 1, 0, 0, 0]) + bytes(2000))
PY
"$out/fuzz_f0" -max_total_time="$budget" -timeout=10 -rss_limit_mb=2048 -max_len=20000 \
  -artifact_prefix="$out/artifacts/" "$out/corpus" 2>&1 | tail -5
