/* 1-D pooling over the last dim of [B, C, T] (or [C, T]) as PyTorch's avg_pool1d (ceil_mode false,
 * count_include_pad true: every window divides by `kernel`) and max_pool1d (padding acts as -inf).
 * Tout = (T + 2*padding - kernel) / stride + 1; padding <= kernel / 2 as PyTorch requires. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fsvc/autocast.h"
#include "fsvc/device.h"
#include "fsvc/ops_nn.h"
#include "nn_internal.h"

typedef struct {
  int64_t rows, T, To, k, s, p;
} pool_geom;

static int pool_check(const fsvc_tensor *x, int64_t kernel, int64_t *stride, int64_t padding,
                      const char *op, pool_geom *g) {
  char sx[128];
  if (nn_check_float(x, op, "input")) return -1;
  if (*stride <= 0) *stride = kernel;
  if (x->ndim != 2 && x->ndim != 3) {
    fsvc_set_error("%s: expected [B, C, T] or [C, T], got %s", op, fsvc_shape_str(x, sx, 128));
    return -1;
  }
  if (kernel < 1 || padding < 0 || padding > kernel / 2 || kernel > NN_MAX_PARAM ||
      *stride > NN_MAX_PARAM) {
    fsvc_set_error("%s: need 1 <= kernel, stride < 2^31 and 0 <= padding <= kernel/2 (kernel %lld, padding %lld)",
                   op, (long long)kernel, (long long)padding);
    return -1;
  }
  int64_t T = x->shape[x->ndim - 1];
  if (T + 2 * padding < kernel || fsvc_numel(x) == 0) {
    fsvc_set_error("%s: input %s is shorter than the kernel %lld (padding %lld) or empty", op,
                   fsvc_shape_str(x, sx, 128), (long long)kernel, (long long)padding);
    return -1;
  }
  g->T = T;
  g->rows = fsvc_numel(x) / T;
  g->k = kernel;
  g->s = *stride;
  g->p = padding;
  g->To = (T + 2 * padding - kernel) / *stride + 1;
  return 0;
}

/* The forwards' common start, for the geometry pool_check made before the dispatch: takes a
 * contiguous copy of x into *xc and returns the new output [..., To]; NULL (nothing left to
 * release) on failure. */
static fsvc_tensor *pool_begin(const fsvc_tensor *x, const pool_geom *g, fsvc_tensor **xc) {
  *xc = fsvc_contiguous_raw(x);
  if (!*xc) return NULL;
  int64_t shape[3];
  memcpy(shape, x->shape, sizeof(int64_t) * x->ndim);
  shape[x->ndim - 1] = g->To;
  fsvc_tensor *out = fsvc_empty(x->ndim, shape, x->dtype);
  if (!out) fsvc_tensor_release(*xc);
  return out;
}

/* ---- avg_pool1d ----------------------------------------------------------------------------- */
#define DEFINE_AVG(ET, SUF)                                                                        \
  static void avg_fwd_##SUF(const pool_geom *g, const ET *x, ET *y) {                              \
    _Pragma("omp parallel for if (g->rows * g->To * g->k > 65536)")                              \
    for (int64_t r = 0; r < g->rows; r++)                                                        \
      for (int64_t t = 0; t < g->To; t++) {                                                      \
        int64_t lo = t * g->s - g->p, hi = lo + g->k;                                            \
        if (lo < 0) lo = 0;                                                                      \
        if (hi > g->T) hi = g->T;                                                                \
        double acc = 0;                                                                          \
        for (int64_t i = lo; i < hi; i++) acc += x[r * g->T + i];                                \
        y[r * g->To + t] = (ET)(acc / (double)g->k);                                              \
      }                                                                                          \
  }                                                                                              \
  static void avg_bwd_##SUF(const pool_geom *g, const ET *gy, ET *gx) {                            \
    _Pragma("omp parallel for if (g->rows * g->To * g->k > 65536)")                              \
    for (int64_t r = 0; r < g->rows; r++) {                                                      \
      ET *gr = gx + r * g->T;                                                                     \
      for (int64_t i = 0; i < g->T; i++) gr[i] = 0;                                              \
      for (int64_t t = 0; t < g->To; t++) {                                                      \
        int64_t lo = t * g->s - g->p, hi = lo + g->k;                                            \
        if (lo < 0) lo = 0;                                                                      \
        if (hi > g->T) hi = g->T;                                                                \
        ET v = (ET)(gy[r * g->To + t] / (double)g->k);                                             \
        for (int64_t i = lo; i < hi; i++) gr[i] += v;                                            \
      }                                                                                          \
    }                                                                                            \
  }
DEFINE_AVG(float, f32)
DEFINE_AVG(double, f64)

static int avg_pool1d_backward(fsvc_node *node, const fsvc_tensor *grad, fsvc_tensor **grad_in) {
  fsvc_edge *e = &node->edges[0];
  pool_geom g = {0};
  g.T = e->shape[e->ndim - 1];
  g.k = node->iarg[0]; g.s = node->iarg[1]; g.p = node->iarg[2]; g.To = node->iarg[3];
  fsvc_tensor *gc = fsvc_contiguous_raw(grad);
  fsvc_tensor *gx = gc ? fsvc_empty(e->ndim, e->shape, e->dtype) : NULL;
  if (!gx) { fsvc_tensor_release(gc); return -1; }
  g.rows = fsvc_numel(gx) / g.T;
  if (e->dtype == FSVC_FLOAT32) avg_bwd_f32(&g, fsvc_data(gc), fsvc_data(gx));
  else avg_bwd_f64(&g, fsvc_data(gc), fsvc_data(gx));
  fsvc_tensor_release(gc);
  grad_in[0] = gx;
  return 0;
}

fsvc_tensor *fsvc_avg_pool1d(const fsvc_tensor *x, int64_t kernel, int64_t stride, int64_t padding) {
  pool_geom g;
  int64_t checked_stride = stride; /* the checks of every device, before the dispatch */
  if (pool_check(x, kernel, &checked_stride, padding, "avg_pool1d", &g) != 0) return NULL;
  FSVC_DISPATCH_CUDA(avg_pool1d, x, kernel, stride, padding);
  FSVC_CPU_LOWP("avg_pool1d", FSVC_RECAST_SAME_DTYPE,
                fsvc_avg_pool1d(FSVC_RECAST_ARG(0), kernel, stride, padding), x);
  fsvc_tensor *xc, *out = pool_begin(x, &g, &xc);
  if (!out) return NULL;
  if (x->dtype == FSVC_FLOAT32) avg_fwd_f32(&g, fsvc_data(xc), fsvc_data(out));
  else avg_fwd_f64(&g, fsvc_data(xc), fsvc_data(out));
  fsvc_tensor_release(xc);
  fsvc_node *n = fsvc_node_new("avg_pool1d", 1, (fsvc_tensor *[]){(fsvc_tensor *)x},
                               avg_pool1d_backward);
  if (n) {
    n->iarg[0] = g.k; n->iarg[1] = g.s; n->iarg[2] = g.p; n->iarg[3] = g.To;
    fsvc_node_attach(n, out);
  }
  return out;
}

/* ---- max_pool1d: the forward records each window's argmax (first maximum; NaN wins as in
 * PyTorch) for the backward ----------------------------------------------------------------- */
#define DEFINE_MAX(ET, SUF)                                                                        \
  static void max_fwd_##SUF(const pool_geom *g, const ET *x, ET *y, int64_t *arg) {                \
    _Pragma("omp parallel for if (g->rows * g->To * g->k > 65536)")                              \
    for (int64_t r = 0; r < g->rows; r++)                                                        \
      for (int64_t t = 0; t < g->To; t++) {                                                      \
        int64_t lo = t * g->s - g->p, hi = lo + g->k;                                            \
        if (lo < 0) lo = 0;                                                                      \
        if (hi > g->T) hi = g->T;                                                                \
        int64_t best = lo;                                                                       \
        ET bv = x[r * g->T + lo];                                                                 \
        for (int64_t i = lo + 1; i < hi && !isnan(bv); i++) {                                    \
          ET v = x[r * g->T + i];                                                                 \
          if (v > bv || isnan(v)) { bv = v; best = i; }                                          \
        }                                                                                        \
        y[r * g->To + t] = bv;                                                                   \
        if (arg) arg[r * g->To + t] = best;                                                      \
      }                                                                                          \
  }
DEFINE_MAX(float, f32)
DEFINE_MAX(double, f64)

static int max_pool1d_backward(fsvc_node *node, const fsvc_tensor *grad, fsvc_tensor **grad_in) {
  fsvc_edge *e = &node->edges[0];
  const int64_t *arg = node->ctx;
  int64_t T = e->shape[e->ndim - 1], To = node->iarg[0];
  fsvc_tensor *gc = fsvc_contiguous_raw(grad);
  fsvc_tensor *gx = gc ? fsvc_zeros(e->ndim, e->shape, e->dtype) : NULL;
  if (!gx || !arg) {
    fsvc_tensor_release(gc);
    fsvc_tensor_release(gx);
    if (!arg) fsvc_set_error("max_pool1d backward: saved indices were released");
    return -1;
  }
  int64_t rows = fsvc_numel(gx) / T;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t t = 0; t < To; t++) {
      int64_t i = r * T + arg[r * To + t];
      if (e->dtype == FSVC_FLOAT32) ((float *)fsvc_data(gx))[i] += ((float *)fsvc_data(gc))[r * To + t];
      else ((double *)fsvc_data(gx))[i] += ((double *)fsvc_data(gc))[r * To + t];
    }
  fsvc_tensor_release(gc);
  grad_in[0] = gx;
  return 0;
}

fsvc_tensor *fsvc_max_pool1d(const fsvc_tensor *x, int64_t kernel, int64_t stride, int64_t padding) {
  pool_geom g;
  int64_t checked_stride = stride; /* the checks of every device, before the dispatch */
  if (pool_check(x, kernel, &checked_stride, padding, "max_pool1d", &g) != 0) return NULL;
  FSVC_DISPATCH_CUDA(max_pool1d, x, kernel, stride, padding);
  FSVC_CPU_LOWP("max_pool1d", FSVC_RECAST_SAME_DTYPE,
                fsvc_max_pool1d(FSVC_RECAST_ARG(0), kernel, stride, padding), x);
  fsvc_tensor *xc, *out = pool_begin(x, &g, &xc);
  if (!out) return NULL;
  int want_grad = fsvc_needs_grad(x);
  int64_t *arg = want_grad ? malloc(sizeof(int64_t) * (size_t)(g.rows * g.To)) : NULL;
  if (want_grad && !arg) {
    fsvc_tensor_release(xc);
    fsvc_tensor_release(out);
    fsvc_set_error("max_pool1d: out of memory");
    return NULL;
  }
  if (x->dtype == FSVC_FLOAT32) max_fwd_f32(&g, fsvc_data(xc), fsvc_data(out), arg);
  else max_fwd_f64(&g, fsvc_data(xc), fsvc_data(out), arg);
  fsvc_tensor_release(xc);
  fsvc_node *n = want_grad ? fsvc_node_new("max_pool1d", 1, (fsvc_tensor *[]){(fsvc_tensor *)x},
                                           max_pool1d_backward)
                           : NULL;
  if (n) {
    n->iarg[0] = g.To;
    n->ctx = arg;
    n->ctx_free = free;
    fsvc_node_attach(n, out);
  } else {
    free(arg);
  }
  return out;
}

__attribute__((constructor)) static void register_ops(void) {
  fsvc_register_differentiable("avg_pool1d");
  fsvc_register_differentiable("max_pool1d");
}
