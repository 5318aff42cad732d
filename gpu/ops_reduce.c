/* Reductions on CUDA tensors: the CPU's [outer, R, inner] plan (core/ops/reduce_plan.c is
 * device-generic: views and device copies) feeding the kernels of reduce.cu. Node names, saved
 * tensors and gradients as core/ops/reduce*.c, softmax.c, topk.c, cumsum.c; backward functions are
 * written with public ops (which dispatch back here) plus the softmax/cumsum kernels. */
#include <math.h>
#include <string.h>

#include "gpu_ops.h"
#include "fsvc/ops_reduce.h"
#include "ops/reduce_internal.h"

static int check_float(const char *op, const fsvc_tensor *a, int allow_int) {
  if (fsvc_gpu_check_tensor(op, a, "input") != 0) return -1;
  if (a->dtype == FSVC_INT64 && !allow_int) {
    fsvc_set_error("%s: needs a float tensor, got int64 (convert with :float())", op);
    return -1;
  }
  return 0;
}

/* Runs one reduction kind over the plan; out has the plan's output shape (idx too, int64). */
static fsvc_tensor *run_plan(const fsvc_reduce_plan *p, fsvc_gpu_reduce_op op, double arg,
                             fsvc_dtype out_dt, fsvc_tensor **idx_out) {
  fsvc_device dev = fsvc_tensor_device(p->x);
  fsvc_tensor *out = fsvc_empty_on(p->out_ndim, p->out_shape, out_dt, dev);
  fsvc_tensor *idx = idx_out ? fsvc_empty_on(p->out_ndim, p->out_shape, FSVC_INT64, dev) : NULL;
  if (!out || (idx_out && !idx) ||
      fsvc_gpu_reduce_launch(op, p->x->dtype, fsvc_data(out), idx ? fsvc_data(idx) : NULL,
                             fsvc_data(p->x), p->outer, p->R, p->inner, arg) != 0) {
    fsvc_tensor_release(out);
    fsvc_tensor_release(idx);
    return NULL;
  }
  if (idx_out) *idx_out = idx;
  return out;
}

/* ---- sum / mean / var / std / norm / logsumexp --------------------------------------------------- */
/* iarg[0] = mask of reduced dims, iarg[1] = kind, iarg[2] = R, iarg[3] = unbiased; farg[0] = p.
 * saved[0] = input (var/std/norm/logsumexp), saved[1] = output (std/norm/logsumexp) */
enum { K_SUM, K_MEAN, K_VAR, K_STD, K_NORM, K_LSE };

/* The p-norm's gradient as core/ops/reduce.c defines it: g sign(x) |x|^(p-1) / norm^(p-1), zero
 * where the norm is zero; sign(0) = 0; zero for p = 0; for p = +-inf shared equally among the
 * elements attaining the extremum. Written with public ops (they run on x's device). */
static fsvc_tensor *norm_grad(const fsvc_tensor *x, const fsvc_tensor *out, const fsvc_tensor *gx,
                              double p, int nd, const int *dims, unsigned mask) {
  fsvc_device dev = fsvc_tensor_device(x);
  fsvc_dtype dt = gx->dtype;
  if (p == 0) return fsvc_zeros_on(x->ndim, x->shape, dt, dev);
  fsvc_tensor *zero = fsvc_zeros_on(0, NULL, dt, dev);
  fsvc_tensor *pos = zero ? fsvc_gt(x, zero) : NULL, *neg = zero ? fsvc_lt(x, zero) : NULL;
  fsvc_tensor *sign = pos && neg ? fsvc_sub(pos, neg) : NULL;
  fsvc_tensor *nx = fsvc_gpu_expand_back(out, x->ndim, x->shape, mask);
  fsvc_tensor *sg = sign ? fsvc_mul(sign, gx) : NULL, *res = NULL;
  if (!sg || !nx) {
    /* fall through to the clean-up with res == NULL */
  } else if (isinf(p)) {
    fsvc_tensor *ax = fsvc_abs(x);
    fsvc_tensor *hit = ax ? fsvc_eq(ax, nx) : NULL;
    fsvc_tensor *cnt = hit ? fsvc_sum(hit, nd, dims, 1) : NULL;
    fsvc_tensor *cnte = cnt ? fsvc_gpu_expand_back(cnt, x->ndim, x->shape, mask) : NULL;
    fsvc_tensor *share = hit && cnte ? fsvc_div(hit, cnte) : NULL;
    res = share ? fsvc_mul(sg, share) : NULL;
    fsvc_tensor *tmp[] = {ax, hit, cnt, cnte, share};
    for (size_t i = 0; i < sizeof tmp / sizeof tmp[0]; i++) fsvc_tensor_release(tmp[i]);
  } else if (p == 1) {
    res = fsvc_tensor_retain(sg);
  } else {
    fsvc_tensor *pm1 = fsvc_full_on(0, NULL, p - 1, dt, dev);
    fsvc_tensor *ax = fsvc_abs(x);
    fsvc_tensor *num = ax && pm1 ? fsvc_pow(ax, pm1) : NULL;
    fsvc_tensor *den = pm1 ? fsvc_pow(nx, pm1) : NULL;
    fsvc_tensor *q = num && den ? fsvc_div(num, den) : NULL;
    fsvc_tensor *full = q ? fsvc_mul(q, sg) : NULL;
    fsvc_tensor *is0 = fsvc_eq(nx, zero);
    res = full && is0 ? fsvc_where(is0, zero, full) : NULL;
    fsvc_tensor *tmp[] = {pm1, ax, num, den, q, full, is0};
    for (size_t i = 0; i < sizeof tmp / sizeof tmp[0]; i++) fsvc_tensor_release(tmp[i]);
  }
  fsvc_tensor *tmp[] = {zero, pos, neg, sign, nx, sg};
  for (size_t i = 0; i < sizeof tmp / sizeof tmp[0]; i++) fsvc_tensor_release(tmp[i]);
  return res;
}

static int reduce_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  const fsvc_edge *e = &n->edges[0];
  unsigned mask = (unsigned)n->iarg[0];
  int kind = (int)n->iarg[1];
  double r = (double)n->iarg[2];
  fsvc_tensor *gx = fsvc_gpu_expand_back(g, e->ndim, e->shape, mask); /* g on the input's shape */
  if (!gx) return -1;
  fsvc_tensor *res = NULL;
  fsvc_device dev = fsvc_tensor_device(g);
  fsvc_dtype dt = g->dtype;
  if (kind == K_SUM) {
    res = fsvc_tensor_retain(gx);
  } else if (kind == K_MEAN) {
    fsvc_tensor *s = fsvc_full_on(0, NULL, 1.0 / r, dt, dev);
    res = s ? fsvc_mul(gx, s) : NULL;
    fsvc_tensor_release(s);
  } else {
    const fsvc_tensor *x = n->saved[0];
    int dims[FSVC_MAX_DIMS], nd = 0;
    for (int d = 0; d < e->ndim; d++)
      if (mask & (1u << d)) dims[nd++] = d;
    if (kind == K_VAR || kind == K_STD) {
      /* d var / dx = 2 (x - mean) / (R - c); std: that / (2 std) */
      double denom = r - (double)n->iarg[3];
      fsvc_tensor *m = fsvc_mean(x, nd, dims, 1);
      fsvc_tensor *xm = m ? fsvc_sub(x, m) : NULL;
      fsvc_tensor *k = fsvc_full_on(0, NULL, 2.0 / denom, dt, dev);
      fsvc_tensor *t1 = xm && k ? fsvc_mul(xm, k) : NULL;
      res = t1 ? fsvc_mul(t1, gx) : NULL;
      if (res && kind == K_STD) {
        fsvc_tensor *sd = fsvc_gpu_expand_back(n->saved[1], e->ndim, e->shape, mask);
        fsvc_tensor *two = fsvc_full_on(0, NULL, 2.0, dt, dev);
        fsvc_tensor *den = sd && two ? fsvc_mul(sd, two) : NULL;
        fsvc_tensor *q = den ? fsvc_div(res, den) : NULL;
        fsvc_tensor_release(res);
        res = q;
        fsvc_tensor_release(sd);
        fsvc_tensor_release(two);
        fsvc_tensor_release(den);
      }
      fsvc_tensor_release(m);
      fsvc_tensor_release(xm);
      fsvc_tensor_release(k);
      fsvc_tensor_release(t1);
    } else if (kind == K_NORM) {
      res = norm_grad(x, n->saved[1], gx, n->farg[0], nd, dims, mask);
    } else { /* logsumexp: g * exp(x - lse) */
      fsvc_tensor *l = fsvc_gpu_expand_back(n->saved[1], e->ndim, e->shape, mask);
      fsvc_tensor *d = l ? fsvc_sub(x, l) : NULL;
      fsvc_tensor *ex = d ? fsvc_exp(d) : NULL;
      res = ex ? fsvc_mul(ex, gx) : NULL;
      fsvc_tensor_release(l);
      fsvc_tensor_release(d);
      fsvc_tensor_release(ex);
    }
  }
  fsvc_tensor_release(gx);
  if (!res) return -1;
  gin[0] = res;
  return 0;
}

static void attach_reduce_node(const char *name, int kind, const fsvc_tensor *a, fsvc_tensor *out,
                               const fsvc_reduce_plan *p, double arg, int unbiased) {
  if (!fsvc_dtype_is_float(a->dtype)) return;
  fsvc_node *n = fsvc_node_new(name, 1, (fsvc_tensor *[]){(fsvc_tensor *)a}, reduce_backward);
  if (!n) return;
  if (kind >= K_VAR) fsvc_node_save(n, a);
  if (kind == K_STD || kind == K_NORM || kind == K_LSE) fsvc_node_save(n, out);
  n->iarg[0] = p->mask;
  n->iarg[1] = kind;
  n->iarg[2] = p->R;
  n->iarg[3] = unbiased;
  n->farg[0] = arg;
  fsvc_node_attach(n, out);
}

static fsvc_tensor *reduce_common(const char *name, int kind, const fsvc_tensor *a, int n_dims,
                                  const int *dims, int keepdim, double arg, int unbiased) {
  if (check_float(name, a, kind == K_SUM) != 0) return NULL;
  fsvc_reduce_plan p;
  if (fsvc_reduce_plan_init(&p, a, n_dims, dims, keepdim, name) != 0) return NULL;
  static const fsvc_gpu_reduce_op ops[] = {FSVC_GPU_RED_SUM, FSVC_GPU_RED_MEAN, FSVC_GPU_RED_VAR,
                                           FSVC_GPU_RED_VAR, FSVC_GPU_RED_NORM, FSVC_GPU_RED_LOGSUMEXP};
  if ((kind == K_VAR || kind == K_STD) && p.R - (unbiased ? 1 : 0) <= 0) {
    /* PyTorch gives NaN (or inf) with a warning; we do the same through the kernel */
  }
  fsvc_tensor *out = run_plan(&p, ops[kind], kind == K_VAR || kind == K_STD ? (unbiased ? 1 : 0) : arg,
                              a->dtype, NULL);
  if (out && kind == K_STD) {
    fsvc_tensor *s = NULL;
    int prev = fsvc_set_grad_enabled(0);
    s = fsvc_sqrt(out);
    fsvc_set_grad_enabled(prev);
    fsvc_tensor_release(out);
    out = s;
  }
  if (out) attach_reduce_node(name, kind, a, out, &p, arg, unbiased);
  fsvc_reduce_plan_free(&p);
  return out;
}

static fsvc_tensor *gpu_sum(const fsvc_tensor *a, int nd, const int *dims, int keepdim) {
  return reduce_common("sum", K_SUM, a, nd, dims, keepdim, 0, 0);
}
static fsvc_tensor *gpu_mean(const fsvc_tensor *a, int nd, const int *dims, int keepdim) {
  return reduce_common("mean", K_MEAN, a, nd, dims, keepdim, 0, 0);
}
static fsvc_tensor *gpu_var(const fsvc_tensor *a, int nd, const int *dims, int unbiased, int keepdim) {
  return reduce_common("var", K_VAR, a, nd, dims, keepdim, 0, unbiased);
}
static fsvc_tensor *gpu_std(const fsvc_tensor *a, int nd, const int *dims, int unbiased, int keepdim) {
  return reduce_common("std", K_STD, a, nd, dims, keepdim, 0, unbiased);
}
static fsvc_tensor *gpu_norm(const fsvc_tensor *a, double p, int nd, const int *dims, int keepdim) {
  if (isnan(p) || (p < 0 && !isinf(p))) {
    fsvc_set_error("norm: p must be >= 0 or +-inf, got %g", p);
    return NULL;
  }
  if (p != 0 && p != -INFINITY) return reduce_common("norm", K_NORM, a, nd, dims, keepdim, p, 0);
  /* p = 0 counts the nonzero elements, p = -inf takes the smallest magnitude: the kernels' sum
   * and min over a derived tensor, with the norm node (and its gradient) on the input */
  if (check_float("norm", a, 0) != 0) return NULL;
  int prev = fsvc_set_grad_enabled(0);
  fsvc_tensor *zero = fsvc_zeros_on(0, NULL, a->dtype, a->storage->device);
  fsvc_tensor *src = p == 0 ? (zero ? fsvc_ne(a, zero) : NULL) : fsvc_abs(a);
  fsvc_set_grad_enabled(prev);
  fsvc_tensor_release(zero);
  if (!src) return NULL;
  fsvc_reduce_plan pl;
  if (fsvc_reduce_plan_init(&pl, src, nd, dims, keepdim, "norm") != 0) {
    fsvc_tensor_release(src);
    return NULL;
  }
  fsvc_tensor *out = NULL;
  if (p != 0 && pl.R == 0) fsvc_set_error("norm: p = -inf of an empty reduction is undefined");
  else out = run_plan(&pl, p == 0 ? FSVC_GPU_RED_SUM : FSVC_GPU_RED_MIN, 0, a->dtype, NULL);
  if (out) attach_reduce_node("norm", K_NORM, a, out, &pl, p, 0);
  fsvc_reduce_plan_free(&pl);
  fsvc_tensor_release(src);
  return out;
}
static fsvc_tensor *gpu_logsumexp(const fsvc_tensor *a, int dim, int keepdim) {
  return reduce_common("logsumexp", K_LSE, a, 1, &dim, keepdim, 0, 0);
}

/* ---- max / min with indices: the gradient goes to the recorded index ----------------------------- */
/* saved[0] = indices (keepdim shape); iarg[0] = dim, or -1 for *_all */
static int extremum_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  const fsvc_edge *e = &n->edges[0];
  fsvc_device dev = fsvc_tensor_device(g);
  fsvc_tensor *z = fsvc_zeros_on(e->ndim, e->shape, g->dtype, dev);
  if (!z) return -1;
  int dim = (int)n->iarg[0];
  fsvc_tensor *target = z, *gv = NULL, *flat = NULL, *idx1 = NULL;
  const fsvc_tensor *idx = n->saved[0];
  if (dim < 0) { /* all: a flat view of the zeros, one index */
    int64_t numel = fsvc_numel(z), one = 1, st = 1;
    flat = fsvc_view_raw(z, 1, &numel, &st, z->offset);
    gv = fsvc_reshape(g, 1, &one);
    idx1 = fsvc_view_raw(idx, 1, &one, &st, idx->offset);
    idx = idx1;
    target = flat;
    dim = 0;
  } else {
    gv = fsvc_reshape(g, idx->ndim, idx->shape);
  }
  int rc = -1;
  if (gv && target) {
    fsvc_gpu_geom og = fsvc_gpu_geom_of(target), sg = fsvc_gpu_geom_of(gv), ig = fsvc_gpu_geom_of(idx);
    rc = fsvc_gpu_gather_scatter_launch(1, g->dtype, fsvc_data(target), &og, fsvc_data(gv), &sg,
                                        fsvc_data(idx), &ig, dim);
  }
  fsvc_tensor_release(gv);
  fsvc_tensor_release(flat);
  fsvc_tensor_release(idx1);
  if (rc != 0) { fsvc_tensor_release(z); return -1; }
  gin[0] = z;
  return 0;
}

static fsvc_tensor *extremum(const char *name, const fsvc_tensor *a, int dim, int all, int keepdim,
                             int largest, fsvc_tensor **indices, int want_values) {
  if (check_float(name, a, 1) != 0) return NULL;
  fsvc_reduce_plan p;
  int rc = all ? fsvc_reduce_plan_init(&p, a, 0, NULL, 0, name)
               : fsvc_reduce_plan_dim(&p, a, dim, 1, name); /* keepdim plan: indices for backward */
  if (rc != 0) return NULL;
  /* core/ops/reduce_minmax.c refused reductions over no elements (the CPU's rule and message); an
   * empty tensor reduced along a non-empty dim gives empty results */
  fsvc_tensor *idx = NULL;
  fsvc_tensor *vals = run_plan(&p, largest ? FSVC_GPU_RED_MAX : FSVC_GPU_RED_MIN, 0, a->dtype, &idx);
  fsvc_reduce_plan_free(&p);
  if (!vals) return NULL;
  int d = all ? -1 : fsvc_reduce_norm_dim(dim, a->ndim, name);
  if (!want_values) { /* argmax/argmin */
    fsvc_tensor_release(vals);
    if (!all && !keepdim && a->ndim > 0) {
      fsvc_tensor *sq = fsvc_squeeze(idx, d);
      fsvc_tensor_release(idx);
      idx = sq;
    }
    return idx;
  }
  if (fsvc_dtype_is_float(a->dtype)) {
    fsvc_node *n = fsvc_node_new(largest ? "max" : "min", 1,
                                 (fsvc_tensor *[]){(fsvc_tensor *)a}, extremum_backward);
    if (n) {
      fsvc_node_save(n, idx);
      n->iarg[0] = d;
      fsvc_node_attach(n, vals);
    }
  }
  if (!all && !keepdim && a->ndim > 0) { /* squeeze the kept dim (a view: autograd through squeeze) */
    fsvc_tensor *sv = fsvc_squeeze(vals, d);
    fsvc_tensor_release(vals);
    vals = sv;
    if (indices) {
      fsvc_tensor *si = fsvc_squeeze(idx, d);
      fsvc_tensor_release(idx);
      idx = si;
    }
  }
  if (indices) *indices = idx;
  else fsvc_tensor_release(idx);
  return vals;
}

static fsvc_tensor *gpu_max_dim(const fsvc_tensor *a, int dim, int keepdim, fsvc_tensor **ind) {
  return extremum("max", a, dim, 0, keepdim, 1, ind, 1);
}
static fsvc_tensor *gpu_min_dim(const fsvc_tensor *a, int dim, int keepdim, fsvc_tensor **ind) {
  return extremum("min", a, dim, 0, keepdim, 0, ind, 1);
}
static fsvc_tensor *gpu_max_all(const fsvc_tensor *a) { return extremum("max_all", a, 0, 1, 0, 1, NULL, 1); }
static fsvc_tensor *gpu_min_all(const fsvc_tensor *a) { return extremum("min_all", a, 0, 1, 0, 0, NULL, 1); }
static fsvc_tensor *gpu_argmax(const fsvc_tensor *a, int dim, int keepdim) {
  return extremum("argmax", a, dim, 0, keepdim, 1, NULL, 0);
}
static fsvc_tensor *gpu_argmin(const fsvc_tensor *a, int dim, int keepdim) {
  return extremum("argmin", a, dim, 0, keepdim, 0, NULL, 0);
}
static fsvc_tensor *gpu_argmax_all(const fsvc_tensor *a) { return extremum("argmax_all", a, 0, 1, 0, 1, NULL, 0); }
static fsvc_tensor *gpu_argmin_all(const fsvc_tensor *a) { return extremum("argmin_all", a, 0, 1, 0, 0, NULL, 0); }

/* ---- topk --------------------------------------------------------------------------------------- */
/* Any k of the CPU's range, in its order (gpu/topk.cu: insertion for k <= 64, a bitonic sort in
 * shared memory for lines up to 4096, else in a scratch buffer allocated here, through the caching
 * allocator, so that it can be captured like any temporary). The backward scatters the gradient to
 * the indices (distinct within a line: no two adds meet, so 16-bit gradients need no float32). */
static fsvc_tensor *gpu_topk(const fsvc_tensor *a, int64_t k, int dim, int largest, int sorted,
                             fsvc_tensor **indices) {
  (void)sorted; /* always sorted, as on the CPU */
  if (check_float("topk", a, 1) != 0) return NULL;
  int d = fsvc_reduce_norm_dim(dim, a->ndim, "topk");
  if (d < 0) return NULL;
  int64_t size = a->ndim ? a->shape[d] : 1;
  if (k < 0 || k > size) {
    char buf[128];
    fsvc_set_error("topk: k = %lld out of range for dim %d of size %lld (shape %s)", (long long)k, d,
                   (long long)size, fsvc_shape_str(a, buf, sizeof buf));
    return NULL;
  }
  fsvc_reduce_plan p;
  if (fsvc_reduce_plan_dim(&p, a, d, 1, "topk") != 0) return NULL;
  int64_t shape[FSVC_MAX_DIMS];
  memcpy(shape, a->shape, sizeof shape);
  if (a->ndim) shape[d] = k;
  fsvc_device dev = a->storage->device;
  fsvc_tensor *vals = fsvc_empty_on(a->ndim, shape, a->dtype, dev);
  fsvc_tensor *idx = fsvc_empty_on(a->ndim, shape, FSVC_INT64, dev);
  size_t scratch_bytes = fsvc_gpu_topk_scratch_bytes(a->dtype, p.outer, p.R, p.inner, k);
  int64_t scratch_n = (int64_t)((scratch_bytes + 7) / 8);
  fsvc_tensor *scratch = scratch_bytes ? fsvc_empty_on(1, &scratch_n, FSVC_INT64, dev) : NULL;
  int rc = -1;
  if (vals && idx && (scratch || !scratch_bytes))
    rc = fsvc_gpu_topk_launch(a->dtype, fsvc_data(vals), fsvc_data(idx), fsvc_data(p.x), p.outer, p.R,
                              p.inner, k, largest, scratch ? fsvc_data(scratch) : NULL);
  fsvc_tensor_release(scratch);
  fsvc_reduce_plan_free(&p);
  if (rc != 0) {
    fsvc_tensor_release(vals);
    fsvc_tensor_release(idx);
    return NULL;
  }
  if (fsvc_dtype_is_float(a->dtype)) {
    fsvc_node *n = fsvc_node_new("topk", 1, (fsvc_tensor *[]){(fsvc_tensor *)a}, extremum_backward);
    if (n) {
      fsvc_node_save(n, idx);
      n->iarg[0] = d;
      fsvc_node_attach(n, vals);
    }
  }
  if (indices) *indices = idx;
  else fsvc_tensor_release(idx);
  return vals;
}

/* ---- softmax / log_softmax / cumsum: [outer, R, inner] on the contiguous input ------------------- */
typedef struct {
  int64_t outer, r, inner;
} line_plan;

static int plan_lines(const fsvc_tensor *a, int dim, const char *op, line_plan *lp, int *dn) {
  int d = fsvc_reduce_norm_dim(dim, a->ndim, op);
  if (d < 0) return -1;
  lp->outer = lp->inner = 1;
  lp->r = a->ndim ? a->shape[d] : 1;
  for (int i = 0; i < d; i++) lp->outer *= a->shape[i];
  for (int i = d + 1; i < a->ndim; i++) lp->inner *= a->shape[i];
  *dn = d;
  return 0;
}

/* saved[0] = y (softmax) or x-free output; iarg[0] = dim, iarg[1] = log */
static int softmax_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  const fsvc_tensor *y = n->saved[0];
  line_plan lp;
  int d;
  if (plan_lines(y, (int)n->iarg[0], "softmax", &lp, &d) != 0) return -1;
  fsvc_tensor *gc = fsvc_gpu_contig_as(g, y->dtype);
  fsvc_tensor *gx = gc ? fsvc_empty_like(y) : NULL;
  if (!gx || fsvc_gpu_softmax_backward_launch(y->dtype, fsvc_data(gx), fsvc_data(gc), fsvc_data(y),
                                              lp.outer, lp.r, lp.inner, (int)n->iarg[1]) != 0) {
    fsvc_tensor_release(gc);
    fsvc_tensor_release(gx);
    return -1;
  }
  fsvc_tensor_release(gc);
  gin[0] = gx;
  return 0;
}

static fsvc_tensor *softmax_impl(const fsvc_tensor *a, int dim, int log) {
  const char *name = log ? "log_softmax" : "softmax";
  if (check_float(name, a, 0) != 0) return NULL; /* every float dtype: 16-bit computes in float */
  line_plan lp;
  int d;
  if (plan_lines(a, dim, name, &lp, &d) != 0) return NULL;
  fsvc_tensor *x = fsvc_contiguous_raw(a);
  fsvc_tensor *y = x ? fsvc_empty_like(x) : NULL;
  if (!y || fsvc_gpu_softmax_launch(a->dtype, fsvc_data(y), fsvc_data(x), lp.outer, lp.r, lp.inner, log) != 0) {
    fsvc_tensor_release(x);
    fsvc_tensor_release(y);
    return NULL;
  }
  fsvc_tensor_release(x);
  fsvc_node *n = fsvc_node_new(name, 1, (fsvc_tensor *[]){(fsvc_tensor *)a}, softmax_backward);
  if (n) {
    fsvc_node_save(n, y);
    n->iarg[0] = d;
    n->iarg[1] = log;
    fsvc_node_attach(n, y);
  }
  return y;
}
static fsvc_tensor *gpu_softmax(const fsvc_tensor *a, int dim) { return softmax_impl(a, dim, 0); }
static fsvc_tensor *gpu_log_softmax(const fsvc_tensor *a, int dim) { return softmax_impl(a, dim, 1); }

static int cumsum_lines(const fsvc_tensor *a, int d, int reverse, fsvc_tensor **out) {
  line_plan lp;
  int dn;
  if (plan_lines(a, d, "cumsum", &lp, &dn) != 0) return -1;
  fsvc_tensor *x = fsvc_contiguous_raw(a);
  fsvc_tensor *y = x ? fsvc_empty_like(x) : NULL;
  int rc = y ? fsvc_gpu_cumsum_launch(a->dtype, fsvc_data(y), fsvc_data(x), lp.outer, lp.r, lp.inner, reverse) : -1;
  fsvc_tensor_release(x);
  if (rc != 0) { fsvc_tensor_release(y); return -1; }
  *out = y;
  return 0;
}

static int cumsum_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  return cumsum_lines(g, (int)n->iarg[0], 1, &gin[0]);
}

static fsvc_tensor *gpu_cumsum(const fsvc_tensor *a, int dim) {
  if (check_float("cumsum", a, 1) != 0) return NULL;
  int d = fsvc_reduce_norm_dim(dim, a->ndim, "cumsum");
  fsvc_tensor *y = NULL;
  if (d < 0 || cumsum_lines(a, d, 0, &y) != 0) return NULL;
  if (fsvc_dtype_is_float(a->dtype)) {
    fsvc_node *n = fsvc_node_new("cumsum", 1, (fsvc_tensor *[]){(fsvc_tensor *)a}, cumsum_backward);
    if (n) {
      n->iarg[0] = d;
      fsvc_node_attach(n, y);
    }
  }
  return y;
}

void fsvc_gpu_fill_reduce(fsvc_cuda_op_table *t) {
  t->sum = gpu_sum; t->mean = gpu_mean; t->var = gpu_var; t->std = gpu_std; t->norm = gpu_norm;
  t->logsumexp = gpu_logsumexp; t->max_dim = gpu_max_dim; t->min_dim = gpu_min_dim;
  t->max_all = gpu_max_all; t->min_all = gpu_min_all; t->argmax = gpu_argmax; t->argmin = gpu_argmin;
  t->argmax_all = gpu_argmax_all; t->argmin_all = gpu_argmin_all; t->topk = gpu_topk;
  t->softmax = gpu_softmax; t->log_softmax = gpu_log_softmax; t->cumsum = gpu_cumsum;
}
