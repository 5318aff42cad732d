/* C unit tests of the DSP core (core/include/fsvc/dsp.h): the FFT paths against a direct DFT,
 * STFT/ISTFT identities, the adjoint (dot-product) test of the STFT and ISTFT backward passes,
 * magnitude, mel filterbank properties, oscillator streaming, pitch helpers, errors.
 * Torch comparisons and the reference fixtures are in spec/dsp_spec.lua. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "dsp/dsp_internal.h"
#include "fsvc/dsp.h"
#include "fsvc/fsvc.h"

static fsvc_tensor *randn(int ndim, const int64_t *shape, fsvc_dtype dt, unsigned *seed) {
  fsvc_tensor *t = fsvc_empty(ndim, shape, dt);
  for (int64_t i = 0; i < fsvc_numel(t); i++) {
    *seed = *seed * 1103515245u + 12345u;
    fsvc_set_flat(t, i, ((double)(*seed >> 8) / (double)(1u << 24)) * 2.0 - 1.0);
  }
  return t;
}

static double dot(const fsvc_tensor *a, const fsvc_tensor *b) {
  double s = 0;
  for (int64_t i = 0; i < fsvc_numel(a); i++) s += fsvc_get_flat(a, i) * fsvc_get_flat(b, i);
  return s;
}

static void test_fft_vs_dft(void) {
  const int64_t sizes[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 30, 64, 97, 120, 1920};
  for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
    int64_t n = sizes[si], nb = n / 2 + 1;
    for (int use_float = 0; use_float <= 1; use_float++) {
      dsp_rfft *p = dsp_rfft_new(n, use_float);
      CHECK(p != NULL);
      double *x = malloc(sizeof(double) * (size_t)n), *X = malloc(sizeof(double) * 2 * (size_t)nb);
      double *y = malloc(sizeof(double) * (size_t)n);
      for (int64_t k = 0; k < n; k++) x[k] = sin(0.7 * (double)k * (double)k + 0.3) + 0.1 * (double)k / (double)n;
      dsp_rfft_forward(p, x, X);
      double err = 0, scale = 1;
      for (int64_t f = 0; f < nb; f++) {
        double re = 0, im = 0;
        for (int64_t k = 0; k < n; k++) {
          double a = -2.0 * M_PI * (double)((f * k) % n) / (double)n;
          re += x[k] * cos(a);
          im += x[k] * sin(a);
        }
        err = fmax(err, fmax(fabs(re - X[2 * f]), fabs(im - X[2 * f + 1])));
        scale = fmax(scale, hypot(re, im));
      }
      CHECK_NEAR(err / scale, 0, use_float && n % 2 == 0 ? 1e-5 : 1e-12);
      /* inverse of the forward is n * identity */
      dsp_rfft_inverse(p, X, y);
      double e2 = 0;
      for (int64_t k = 0; k < n; k++) e2 = fmax(e2, fabs(y[k] / (double)n - x[k]));
      CHECK_NEAR(e2, 0, use_float && n % 2 == 0 ? 1e-5 : 1e-12);
      free(x);
      free(X);
      free(y);
      dsp_rfft_free(p);
    }
  }
}

static void test_stft_cosine(void) {
  /* a cosine at bin 4 of n_fft 32: non-centred frames have |X_4| = sum(w)/2 = 8 */
  int64_t L = 128;
  fsvc_tensor *x = fsvc_empty(1, &L, FSVC_FLOAT64);
  for (int64_t i = 0; i < L; i++) fsvc_set_flat(x, i, cos(2 * M_PI * 4 * (double)i / 32));
  fsvc_stft_options o;
  fsvc_stft_default_options(&o, 32);
  o.hop_length = 8;
  o.center = 0;
  fsvc_tensor *s = fsvc_stft(x, &o);
  CHECK(s && s->ndim == 3 && s->shape[0] == 17 && s->shape[1] == 13 && s->shape[2] == 2);
  fsvc_tensor *m = fsvc_magnitude(s, 1.0);
  CHECK_NEAR(fsvc_get_flat(m, 4 * 13 + 5), 8.0, 1e-12);
  CHECK_NEAR(fsvc_get_flat(m, 0 * 13 + 5), 0.0, 1e-12);
  CHECK_NEAR(fsvc_get_flat(m, 3 * 13 + 5), 4.0, 1e-12); /* Hann leakage: half the peak */
  fsvc_tensor_release(m);
  fsvc_tensor_release(s);
  fsvc_tensor_release(x);
}

/* <stft(x), g> == <x, stft^T(g)> through autograd, for several configurations and both dtypes */
static void test_stft_adjoint(void) {
  unsigned seed = 1;
  struct { int64_t n, hop, win; int center, onesided; fsvc_stft_pad pad; } cfg[] = {
      {16, 4, 16, 1, 1, FSVC_STFT_PAD_REFLECT}, {15, 4, 10, 1, 0, FSVC_STFT_PAD_CONSTANT},
      {12, 5, 12, 0, 1, FSVC_STFT_PAD_REFLECT}, {20, 3, 20, 1, 1, FSVC_STFT_PAD_REPLICATE},
  };
  for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++)
    for (int d = 0; d < 2; d++) {
      fsvc_dtype dt = d ? FSVC_FLOAT32 : FSVC_FLOAT64;
      int64_t shape[2] = {3, 61};
      fsvc_tensor *x = randn(2, shape, dt, &seed);
      x->requires_grad = 1;
      fsvc_stft_options o;
      fsvc_stft_default_options(&o, cfg[c].n);
      o.hop_length = cfg[c].hop;
      o.win_length = cfg[c].win;
      o.center = cfg[c].center;
      o.onesided = cfg[c].onesided;
      o.pad_mode = cfg[c].pad;
      fsvc_tensor *s = fsvc_stft(x, &o);
      CHECK(s != NULL);
      if (!s) continue;
      fsvc_tensor *g = randn(s->ndim, s->shape, dt, &seed);
      CHECK(fsvc_backward(s, g, 0) == 0);
      double lhs = dot(s, g), rhs = dot(x, x->grad);
      CHECK_NEAR(lhs, rhs, (d ? 1e-4 : 1e-10) * fmax(1.0, fabs(lhs)));
      /* istft adjoint on the same geometry (onesided only) */
      /* (non-centred Hann frames have a zero envelope at sample 0: istft refuses, as torch) */
      if (cfg[c].onesided && cfg[c].center && cfg[c].n % 2 == 0) {
        fsvc_tensor *spec = randn(s->ndim, s->shape, dt, &seed);
        spec->requires_grad = 1;
        fsvc_tensor *y = fsvc_istft(spec, &o, 0);
        CHECK(y != NULL);
        if (y) {
          fsvc_tensor *gy = randn(y->ndim, y->shape, dt, &seed);
          CHECK(fsvc_backward(y, gy, 0) == 0);
          double l2 = dot(y, gy), r2 = dot(spec, spec->grad);
          CHECK_NEAR(l2, r2, (d ? 1e-4 : 1e-10) * fmax(1.0, fabs(l2)));
          fsvc_tensor_release(gy);
          fsvc_tensor_release(y);
        }
        fsvc_tensor_release(spec);
      }
      fsvc_tensor_release(g);
      fsvc_tensor_release(s);
      fsvc_tensor_release(x);
    }
}

static void test_istft_roundtrip(void) {
  unsigned seed = 5;
  int64_t shape[2] = {2, 500};
  fsvc_tensor *x = randn(2, shape, FSVC_FLOAT64, &seed);
  fsvc_stft_options o;
  fsvc_stft_default_options(&o, 60); /* 2^2*3*5 through the double FFT */
  o.hop_length = 15;
  fsvc_tensor *s = fsvc_stft(x, &o);
  fsvc_tensor *y = fsvc_istft(s, &o, 500);
  CHECK(y && fsvc_same_shape(x, y));
  double e = 0;
  for (int64_t i = 0; y && i < 1000; i++) e = fmax(e, fabs(fsvc_get_flat(x, i) - fsvc_get_flat(y, i)));
  CHECK_NEAR(e, 0, 1e-12);
  fsvc_tensor_release(y);
  fsvc_tensor_release(s);
  fsvc_tensor_release(x);
}

static void test_mel(void) {
  fsvc_tensor *fb = fsvc_mel_filterbank(513, 0, 12000, 128, 24000, 0, FSVC_MEL_HTK, FSVC_FLOAT64);
  CHECK(fb && fb->shape[0] == 513 && fb->shape[1] == 128);
  /* triangles peak at most 1, are non-negative, and every filter is non-empty */
  double mx = 0, mn = 1;
  for (int64_t m = 0; fb && m < 128; m++) {
    double col = 0;
    for (int64_t k = 0; k < 513; k++) {
      double v = fsvc_get_flat(fb, k * 128 + m);
      mx = fmax(mx, v);
      mn = fmin(mn, v);
      col += v;
    }
    CHECK(col > 0);
  }
  CHECK(mx <= 1.0 + 1e-12);
  CHECK(mn >= 0);
  fsvc_tensor_release(fb);
  /* slaney area normalisation: each filter integrates to 1 over Hz (trapezoid on a fine grid) */
  fb = fsvc_mel_filterbank(4001, 0, 4000, 10, 8000, 1, FSVC_MEL_SLANEY, FSVC_FLOAT64);
  for (int64_t m = 0; fb && m < 10; m++) {
    double area = 0;
    for (int64_t k = 0; k < 4001; k++) area += fsvc_get_flat(fb, k * 10 + m); /* 1 Hz bins */
    CHECK_NEAR(area, 1.0, 1e-3);
  }
  fsvc_tensor_release(fb);
  CHECK(fsvc_mel_filterbank(1, 0, 100, 4, 8000, 0, FSVC_MEL_HTK, FSVC_FLOAT32) == NULL);
  CHECK(fsvc_mel_filterbank(9, 200, 100, 4, 8000, 0, FSVC_MEL_HTK, FSVC_FLOAT32) == NULL);
}

static void test_oscillator(void) {
  int64_t shape[3] = {2, 1, 9};
  fsvc_tensor *f0 = fsvc_empty(3, shape, FSVC_FLOAT64);
  for (int64_t i = 0; i < 18; i++) fsvc_set_flat(f0, i, i % 5 == 2 ? 0.0 : 80.0 + 17.0 * (double)i);
  fsvc_tensor *phase = NULL;
  fsvc_tensor *whole = fsvc_oscillate_harmonics(f0, 48, 4800, 2, 10.0, &phase);
  CHECK(whole && whole->shape[0] == 2 && whole->shape[1] == 3 && whole->shape[2] == 9 * 48);
  CHECK(phase && fsvc_get_flat(phase, 0) == 0.0);
  /* sample 1 of the fundamental advances by f0[0]/sr */
  CHECK_NEAR(fsvc_get_flat(phase, 1), 80.0 / 4800, 1e-15);
  /* streamed in chunks of 2, 3, 4 frames + flush */
  fsvc_oscillator *o = fsvc_oscillator_new(0, 48, 4800, 2, 10.0);
  int64_t pos = 0, got = 0, lens[] = {2, 3, 4};
  double err = 0;
  for (int c = 0; c <= 3; c++) {
    fsvc_tensor *y;
    if (c < 3) {
      fsvc_tensor *chunk = fsvc_narrow(f0, 2, pos, lens[c]);
      y = fsvc_oscillator_process(o, chunk);
      fsvc_tensor_release(chunk);
      pos += lens[c];
    } else {
      y = fsvc_oscillator_flush(o, FSVC_FLOAT64);
    }
    CHECK(y != NULL);
    if (!y) break;
    int64_t n = y->shape[2];
    for (int64_t r = 0; r < 6; r++)
      for (int64_t j = 0; j < n; j++)
        err = fmax(err, fabs(fsvc_get_flat(y, r * n + j) - fsvc_get_flat(whole, r * 432 + got + j)));
    got += n;
    fsvc_tensor_release(y);
  }
  CHECK(got == 432);
  CHECK_NEAR(err, 0, 1e-13);
  fsvc_oscillator_free(o);
  fsvc_tensor_release(whole);
  fsvc_tensor_release(phase);
  fsvc_tensor_release(f0);
}

static void test_pitch(void) {
  int64_t n = 4;
  fsvc_tensor *f = fsvc_empty(1, &n, FSVC_FLOAT64);
  double v[] = {0, 10, 20, 1e9};
  for (int i = 0; i < 4; i++) fsvc_set_flat(f, i, v[i]);
  fsvc_tensor *ids = fsvc_freq2id(f);
  CHECK(ids && ids->dtype == FSVC_INT64);
  CHECK(fsvc_get_flat(ids, 0) == 0 && fsvc_get_flat(ids, 1) == 0 && fsvc_get_flat(ids, 2) == 48 &&
        fsvc_get_flat(ids, 3) == 511);
  fsvc_tensor *back = fsvc_id2freq(ids, FSVC_FLOAT64);
  CHECK(back && fsvc_get_flat(back, 0) == 0 && fabs(fsvc_get_flat(back, 2) - 20) < 1e-12);
  fsvc_set_flat(f, 1, NAN);
  CHECK(fsvc_freq2id(f) == NULL);
  fsvc_tensor_release(back);
  fsvc_tensor_release(ids);
  fsvc_tensor_release(f);
}

static void test_errors(void) {
  int64_t L = 10;
  fsvc_tensor *x = fsvc_zeros(1, &L, FSVC_FLOAT32);
  fsvc_stft_options o;
  fsvc_stft_default_options(&o, 32);
  CHECK(fsvc_stft(x, &o) == NULL); /* reflect pad 16 >= 10 */
  CHECK(strstr(fsvc_last_error(), "stft") != NULL);
  CHECK(fsvc_stft(NULL, &o) == NULL);
  CHECK(fsvc_stft(x, NULL) == NULL);
  fsvc_tensor *ix = fsvc_zeros(1, &L, FSVC_INT64);
  fsvc_stft_default_options(&o, 4);
  CHECK(fsvc_stft(ix, &o) == NULL);
  CHECK(fsvc_magnitude(x, 1.0) == NULL); /* last dim 10, not 2 */
  CHECK(fsvc_energy(x, 480) == NULL);
  CHECK(fsvc_oscillator_new(1, 0, 24000, 0, 10) == NULL);
  CHECK(fsvc_stream_stft_process(NULL, x) == NULL);
  fsvc_tensor_free_data(x);
  CHECK(fsvc_stft(x, &o) == NULL);
  fsvc_tensor_release(ix);
  fsvc_tensor_release(x);
}

int main(void) {
  test_fft_vs_dft();
  test_stft_cosine();
  test_stft_adjoint();
  test_istft_roundtrip();
  test_mel();
  test_oscillator();
  test_pitch();
  test_errors();
  return CTEST_END();
}
