/* Small double-precision complex FFT for the F0 estimators (power-of-two sizes only).
 *
 * Why our own rather than KissFFT: the project's KissFFT build is single precision, and WORLD
 * (whose output these estimators must reproduce) computes everything in double. Harvest turns
 * filter outputs into zero-crossing positions and DIO/StoneMask divide spectra, so float
 * round-off would move F0 values by far more than the sub-cent agreement we aim for. All sizes
 * the estimators need are powers of two, so an iterative radix-2 transform with exact per-stage
 * twiddle tables (each computed directly with cos/sin, no recurrences) is enough. */
#include "dsp/f0_common.h"

#include <math.h>
#include <stdlib.h>

int fsvc_f0i_fft_init(fsvc_f0i_fft *p, int n) {
  p->n = n;
  p->rev = NULL;
  p->tw = NULL;
  if (n < 1 || (n & (n - 1)) != 0) return -1;
  p->rev = (int *)malloc(sizeof(int) * (size_t)n);
  p->tw = (double *)malloc(sizeof(double) * 2 * (size_t)(n > 1 ? n - 1 : 1));
  if (!p->rev || !p->tw) {
    fsvc_f0i_fft_free(p);
    return -1;
  }
  int lg = 0;
  while ((1 << lg) < n) lg++;
  for (int i = 0; i < n; i++) {
    int r = 0;
    for (int b = 0; b < lg; b++)
      if (i & (1 << b)) r |= 1 << (lg - 1 - b);
    p->rev[i] = r;
  }
  /* Stage with half-length h uses twiddles at offset h - 1 (1 + 2 + ... + h/2 = h - 1). */
  for (int h = 1; h < n; h <<= 1) {
    double *t = p->tw + 2 * (size_t)(h - 1);
    for (int j = 0; j < h; j++) {
      double a = FSVC_F0I_PI * (double)j / (double)h;
      t[2 * j] = cos(a);
      t[2 * j + 1] = sin(a);
    }
  }
  return 0;
}

void fsvc_f0i_fft_free(fsvc_f0i_fft *p) {
  free(p->rev);
  free(p->tw);
  p->rev = NULL;
  p->tw = NULL;
}

static void fft_run(const fsvc_f0i_fft *p, double *restrict z, double sign) {
  const int n = p->n;
  const int *rev = p->rev;
  for (int i = 0; i < n; i++) {
    int r = rev[i];
    if (i < r) {
      double tr = z[2 * i], ti = z[2 * i + 1];
      z[2 * i] = z[2 * r];
      z[2 * i + 1] = z[2 * r + 1];
      z[2 * r] = tr;
      z[2 * r + 1] = ti;
    }
  }
  if (n < 2) return;
  /* First two stages together (radix-4 butterfly without multiplications). */
  if (n >= 4) {
    for (int i = 0; i < n; i += 4) {
      double *a = z + 2 * i;
      double r0 = a[0] + a[2], i0 = a[1] + a[3];
      double r1 = a[0] - a[2], i1 = a[1] - a[3];
      double r2 = a[4] + a[6], i2 = a[5] + a[7];
      double r3 = a[4] - a[6], i3 = a[5] - a[7];
      /* w = exp(sign * i * pi / 2) = sign * i: (r3 + i i3) * (sign i) = -sign i3 + i sign r3 */
      double tr = -sign * i3, ti = sign * r3;
      a[0] = r0 + r2;
      a[1] = i0 + i2;
      a[4] = r0 - r2;
      a[5] = i0 - i2;
      a[2] = r1 + tr;
      a[3] = i1 + ti;
      a[6] = r1 - tr;
      a[7] = i1 - ti;
    }
  } else {
    double r0 = z[0] + z[2], i0 = z[1] + z[3];
    double r1 = z[0] - z[2], i1 = z[1] - z[3];
    z[0] = r0;
    z[1] = i0;
    z[2] = r1;
    z[3] = i1;
    return;
  }
  for (int h = 4; h < n; h <<= 1) {
    const double *restrict t = p->tw + 2 * (size_t)(h - 1);
    for (int i = 0; i < n; i += 2 * h) {
      double *restrict a = z + 2 * (size_t)i;
      double *restrict b = a + 2 * (size_t)h;
      for (int j = 0; j < h; j++) {
        double wr = t[2 * j], wi = sign * t[2 * j + 1];
        double br = b[2 * j] * wr - b[2 * j + 1] * wi;
        double bi = b[2 * j] * wi + b[2 * j + 1] * wr;
        double ar = a[2 * j], ai = a[2 * j + 1];
        a[2 * j] = ar + br;
        a[2 * j + 1] = ai + bi;
        b[2 * j] = ar - br;
        b[2 * j + 1] = ai - bi;
      }
    }
  }
}

void fsvc_f0i_fft_forward(const fsvc_f0i_fft *p, double *z) { fft_run(p, z, -1.0); }
void fsvc_f0i_fft_inverse(const fsvc_f0i_fft *p, double *z) { fft_run(p, z, 1.0); }
