/* Optimiser steps and random fills on CUDA tensors (the fused kernels of fused_optim.cu and the
 * Philox generator of random.cu). fsvc_adam_step_ on a CUDA parameter runs the multi-tensor kernel
 * on a list of one; fsvc_gpu_adam_step_list updates a whole parameter list in one launch;
 * fsvc_gpu_adam_plan_step does so through a table cached on the device (fsvc.optim on CUDA). */
#include <stdlib.h>
#include <string.h>

#include "gpu_ops.h"

static int check_state(const char *op, const fsvc_tensor *param, const fsvc_tensor *t, const char *name) {
  char a[96], b[96];
  if (fsvc_gpu_check_tensor(op, t, name) != 0) return -1;
  if (!fsvc_same_shape(param, t) || t->dtype != param->dtype || !fsvc_is_contiguous(t)) {
    fsvc_set_error("%s: %s %s must be a contiguous %s tensor of the parameter's shape %s", op, name,
                   fsvc_shape_str(t, a, sizeof a), fsvc_dtype_name(param->dtype), fsvc_shape_str(param, b, sizeof b));
    return -1;
  }
  return 0;
}

static fsvc_tensor *param_grad(const char *op, fsvc_tensor *param, const fsvc_tensor *grad) {
  char a[96], b[96];
  if (fsvc_gpu_check_tensor(op, param, "parameter") != 0 || fsvc_gpu_check_tensor(op, grad, "gradient") != 0) return NULL;
  if ((param->dtype != FSVC_FLOAT32 && param->dtype != FSVC_FLOAT64) || !fsvc_is_contiguous(param)) {
    fsvc_set_error("%s: parameters must be contiguous float32 or float64", op);
    return NULL;
  }
  if (!fsvc_same_shape(param, grad)) {
    fsvc_set_error("%s: gradient %s and parameter %s differ in shape", op, fsvc_shape_str(grad, a, sizeof a),
                   fsvc_shape_str(param, b, sizeof b));
    return NULL;
  }
  return fsvc_gpu_contig_as(grad, param->dtype);
}

int fsvc_gpu_adam_step_list(int n, fsvc_tensor **params, const fsvc_tensor **grads, fsvc_tensor **exp_avg,
                            fsvc_tensor **exp_avg_sq, fsvc_tensor **max_exp_avg_sq, const fsvc_adam_params *h) {
  fsvc_gpu_adam_tensor *list = calloc((size_t)(n > 0 ? n : 1), sizeof *list);
  fsvc_tensor **gs = calloc((size_t)(n > 0 ? n : 1), sizeof *gs);
  int rc = list && gs ? 0 : -1;
  if (rc) fsvc_set_error("adam: out of memory");
  fsvc_dtype dt = n > 0 && params[0] ? params[0]->dtype : FSVC_FLOAT32;
  for (int i = 0; i < n && rc == 0; i++) {
    gs[i] = param_grad("adam", params[i], grads[i]);
    if (!gs[i] || check_state("adam", params[i], exp_avg[i], "exp_avg") != 0 ||
        check_state("adam", params[i], exp_avg_sq[i], "exp_avg_sq") != 0 ||
        (max_exp_avg_sq && max_exp_avg_sq[i] && check_state("adam", params[i], max_exp_avg_sq[i], "max_exp_avg_sq") != 0)) {
      rc = -1;
      break;
    }
    if (params[i]->dtype != dt) { fsvc_set_error("adam: parameters of one list must share a dtype"); rc = -1; break; }
    list[i].param = fsvc_data(params[i]);
    list[i].grad = fsvc_data(gs[i]);
    list[i].exp_avg = fsvc_data(exp_avg[i]);
    list[i].exp_avg_sq = fsvc_data(exp_avg_sq[i]);
    list[i].max_exp_avg_sq = max_exp_avg_sq && max_exp_avg_sq[i] ? fsvc_data(max_exp_avg_sq[i]) : NULL;
    list[i].n = fsvc_numel(params[i]);
  }
  if (rc == 0)
    rc = fsvc_gpu_adam_launch(dt, list, n, h->lr, h->beta1, h->beta2, h->eps, h->weight_decay, h->step,
                              h->maximize, h->decoupled);
  for (int i = 0; gs && i < n; i++) fsvc_tensor_release(gs[i]);
  free(gs);
  free(list);
  return rc;
}

/* ---- the cached table of a parameter list -------------------------------------------------------
 * An optimiser keeps one plan per parameter group. Its key is what the table holds: the data
 * pointers of every parameter, its state and step counter, and the sizes. A step with the same key
 * reuses the device table (no host->device copy, which also makes the step capturable); only the
 * gradients' pointers, which change at every eager step, are written by a kernel. */
enum { KEY_PTRS = 5 }; /* param, exp_avg, exp_avg_sq, max_exp_avg_sq, step */
struct fsvc_gpu_adam_plan {
  int n;
  fsvc_dtype dt;
  int capturable;
  void **key;     /* KEY_PTRS per tensor */
  int64_t *numel; /* per tensor */
  void *dev;
  size_t bytes;
  int64_t n_chunks;
  int64_t uploads;
};

fsvc_gpu_adam_plan *fsvc_gpu_adam_plan_new(void) {
  fsvc_gpu_adam_plan *plan = calloc(1, sizeof *plan);
  if (!plan) fsvc_set_error("adam: out of host memory");
  return plan;
}

static void plan_clear(fsvc_gpu_adam_plan *plan) {
  if (plan->dev) fsvc_gpu_release(NULL, plan->dev, plan->bytes);
  free(plan->key);
  free(plan->numel);
  plan->dev = NULL;
  plan->key = NULL;
  plan->numel = NULL;
  plan->bytes = 0;
  plan->n = 0;
  plan->n_chunks = 0;
}

void fsvc_gpu_adam_plan_free(fsvc_gpu_adam_plan *plan) {
  if (!plan) return;
  plan_clear(plan);
  free(plan);
}

int64_t fsvc_gpu_adam_plan_uploads(const fsvc_gpu_adam_plan *plan) { return plan ? plan->uploads : 0; }

static int check_counter(const char *op, const fsvc_tensor *t, const char *name) {
  if (fsvc_gpu_check_tensor(op, t, name) != 0) return -1;
  if (t->dtype != FSVC_FLOAT64 || fsvc_numel(t) != 1) {
    fsvc_set_error("%s: %s must be a one-element float64 CUDA tensor, got %s with %lld elements", op, name,
                   fsvc_dtype_name(t->dtype), (long long)fsvc_numel(t));
    return -1;
  }
  return 0;
}

int fsvc_gpu_adam_plan_step(fsvc_gpu_adam_plan *plan, int n, fsvc_tensor **params, const fsvc_tensor **grads,
                            fsvc_tensor **exp_avg, fsvc_tensor **exp_avg_sq, fsvc_tensor **max_exp_avg_sq,
                            fsvc_tensor **steps, const fsvc_tensor *lr, const fsvc_adam_params *h) {
  const char *op = "adam";
  if (!plan || !h || n < 0) { fsvc_set_error("adam: invalid arguments"); return -1; }
  if (!steps && h->step < 1) { fsvc_set_error("adam: step must be >= 1"); return -1; }
  if (lr && check_counter(op, lr, "lr") != 0) return -1;
  size_t m = (size_t)(n > 0 ? n : 1);
  fsvc_tensor **gs = calloc(m, sizeof *gs);
  const void **gptr = calloc(m, sizeof *gptr);
  void **key = calloc(m * KEY_PTRS, sizeof *key);
  int64_t *numel = calloc(m, sizeof *numel);
  int rc = gs && gptr && key && numel ? 0 : -1;
  if (rc) fsvc_set_error("adam: out of host memory");
  fsvc_dtype dt = n > 0 && params[0] ? params[0]->dtype : FSVC_FLOAT32;
  for (int i = 0; i < n && rc == 0; i++) {
    rc = -1;
    gs[i] = param_grad(op, params[i], grads[i]);
    if (!gs[i] || check_state(op, params[i], exp_avg[i], "exp_avg") != 0 ||
        check_state(op, params[i], exp_avg_sq[i], "exp_avg_sq") != 0 ||
        (max_exp_avg_sq && max_exp_avg_sq[i] && check_state(op, params[i], max_exp_avg_sq[i], "max_exp_avg_sq") != 0) ||
        (steps && check_counter(op, steps[i], "step") != 0))
      break;
    if (params[i]->dtype != dt) { fsvc_set_error("adam: parameters of one list must share a dtype"); break; }
    rc = 0;
    gptr[i] = fsvc_data(gs[i]);
    key[i * KEY_PTRS + 0] = fsvc_data(params[i]);
    key[i * KEY_PTRS + 1] = fsvc_data(exp_avg[i]);
    key[i * KEY_PTRS + 2] = fsvc_data(exp_avg_sq[i]);
    key[i * KEY_PTRS + 3] = max_exp_avg_sq && max_exp_avg_sq[i] ? fsvc_data(max_exp_avg_sq[i]) : NULL;
    key[i * KEY_PTRS + 4] = steps ? fsvc_data(steps[i]) : NULL;
    numel[i] = fsvc_numel(params[i]);
  }
  int same = rc == 0 && plan->key && plan->n == n && plan->dt == dt && plan->capturable == (steps != NULL) &&
             memcmp(plan->key, key, m * KEY_PTRS * sizeof *key) == 0 &&
             memcmp(plan->numel, numel, m * sizeof *numel) == 0;
  if (rc == 0 && !same) {
    fsvc_gpu_adam_tensor *list = calloc(m, sizeof *list);
    double **step_ptrs = steps ? calloc(m, sizeof *step_ptrs) : NULL;
    void *dev = NULL;
    size_t bytes = 0;
    int64_t n_chunks = 0;
    rc = list && (!steps || step_ptrs) ? 0 : -1;
    if (rc) fsvc_set_error("adam: out of host memory");
    for (int i = 0; i < n && rc == 0; i++) {
      list[i].param = key[i * KEY_PTRS + 0];
      list[i].exp_avg = key[i * KEY_PTRS + 1];
      list[i].exp_avg_sq = key[i * KEY_PTRS + 2];
      list[i].max_exp_avg_sq = key[i * KEY_PTRS + 3];
      list[i].n = numel[i];
      if (step_ptrs) step_ptrs[i] = key[i * KEY_PTRS + 4];
    }
    if (rc == 0) rc = fsvc_gpu_adam_plan_upload(list, step_ptrs, n, &dev, &bytes, &n_chunks);
    free(list);
    free(step_ptrs);
    if (rc == 0) {
      plan_clear(plan);
      plan->n = n;
      plan->dt = dt;
      plan->capturable = steps != NULL;
      plan->key = key;
      plan->numel = numel;
      plan->dev = dev;
      plan->bytes = bytes;
      plan->n_chunks = n_chunks;
      plan->uploads++;
      key = NULL;
      numel = NULL;
    }
  }
  if (rc == 0)
    rc = fsvc_gpu_adam_plan_launch(dt, plan->dev, plan->n_chunks, n, gptr, steps != NULL,
                                   lr ? (const double *)fsvc_data(lr) : NULL, h->lr, h->beta1, h->beta2, h->eps,
                                   h->weight_decay, h->step, h->maximize, h->decoupled);
  /* converted gradients go back to the cache after the kernels on this stream (stream-ordered) */
  for (int i = 0; gs && i < n; i++) fsvc_tensor_release(gs[i]);
  free(gs);
  free(gptr);
  free(key);
  free(numel);
  return rc;
}

static int gpu_adam_step_(fsvc_tensor *param, const fsvc_tensor *grad, fsvc_tensor *exp_avg, fsvc_tensor *exp_avg_sq,
                          fsvc_tensor *max_exp_avg_sq, const fsvc_adam_params *h) {
  if (!h) { fsvc_set_error("adam: missing hyper-parameters"); return -1; }
  return fsvc_gpu_adam_step_list(1, &param, &grad, &exp_avg, &exp_avg_sq, max_exp_avg_sq ? &max_exp_avg_sq : NULL, h);
}

static int gpu_sgd_step_(fsvc_tensor *param, const fsvc_tensor *grad, fsvc_tensor *buf, const fsvc_sgd_params *h) {
  if (!h) { fsvc_set_error("sgd: missing hyper-parameters"); return -1; }
  fsvc_tensor *g = param_grad("sgd", param, grad);
  if (!g) return -1;
  if (buf && check_state("sgd", param, buf, "momentum_buffer") != 0) { fsvc_tensor_release(g); return -1; }
  int rc = fsvc_gpu_sgd_launch(param->dtype, fsvc_data(param), fsvc_data(g), buf ? fsvc_data(buf) : NULL,
                               fsvc_numel(param), h->lr, h->momentum, h->dampening, h->weight_decay, h->nesterov,
                               h->maximize, h->first_step);
  fsvc_tensor_release(g);
  return rc;
}

/* Scales the gradients (contiguous, one float dtype) so that their joint 2-norm is <= max_norm;
 * returns the norm before clipping in *total, or, when total_dev is given, as a new 0-d float64
 * tensor on the gradients' device (nothing read back: capturable into a CUDA graph). */
int fsvc_gpu_clip_grad_norm_(int n, fsvc_tensor **grads, double max_norm, double *total,
                             fsvc_tensor **total_dev) {
  void **bufs = calloc((size_t)(n > 0 ? n : 1), sizeof *bufs);
  int64_t *ns = calloc((size_t)(n > 0 ? n : 1), sizeof *ns);
  int rc = bufs && ns ? 0 : -1;
  fsvc_dtype dt = n > 0 && grads[0] ? grads[0]->dtype : FSVC_FLOAT32;
  for (int i = 0; i < n && rc == 0; i++) {
    if (fsvc_gpu_check_tensor("clip_grad_norm_", grads[i], "gradient") != 0 || !fsvc_is_contiguous(grads[i]) ||
        grads[i]->dtype != dt || (dt != FSVC_FLOAT32 && dt != FSVC_FLOAT64)) {
      if (grads[i] && grads[i]->storage) fsvc_set_error("clip_grad_norm_: gradients must be contiguous float32/float64 of one dtype");
      rc = -1;
      break;
    }
    bufs[i] = fsvc_data(grads[i]);
    ns[i] = fsvc_numel(grads[i]);
  }
  fsvc_tensor *sq = NULL;
  if (rc == 0 && total_dev) {
    fsvc_device dev = n > 0 ? grads[0]->storage->device : (fsvc_device){FSVC_CUDA, 0};
    sq = fsvc_empty_on(0, NULL, FSVC_FLOAT64, dev);
    if (!sq) rc = -1;
  }
  if (rc == 0) rc = fsvc_gpu_clip_grad_norm_launch(dt, (void *const *)bufs, ns, n, max_norm, total,
                                                   sq ? (double *)fsvc_data(sq) : NULL);
  if (rc == 0 && total_dev) {
    /* no gradients: the kernels never ran, the norm is 0 */
    if (n == 0 && fsvc_fill_(sq, 0.0) != 0) rc = -1;
    *total_dev = rc == 0 ? fsvc_sqrt(sq) : NULL;
    if (!*total_dev) rc = -1;
  }
  fsvc_tensor_release(sq);
  free(bufs);
  free(ns);
  return rc;
}

/* Dynamic loss scaling's gradient pass: one launch per gradient and one flag read back. Strided
 * gradients go through a contiguous copy. */
static int gpu_amp_unscale_(int n, fsvc_tensor *const *grads, double inv_scale, int *found_inf) {
  if (n < 0 || (n > 0 && !grads) || !found_inf) {
    fsvc_set_error("amp_unscale_: invalid arguments (n %d)", n);
    return -1;
  }
  size_t m = (size_t)(n > 0 ? n : 1);
  void **bufs = calloc(m, sizeof *bufs);
  int64_t *ns = calloc(m, sizeof *ns);
  fsvc_dtype *dts = calloc(m, sizeof *dts);
  fsvc_tensor **work = calloc(m, sizeof *work); /* contiguous views or copies (new references) */
  int rc = bufs && ns && dts && work ? 0 : -1;
  if (rc) fsvc_set_error("amp_unscale_: out of memory");
  int k = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    fsvc_tensor *g = grads[i];
    if (!g) continue;
    if (fsvc_gpu_check_tensor("amp_unscale_", g, "gradient") != 0) { rc = -1; break; }
    if (!fsvc_dtype_is_float(g->dtype)) {
      fsvc_set_error("amp_unscale_: gradient %d is not a float tensor", i);
      rc = -1;
      break;
    }
    work[i] = fsvc_contiguous_raw(g);
    if (!work[i]) { rc = -1; break; }
    bufs[k] = fsvc_data(work[i]);
    ns[k] = fsvc_numel(work[i]);
    dts[k] = g->dtype;
    k++;
  }
  if (rc == 0) rc = fsvc_gpu_amp_unscale_launch(dts, (void *const *)bufs, ns, k, inv_scale, found_inf);
  for (int i = 0; work && i < n; i++) {
    if (rc == 0 && work[i] && work[i] != grads[i]) rc = fsvc_copy_(grads[i], work[i]);
    fsvc_tensor_release(work[i]);
  }
  free(bufs);
  free(ns);
  free(dts);
  free(work);
  return rc;
}

static int random_fill(fsvc_tensor *t, int normal, double a, double b, const char *op) {
  if (fsvc_gpu_check_tensor(op, t, "self") != 0) return -1;
  if (t->dtype != FSVC_FLOAT32 && t->dtype != FSVC_FLOAT64) {
    fsvc_set_error("%s: needs a float32 or float64 tensor on CUDA, got %s", op, fsvc_dtype_name(t->dtype));
    return -1;
  }
  if (fsvc_is_contiguous(t)) return fsvc_gpu_random_launch(fsvc_data(t), t->dtype, fsvc_numel(t), normal, a, b);
  fsvc_tensor *c = fsvc_empty_on(t->ndim, t->shape, t->dtype, t->storage->device);
  int rc = c ? fsvc_gpu_random_launch(fsvc_data(c), c->dtype, fsvc_numel(c), normal, a, b) : -1;
  if (rc == 0) rc = fsvc_copy_(t, c);
  fsvc_tensor_release(c);
  return rc;
}
static int gpu_uniform_(fsvc_tensor *t, double lo, double hi, fsvc_generator *g) {
  (void)g; /* the CPU generator does not drive the GPU: seed with fsvc.cuda.manual_seed */
  return random_fill(t, 0, lo, hi, "uniform_");
}
static int gpu_normal_(fsvc_tensor *t, double mean, double std, fsvc_generator *g) {
  (void)g;
  return random_fill(t, 1, mean, std, "normal_");
}

void fsvc_gpu_fill_optim(fsvc_cuda_op_table *t) {
  t->adam_step_ = gpu_adam_step_;
  t->sgd_step_ = gpu_sgd_step_;
  t->amp_unscale_ = gpu_amp_unscale_;
  t->uniform_ = gpu_uniform_;
  t->normal_ = gpu_normal_;
}
