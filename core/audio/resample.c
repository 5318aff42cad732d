/* Sample-rate conversion with libsoxr: very high quality (28-bit), linear phase, any ratio.
 *
 * Length contract: the output of fsvc_resample has exactly round(n * to / from) samples. soxr
 * removes its filter delay and, once flushed, emits about that many samples itself; we stop it
 * at the target (trim) or zero-fill the last few samples if it stopped short (pad), so callers can
 * size buffers and align frames without depending on soxr's rounding. */
#include "fsvc/audio.h"

#include <math.h>
#include <soxr.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void set_err(char *errbuf, size_t errlen, const char *fmt, ...) {
  if (!errbuf || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errbuf, errlen, fmt, ap);
  va_end(ap);
}

static int rate_ok(double r) { return isfinite(r) && r > 0.0; }

int64_t fsvc_resample_output_length(int64_t n, double from_rate, double to_rate) {
  if (n <= 0 || !rate_ok(from_rate) || !rate_ok(to_rate)) return -1;
  double len = round((double)n * (to_rate / from_rate));
  if (!isfinite(len) || len > 4.0e18) return -1;
  return (int64_t)len;
}

int fsvc_resample(const float *in, int64_t n, double from_rate, double to_rate, float *out,
                  char *errbuf, size_t errlen) {
  const char *who = "audio.resample";
  if (!rate_ok(from_rate)) {
    set_err(errbuf, errlen, "%s: from_rate must be a finite number > 0 (got %g)", who, from_rate);
    return -1;
  }
  if (!rate_ok(to_rate)) {
    set_err(errbuf, errlen, "%s: to_rate must be a finite number > 0 (got %g)", who, to_rate);
    return -1;
  }
  if (n <= 0) {
    set_err(errbuf, errlen, "%s: input has %lld samples (need at least 1)", who, (long long)n);
    return -1;
  }
  if (!in || !out) {
    set_err(errbuf, errlen, "%s: %s buffer is NULL", who, !in ? "input" : "output");
    return -1;
  }
  int64_t olen = fsvc_resample_output_length(n, from_rate, to_rate);
  if (olen < 0) {
    set_err(errbuf, errlen, "%s: output length for %lld samples at %g -> %g Hz is out of range", who,
            (long long)n, from_rate, to_rate);
    return -1;
  }
  if (olen == 0) {
    set_err(errbuf, errlen, "%s: %lld input samples give no output at %g -> %g Hz (input too short)",
            who, (long long)n, from_rate, to_rate);
    return -1;
  }
  if (from_rate == to_rate) {
    memmove(out, in, (size_t)n * sizeof(float));
    return 0;
  }

  soxr_error_t err = NULL;
  soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  soxr_quality_spec_t q = soxr_quality_spec(SOXR_VHQ | SOXR_LINEAR_PHASE, SOXR_HI_PREC_CLOCK);
  soxr_runtime_spec_t rt = soxr_runtime_spec(1);
  soxr_t s = soxr_create(from_rate, to_rate, 1, &err, &io, &q, &rt);
  if (!s || err) {
    set_err(errbuf, errlen, "%s: cannot resample %g -> %g Hz: %s", who, from_rate, to_rate,
            soxr_strerror(err ? err : "soxr_create failed"));
    if (s) soxr_delete(s);
    return -1;
  }
  size_t done_out = 0, used = 0;
  const size_t total_out = (size_t)olen, total_in = (size_t)n;
  /* feed all input, collecting output; soxr may need several calls */
  while (used < total_in && done_out < total_out) {
    size_t idone = 0, odone = 0;
    err = soxr_process(s, in + used, total_in - used, &idone, out + done_out,
                       total_out - done_out, &odone);
    if (err) break;
    used += idone;
    done_out += odone;
    if (idone == 0 && odone == 0) break; /* no progress: output full */
  }
  /* flush: end of input, drain the filter tail */
  while (!err && done_out < total_out) {
    size_t odone = 0;
    err = soxr_process(s, NULL, 0, NULL, out + done_out, total_out - done_out, &odone);
    if (err || odone == 0) break;
    done_out += odone;
  }
  soxr_delete(s);
  if (err) {
    set_err(errbuf, errlen, "%s: soxr failed at %g -> %g Hz: %s", who, from_rate, to_rate,
            soxr_strerror(err));
    return -1;
  }
  if (done_out < total_out) memset(out + done_out, 0, (total_out - done_out) * sizeof(float));
  return 0;
}
