/* Fused, in-place optimiser steps: one pass over each parameter instead of the five or six
 * temporaries that the same update written with tensor ops allocates. The arithmetic follows
 * PyTorch's single-tensor (foreach=False) implementations operation by operation, in the
 * parameter's dtype, so that float32 results match PyTorch to the last bit or two. */
#include <math.h>
#include <string.h>

#include "fsvc/device.h"
#include "fsvc/error.h"
#include "fsvc/ops_extra.h"

/* state tensors: same shape as param, contiguous, param's dtype */
static int check_state(const char *op, const fsvc_tensor *param, const fsvc_tensor *t,
                       const char *name) {
  char a[96], b[96];
  if (!t || !t->storage) {
    fsvc_set_error("%s: %s is missing or freed", op, name);
    return -1;
  }
  if (!fsvc_same_shape(param, t)) {
    fsvc_set_error("%s: %s has shape %s, the parameter %s", op, name,
                   fsvc_shape_str(t, a, sizeof a), fsvc_shape_str(param, b, sizeof b));
    return -1;
  }
  if (t->dtype != param->dtype || !fsvc_is_contiguous(t)) {
    fsvc_set_error("%s: %s must be contiguous %s like the parameter", op, name,
                   fsvc_dtype_name(param->dtype));
    return -1;
  }
  return 0;
}

/* param and grad checks; returns a contiguous gradient in param's dtype (new reference) */
static fsvc_tensor *check_param_grad(const char *op, fsvc_tensor *param, const fsvc_tensor *grad) {
  char a[96], b[96];
  if (!param || !param->storage || !grad || !grad->storage) {
    fsvc_set_error("%s: parameter or gradient is missing or freed", op);
    return NULL;
  }
  if (param->dtype != FSVC_FLOAT32 && param->dtype != FSVC_FLOAT64) {
    fsvc_set_error("%s: parameters must be float32 or float64, got %s", op,
                   fsvc_dtype_name(param->dtype));
    return NULL;
  }
  if (!fsvc_is_contiguous(param)) {
    fsvc_set_error("%s: the parameter must be contiguous", op);
    return NULL;
  }
  if (!fsvc_same_shape(param, grad)) {
    fsvc_set_error("%s: gradient %s and parameter %s differ in shape", op,
                   fsvc_shape_str(grad, a, sizeof a), fsvc_shape_str(param, b, sizeof b));
    return NULL;
  }
  if (grad->dtype == param->dtype) return fsvc_contiguous_raw(grad);
  return fsvc_to_dtype_raw(grad, param->dtype);
}

/* T is float or double; scalars are rounded to T as PyTorch's CPU kernels do. */
#define ADAM_KERNEL(T, SQRT)                                                                      \
  static void adam_##T(int64_t n, T *restrict p, const T *restrict g, T *restrict m,              \
                       T *restrict v, T *restrict vmax, const fsvc_adam_params *h) {              \
    const T decay = (T)(1.0 - h->lr * h->weight_decay), wd = (T)h->weight_decay;                  \
    const T b1 = (T)h->beta1, omb1 = (T)(1.0 - h->beta1);                                         \
    const T b2 = (T)h->beta2, omb2 = (T)(1.0 - h->beta2);                                         \
    const double bc1 = 1.0 - pow(h->beta1, (double)h->step);                                      \
    const T bc2_sqrt = (T)sqrt(1.0 - pow(h->beta2, (double)h->step));                             \
    const T neg_step = (T)(-(h->lr / bc1)), eps = (T)h->eps;                                      \
    const int decoupled = h->decoupled, use_wd = h->weight_decay != 0, maximize = h->maximize;    \
    _Pragma("omp parallel for if (n > 65536)")                                                    \
    for (int64_t i = 0; i < n; i++) {                                                             \
      T gi = maximize ? -g[i] : g[i];                                                             \
      T pi = p[i];                                                                                \
      if (decoupled) pi = pi * decay;                                                             \
      else if (use_wd) gi = gi + wd * pi;                                                         \
      T mi = m[i] * b1;                                                                           \
      mi = mi + omb1 * gi;                                                                        \
      T vi = v[i] * b2;                                                                           \
      vi = vi + omb2 * gi * gi;                                                                   \
      m[i] = mi;                                                                                  \
      v[i] = vi;                                                                                  \
      T second = vi;                                                                              \
      if (vmax) {                                                                                 \
        if (vi > vmax[i] || vi != vi) vmax[i] = vi;                                               \
        second = vmax[i];                                                                         \
      }                                                                                           \
      T denom = SQRT(second) / bc2_sqrt + eps;                                                    \
      p[i] = pi + neg_step * mi / denom; /* addcdiv: self + value * t1 / t2 */                    \
    }                                                                                             \
  }
ADAM_KERNEL(float, sqrtf)
ADAM_KERNEL(double, sqrt)

int fsvc_adam_step_(fsvc_tensor *param, const fsvc_tensor *grad, fsvc_tensor *exp_avg,
                    fsvc_tensor *exp_avg_sq, fsvc_tensor *max_exp_avg_sq,
                    const fsvc_adam_params *h) {
  FSVC_DISPATCH_CUDA_INT(adam_step_, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, h);
  const char *op = "adam_step";
  if (!h || h->step < 1) {
    fsvc_set_error("%s: step must be >= 1", op);
    return -1;
  }
  fsvc_tensor *g = check_param_grad(op, param, grad);
  if (!g) return -1;
  if (check_state(op, param, exp_avg, "exp_avg") || check_state(op, param, exp_avg_sq, "exp_avg_sq") ||
      (max_exp_avg_sq && check_state(op, param, max_exp_avg_sq, "max_exp_avg_sq"))) {
    fsvc_tensor_release(g);
    return -1;
  }
  int64_t n = fsvc_numel(param);
  if (param->dtype == FSVC_FLOAT32)
    adam_float(n, fsvc_data(param), fsvc_data(g), fsvc_data(exp_avg), fsvc_data(exp_avg_sq),
               max_exp_avg_sq ? fsvc_data(max_exp_avg_sq) : NULL, h);
  else
    adam_double(n, fsvc_data(param), fsvc_data(g), fsvc_data(exp_avg), fsvc_data(exp_avg_sq),
                max_exp_avg_sq ? fsvc_data(max_exp_avg_sq) : NULL, h);
  fsvc_tensor_release(g);
  return 0;
}

#define SGD_KERNEL(T)                                                                             \
  static void sgd_##T(int64_t n, T *restrict p, const T *restrict g, T *restrict buf,             \
                      const fsvc_sgd_params *h) {                                                 \
    const T wd = (T)h->weight_decay, mom = (T)h->momentum, omd = (T)(1.0 - h->dampening);         \
    const T neg_lr = (T)(-h->lr);                                                                 \
    const int use_wd = h->weight_decay != 0, first = h->first_step, nesterov = h->nesterov;       \
    const int maximize = h->maximize;                                                             \
    _Pragma("omp parallel for if (n > 65536)")                                                    \
    for (int64_t i = 0; i < n; i++) {                                                             \
      T d = maximize ? -g[i] : g[i];                                                              \
      if (use_wd) d = d + wd * p[i];                                                              \
      if (buf) {                                                                                  \
        T b = first ? d : buf[i] * mom + omd * d;                                                 \
        buf[i] = b;                                                                               \
        d = nesterov ? d + mom * b : b;                                                           \
      }                                                                                           \
      p[i] = p[i] + neg_lr * d;                                                                   \
    }                                                                                             \
  }
SGD_KERNEL(float)
SGD_KERNEL(double)

int fsvc_sgd_step_(fsvc_tensor *param, const fsvc_tensor *grad, fsvc_tensor *momentum_buf,
                   const fsvc_sgd_params *h) {
  FSVC_DISPATCH_CUDA_INT(sgd_step_, param, grad, momentum_buf, h);
  const char *op = "sgd_step";
  if (!h) {
    fsvc_set_error("%s: missing hyperparameters", op);
    return -1;
  }
  fsvc_tensor *g = check_param_grad(op, param, grad);
  if (!g) return -1;
  if (momentum_buf && check_state(op, param, momentum_buf, "momentum_buffer")) {
    fsvc_tensor_release(g);
    return -1;
  }
  int64_t n = fsvc_numel(param);
  if (param->dtype == FSVC_FLOAT32)
    sgd_float(n, fsvc_data(param), fsvc_data(g), momentum_buf ? fsvc_data(momentum_buf) : NULL, h);
  else
    sgd_double(n, fsvc_data(param), fsvc_data(g), momentum_buf ? fsvc_data(momentum_buf) : NULL, h);
  fsvc_tensor_release(g);
  return 0;
}
