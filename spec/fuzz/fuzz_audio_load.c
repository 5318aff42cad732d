/* libFuzzer harness for the audio loader: every input is an in-memory "file" for
 * fsvc_audio_load_memory. Besides ASan/UBSan crashes it traps on broken contracts: a success must
 * give frames > 0, channels > 0, a positive rate and only finite samples; a failure must give a
 * NULL buffer and a non-empty one-line message naming the input. */
#include "fsvc/audio.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Leaks inside the codec libraries on corrupt input (e.g. libsndfile 1.2.0 leaks libvorbis's
 * vorbis_info when an Ogg open fails) are not ours and cannot be freed by us. Our own
 * allocations have no library frame on their stack, so they are still checked. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
  return "leak:libsndfile.so\nleak:libvorbis.so\nleak:libvorbisenc.so\nleak:libogg.so\n"
         "leak:libFLAC.so\nleak:libopus.so\nleak:libmpg123.so\n";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  float *out = (float *)&size; /* must be overwritten */
  int64_t frames = -7;
  int channels = -7, rate = -7;
  char err[256];
  err[0] = '\0';
  int rc = fsvc_audio_load_memory(data, size, "fuzz-input", &out, &frames, &channels, &rate, err,
                                  sizeof err);
  if (rc == 0) {
    if (!out || frames <= 0 || channels <= 0 || rate <= 0) __builtin_trap();
    double sum = 0;
    for (int64_t i = 0; i < frames * channels; i++) {
      if (!isfinite(out[i])) __builtin_trap();
      sum += out[i];
    }
    /* the buffer is exactly frames * channels long (ASan checks the last element) */
    volatile float last = out[frames * channels - 1];
    (void)last;
    (void)sum;
    if (channels <= 8 && frames < (1 << 20)) { /* exercise the mixdown on the loaded buffer */
      float *mono = malloc((size_t)frames * sizeof(float));
      if (mono) {
        fsvc_audio_mix_to_mono(out, frames, channels, mono);
        free(mono);
      }
    }
    free(out);
  } else {
    if (rc != -1 || out != NULL) __builtin_trap();
    if (err[0] == '\0' || strchr(err, '\n') || !strstr(err, "fuzz-input")) __builtin_trap();
  }
  return 0;
}
