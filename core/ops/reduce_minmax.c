/* max / min over one dim (values and indices), over everything, and argmax / argmin.
 *
 * One kernel finds, for each output element of the [outer, R, inner] layout, the index of the
 * first extremum along R; values are then read at those indices, so int64 stays exact. NaN wins
 * over every number (PyTorch propagates NaN through max and min). Gradients go to the chosen
 * index (max/min over a dim) or are shared among ties (over everything), as in PyTorch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fsvc/autocast.h"
#include "fsvc/device.h"
#include "fsvc/ops_reduce.h"
#include "reduce_internal.h"

/* v replaces the current best b: strictly better, or the first NaN. Scanning in index order
 * with a strict comparison keeps the lowest index among ties. */
#define BETTER(v, b, want_max) (((want_max) ? (v) > (b) : (v) < (b)) || ((v) != (v) && (b) == (b)))

#define DEFINE_ARGEXT(NAME, T)                                                                     \
  static void NAME(const T *x, int64_t outer, int64_t R, int64_t inner, int64_t *idx,              \
                   int want_max) {                                                                 \
    int64_t work = outer * R * inner;                                                              \
    if (inner == 1) {                                                                              \
      _Pragma("omp parallel for schedule(static) if(work > FSVC_REDUCE_PAR_THRESHOLD)")            \
      for (int64_t o = 0; o < outer; o++) {                                                        \
        const T *row = x + o * R;                                                                  \
        T b = row[0];                                                                              \
        int64_t bi = 0;                                                                            \
        for (int64_t r = 1; r < R; r++)                                                            \
          if (BETTER(row[r], b, want_max)) { b = row[r]; bi = r; }                                 \
        idx[o] = bi;                                                                               \
      }                                                                                            \
      return;                                                                                      \
    }                                                                                              \
    int64_t nblk = (inner + FSVC_REDUCE_BLOCK - 1) / FSVC_REDUCE_BLOCK;                            \
    _Pragma("omp parallel for schedule(static) if(work > FSVC_REDUCE_PAR_THRESHOLD)")              \
    for (int64_t t = 0; t < outer * nblk; t++) {                                                   \
      int64_t o = t / nblk, i0 = (t % nblk) * FSVC_REDUCE_BLOCK;                                   \
      int64_t w = inner - i0 < FSVC_REDUCE_BLOCK ? inner - i0 : FSVC_REDUCE_BLOCK;                 \
      T b[FSVC_REDUCE_BLOCK];                                                                      \
      int64_t bi[FSVC_REDUCE_BLOCK];                                                               \
      const T *first = x + o * R * inner + i0;                                                     \
      for (int64_t j = 0; j < w; j++) { b[j] = first[j]; bi[j] = 0; }                             \
      for (int64_t r = 1; r < R; r++) {                                                            \
        const T *row = x + (o * R + r) * inner + i0;                                               \
        for (int64_t j = 0; j < w; j++)                                                            \
          if (BETTER(row[j], b[j], want_max)) { b[j] = row[j]; bi[j] = r; }                        \
      }                                                                                            \
      memcpy(idx + o * inner + i0, bi, (size_t)w * sizeof(int64_t));                              \
    }                                                                                              \
  }

DEFINE_ARGEXT(argext_f32, float)
DEFINE_ARGEXT(argext_f64, double)
DEFINE_ARGEXT(argext_i64, int64_t)

/* Indices of the extremum per output element as an int64 tensor of the plan's output shape. */
static fsvc_tensor *plan_argext(const fsvc_reduce_plan *pl, int want_max, const char *op) {
  if (pl->R == 0) {
    fsvc_set_error("%s: cannot reduce over an empty dim (size 0); the result would be undefined", op);
    return NULL;
  }
  fsvc_tensor *idx = fsvc_empty(pl->out_ndim, pl->out_shape, FSVC_INT64);
  if (!idx) return NULL;
  int64_t *ip = fsvc_data(idx);
  switch (pl->x->dtype) {
    case FSVC_FLOAT32: argext_f32(fsvc_data(pl->x), pl->outer, pl->R, pl->inner, ip, want_max); break;
    case FSVC_FLOAT64: argext_f64(fsvc_data(pl->x), pl->outer, pl->R, pl->inner, ip, want_max); break;
    default: argext_i64(fsvc_data(pl->x), pl->outer, pl->R, pl->inner, ip, want_max); break;
  }
  return idx;
}

/* values[o, i] = x[o, idx[o, i], i] in x's dtype. */
static fsvc_tensor *gather_values(const fsvc_reduce_plan *pl, const fsvc_tensor *idx) {
  fsvc_tensor *out = fsvc_empty(pl->out_ndim, pl->out_shape, pl->x->dtype);
  if (!out) return NULL;
  const int64_t *ip = fsvc_data(idx);
  int64_t R = pl->R, inner = pl->inner;
  size_t es = fsvc_dtype_size(pl->x->dtype);
  const char *x = fsvc_data(pl->x);
  char *y = fsvc_data(out);
  for (int64_t o = 0; o < pl->outer; o++)
    for (int64_t i = 0; i < inner; i++)
      memcpy(y + (o * inner + i) * (int64_t)es, x + ((o * R + ip[o * inner + i]) * inner + i) * (int64_t)es, es);
  return out;
}

/* ---- max / min over a dim ------------------------------------------------------------------- */
/* saved[0] = indices; iarg[0] = dim, iarg[1] = keepdim. */
static int extremum_dim_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gi) {
  if (!n->edges[0].needs_grad) return 0;
  gi[0] = fsvc_reduce_picked_grad(&n->edges[0], (int)n->iarg[0], 1, g, n->saved[0]);
  return gi[0] ? 0 : -1;
}

static fsvc_tensor *extremum_dim(const fsvc_tensor *a, int dim, int keepdim, fsvc_tensor **indices,
                                 int want_max) {
  const char *op = want_max ? "max" : "min";
  if (indices) *indices = NULL;
  if (fsvc_reduce_check_input(a, op, 1) != 0) return NULL;
  int d = fsvc_reduce_norm_dim(dim, a->ndim, op);
  if (d < 0) return NULL;
  fsvc_reduce_plan pl;
  if (fsvc_reduce_plan_dim(&pl, a, d, keepdim, op) != 0) return NULL;
  fsvc_tensor *idx = plan_argext(&pl, want_max, op);
  fsvc_tensor *out = idx ? gather_values(&pl, idx) : NULL;
  if (out) {
    fsvc_tensor *in[1] = {(fsvc_tensor *)a};
    fsvc_node *n = fsvc_node_new(op, 1, in, extremum_dim_backward);
    if (n) {
      n->iarg[0] = a->ndim ? d : 0;
      n->iarg[1] = keepdim;
      fsvc_node_save(n, idx);
    }
    fsvc_node_attach(n, out);
  }
  if (indices && out) *indices = idx;
  else fsvc_tensor_release(idx);
  fsvc_reduce_plan_free(&pl);
  return out;
}

/* The empty-input rule of max/min/argmax/argmin, the same on every device (checked before the
 * dispatch): a reduction over no elements has no answer; an empty tensor reduced along a dim that
 * is not empty gives an empty result. all: over every element, else over `dim`. */
static int check_extremum(const fsvc_tensor *a, int all, int dim, const char *op) {
  if (!a || !a->storage) return 0; /* the device's own check names it */
  if (all) {
    if (fsvc_numel(a) > 0) return 0;
    fsvc_set_error("%s: the tensor is empty; max/min of no elements is undefined", op);
    return -1;
  }
  int d = fsvc_reduce_norm_dim(dim, a->ndim, op);
  if (d < 0) return -1;
  if (a->ndim == 0 || a->shape[d] > 0) return 0;
  fsvc_set_error("%s: cannot reduce over an empty dim (size 0); the result would be undefined", op);
  return -1;
}

fsvc_tensor *fsvc_max_dim(const fsvc_tensor *a, int dim, int keepdim, fsvc_tensor **indices) {
  if (check_extremum(a, 0, dim, "max") != 0) return NULL;
  FSVC_DISPATCH_CUDA(max_dim, a, dim, keepdim, indices);
  FSVC_CPU_LOWP("max", FSVC_RECAST_SAME_DTYPE,
                fsvc_max_dim(FSVC_RECAST_ARG(0), dim, keepdim, indices), a);
  return extremum_dim(a, dim, keepdim, indices, 1);
}

fsvc_tensor *fsvc_min_dim(const fsvc_tensor *a, int dim, int keepdim, fsvc_tensor **indices) {
  if (check_extremum(a, 0, dim, "min") != 0) return NULL;
  FSVC_DISPATCH_CUDA(min_dim, a, dim, keepdim, indices);
  FSVC_CPU_LOWP("min", FSVC_RECAST_SAME_DTYPE,
                fsvc_min_dim(FSVC_RECAST_ARG(0), dim, keepdim, indices), a);
  return extremum_dim(a, dim, keepdim, indices, 0);
}

/* ---- max / min of everything ---------------------------------------------------------------- */
/* saved[0] = x, saved[1] = the 0-d result: the gradient is shared evenly among all elements equal
 * to the result (PyTorch's choice for max()/min() without a dim). */
static int extremum_all_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gi) {
  if (!n->edges[0].needs_grad) return 0;
  const fsvc_edge *e = &n->edges[0];
  fsvc_tensor *x = fsvc_reduce_contig_as(n->saved[0], FSVC_FLOAT64);
  fsvc_tensor *out = fsvc_zeros(e->ndim, e->shape, FSVC_FLOAT64);
  int rc = -1;
  if (x && out) {
    double m = fsvc_get_flat(n->saved[1], 0), gv = fsvc_get_flat(g, 0);
    const double *xp = fsvc_data(x);
    double *op = fsvc_data(out);
    int64_t len = fsvc_numel(x), count = 0;
    for (int64_t i = 0; i < len; i++) count += xp[i] == m || (isnan(m) && isnan(xp[i]));
    for (int64_t i = 0; i < len; i++)
      if (xp[i] == m || (isnan(m) && isnan(xp[i]))) op[i] = gv / (double)count;
    gi[0] = e->dtype == FSVC_FLOAT64 ? fsvc_tensor_retain(out) : fsvc_to_dtype_raw(out, e->dtype);
    rc = gi[0] ? 0 : -1;
  }
  fsvc_tensor_release(x);
  fsvc_tensor_release(out);
  return rc;
}

static fsvc_tensor *extremum_all(const fsvc_tensor *a, int want_max) {
  const char *op = want_max ? "max" : "min";
  if (fsvc_reduce_check_input(a, op, 1) != 0) return NULL;
  fsvc_reduce_plan pl;
  if (fsvc_reduce_plan_init(&pl, a, 0, NULL, 0, op) != 0) return NULL;
  if (pl.R == 0) {
    fsvc_set_error("%s: the tensor is empty; max/min of no elements is undefined", op);
    fsvc_reduce_plan_free(&pl);
    return NULL;
  }
  fsvc_tensor *idx = plan_argext(&pl, want_max, op);
  fsvc_tensor *out = idx ? gather_values(&pl, idx) : NULL;
  if (out) {
    fsvc_tensor *in[1] = {(fsvc_tensor *)a};
    fsvc_node *n = fsvc_node_new(op, 1, in, extremum_all_backward);
    if (n) {
      fsvc_node_save(n, a);
      fsvc_node_save(n, out);
    }
    fsvc_node_attach(n, out);
  }
  fsvc_tensor_release(idx);
  fsvc_reduce_plan_free(&pl);
  return out;
}

fsvc_tensor *fsvc_max_all(const fsvc_tensor *a) {
  if (check_extremum(a, 1, 0, "max") != 0) return NULL;
  FSVC_DISPATCH_CUDA(max_all, a);
  FSVC_CPU_LOWP("max", FSVC_RECAST_SAME_DTYPE,
                fsvc_max_all(FSVC_RECAST_ARG(0)), a);
  return extremum_all(a, 1);
}
fsvc_tensor *fsvc_min_all(const fsvc_tensor *a) {
  if (check_extremum(a, 1, 0, "min") != 0) return NULL;
  FSVC_DISPATCH_CUDA(min_all, a);
  FSVC_CPU_LOWP("min", FSVC_RECAST_SAME_DTYPE,
                fsvc_min_all(FSVC_RECAST_ARG(0)), a);
  return extremum_all(a, 0);
}

/* ---- argmax / argmin ------------------------------------------------------------------------ */
static fsvc_tensor *arg_dim(const fsvc_tensor *a, int dim, int keepdim, int want_max) {
  const char *op = want_max ? "argmax" : "argmin";
  if (fsvc_reduce_check_input(a, op, 1) != 0) return NULL;
  fsvc_reduce_plan pl;
  if (fsvc_reduce_plan_dim(&pl, a, dim, keepdim, op) != 0) return NULL;
  fsvc_tensor *idx = plan_argext(&pl, want_max, op);
  fsvc_reduce_plan_free(&pl);
  return idx;
}

static fsvc_tensor *arg_all(const fsvc_tensor *a, int want_max) {
  const char *op = want_max ? "argmax" : "argmin";
  if (fsvc_reduce_check_input(a, op, 1) != 0) return NULL;
  fsvc_reduce_plan pl;
  if (fsvc_reduce_plan_init(&pl, a, 0, NULL, 0, op) != 0) return NULL;
  fsvc_tensor *idx = plan_argext(&pl, want_max, op);
  fsvc_reduce_plan_free(&pl);
  return idx;
}

fsvc_tensor *fsvc_argmax(const fsvc_tensor *a, int dim, int keepdim) {
  if (check_extremum(a, 0, dim, "argmax") != 0) return NULL;
  FSVC_DISPATCH_CUDA(argmax, a, dim, keepdim);
  FSVC_CPU_LOWP("argmax", FSVC_RECAST_SAME_DTYPE,
                fsvc_argmax(FSVC_RECAST_ARG(0), dim, keepdim), a);
  return arg_dim(a, dim, keepdim, 1);
}
fsvc_tensor *fsvc_argmin(const fsvc_tensor *a, int dim, int keepdim) {
  if (check_extremum(a, 0, dim, "argmin") != 0) return NULL;
  FSVC_DISPATCH_CUDA(argmin, a, dim, keepdim);
  FSVC_CPU_LOWP("argmin", FSVC_RECAST_SAME_DTYPE,
                fsvc_argmin(FSVC_RECAST_ARG(0), dim, keepdim), a);
  return arg_dim(a, dim, keepdim, 0);
}
fsvc_tensor *fsvc_argmax_all(const fsvc_tensor *a) {
  if (check_extremum(a, 1, 0, "argmax") != 0) return NULL;
  FSVC_DISPATCH_CUDA(argmax_all, a);
  FSVC_CPU_LOWP("argmax", FSVC_RECAST_SAME_DTYPE,
                fsvc_argmax_all(FSVC_RECAST_ARG(0)), a);
  return arg_all(a, 1);
}
fsvc_tensor *fsvc_argmin_all(const fsvc_tensor *a) {
  if (check_extremum(a, 1, 0, "argmin") != 0) return NULL;
  FSVC_DISPATCH_CUDA(argmin_all, a);
  FSVC_CPU_LOWP("argmin", FSVC_RECAST_SAME_DTYPE,
                fsvc_argmin_all(FSVC_RECAST_ARG(0)), a);
  return arg_all(a, 0);
}

__attribute__((constructor)) static void register_minmax_ops(void) {
  fsvc_register_differentiable("max");
  fsvc_register_differentiable("min");
}
