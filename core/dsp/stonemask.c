/* StoneMask: F0 refinement by instantaneous frequency (WORLD's companion of DIO), written from
 * the published method.
 *
 * For each voiced frame a Blackman window three periods long (of the initial F0) is centred on
 * the frame. The instantaneous frequency of harmonic k is read at the DFT bin nearest k*F0 from
 * the spectra of the signal weighted by the window and by its derivative (Flanagan's formula):
 * f = bin*fs/N + Im(X_dw * conj(X_w)) / |X_w|^2 * fs / (2 pi). The refined F0 is the
 * amplitude-weighted mean of f_k / k, first over 2 harmonics of the initial F0, then over 6
 * harmonics of that tentative value. Corrections over 20% fall back to the initial F0. */
/* Keep the reference's rounding: no fusion of a*b+c into FMA instructions. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "fsvc/f0.h"
#include "dsp/f0_common.h"

#include <math.h>
#include <stdlib.h>

#define SM_FLOOR_F0 40.0

/* Returns the refined F0, or -1 on allocation failure (reported by the caller). */
static int refine_one(fsvc_f0i_ifa *ifa, const double *x, int xlen, double fs, double t,
                      double f0, double *out) {
  if (f0 <= SM_FLOOR_F0 || f0 > fs / 12.0) {
    *out = 0.0;
    return 0;
  }
  double mean;
  if (fsvc_f0i_ifa_fix(ifa, x, xlen, fs, t, f0, f0, 2, 0, &mean, NULL) != 0) return -1;
  if (mean <= 0.0 || mean > f0 * 2)
    mean = 0.0;
  else if (fsvc_f0i_ifa_fix(ifa, x, xlen, fs, t, f0, mean, 6, 0, &mean, NULL) != 0)
    return -1;
  if (fabs(mean - f0) > f0 * 0.2) mean = f0;
  *out = mean;
  return 0;
}

/* Internal entry used by fsvc_dio (arguments already checked). */
int fsvc_f0i_stonemask(const double *x, int xlen, int fs, const double *times,
                       const double *f0_in, int n_frames, double *out);
int fsvc_f0i_stonemask(const double *x, int xlen, int fs, const double *times,
                       const double *f0_in, int n_frames, double *out) {
  fsvc_f0i_ifa ifa;
  fsvc_f0i_ifa_init(&ifa);
  int rc = 0;
  for (int i = 0; i < n_frames; i++) {
    double r;
    if (refine_one(&ifa, x, xlen, (double)fs, times[i], f0_in[i], &r) != 0) {
      rc = -1;
      break;
    }
    out[i] = r;
  }
  fsvc_f0i_ifa_free(&ifa);
  return rc;
}

int fsvc_stonemask(const double *x, int64_t n, int sample_rate, const double *times,
                   const double *f0_in, int64_t n_frames, double *out_f0, char *errbuf,
                   size_t errlen) {
  if (fsvc_f0i_check_signal("stonemask", x, n, sample_rate, errbuf, errlen) != 0) return -1;
  if (!times || !f0_in || !out_f0) {
    fsvc_f0i_error(errbuf, errlen, "stonemask: %s must not be NULL",
                   !times ? "times" : !f0_in ? "f0_in" : "out_f0");
    return -1;
  }
  if (n_frames < 0 || n_frames > (int64_t)0x7fffffff) {
    fsvc_f0i_error(errbuf, errlen, "stonemask: n_frames must be >= 0 (got %lld)",
                   (long long)n_frames);
    return -1;
  }
  for (int64_t i = 0; i < n_frames; i++) {
    if (!isfinite(times[i]) || fabs(times[i] * sample_rate) > 1e9) {
      fsvc_f0i_error(errbuf, errlen, "stonemask: times[%lld] is not finite or out of range (%g)",
                     (long long)i, times[i]);
      return -1;
    }
    if (!isfinite(f0_in[i]) || f0_in[i] < 0.0) {
      fsvc_f0i_error(errbuf, errlen, "stonemask: f0_in[%lld] must be finite and >= 0 (got %g)",
                     (long long)i, f0_in[i]);
      return -1;
    }
  }
  if (fsvc_f0i_stonemask(x, (int)n, sample_rate, times, f0_in, (int)n_frames, out_f0) != 0) {
    fsvc_f0i_error(errbuf, errlen, "stonemask: out of memory");
    return -1;
  }
  return 0;
}
