/* Small double-precision complex FFT for the F0 estimators (power-of-two sizes only).
 *
 * Why our own rather than KissFFT: the project's KissFFT build is single precision, and WORLD
 * (whose output these estimators must reproduce) computes everything in double. Harvest turns
 * filter outputs into zero-crossing positions and DIO/StoneMask divide spectra, so float
 * round-off would move F0 values by far more than the sub-cent agreement we aim for. All sizes
 * the estimators need are powers of two, so an iterative decimation-in-time transform is enough:
 * bit reversal, a multiplication-free radix-4 first pass, then radix-4 passes (two radix-2
 * stages fused, halving the passes over memory) and at most one radix-2 pass. Twiddles come from
 * exact per-stage tables (each computed directly with cos/sin, no recurrences). With AVX2+FMA
 * the butterflies work on two complex values per vector. */
#include "dsp/f0_common.h"

#include <math.h>
#include <stdlib.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define F0FFT_AVX2 1
#endif

int fsvc_f0i_fft_init(fsvc_f0i_fft *p, int n) {
  p->n = n;
  p->rev = NULL;
  p->tw = NULL;
  if (n < 1 || (n & (n - 1)) != 0) return -1;
  p->rev = (int *)malloc(sizeof(int) * (size_t)n);
  p->tw = (double *)malloc(sizeof(double) * 4 * (size_t)(n > 1 ? n - 1 : 1));
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
  for (int h = 1; h < n; h <<= 1) {
    double *c = p->tw + 4 * (size_t)(h - 1), *s = c + 2 * (size_t)h;
    for (int j = 0; j < h; j++) {
      double a = FSVC_F0I_PI * (double)j / (double)h;
      c[2 * j] = c[2 * j + 1] = cos(a);
      s[2 * j] = s[2 * j + 1] = sin(a);
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

/* complex helpers for the scalar path */
#define CMUL(ar, ai, br, bi, rr, ri) \
  do {                               \
    double t_r = (ar) * (br) - (ai) * (bi); \
    (ri) = (ar) * (bi) + (ai) * (br);       \
    (rr) = t_r;                              \
  } while (0)

/* One radix-2 stage of half-size h. */
static void stage2(double *restrict z, int n, int h, const double *tw, double sign) {
  const double *c = tw + 4 * (size_t)(h - 1), *s = c + 2 * (size_t)h;
  for (int i = 0; i < n; i += 2 * h) {
    double *restrict a = z + 2 * (size_t)i;
    double *restrict b = a + 2 * (size_t)h;
    int j = 0;
#ifdef F0FFT_AVX2
    const __m256d sg = _mm256_set1_pd(sign);
    for (; j + 2 <= h; j += 2) {
      __m256d wr = _mm256_loadu_pd(c + 2 * j), wi = _mm256_mul_pd(_mm256_loadu_pd(s + 2 * j), sg);
      __m256d vb = _mm256_loadu_pd(b + 2 * j), va = _mm256_loadu_pd(a + 2 * j);
      __m256d bw = _mm256_fmaddsub_pd(vb, wr, _mm256_mul_pd(_mm256_permute_pd(vb, 5), wi));
      _mm256_storeu_pd(a + 2 * j, _mm256_add_pd(va, bw));
      _mm256_storeu_pd(b + 2 * j, _mm256_sub_pd(va, bw));
    }
#endif
    for (; j < h; j++) {
      double wr = c[2 * j], wi = sign * s[2 * j], br, bi;
      CMUL(b[2 * j], b[2 * j + 1], wr, wi, br, bi);
      double ar = a[2 * j], ai = a[2 * j + 1];
      a[2 * j] = ar + br;
      a[2 * j + 1] = ai + bi;
      b[2 * j] = ar - br;
      b[2 * j + 1] = ai - bi;
    }
  }
}

/* Two fused radix-2 stages: half-sizes h then 2h (blocks of 4h). */
static void stage4(double *restrict z, int n, int h, const double *tw, double sign) {
  const double *c1 = tw + 4 * (size_t)(h - 1), *s1 = c1 + 2 * (size_t)h;
  const double *c2 = tw + 4 * (size_t)(2 * h - 1), *s2 = c2 + 4 * (size_t)h;
  for (int i = 0; i < n; i += 4 * h) {
    double *restrict x0 = z + 2 * (size_t)i;
    double *restrict x1 = x0 + 2 * (size_t)h;
    double *restrict x2 = x1 + 2 * (size_t)h;
    double *restrict x3 = x2 + 2 * (size_t)h;
    int j = 0;
#ifdef F0FFT_AVX2
    const __m256d sg = _mm256_set1_pd(sign);
    /* multiplication by sign*i: (r, i) -> (-sign*i, sign*r) */
    const __m256d rot = _mm256_set_pd(sign, -sign, sign, -sign);
    for (; j + 2 <= h; j += 2) {
      __m256d wr = _mm256_loadu_pd(c1 + 2 * j), wi = _mm256_mul_pd(_mm256_loadu_pd(s1 + 2 * j), sg);
      __m256d ur = _mm256_loadu_pd(c2 + 2 * j), ui = _mm256_mul_pd(_mm256_loadu_pd(s2 + 2 * j), sg);
      __m256d a0 = _mm256_loadu_pd(x0 + 2 * j), a1 = _mm256_loadu_pd(x1 + 2 * j);
      __m256d a2 = _mm256_loadu_pd(x2 + 2 * j), a3 = _mm256_loadu_pd(x3 + 2 * j);
      __m256d t1 = _mm256_fmaddsub_pd(a1, wr, _mm256_mul_pd(_mm256_permute_pd(a1, 5), wi));
      __m256d t3 = _mm256_fmaddsub_pd(a3, wr, _mm256_mul_pd(_mm256_permute_pd(a3, 5), wi));
      __m256d y0 = _mm256_add_pd(a0, t1), y1 = _mm256_sub_pd(a0, t1);
      __m256d y2 = _mm256_add_pd(a2, t3), y3 = _mm256_sub_pd(a2, t3);
      __m256d u2 = _mm256_fmaddsub_pd(y2, ur, _mm256_mul_pd(_mm256_permute_pd(y2, 5), ui));
      __m256d u3 = _mm256_fmaddsub_pd(y3, ur, _mm256_mul_pd(_mm256_permute_pd(y3, 5), ui));
      u3 = _mm256_mul_pd(_mm256_permute_pd(u3, 5), rot);
      _mm256_storeu_pd(x0 + 2 * j, _mm256_add_pd(y0, u2));
      _mm256_storeu_pd(x2 + 2 * j, _mm256_sub_pd(y0, u2));
      _mm256_storeu_pd(x1 + 2 * j, _mm256_add_pd(y1, u3));
      _mm256_storeu_pd(x3 + 2 * j, _mm256_sub_pd(y1, u3));
    }
#endif
    for (; j < h; j++) {
      double wr = c1[2 * j], wi = sign * s1[2 * j];
      double ur = c2[2 * j], ui = sign * s2[2 * j];
      double t1r, t1i, t3r, t3i;
      CMUL(x1[2 * j], x1[2 * j + 1], wr, wi, t1r, t1i);
      CMUL(x3[2 * j], x3[2 * j + 1], wr, wi, t3r, t3i);
      double y0r = x0[2 * j] + t1r, y0i = x0[2 * j + 1] + t1i;
      double y1r = x0[2 * j] - t1r, y1i = x0[2 * j + 1] - t1i;
      double y2r = x2[2 * j] + t3r, y2i = x2[2 * j + 1] + t3i;
      double y3r = x2[2 * j] - t3r, y3i = x2[2 * j + 1] - t3i;
      double u2r, u2i, u3r, u3i;
      CMUL(y2r, y2i, ur, ui, u2r, u2i);
      CMUL(y3r, y3i, ur, ui, u3r, u3i);
      double v3r = -sign * u3i, v3i = sign * u3r;
      x0[2 * j] = y0r + u2r;
      x0[2 * j + 1] = y0i + u2i;
      x2[2 * j] = y0r - u2r;
      x2[2 * j + 1] = y0i - u2i;
      x1[2 * j] = y1r + v3r;
      x1[2 * j + 1] = y1i + v3i;
      x3[2 * j] = y1r - v3r;
      x3[2 * j + 1] = y1i - v3i;
    }
  }
}


/* Decimation-in-frequency counterparts (natural order in, bit-reversed order out). */
static void stage2_dif(double *restrict z, int n, int h, const double *tw, double sign) {
  const double *c = tw + 4 * (size_t)(h - 1), *s = c + 2 * (size_t)h;
  for (int i = 0; i < n; i += 2 * h) {
    double *restrict a = z + 2 * (size_t)i;
    double *restrict b = a + 2 * (size_t)h;
    int j = 0;
#ifdef F0FFT_AVX2
    const __m256d sg = _mm256_set1_pd(sign);
    for (; j + 2 <= h; j += 2) {
      __m256d wr = _mm256_loadu_pd(c + 2 * j), wi = _mm256_mul_pd(_mm256_loadu_pd(s + 2 * j), sg);
      __m256d va = _mm256_loadu_pd(a + 2 * j), vb = _mm256_loadu_pd(b + 2 * j);
      __m256d d = _mm256_sub_pd(va, vb);
      _mm256_storeu_pd(a + 2 * j, _mm256_add_pd(va, vb));
      _mm256_storeu_pd(b + 2 * j,
                       _mm256_fmaddsub_pd(d, wr, _mm256_mul_pd(_mm256_permute_pd(d, 5), wi)));
    }
#endif
    for (; j < h; j++) {
      double wr = c[2 * j], wi = sign * s[2 * j];
      double ar = a[2 * j], ai = a[2 * j + 1], br = b[2 * j], bi = b[2 * j + 1];
      a[2 * j] = ar + br;
      a[2 * j + 1] = ai + bi;
      CMUL(ar - br, ai - bi, wr, wi, b[2 * j], b[2 * j + 1]);
    }
  }
}

/* Two fused DIF stages: half-sizes 2h then h (blocks of 4h). */
static void stage4_dif(double *restrict z, int n, int h, const double *tw, double sign) {
  const double *c1 = tw + 4 * (size_t)(h - 1), *s1 = c1 + 2 * (size_t)h;
  const double *c2 = tw + 4 * (size_t)(2 * h - 1), *s2 = c2 + 4 * (size_t)h;
  for (int i = 0; i < n; i += 4 * h) {
    double *restrict x0 = z + 2 * (size_t)i;
    double *restrict x1 = x0 + 2 * (size_t)h;
    double *restrict x2 = x1 + 2 * (size_t)h;
    double *restrict x3 = x2 + 2 * (size_t)h;
    int j = 0;
#ifdef F0FFT_AVX2
    const __m256d sg = _mm256_set1_pd(sign);
    const __m256d rot = _mm256_set_pd(sign, -sign, sign, -sign);
    for (; j + 2 <= h; j += 2) {
      __m256d wr = _mm256_loadu_pd(c1 + 2 * j), wi = _mm256_mul_pd(_mm256_loadu_pd(s1 + 2 * j), sg);
      __m256d ur = _mm256_loadu_pd(c2 + 2 * j), ui = _mm256_mul_pd(_mm256_loadu_pd(s2 + 2 * j), sg);
      __m256d a0 = _mm256_loadu_pd(x0 + 2 * j), a1 = _mm256_loadu_pd(x1 + 2 * j);
      __m256d a2 = _mm256_loadu_pd(x2 + 2 * j), a3 = _mm256_loadu_pd(x3 + 2 * j);
      __m256d y0 = _mm256_add_pd(a0, a2), d2 = _mm256_sub_pd(a0, a2);
      __m256d y1 = _mm256_add_pd(a1, a3), d3 = _mm256_sub_pd(a1, a3);
      __m256d y2 = _mm256_fmaddsub_pd(d2, ur, _mm256_mul_pd(_mm256_permute_pd(d2, 5), ui));
      __m256d y3 = _mm256_fmaddsub_pd(d3, ur, _mm256_mul_pd(_mm256_permute_pd(d3, 5), ui));
      y3 = _mm256_mul_pd(_mm256_permute_pd(y3, 5), rot);
      __m256d e1 = _mm256_sub_pd(y0, y1), e3 = _mm256_sub_pd(y2, y3);
      _mm256_storeu_pd(x0 + 2 * j, _mm256_add_pd(y0, y1));
      _mm256_storeu_pd(x1 + 2 * j,
                       _mm256_fmaddsub_pd(e1, wr, _mm256_mul_pd(_mm256_permute_pd(e1, 5), wi)));
      _mm256_storeu_pd(x2 + 2 * j, _mm256_add_pd(y2, y3));
      _mm256_storeu_pd(x3 + 2 * j,
                       _mm256_fmaddsub_pd(e3, wr, _mm256_mul_pd(_mm256_permute_pd(e3, 5), wi)));
    }
#endif
    for (; j < h; j++) {
      double wr = c1[2 * j], wi = sign * s1[2 * j];
      double ur = c2[2 * j], ui = sign * s2[2 * j];
      double y0r = x0[2 * j] + x2[2 * j], y0i = x0[2 * j + 1] + x2[2 * j + 1];
      double d2r = x0[2 * j] - x2[2 * j], d2i = x0[2 * j + 1] - x2[2 * j + 1];
      double y1r = x1[2 * j] + x3[2 * j], y1i = x1[2 * j + 1] + x3[2 * j + 1];
      double d3r = x1[2 * j] - x3[2 * j], d3i = x1[2 * j + 1] - x3[2 * j + 1];
      double y2r, y2i, u3r, u3i;
      CMUL(d2r, d2i, ur, ui, y2r, y2i);
      CMUL(d3r, d3i, ur, ui, u3r, u3i);
      double y3r = -sign * u3i, y3i = sign * u3r;
      x0[2 * j] = y0r + y1r;
      x0[2 * j + 1] = y0i + y1i;
      CMUL(y0r - y1r, y0i - y1i, wr, wi, x1[2 * j], x1[2 * j + 1]);
      x2[2 * j] = y2r + y3r;
      x2[2 * j + 1] = y2i + y3i;
      CMUL(y2r - y3r, y2i - y3i, wr, wi, x3[2 * j], x3[2 * j + 1]);
    }
  }
}

static void bitrev(const fsvc_f0i_fft *p, double *restrict z) {
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
}

/* DIF transform: natural order in, bit-reversed order out. */
static void fft_dif(const fsvc_f0i_fft *p, double *restrict z, double sign) {
  const int n = p->n;
  if (n < 2) return;
  if (n == 2) {
    double r0 = z[0] + z[2], i0 = z[1] + z[3];
    double r1 = z[0] - z[2], i1 = z[1] - z[3];
    z[0] = r0;
    z[1] = i0;
    z[2] = r1;
    z[3] = i1;
    return;
  }
  int lg = 0;
  while ((1 << lg) < n) lg++;
  int h = n / 2;
  if ((lg - 2) % 2 == 1) {
    stage2_dif(z, n, h, p->tw, sign);
    h >>= 1;
  }
  for (; h >= 4; h >>= 2) stage4_dif(z, n, h / 2, p->tw, sign);
  /* last two stages (half-sizes 2 and 1) without multiplications */
  for (int i = 0; i < n; i += 4) {
    double *a = z + 2 * (size_t)i;
    double y0r = a[0] + a[4], y0i = a[1] + a[5];
    double y2r = a[0] - a[4], y2i = a[1] - a[5];
    double y1r = a[2] + a[6], y1i = a[3] + a[7];
    double dr = a[2] - a[6], di = a[3] - a[7];
    double y3r = -sign * di, y3i = sign * dr;
    a[0] = y0r + y1r;
    a[1] = y0i + y1i;
    a[2] = y0r - y1r;
    a[3] = y0i - y1i;
    a[4] = y2r + y3r;
    a[5] = y2i + y3i;
    a[6] = y2r - y3r;
    a[7] = y2i - y3i;
  }
}

/* DIT transform: bit-reversed order in, natural order out. */
static void fft_dit(const fsvc_f0i_fft *p, double *restrict z, double sign) {
  const int n = p->n;
  if (n < 2) return;
  if (n == 2) {
    double r0 = z[0] + z[2], i0 = z[1] + z[3];
    double r1 = z[0] - z[2], i1 = z[1] - z[3];
    z[0] = r0;
    z[1] = i0;
    z[2] = r1;
    z[3] = i1;
    return;
  }
  /* First two stages together (radix-4 butterfly without multiplications). */
  for (int i = 0; i < n; i += 4) {
    double *a = z + 2 * (size_t)i;
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
  int h = 4;
  for (; 2 * h < n; h <<= 2) stage4(z, n, h, p->tw, sign);
  if (h < n) stage2(z, n, h, p->tw, sign);
}

void fsvc_f0i_fft_forward(const fsvc_f0i_fft *p, double *z) {
  fft_dif(p, z, -1.0);
  bitrev(p, z);
}
void fsvc_f0i_fft_inverse(const fsvc_f0i_fft *p, double *z) {
  bitrev(p, z);
  fft_dit(p, z, 1.0);
}
void fsvc_f0i_fft_forward_br(const fsvc_f0i_fft *p, double *z) { fft_dif(p, z, -1.0); }
void fsvc_f0i_fft_inverse_br(const fsvc_f0i_fft *p, double *z) { fft_dit(p, z, 1.0); }
