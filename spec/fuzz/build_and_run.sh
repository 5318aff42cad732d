#!/usr/bin/env bash
# Builds the audio-loader fuzzer with clang (libFuzzer + ASan + UBSan) directly against
# core/audio/*.c and runs it for a time budget.
#   usage: spec/fuzz/build_and_run.sh [seconds=20]
#   env:   CC (default clang-14, else clang), FSVC_FUZZ_DIR (default <repo>/build-fuzz/audio),
#          FSVC_FUZZ_JOBS (parallel fuzzing processes, default 1)
# The seed corpus (a small valid wav, float wav, flac, ogg and, if libsndfile can write it, mp3)
# is generated on each run. Exits non-zero if the fuzzer finds a crash, leak, timeout or OOM;
# the reproducer is left in $FSVC_FUZZ_DIR/artifacts.
set -euo pipefail

# shellcheck source=spec/fuzz/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fuzz_init build_and_run.sh audio "$@"

libs="$(pkg-config --libs sndfile soxr 2>/dev/null || echo -lsndfile -lsoxr) -lm"
cflags="$(pkg-config --cflags sndfile soxr 2>/dev/null || true) -std=gnu11 -g -O1 -I$root/core/include -I$root/core"

echo "== building fuzzer with $CC"
# shellcheck disable=SC2086
"$CC" $cflags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -fno-omit-frame-pointer "$root/spec/fuzz/fuzz_audio_load.c" "$root"/core/audio/*.c $libs \
  -o "$out/fuzz_audio_load"

echo "== generating seed corpus"
cat > "$out/make_seeds.c" <<'CEOF'
#include "fsvc/audio.h"
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
static int raw(const char *path, int format, const float *x, int frames, int ch, int rate) {
  SF_INFO info = {0};
  info.channels = ch; info.samplerate = rate; info.format = format;
  if (!sf_format_check(&info)) { printf("  (skipping %s: not supported by this libsndfile)\n", path); return 0; }
  SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
  if (!sf) { fprintf(stderr, "%s: %s\n", path, sf_strerror(NULL)); return 1; }
  sf_writef_float(sf, x, frames);
  sf_close(sf);
  return 0;
}
int main(int argc, char **argv) {
  if (argc < 2) return 2;
  enum { N = 1500 };
  static float planar[2 * N], inter[2 * N];
  for (int i = 0; i < N; i++) {
    planar[i] = (float)(0.6 * sin(i * 0.07));
    planar[N + i] = (float)(0.3 * sin(i * 0.31 + 1));
    inter[2 * i] = planar[i];
    inter[2 * i + 1] = planar[N + i];
  }
  char p[4096], err[512];
  int bad = 0;
#define SAVE(name, fmt, sf, ch, rate) \
  snprintf(p, sizeof p, "%s/" name, argv[1]); \
  if (fsvc_audio_save(p, planar, N, ch, rate, fmt, sf, err, sizeof err)) { fprintf(stderr, "%s\n", err); bad = 1; }
  SAVE("pcm16_stereo.wav", "wav", FSVC_AUDIO_PCM16, 2, 16000)
  SAVE("pcm24_mono.wav", "wav", FSVC_AUDIO_PCM24, 1, 22050)
  SAVE("float_stereo.wav", "wav", FSVC_AUDIO_FLOAT32, 2, 48000)
  SAVE("pcm16_stereo.flac", "flac", FSVC_AUDIO_PCM16, 2, 44100)
  snprintf(p, sizeof p, "%s/vorbis_stereo.ogg", argv[1]);
  bad |= raw(p, SF_FORMAT_OGG | SF_FORMAT_VORBIS, inter, N, 2, 16000);
  snprintf(p, sizeof p, "%s/layer3_mono.mp3", argv[1]);
  bad |= raw(p, SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, planar, N, 1, 16000);
  return bad;
}
CEOF
# shellcheck disable=SC2086
"$CC" $cflags "$out/make_seeds.c" "$root"/core/audio/*.c $libs -o "$out/make_seeds"
"$out/make_seeds" "$out/seeds"
ls -l "$out/seeds"

# mpg123 prints harmless warnings about odd streams on stderr; libFuzzer's own report is kept.
fuzz_run fuzz_audio_load 65536
