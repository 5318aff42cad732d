/* libFuzzer harness for the F0 extractors: the input bytes choose the options (sample rate,
 * floor, ceiling, frame period, DIO speed) and the signal (int16 samples). Harvest and DIO must
 * either succeed with finite, non-negative F0 values within [0, ceil*1.1] or fail with a one-line
 * message; anything else aborts so that libFuzzer reports it. Signals are capped at 125 ms so that
 * each input runs in milliseconds. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fsvc/f0.h"

static void check(int rc, const double *f0, int64_t frames, double ceil, const char *err) {
  if (rc != 0) {
    if (!err[0] || strchr(err, '\n')) abort(); /* a failure must say why, on one line */
    return;
  }
  for (int64_t i = 0; i < frames; i++)
    if (!isfinite(f0[i]) || f0[i] < 0 || f0[i] > ceil * 1.1 + 1) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 8) return 0;
  static const int rates[] = {8000, 16000, 22050, 24000, 44100, 48000, 1000, 0};
  int sample_rate = rates[data[0] % 8];
  fsvc_f0_options o;
  fsvc_f0_default_options(&o);
  o.f0_floor = 40 + data[1] * 2.0;        /* 40 .. 550 */
  o.f0_ceil = o.f0_floor + data[2] * 8.0; /* may equal floor: must be refused */
  o.frame_period_ms = 1 + data[3] % 20;
  o.speed = 1 + data[4] % 12;
  data += 8;
  size -= 8;
  int64_t n = (int64_t)(size / 2);
  int64_t cap = sample_rate > 0 ? sample_rate / 8 : 1000;
  if (n > cap) n = cap;
  double *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
  if (!x) return 0;
  for (int64_t i = 0; i < n; i++) {
    int16_t s;
    memcpy(&s, data + 2 * i, 2);
    x[i] = s / 32768.0;
  }
  int64_t frames = fsvc_f0_frame_count(n, sample_rate, o.frame_period_ms);
  if (frames > 0) {
    double *f0 = malloc((size_t)frames * sizeof *f0);
    char err[256];
    if (f0) {
      err[0] = 0;
      check(fsvc_harvest(x, n, sample_rate, &o, f0, err, sizeof err), f0, frames, o.f0_ceil, err);
      err[0] = 0;
      check(fsvc_dio(x, n, sample_rate, &o, f0, err, sizeof err), f0, frames, o.f0_ceil, err);
      free(f0);
    }
  }
  free(x);
  return 0;
}
