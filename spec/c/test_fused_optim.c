/* Fused optimiser steps (core/ops/fused_optim.c) against the same updates written as plain
 * double-precision loops, for float64 and float32, Adam/AdamW with and without amsgrad, SGD with
 * momentum/nesterov; and bad input (shape, dtype, layout) rejected with an error. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "fsvc/error.h"
#include "fsvc/ops_extra.h"
#include "fsvc/random.h"

static fsvc_tensor *vec(int64_t n, fsvc_dtype dt, double scale) {
  fsvc_tensor *t = fsvc_randn(1, &n, dt, NULL);
  for (int64_t i = 0; i < n; i++) fsvc_set_flat(t, i, fsvc_get_flat(t, i) * scale);
  return t;
}

static void test_adam(fsvc_dtype dt, int decoupled, int amsgrad, double tol) {
  enum { N = 37, STEPS = 5 };
  int64_t n = N;
  fsvc_tensor *p = vec(n, dt, 1), *m = fsvc_zeros(1, &n, dt), *v = fsvc_zeros(1, &n, dt);
  fsvc_tensor *vmax = amsgrad ? fsvc_zeros(1, &n, dt) : NULL;
  double rp[N], rm[N] = {0}, rv[N] = {0}, rvmax[N] = {0};
  for (int i = 0; i < N; i++) rp[i] = fsvc_get_flat(p, i);
  fsvc_adam_params h = {.lr = 0.01, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0.05,
                        .maximize = 0, .decoupled = decoupled};
  for (int s = 1; s <= STEPS; s++) {
    fsvc_tensor *g = vec(n, dt, 0.5);
    h.step = s;
    CHECK(fsvc_adam_step_(p, g, m, v, vmax, &h) == 0);
    double bc1 = 1 - pow(h.beta1, s), bc2 = sqrt(1 - pow(h.beta2, s));
    for (int i = 0; i < N; i++) {
      double gi = fsvc_get_flat(g, i);
      if (decoupled) rp[i] *= 1 - h.lr * h.weight_decay;
      else gi += h.weight_decay * rp[i];
      rm[i] = h.beta1 * rm[i] + (1 - h.beta1) * gi;
      rv[i] = h.beta2 * rv[i] + (1 - h.beta2) * gi * gi;
      double second = rv[i];
      if (amsgrad) second = rvmax[i] = fmax(rvmax[i], rv[i]);
      rp[i] -= h.lr / bc1 * rm[i] / (sqrt(second) / bc2 + h.eps);
    }
    fsvc_tensor_release(g);
  }
  double worst = 0;
  for (int i = 0; i < N; i++) worst = fmax(worst, fabs(fsvc_get_flat(p, i) - rp[i]));
  CHECK_NEAR(worst, 0, tol);
  fsvc_tensor_release(p);
  fsvc_tensor_release(m);
  fsvc_tensor_release(v);
  fsvc_tensor_release(vmax);
}

static void test_sgd(fsvc_dtype dt, int nesterov, double tol) {
  enum { N = 23, STEPS = 4 };
  int64_t n = N;
  fsvc_tensor *p = vec(n, dt, 1), *buf = fsvc_zeros(1, &n, dt);
  double rp[N], rb[N] = {0};
  for (int i = 0; i < N; i++) rp[i] = fsvc_get_flat(p, i);
  fsvc_sgd_params h = {.lr = 0.05, .momentum = 0.9, .dampening = nesterov ? 0 : 0.1,
                       .weight_decay = 0.01, .nesterov = nesterov, .maximize = 0};
  for (int s = 1; s <= STEPS; s++) {
    fsvc_tensor *g = vec(n, dt, 1);
    h.first_step = s == 1;
    CHECK(fsvc_sgd_step_(p, g, buf, &h) == 0);
    for (int i = 0; i < N; i++) {
      double d = fsvc_get_flat(g, i) + h.weight_decay * rp[i];
      rb[i] = s == 1 ? d : h.momentum * rb[i] + (1 - h.dampening) * d;
      d = nesterov ? d + h.momentum * rb[i] : rb[i];
      rp[i] -= h.lr * d;
    }
    fsvc_tensor_release(g);
  }
  double worst = 0;
  for (int i = 0; i < N; i++) worst = fmax(worst, fabs(fsvc_get_flat(p, i) - rp[i]));
  CHECK_NEAR(worst, 0, tol);
  fsvc_tensor_release(p);
  fsvc_tensor_release(buf);
}

static void test_bad_input(void) {
  int64_t n3 = 3, n4 = 4, s22[2] = {2, 2};
  fsvc_tensor *p = fsvc_zeros(1, &n3, FSVC_FLOAT32), *g4 = fsvc_zeros(1, &n4, FSVC_FLOAT32);
  fsvc_tensor *g = fsvc_zeros(1, &n3, FSVC_FLOAT32), *m = fsvc_zeros(1, &n3, FSVC_FLOAT32);
  fsvc_tensor *v64 = fsvc_zeros(1, &n3, FSVC_FLOAT64), *pi = fsvc_zeros(1, &n3, FSVC_INT64);
  fsvc_tensor *sq = fsvc_zeros(2, s22, FSVC_FLOAT32);
  int64_t shape_t[2] = {2, 2}, stride_t[2] = {1, 2};
  fsvc_tensor *pt = fsvc_view_raw(sq, 2, shape_t, stride_t, 0); /* transposed: not contiguous */
  fsvc_adam_params h = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .step = 1};
  CHECK(fsvc_adam_step_(p, g4, m, m, NULL, &h) == -1);
  CHECK(strstr(fsvc_last_error(), "[4]") != NULL);
  CHECK(fsvc_adam_step_(p, g, m, v64, NULL, &h) == -1);
  CHECK(fsvc_adam_step_(pi, g, m, m, NULL, &h) == -1);
  CHECK(fsvc_adam_step_(pt, sq, sq, sq, NULL, &h) == -1);
  CHECK(fsvc_adam_step_(p, g, NULL, m, NULL, &h) == -1);
  h.step = 0;
  CHECK(fsvc_adam_step_(p, g, m, m, NULL, &h) == -1);
  fsvc_sgd_params sp = {.lr = 0.1};
  CHECK(fsvc_sgd_step_(p, g4, NULL, &sp) == -1);
  CHECK(fsvc_sgd_step_(p, g, v64, &sp) == -1);
  CHECK(fsvc_sgd_step_(p, g, NULL, NULL) == -1);
  /* a float64 gradient of a float32 parameter is converted */
  fsvc_set_flat(v64, 0, 1.0);
  CHECK(fsvc_sgd_step_(p, v64, NULL, &sp) == 0);
  CHECK_NEAR(fsvc_get_flat(p, 0), -0.1, 1e-7);
  fsvc_tensor *list[] = {p, g4, g, m, v64, pi, sq, pt};
  for (size_t i = 0; i < sizeof list / sizeof *list; i++) fsvc_tensor_release(list[i]);
}

int main(void) {
  fsvc_manual_seed(11);
  for (int decoupled = 0; decoupled < 2; decoupled++)
    for (int ams = 0; ams < 2; ams++) {
      test_adam(FSVC_FLOAT64, decoupled, ams, 1e-12);
      test_adam(FSVC_FLOAT32, decoupled, ams, 2e-6);
    }
  test_sgd(FSVC_FLOAT64, 0, 1e-12);
  test_sgd(FSVC_FLOAT64, 1, 1e-12);
  test_sgd(FSVC_FLOAT32, 1, 2e-6);
  test_bad_input();
  return CTEST_END();
}
