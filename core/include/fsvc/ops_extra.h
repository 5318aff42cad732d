/* Extra ops used by fsvc.nn / fsvc.optim (Lua): fused, in-place optimiser steps.
 * No autograd: they change parameters and optimiser state in place. */
#ifndef FSVC_OPS_EXTRA_H
#define FSVC_OPS_EXTRA_H
#include <stdint.h>

#include "fsvc/tensor.h"

typedef struct {
  double lr, beta1, beta2, eps, weight_decay;
  int64_t step;  /* the step number after this update (1 for the first update) */
  int maximize;  /* ascend instead of descend */
  int decoupled; /* AdamW: p *= 1 - lr*wd; Adam: g += wd*p */
} fsvc_adam_params;

/* One Adam/AdamW update of `param` with PyTorch's formula (torch.optim._single_tensor_adam[w]):
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  (amsgrad: vmax = max(vmax, v), used for v)
 *   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 * param, grad, exp_avg, exp_avg_sq (and max_exp_avg_sq, NULL unless amsgrad) must have the same
 * shape; param and the state must be contiguous float32/float64 of one dtype (grad may be any
 * float dtype and strides). Returns 0, or -1 with an error naming the shapes. */
int fsvc_adam_step_(fsvc_tensor *param, const fsvc_tensor *grad, fsvc_tensor *exp_avg,
                    fsvc_tensor *exp_avg_sq, fsvc_tensor *max_exp_avg_sq,
                    const fsvc_adam_params *p);

typedef struct {
  double lr, momentum, dampening, weight_decay;
  int nesterov, maximize;
  int first_step; /* the momentum buffer is initialised to the gradient */
} fsvc_sgd_params;

/* One SGD update (torch.optim._single_tensor_sgd); momentum_buf is NULL when momentum == 0. */
int fsvc_sgd_step_(fsvc_tensor *param, const fsvc_tensor *grad, fsvc_tensor *momentum_buf,
                   const fsvc_sgd_params *p);

/* Gradient unscaling for mixed-precision training (fsvc.amp.GradScaler): every element of each
 * of the n gradients is multiplied in place by inv_scale, and *found_inf is set to 1 when any
 * element (before or after) is NaN or Inf, else 0. Any float dtype and strides; NULL entries are
 * skipped. The tensors must all be on the CPU or all on one CUDA device (one device pass per
 * gradient and one flag read back). Returns 0, or -1 with an error. */
int fsvc_amp_unscale_(int n, fsvc_tensor *const *grads, double inv_scale, int *found_inf);

#endif
