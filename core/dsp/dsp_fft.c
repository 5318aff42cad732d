/* Real FFT of one frame for the STFT family: KissFFT (float32) or an own double mixed-radix FFT.
 *
 * The double FFT is the textbook recursive decimation in time (as KissFFT's kf_work): n = p * m,
 * p sub-transforms of stride p, then a generic radix-p butterfly with twiddles exp(-2 pi i j/n).
 * The generic butterfly costs O(p^2) per output group; factors are 4, 2, 3, 5 then odd primes,
 * so typical sizes (powers of two, 1920 = 2^7*3*5) stay O(n log n). */
#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <kissfft/kiss_fftr.h>

#include "dsp_internal.h"

#define MAX_FACTORS 64

struct dsp_rfft {
  int64_t n;
  /* KissFFT path */
  kiss_fftr_cfg kf, ki;
  float *fin, *fout; /* n floats, and 2*(n/2+1) floats */
  /* double path */
  int n_factors;
  int64_t factors[2 * MAX_FACTORS]; /* (p, m) pairs */
  double complex *tw;                /* [n] exp(-2 pi i j / n) */
  double complex *a, *b, *scratch;   /* [n] work buffers, scratch [max p] */
};

static void factorize(dsp_rfft *p) {
  int64_t n = p->n, f = 4;
  int k = 0;
  while (n > 1) {
    while (n % f) {
      switch (f) {
        case 4: f = 2; break;
        case 2: f = 3; break;
        default: f += 2; break;
      }
      if (f * f > n) f = n;
    }
    n /= f;
    p->factors[2 * k] = f;
    p->factors[2 * k + 1] = n;
    k++;
  }
  p->n_factors = k;
}

dsp_rfft *dsp_rfft_new(int64_t n, int use_float) {
  if (n < 1) return NULL;
  dsp_rfft *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->n = n;
  if (use_float && n % 2 == 0 && n <= (int64_t)1 << 30) {
    p->kf = kiss_fftr_alloc((int)n, 0, NULL, NULL);
    p->ki = kiss_fftr_alloc((int)n, 1, NULL, NULL);
    p->fin = malloc(sizeof(float) * (size_t)n);
    p->fout = malloc(sizeof(float) * 2 * (size_t)(n / 2 + 1));
    if (!p->kf || !p->ki || !p->fin || !p->fout) goto fail;
    return p;
  }
  factorize(p);
  int64_t maxp = 1;
  for (int i = 0; i < p->n_factors; i++)
    if (p->factors[2 * i] > maxp) maxp = p->factors[2 * i];
  p->tw = malloc(sizeof(double complex) * (size_t)n);
  p->a = malloc(sizeof(double complex) * (size_t)n);
  p->b = malloc(sizeof(double complex) * (size_t)n);
  p->scratch = malloc(sizeof(double complex) * (size_t)maxp);
  if (!p->tw || !p->a || !p->b || !p->scratch) goto fail;
  for (int64_t j = 0; j < n; j++) {
    double ang = -2.0 * M_PI * (double)j / (double)n;
    p->tw[j] = cos(ang) + I * sin(ang);
  }
  return p;
fail:
  dsp_rfft_free(p);
  return NULL;
}

void dsp_rfft_free(dsp_rfft *p) {
  if (!p) return;
  if (p->kf) kiss_fftr_free(p->kf);
  if (p->ki) kiss_fftr_free(p->ki);
  free(p->fin);
  free(p->fout);
  free(p->tw);
  free(p->a);
  free(p->b);
  free(p->scratch);
  free(p);
}

/* out[0..n) = DFT of in[0, s, 2s, ...] where n = product of the remaining factors. fstride is
 * the twiddle stride (N / n). */
static void fft_rec(dsp_rfft *p, double complex *out, const double complex *in, int64_t fstride,
                    int64_t in_stride, int fi) {
  int64_t radix = p->factors[2 * fi], m = p->factors[2 * fi + 1];
  if (m == 1) {
    for (int64_t j = 0; j < radix; j++) out[j] = in[j * fstride * in_stride];
  } else {
    for (int64_t j = 0; j < radix; j++)
      fft_rec(p, out + j * m, in + j * fstride * in_stride, fstride * radix, in_stride, fi + 1);
  }
  /* generic radix butterfly: out[u + q1 m] = sum_q sub_q[u] w^{q (u + q1 m) fstride} */
  const int64_t N = p->n;
  double complex *s = p->scratch;
  for (int64_t u = 0; u < m; u++) {
    for (int64_t q = 0; q < radix; q++) s[q] = out[u + q * m];
    for (int64_t q1 = 0; q1 < radix; q1++) {
      int64_t k = u + q1 * m;
      double complex acc = s[0];
      int64_t step = (k * fstride) % N, idx = 0;
      for (int64_t q = 1; q < radix; q++) {
        idx += step;
        if (idx >= N) idx -= N;
        acc += s[q] * p->tw[idx];
      }
      out[k] = acc;
    }
  }
}

static void fft_complex(dsp_rfft *p, const double complex *in, double complex *out) {
  if (p->n == 1) {
    out[0] = in[0];
    return;
  }
  fft_rec(p, out, in, 1, 1, 0);
}

void dsp_rfft_forward(dsp_rfft *p, const double *in, double *out) {
  const int64_t n = p->n, nb = n / 2 + 1;
  if (p->kf) {
    for (int64_t i = 0; i < n; i++) p->fin[i] = (float)in[i];
    kiss_fftr(p->kf, p->fin, (kiss_fft_cpx *)p->fout);
    for (int64_t i = 0; i < 2 * nb; i++) out[i] = p->fout[i];
    return;
  }
  for (int64_t i = 0; i < n; i++) p->a[i] = in[i];
  fft_complex(p, p->a, p->b);
  for (int64_t f = 0; f < nb; f++) {
    out[2 * f] = creal(p->b[f]);
    out[2 * f + 1] = cimag(p->b[f]);
  }
}

void dsp_rfft_inverse(dsp_rfft *p, const double *in, double *out) {
  const int64_t n = p->n, nb = n / 2 + 1;
  if (p->ki) {
    for (int64_t i = 0; i < 2 * nb; i++) p->fout[i] = (float)in[i];
    kiss_fftri(p->ki, (const kiss_fft_cpx *)p->fout, p->fin);
    for (int64_t i = 0; i < n; i++) out[i] = p->fin[i];
    return;
  }
  /* Hermitian extension, conjugated so that the forward transform computes the inverse:
   * sum_f Z_f e^{+i..} = conj(sum_f conj(Z_f) e^{-i..}); the result is real. */
  for (int64_t f = 0; f < n; f++) {
    double complex z;
    if (f < nb) z = in[2 * f] + I * in[2 * f + 1];
    else z = in[2 * (n - f)] - I * in[2 * (n - f) + 1];
    if (f == 0 || (n % 2 == 0 && f == n / 2)) z = creal(z);
    p->a[f] = conj(z);
  }
  fft_complex(p, p->a, p->b);
  for (int64_t i = 0; i < n; i++) out[i] = creal(p->b[i]);
}
