/* softmax, log_softmax and logsumexp along one dim.
 *
 * Numerically stable: the row maximum m is subtracted before exp, and the sum of exponentials is
 * accumulated in double. The input is viewed as [outer, R, inner] (R = the dim's size): inner = 1
 * (the last dim) walks contiguous rows; otherwise (e.g. dim 1 of [B, 512, T]) blocks of inner
 * columns keep their running max and sum in L1 while the R rows stream past. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fsvc/autocast.h"
#include "fsvc/device.h"
#include "fsvc/ops_reduce.h"
#include "reduce_internal.h"

#define BLK FSVC_REDUCE_BLOCK

/* Forward: y = softmax(x) or log_softmax(x) along R; if lse != NULL also/only writes
 * lse[o*inner+i] = logsumexp (then y may be NULL). */
#define DEFINE_SOFTMAX_FWD(NAME, T, EXP)                                                           \
  static void NAME(const T *x, T *y, double *lse, int64_t outer, int64_t R, int64_t inner,         \
                   int log_out) {                                                                  \
    int64_t nblk = (inner + BLK - 1) / BLK;                                                        \
    int64_t work = outer * R * inner;                                                              \
    _Pragma("omp parallel for schedule(static) if(work > FSVC_REDUCE_PAR_THRESHOLD)")              \
    for (int64_t t = 0; t < outer * nblk; t++) {                                                   \
      int64_t o = t / nblk, i0 = (t % nblk) * BLK;                                                 \
      int64_t w = inner - i0 < BLK ? inner - i0 : BLK;                                             \
      double m[BLK], s[BLK];                                                                       \
      const T *xb = x + o * R * inner + i0;                                                        \
      for (int64_t j = 0; j < w; j++) { m[j] = -INFINITY; s[j] = 0.0; }                            \
      for (int64_t r = 0; r < R; r++)                                                              \
        for (int64_t j = 0; j < w; j++) {                                                          \
          double v = xb[r * inner + j];                                                            \
          if (v > m[j] || v != v) m[j] = v;                                                        \
        }                                                                                          \
      /* every element -inf: keep m finite so exp(x - m) is 0, not NaN (lse = -inf) */            \
      double mm[BLK];                                                                              \
      for (int64_t j = 0; j < w; j++) mm[j] = isinf(m[j]) ? 0.0 : m[j];                            \
      /* softmax keeps exp(x - m) in y so exp runs once per element */                             \
      T *yb = y ? y + o * R * inner + i0 : NULL;                                                   \
      int keep = yb && !log_out;                                                                   \
      for (int64_t r = 0; r < R; r++)                                                              \
        for (int64_t j = 0; j < w; j++) {                                                          \
          T e = EXP((T)(xb[r * inner + j] - (T)mm[j]));                                            \
          s[j] += e;                                                                               \
          if (keep) yb[r * inner + j] = e;                                                         \
        }                                                                                          \
      if (lse)                                                                                     \
        for (int64_t j = 0; j < w; j++)                                                            \
          lse[o * inner + i0 + j] = (isinf(m[j]) && m[j] > 0) ? m[j] : mm[j] + log(s[j]);          \
      if (!yb) continue;                                                                           \
      if (log_out) {                                                                               \
        T c[BLK];                                                                                  \
        for (int64_t j = 0; j < w; j++) c[j] = (T)(mm[j] + log(s[j]));                             \
        for (int64_t r = 0; r < R; r++)                                                            \
          for (int64_t j = 0; j < w; j++) yb[r * inner + j] = xb[r * inner + j] - c[j];            \
      } else {                                                                                     \
        T inv[BLK];                                                                                \
        for (int64_t j = 0; j < w; j++) inv[j] = (T)(1.0 / s[j]);                                  \
        for (int64_t r = 0; r < R; r++)                                                            \
          for (int64_t j = 0; j < w; j++) yb[r * inner + j] *= inv[j];                             \
      }                                                                                            \
    }                                                                                              \
  }

/* inner == 1 special case: contiguous rows (the common softmax over the last dim). */
#define DEFINE_SOFTMAX_ROWS(NAME, T, EXP)                                                          \
  static void NAME(const T *x, T *y, double *lse, int64_t outer, int64_t R, int log_out) {         \
    int64_t work = outer * R;                                                                      \
    _Pragma("omp parallel for schedule(static) if(work > FSVC_REDUCE_PAR_THRESHOLD)")              \
    for (int64_t o = 0; o < outer; o++) {                                                          \
      const T *xr = x + o * R;                                                                     \
      double m = -INFINITY;                                                                        \
      for (int64_t r = 0; r < R; r++)                                                              \
        if (xr[r] > m || xr[r] != xr[r]) m = xr[r];                                                \
      double mm = isinf(m) ? 0.0 : m, s = 0.0;                                                     \
      T *yr = y ? y + o * R : NULL;                                                                \
      for (int64_t r = 0; r < R; r++) {                                                            \
        T e = EXP((T)(xr[r] - (T)mm));                                                             \
        s += e;                                                                                    \
        if (yr && !log_out) yr[r] = e;                                                             \
      }                                                                                            \
      if (lse) lse[o] = (isinf(m) && m > 0) ? m : mm + log(s);                                     \
      if (!yr) continue;                                                                           \
      if (log_out) {                                                                               \
        T c = (T)(mm + log(s));                                                                    \
        for (int64_t r = 0; r < R; r++) yr[r] = xr[r] - c;                                         \
      } else {                                                                                     \
        T inv = (T)(1.0 / s);                                                                      \
        for (int64_t r = 0; r < R; r++) yr[r] *= inv;                                              \
      }                                                                                            \
    }                                                                                              \
  }

DEFINE_SOFTMAX_FWD(softmax_cols_f32, float, expf)
DEFINE_SOFTMAX_FWD(softmax_cols_f64, double, exp)
DEFINE_SOFTMAX_ROWS(softmax_rows_f32, float, expf)
DEFINE_SOFTMAX_ROWS(softmax_rows_f64, double, exp)

static void softmax_kernel(const fsvc_tensor *x, fsvc_tensor *y, double *lse, int64_t outer,
                           int64_t R, int64_t inner, int log_out) {
  void *yp = y ? fsvc_data(y) : NULL;
  if (x->dtype == FSVC_FLOAT32) {
    if (inner == 1) softmax_rows_f32(fsvc_data(x), yp, lse, outer, R, log_out);
    else softmax_cols_f32(fsvc_data(x), yp, lse, outer, R, inner, log_out);
  } else {
    if (inner == 1) softmax_rows_f64(fsvc_data(x), yp, lse, outer, R, log_out);
    else softmax_cols_f64(fsvc_data(x), yp, lse, outer, R, inner, log_out);
  }
}

/* Backward: softmax   gx = y (g - sum_r g y)
 *           log_softmax gx = g - exp(y) sum_r g
 * computed in double per column, stored in T. */
#define DEFINE_SOFTMAX_BWD(NAME, T)                                                                \
  static void NAME(const T *y, const T *g, T *gx, int64_t outer, int64_t R, int64_t inner,         \
                   int log_out) {                                                                  \
    int64_t nblk = (inner + BLK - 1) / BLK;                                                        \
    int64_t work = outer * R * inner;                                                              \
    _Pragma("omp parallel for schedule(static) if(work > FSVC_REDUCE_PAR_THRESHOLD)")              \
    for (int64_t t = 0; t < outer * nblk; t++) {                                                   \
      int64_t o = t / nblk, i0 = (t % nblk) * BLK;                                                 \
      int64_t w = inner - i0 < BLK ? inner - i0 : BLK;                                             \
      int64_t base = o * R * inner + i0;                                                           \
      double s[BLK];                                                                               \
      for (int64_t j = 0; j < w; j++) s[j] = 0.0;                                                  \
      for (int64_t r = 0; r < R; r++)                                                              \
        for (int64_t j = 0; j < w; j++) {                                                          \
          int64_t q = base + r * inner + j;                                                        \
          s[j] += log_out ? (double)g[q] : (double)g[q] * (double)y[q];                            \
        }                                                                                          \
      for (int64_t r = 0; r < R; r++)                                                              \
        for (int64_t j = 0; j < w; j++) {                                                          \
          int64_t q = base + r * inner + j;                                                        \
          gx[q] = log_out ? (T)(g[q] - exp((double)y[q]) * s[j]) : (T)(y[q] * (g[q] - s[j]));      \
        }                                                                                          \
    }                                                                                              \
  }

DEFINE_SOFTMAX_BWD(softmax_bwd_f32, float)
DEFINE_SOFTMAX_BWD(softmax_bwd_f64, double)

/* saved[0] = y (the output); iarg[0] = dim, iarg[1] = log. */
static int softmax_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gi) {
  if (!n->edges[0].needs_grad) return 0;
  const fsvc_edge *e = &n->edges[0];
  int64_t outer, R, inner;
  fsvc_reduce_dim_layout(e->ndim, e->shape, (int)n->iarg[0], &outer, &R, &inner);
  fsvc_tensor *y = fsvc_reduce_contig_as(n->saved[0], e->dtype);
  fsvc_tensor *gc = fsvc_reduce_contig_as(g, e->dtype);
  fsvc_tensor *gx = fsvc_empty(e->ndim, e->shape, e->dtype);
  int rc = -1;
  if (y && gc && gx) {
    if (e->dtype == FSVC_FLOAT32)
      softmax_bwd_f32(fsvc_data(y), fsvc_data(gc), fsvc_data(gx), outer, R, inner, (int)n->iarg[1]);
    else
      softmax_bwd_f64(fsvc_data(y), fsvc_data(gc), fsvc_data(gx), outer, R, inner, (int)n->iarg[1]);
    gi[0] = gx;
    gx = NULL;
    rc = 0;
  }
  fsvc_tensor_release(y);
  fsvc_tensor_release(gc);
  fsvc_tensor_release(gx);
  return rc;
}

static fsvc_tensor *softmax_impl(const fsvc_tensor *a, int dim, int log_out) {
  const char *op = log_out ? "log_softmax" : "softmax";
  if (fsvc_reduce_check_input(a, op, 0) != 0) return NULL;
  int d = fsvc_reduce_norm_dim(dim, a->ndim, op);
  if (d < 0) return NULL;
  int64_t outer, R, inner;
  fsvc_reduce_dim_layout(a->ndim, a->shape, d, &outer, &R, &inner);
  fsvc_tensor *x = fsvc_contiguous_raw(a);
  fsvc_tensor *y = x ? fsvc_empty(a->ndim, a->shape, a->dtype) : NULL;
  if (!y) { fsvc_tensor_release(x); return NULL; }
  if (R > 0) softmax_kernel(x, y, NULL, outer, R, inner, log_out);
  fsvc_tensor_release(x);
  fsvc_tensor *in[1] = {(fsvc_tensor *)a};
  fsvc_node *n = fsvc_node_new(op, 1, in, softmax_backward);
  if (n) {
    n->iarg[0] = a->ndim ? d : 0;
    n->iarg[1] = log_out;
    fsvc_node_save(n, y);
  }
  fsvc_node_attach(n, y);
  return y;
}

fsvc_tensor *fsvc_softmax(const fsvc_tensor *a, int dim) {
  FSVC_DISPATCH_CUDA(softmax, a, dim);
  FSVC_CPU_LOWP("softmax", FSVC_RECAST_SAME_DTYPE,
                fsvc_softmax(FSVC_RECAST_ARG(0), dim), a);
  return softmax_impl(a, dim, 0);
}
fsvc_tensor *fsvc_log_softmax(const fsvc_tensor *a, int dim) {
  FSVC_DISPATCH_CUDA(log_softmax, a, dim);
  FSVC_CPU_LOWP("log_softmax", FSVC_RECAST_SAME_DTYPE,
                fsvc_log_softmax(FSVC_RECAST_ARG(0), dim), a);
  return softmax_impl(a, dim, 1);
}

/* ---- logsumexp ------------------------------------------------------------------------------ */
/* saved[0] = x, saved[1] = out; iarg[0] = mask of the dim. gx = g exp(x - out). */
static int logsumexp_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gi) {
  if (!n->edges[0].needs_grad) return 0;
  const fsvc_edge *e = &n->edges[0];
  unsigned mask = (unsigned)n->iarg[0];
  fsvc_tensor *ge = fsvc_reduce_expand(g, e->ndim, e->shape, mask, FSVC_FLOAT64);
  fsvc_tensor *oe = fsvc_reduce_expand(n->saved[1], e->ndim, e->shape, mask, FSVC_FLOAT64);
  fsvc_tensor *x = fsvc_reduce_contig_as(n->saved[0], FSVC_FLOAT64);
  int rc = -1;
  if (ge && oe && x) {
    double *gp = fsvc_data(ge);
    const double *op = fsvc_data(oe), *xp = fsvc_data(x);
    int64_t len = fsvc_numel(ge);
    for (int64_t i = 0; i < len; i++) gp[i] *= exp(xp[i] - op[i]);
    gi[0] = e->dtype == FSVC_FLOAT64 ? fsvc_tensor_retain(ge) : fsvc_to_dtype_raw(ge, e->dtype);
    rc = gi[0] ? 0 : -1;
  }
  fsvc_tensor_release(ge);
  fsvc_tensor_release(oe);
  fsvc_tensor_release(x);
  return rc;
}

fsvc_tensor *fsvc_logsumexp(const fsvc_tensor *a, int dim, int keepdim) {
  FSVC_DISPATCH_CUDA(logsumexp, a, dim, keepdim);
  FSVC_CPU_LOWP("logsumexp", FSVC_RECAST_SAME_DTYPE,
                fsvc_logsumexp(FSVC_RECAST_ARG(0), dim, keepdim), a);
  if (fsvc_reduce_check_input(a, "logsumexp", 0) != 0) return NULL;
  fsvc_reduce_plan pl;
  if (fsvc_reduce_plan_dim(&pl, a, dim, keepdim, "logsumexp") != 0) return NULL;
  int64_t n_out = pl.outer * pl.inner;
  double *res = malloc((size_t)(n_out > 0 ? n_out : 1) * sizeof *res);
  fsvc_tensor *out = NULL;
  if (!res) {
    fsvc_set_error("logsumexp: out of memory");
  } else {
    if (pl.R > 0) softmax_kernel(pl.x, NULL, res, pl.outer, pl.R, pl.inner, 1);
    else for (int64_t i = 0; i < n_out; i++) res[i] = -INFINITY; /* log of an empty sum */
    out = fsvc_reduce_output_from_double(&pl, res, a->dtype);
    free(res);
  }
  if (out) {
    fsvc_tensor *in[1] = {(fsvc_tensor *)a};
    fsvc_node *n = fsvc_node_new("logsumexp", 1, in, logsumexp_backward);
    if (n) {
      n->iarg[0] = pl.mask;
      n->iarg[1] = keepdim;
      fsvc_node_save(n, a);
      fsvc_node_save(n, out);
    }
    fsvc_node_attach(n, out);
  }
  fsvc_reduce_plan_free(&pl);
  return out;
}

__attribute__((constructor)) static void register_softmax_ops(void) {
  fsvc_register_differentiable("softmax");
  fsvc_register_differentiable("log_softmax");
  fsvc_register_differentiable("logsumexp");
}
