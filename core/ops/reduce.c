/* Sum-like reductions over any set of dims: sum, mean, var, std, norm.
 *
 * Every input is brought to the [outer, R, inner] layout of reduce_internal.h, and one kernel
 * (instantiated per element type and per accumulation kind) folds R into outer*inner doubles:
 * float32 accumulates in double, so sum/mean of a million samples stays exact to float32
 * precision. var is two-pass (mean, then squared deviations) for stability. Backward functions
 * work on float64 copies in the input's layout: simple, and they run once per step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fsvc/autocast.h"
#include "fsvc/device.h"
#include "fsvc/ops_reduce.h"
#include "reduce_internal.h"

/* ---- the kernel ----------------------------------------------------------------------------- */
typedef enum {
  ACC_SUM,     /* x */
  ACC_ABS,     /* |x| */
  ACC_SQ,      /* x^2 */
  ACC_DEV_SQ,  /* (x - m)^2, m per output element */
  ACC_POW,     /* |x|^p */
  ACC_ABS_MAX, /* max |x| */
  ACC_ABS_MIN, /* min |x| */
  ACC_NONZERO  /* x != 0 */
} acc_kind;

static inline __attribute__((always_inline)) double acc_init(acc_kind k) {
  return k == ACC_ABS_MAX ? 0.0 : k == ACC_ABS_MIN ? INFINITY : 0.0;
}
static inline __attribute__((always_inline)) double acc_elem(acc_kind k, double x, double m,
                                                             double p) {
  switch (k) {
    case ACC_SUM: return x;
    case ACC_ABS: case ACC_ABS_MAX: case ACC_ABS_MIN: return fabs(x);
    case ACC_SQ: return x * x;
    case ACC_DEV_SQ: return (x - m) * (x - m);
    case ACC_POW: return pow(fabs(x), p);
    case ACC_NONZERO: return x != 0.0;
  }
  return 0;
}
static inline __attribute__((always_inline)) double acc_combine(acc_kind k, double a, double b) {
  /* NaN propagates through max/min as in PyTorch */
  if (k == ACC_ABS_MAX) return (a > b || isnan(a)) ? a : b;
  if (k == ACC_ABS_MIN) return (a < b || isnan(a)) ? a : b;
  return a + b;
}

/* res[o*inner + i] = fold over r of elem(x[o, r, i]); m (may be NULL) per output element. */
#define DEFINE_REDUCE_KERNEL(NAME, T)                                                              \
  static inline __attribute__((always_inline)) void NAME(                                          \
      const T *x, int64_t outer, int64_t R, int64_t inner, const double *m, double p,              \
      double *res, acc_kind k) {                                                                   \
    int64_t work = outer * R * inner;                                                              \
    if (inner == 1 && outer == 1 && R > 4 * FSVC_REDUCE_PAR_THRESHOLD) {                           \
      /* one long row (a reduction of everything): split it, combine the partial folds */          \
      enum { CHUNKS = 64 };                                                                        \
      double part[CHUNKS];                                                                         \
      double m0 = m ? m[0] : 0.0;                                                                  \
      _Pragma("omp parallel for schedule(static)")                                                 \
      for (int c = 0; c < CHUNKS; c++) {                                                           \
        int64_t r0 = R * c / CHUNKS, r1 = R * (c + 1) / CHUNKS;                                    \
        double acc = acc_init(k);                                                                  \
        for (int64_t r = r0; r < r1; r++) acc = acc_combine(k, acc, acc_elem(k, x[r], m0, p));     \
        part[c] = acc;                                                                             \
      }                                                                                            \
      double acc = acc_init(k);                                                                    \
      for (int c = 0; c < CHUNKS; c++) acc = acc_combine(k, acc, part[c]);                         \
      res[0] = acc;                                                                                \
      return;                                                                                      \
    }                                                                                              \
    if (inner == 1) {                                                                              \
      /* reduce contiguous rows; four accumulators break the add dependency chain */               \
      _Pragma("omp parallel for schedule(static) if(work > FSVC_REDUCE_PAR_THRESHOLD)")            \
      for (int64_t o = 0; o < outer; o++) {                                                        \
        const T *row = x + o * R;                                                                  \
        double mo = m ? m[o] : 0.0;                                                                \
        double a0 = acc_init(k), a1 = a0, a2 = a0, a3 = a0;                                        \
        int64_t r = 0;                                                                             \
        for (; r + 4 <= R; r += 4) {                                                               \
          a0 = acc_combine(k, a0, acc_elem(k, row[r], mo, p));                                     \
          a1 = acc_combine(k, a1, acc_elem(k, row[r + 1], mo, p));                                 \
          a2 = acc_combine(k, a2, acc_elem(k, row[r + 2], mo, p));                                 \
          a3 = acc_combine(k, a3, acc_elem(k, row[r + 3], mo, p));                                 \
        }                                                                                          \
        for (; r < R; r++) a0 = acc_combine(k, a0, acc_elem(k, row[r], mo, p));                    \
        res[o] = acc_combine(k, acc_combine(k, a0, a1), acc_combine(k, a2, a3));                   \
      }                                                                                            \
      return;                                                                                      \
    }                                                                                              \
    /* a middle dim: blocks of columns, R rows of each block stream through L1 accumulators */     \
    int64_t nblk = (inner + FSVC_REDUCE_BLOCK - 1) / FSVC_REDUCE_BLOCK;                            \
    _Pragma("omp parallel for schedule(static) if(work > FSVC_REDUCE_PAR_THRESHOLD)")              \
    for (int64_t t = 0; t < outer * nblk; t++) {                                                   \
      int64_t o = t / nblk, i0 = (t % nblk) * FSVC_REDUCE_BLOCK;                                   \
      int64_t w = inner - i0 < FSVC_REDUCE_BLOCK ? inner - i0 : FSVC_REDUCE_BLOCK;                 \
      double acc[FSVC_REDUCE_BLOCK], mm[FSVC_REDUCE_BLOCK];                                        \
      for (int64_t j = 0; j < w; j++) {                                                            \
        acc[j] = acc_init(k);                                                                      \
        mm[j] = m ? m[o * inner + i0 + j] : 0.0;                                                   \
      }                                                                                            \
      for (int64_t r = 0; r < R; r++) {                                                            \
        const T *row = x + (o * R + r) * inner + i0;                                               \
        _Pragma("omp simd")                                                                        \
        for (int64_t j = 0; j < w; j++) acc[j] = acc_combine(k, acc[j], acc_elem(k, row[j], mm[j], p)); \
      }                                                                                            \
      memcpy(res + o * inner + i0, acc, (size_t)w * sizeof(double));                               \
    }                                                                                              \
  }

DEFINE_REDUCE_KERNEL(reduce_f32, float)
DEFINE_REDUCE_KERNEL(reduce_f64, double)

/* Instantiates the kernel with a constant kind so the switches fold away. */
#define DISPATCH_KIND(FN, x, o, R, i, m, p, res, kind)          \
  switch (kind) {                                               \
    case ACC_SUM: FN(x, o, R, i, m, p, res, ACC_SUM); break;    \
    case ACC_ABS: FN(x, o, R, i, m, p, res, ACC_ABS); break;    \
    case ACC_SQ: FN(x, o, R, i, m, p, res, ACC_SQ); break;      \
    case ACC_DEV_SQ: FN(x, o, R, i, m, p, res, ACC_DEV_SQ); break; \
    case ACC_POW: FN(x, o, R, i, m, p, res, ACC_POW); break;    \
    case ACC_ABS_MAX: FN(x, o, R, i, m, p, res, ACC_ABS_MAX); break; \
    case ACC_ABS_MIN: FN(x, o, R, i, m, p, res, ACC_ABS_MIN); break; \
    case ACC_NONZERO: FN(x, o, R, i, m, p, res, ACC_NONZERO); break; \
  }

/* Folds the plan's input into a new double[outer*inner] (float dtypes). */
static double *plan_fold(const fsvc_reduce_plan *pl, acc_kind kind, const double *m, double p,
                         const char *op) {
  int64_t n = pl->outer * pl->inner;
  double *res = malloc((size_t)(n > 0 ? n : 1) * sizeof *res);
  if (!res) { fsvc_set_error("%s: out of memory", op); return NULL; }
  if (pl->x->dtype == FSVC_FLOAT32) {
    const float *x = fsvc_data(pl->x);
    DISPATCH_KIND(reduce_f32, x, pl->outer, pl->R, pl->inner, m, p, res, kind);
  } else {
    const double *x = fsvc_data(pl->x);
    DISPATCH_KIND(reduce_f64, x, pl->outer, pl->R, pl->inner, m, p, res, kind);
  }
  return res;
}

/* Exact integer sum for int64 inputs. */
static fsvc_tensor *sum_int64(const fsvc_reduce_plan *pl) {
  fsvc_tensor *out = fsvc_empty(pl->out_ndim, pl->out_shape, FSVC_INT64);
  if (!out) return NULL;
  const int64_t *x = fsvc_data(pl->x);
  int64_t *y = fsvc_data(out);
  int64_t R = pl->R, inner = pl->inner;
  for (int64_t o = 0; o < pl->outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      int64_t s = 0;
      for (int64_t r = 0; r < R; r++) s += x[(o * R + r) * inner + i];
      y[o * inner + i] = s;
    }
  return out;
}

/* ---- backward helpers ----------------------------------------------------------------------- */
/* Gradient g broadcast back to the input's shape, as contiguous float64. */
static fsvc_tensor *expand64(const fsvc_node *n, const fsvc_tensor *g) {
  const fsvc_edge *e = &n->edges[0];
  return fsvc_reduce_expand(g, e->ndim, e->shape, (unsigned)n->iarg[0], FSVC_FLOAT64);
}

static int64_t reduced_count(const fsvc_node *n) {
  const fsvc_edge *e = &n->edges[0];
  int64_t c = 1;
  for (int d = 0; d < e->ndim; d++)
    if ((unsigned)n->iarg[0] & (1u << d)) c *= e->shape[d];
  return c;
}

/* Turns a finished float64 gradient into the input's dtype (consumes g64). */
static fsvc_tensor *finish(fsvc_tensor *g64, fsvc_dtype dt) {
  if (!g64 || dt == FSVC_FLOAT64) return g64;
  fsvc_tensor *c = fsvc_to_dtype_raw(g64, dt);
  fsvc_tensor_release(g64);
  return c;
}

/* Records the node for a one-input reduction: iarg[0] = mask, iarg[1] = keepdim. */
static fsvc_node *reduce_node(const char *op, const fsvc_tensor *a, const fsvc_reduce_plan *pl,
                              int keepdim, fsvc_backward_fn bw) {
  fsvc_tensor *in[1] = {(fsvc_tensor *)a};
  fsvc_node *n = fsvc_node_new(op, 1, in, bw);
  if (n) {
    n->iarg[0] = pl->mask;
    n->iarg[1] = keepdim;
  }
  return n;
}

/* ---- sum / mean ----------------------------------------------------------------------------- */
static int sum_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gi) {
  if (!n->edges[0].needs_grad) return 0;
  const fsvc_edge *e = &n->edges[0];
  gi[0] = fsvc_reduce_expand(g, e->ndim, e->shape, (unsigned)n->iarg[0], e->dtype);
  return gi[0] ? 0 : -1;
}

static int mean_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gi) {
  if (!n->edges[0].needs_grad) return 0;
  fsvc_tensor *x = expand64(n, g);
  if (!x) return -1;
  double *p = fsvc_data(x), inv = 1.0 / (double)reduced_count(n);
  int64_t len = fsvc_numel(x);
  for (int64_t i = 0; i < len; i++) p[i] *= inv;
  gi[0] = finish(x, n->edges[0].dtype);
  return gi[0] ? 0 : -1;
}

static fsvc_tensor *sum_or_mean(const fsvc_tensor *a, int n_dims, const int *dims, int keepdim,
                                int mean) {
  const char *op = mean ? "mean" : "sum";
  if (fsvc_reduce_check_input(a, op, !mean) != 0) return NULL;
  fsvc_reduce_plan pl;
  if (fsvc_reduce_plan_init(&pl, a, n_dims, dims, keepdim, op) != 0) return NULL;
  fsvc_tensor *out;
  if (a->dtype == FSVC_INT64) {
    out = sum_int64(&pl);
  } else {
    double *res = plan_fold(&pl, ACC_SUM, NULL, 0, op);
    if (!res) { fsvc_reduce_plan_free(&pl); return NULL; }
    if (mean) {
      double inv = 1.0 / (double)pl.R; /* R = 0 gives NaN, as PyTorch */
      for (int64_t i = 0; i < pl.outer * pl.inner; i++) res[i] = pl.R ? res[i] * inv : NAN;
    }
    out = fsvc_reduce_output_from_double(&pl, res, a->dtype);
    free(res);
  }
  if (out) {
    fsvc_node *n = reduce_node(op, a, &pl, keepdim, mean ? mean_backward : sum_backward);
    fsvc_node_attach(n, out);
  }
  fsvc_reduce_plan_free(&pl);
  return out;
}

fsvc_tensor *fsvc_sum(const fsvc_tensor *a, int n_dims, const int *dims, int keepdim) {
  FSVC_DISPATCH_CUDA(sum, a, n_dims, dims, keepdim);
  FSVC_CPU_LOWP("sum", FSVC_RECAST_SAME_DTYPE,
                fsvc_sum(FSVC_RECAST_ARG(0), n_dims, dims, keepdim), a);
  return sum_or_mean(a, n_dims, dims, keepdim, 0);
}

fsvc_tensor *fsvc_mean(const fsvc_tensor *a, int n_dims, const int *dims, int keepdim) {
  FSVC_DISPATCH_CUDA(mean, a, n_dims, dims, keepdim);
  FSVC_CPU_LOWP("mean", FSVC_RECAST_SAME_DTYPE,
                fsvc_mean(FSVC_RECAST_ARG(0), n_dims, dims, keepdim), a);
  return sum_or_mean(a, n_dims, dims, keepdim, 1);
}

/* ---- var / std ------------------------------------------------------------------------------ */
/* Mean per output element of x over the node's mask, broadcast back to x's shape (float64). */
static fsvc_tensor *mean_expanded(const fsvc_node *n, const fsvc_tensor *x) {
  fsvc_reduce_plan pl;
  if (fsvc_reduce_plan_mask(&pl, x, (unsigned)n->iarg[0], 0) != 0) return NULL;
  double *res = plan_fold(&pl, ACC_SUM, NULL, 0, n->op);
  fsvc_tensor *out = NULL;
  if (res) {
    for (int64_t i = 0; i < pl.outer * pl.inner; i++) res[i] /= (double)pl.R;
    fsvc_tensor *m = fsvc_reduce_output_from_double(&pl, res, FSVC_FLOAT64);
    if (m) out = fsvc_reduce_expand(m, x->ndim, x->shape, pl.mask, FSVC_FLOAT64);
    fsvc_tensor_release(m);
    free(res);
  }
  fsvc_reduce_plan_free(&pl);
  return out;
}

/* d var / dx = 2 (x - mean) / (N - ddof); d std / dx = (x - mean) / ((N - ddof) std).
 * saved[0] = x, saved[1] = std (std only); iarg[2] = unbiased. */
static int var_std_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gi) {
  if (!n->edges[0].needs_grad) return 0;
  int is_std = n->n_saved > 1;
  const fsvc_tensor *x = n->saved[0];
  double denom = (double)reduced_count(n) - (n->iarg[2] ? 1.0 : 0.0);
  fsvc_tensor *ge = expand64(n, g);
  fsvc_tensor *m = mean_expanded(n, x);
  fsvc_tensor *x64 = fsvc_reduce_contig_as(x, FSVC_FLOAT64);
  fsvc_tensor *se = is_std ? expand64(n, n->saved[1]) : NULL;
  int rc = -1;
  if (ge && m && x64 && (!is_std || se)) {
    double *gp = fsvc_data(ge);
    const double *mp = fsvc_data(m), *xp = fsvc_data(x64), *sp = is_std ? fsvc_data(se) : NULL;
    int64_t len = fsvc_numel(ge);
    for (int64_t i = 0; i < len; i++)
      gp[i] = is_std ? gp[i] * (xp[i] - mp[i]) / (denom * sp[i])
                     : gp[i] * 2.0 * (xp[i] - mp[i]) / denom;
    gi[0] = finish(ge, n->edges[0].dtype);
    ge = NULL;
    rc = gi[0] ? 0 : -1;
  }
  fsvc_tensor_release(ge);
  fsvc_tensor_release(m);
  fsvc_tensor_release(x64);
  fsvc_tensor_release(se);
  return rc;
}

static fsvc_tensor *var_or_std(const fsvc_tensor *a, int n_dims, const int *dims, int unbiased,
                               int keepdim, int is_std) {
  const char *op = is_std ? "std" : "var";
  if (fsvc_reduce_check_input(a, op, 0) != 0) return NULL;
  fsvc_reduce_plan pl;
  if (fsvc_reduce_plan_init(&pl, a, n_dims, dims, keepdim, op) != 0) return NULL;
  int64_t n_out = pl.outer * pl.inner;
  fsvc_tensor *out = NULL;
  double *mean = plan_fold(&pl, ACC_SUM, NULL, 0, op);
  double *dev = NULL;
  if (mean) {
    for (int64_t i = 0; i < n_out; i++) mean[i] /= (double)pl.R;
    dev = plan_fold(&pl, ACC_DEV_SQ, mean, 0, op);
  }
  if (dev) {
    double denom = (double)pl.R - (unbiased ? 1.0 : 0.0); /* <= 0 gives NaN/Inf as PyTorch */
    for (int64_t i = 0; i < n_out; i++) {
      double v = denom > 0 ? dev[i] / denom : NAN;
      dev[i] = is_std ? sqrt(v) : v;
    }
    out = fsvc_reduce_output_from_double(&pl, dev, a->dtype);
  }
  if (out) {
    fsvc_node *n = reduce_node(op, a, &pl, keepdim, var_std_backward);
    if (n) {
      n->iarg[2] = unbiased;
      fsvc_node_save(n, a);
      if (is_std) fsvc_node_save(n, out);
    }
    fsvc_node_attach(n, out);
  }
  free(mean);
  free(dev);
  fsvc_reduce_plan_free(&pl);
  return out;
}

fsvc_tensor *fsvc_var(const fsvc_tensor *a, int n_dims, const int *dims, int unbiased, int keepdim) {
  FSVC_DISPATCH_CUDA(var, a, n_dims, dims, unbiased, keepdim);
  FSVC_CPU_LOWP("var", FSVC_RECAST_SAME_DTYPE,
                fsvc_var(FSVC_RECAST_ARG(0), n_dims, dims, unbiased, keepdim), a);
  return var_or_std(a, n_dims, dims, unbiased, keepdim, 0);
}

fsvc_tensor *fsvc_std(const fsvc_tensor *a, int n_dims, const int *dims, int unbiased, int keepdim) {
  FSVC_DISPATCH_CUDA(std, a, n_dims, dims, unbiased, keepdim);
  FSVC_CPU_LOWP("std", FSVC_RECAST_SAME_DTYPE,
                fsvc_std(FSVC_RECAST_ARG(0), n_dims, dims, unbiased, keepdim), a);
  return var_or_std(a, n_dims, dims, unbiased, keepdim, 1);
}

/* ---- norm ----------------------------------------------------------------------------------- */
static double sgn(double x) { return (x > 0) - (x < 0); }

/* saved[0] = x, saved[1] = norm; farg[0] = p. The gradient is zero where the norm is zero
 * (PyTorch's subgradient choice); for p = +-inf it is shared among the tied extrema. */
static int norm_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gi) {
  if (!n->edges[0].needs_grad) return 0;
  double p = n->farg[0];
  const fsvc_tensor *x = n->saved[0];
  fsvc_tensor *ge = expand64(n, g);
  fsvc_tensor *ne = expand64(n, n->saved[1]);
  fsvc_tensor *x64 = fsvc_reduce_contig_as(x, FSVC_FLOAT64);
  fsvc_tensor *cnt = NULL;
  int rc = -1;
  if (!ge || !ne || !x64) goto done;
  double *gp = fsvc_data(ge);
  const double *np = fsvc_data(ne), *xp = fsvc_data(x64);
  int64_t len = fsvc_numel(ge);
  if (isinf(p)) {
    /* count the elements attaining the extremum per output element */
    fsvc_tensor *mask = fsvc_empty(x->ndim, x->shape, FSVC_FLOAT64);
    if (!mask) goto done;
    double *mp = fsvc_data(mask);
    for (int64_t i = 0; i < len; i++) mp[i] = fabs(xp[i]) == np[i];
    fsvc_reduce_plan pl;
    if (fsvc_reduce_plan_mask(&pl, mask, (unsigned)n->iarg[0], 0) != 0) {
      fsvc_tensor_release(mask);
      goto done;
    }
    double *c = plan_fold(&pl, ACC_SUM, NULL, 0, "norm");
    fsvc_tensor *ct = c ? fsvc_reduce_output_from_double(&pl, c, FSVC_FLOAT64) : NULL;
    free(c);
    fsvc_reduce_plan_free(&pl);
    cnt = ct ? fsvc_reduce_expand(ct, x->ndim, x->shape, (unsigned)n->iarg[0], FSVC_FLOAT64) : NULL;
    fsvc_tensor_release(ct);
    if (!cnt) { fsvc_tensor_release(mask); goto done; }
    const double *cp = fsvc_data(cnt);
    for (int64_t i = 0; i < len; i++) gp[i] = mp[i] ? gp[i] * sgn(xp[i]) / cp[i] : 0.0;
    fsvc_tensor_release(mask);
  } else if (p == 0) {
    for (int64_t i = 0; i < len; i++) gp[i] = 0;
  } else if (p == 1) {
    for (int64_t i = 0; i < len; i++) gp[i] *= sgn(xp[i]);
  } else if (p == 2) {
    for (int64_t i = 0; i < len; i++) gp[i] = np[i] == 0 ? 0.0 : gp[i] * xp[i] / np[i];
  } else {
    for (int64_t i = 0; i < len; i++)
      gp[i] = np[i] == 0 ? 0.0
                         : gp[i] * sgn(xp[i]) * pow(fabs(xp[i]), p - 1) / pow(np[i], p - 1);
  }
  gi[0] = finish(ge, n->edges[0].dtype);
  ge = NULL;
  rc = gi[0] ? 0 : -1;
done:
  fsvc_tensor_release(ge);
  fsvc_tensor_release(ne);
  fsvc_tensor_release(x64);
  fsvc_tensor_release(cnt);
  return rc;
}

fsvc_tensor *fsvc_norm(const fsvc_tensor *a, double p, int n_dims, const int *dims, int keepdim) {
  FSVC_DISPATCH_CUDA(norm, a, p, n_dims, dims, keepdim);
  FSVC_CPU_LOWP("norm", FSVC_RECAST_SAME_DTYPE,
                fsvc_norm(FSVC_RECAST_ARG(0), p, n_dims, dims, keepdim), a);
  if (fsvc_reduce_check_input(a, "norm", 0) != 0) return NULL;
  if (isnan(p) || (p < 0 && !isinf(p))) {
    fsvc_set_error("norm: p must be >= 0 or +-inf, got %g", p);
    return NULL;
  }
  fsvc_reduce_plan pl;
  if (fsvc_reduce_plan_init(&pl, a, n_dims, dims, keepdim, "norm") != 0) return NULL;
  acc_kind kind = isinf(p) ? (p > 0 ? ACC_ABS_MAX : ACC_ABS_MIN)
                  : p == 0 ? ACC_NONZERO
                  : p == 1 ? ACC_ABS
                  : p == 2 ? ACC_SQ
                           : ACC_POW;
  if (kind == ACC_ABS_MIN && pl.R == 0) {
    fsvc_set_error("norm: p = -inf of an empty reduction is undefined");
    fsvc_reduce_plan_free(&pl);
    return NULL;
  }
  double *res = plan_fold(&pl, kind, NULL, p, "norm");
  fsvc_tensor *out = NULL;
  if (res) {
    int64_t n_out = pl.outer * pl.inner;
    if (kind == ACC_SQ)
      for (int64_t i = 0; i < n_out; i++) res[i] = sqrt(res[i]);
    else if (kind == ACC_POW)
      for (int64_t i = 0; i < n_out; i++) res[i] = pow(res[i], 1.0 / p);
    out = fsvc_reduce_output_from_double(&pl, res, a->dtype);
    free(res);
  }
  if (out) {
    fsvc_node *n = reduce_node("norm", a, &pl, keepdim, norm_backward);
    if (n) {
      n->farg[0] = p;
      fsvc_node_save(n, a);
      fsvc_node_save(n, out);
    }
    fsvc_node_attach(n, out);
  }
  fsvc_reduce_plan_free(&pl);
  return out;
}

__attribute__((constructor)) static void register_reduce_ops(void) {
  fsvc_register_differentiable("sum");
  fsvc_register_differentiable("mean");
  fsvc_register_differentiable("var");
  fsvc_register_differentiable("std");
  fsvc_register_differentiable("norm");
}
