/* The [outer, R, inner] layout shared by every reduction (see reduce_internal.h). */
#include <stdlib.h>
#include <string.h>

#include "reduce_internal.h"

int fsvc_reduce_check_input(const fsvc_tensor *a, const char *op, int allow_int) {
  if (!a) { fsvc_set_error("%s: input tensor is NULL", op); return -1; }
  if (!a->storage) { fsvc_set_error("%s: tensor was freed", op); return -1; }
  if (a->storage->device.type != FSVC_CPU) {
    fsvc_set_error("%s: tensor is on a device this kernel does not handle", op);
    return -1;
  }
  switch (a->dtype) {
    case FSVC_FLOAT32:
    case FSVC_FLOAT64: return 0;
    case FSVC_INT64:
      if (allow_int) return 0;
      fsvc_set_error("%s: needs a float tensor, got int64 (convert with :float())", op);
      return -1;
    default:
      fsvc_set_error("%s: dtype %s is not computed on the CPU (convert to float32 first)", op,
                     fsvc_dtype_name(a->dtype));
      return -1;
  }
}

int fsvc_reduce_norm_dim(int dim, int ndim, const char *op) {
  if (ndim == 0 && dim == -1) return 0;
  return fsvc_normalize_dim(dim, ndim, op);
}

/* A contiguous [outer, R, inner] buffer for the reduced-dims mask. */
static int plan_build(fsvc_reduce_plan *p, const fsvc_tensor *a, unsigned mask, int keepdim) {
  int nd = a->ndim;
  memset(p, 0, sizeof *p);
  p->mask = mask;
  for (int d = 0; d < nd; d++) {
    if (mask & (1u << d)) {
      if (keepdim) p->out_shape[p->out_ndim++] = 1;
    } else {
      p->out_shape[p->out_ndim++] = a->shape[d];
    }
  }
  /* Is the reduced set one consecutive block [lo, hi]? */
  int lo = -1, hi = -1;
  for (int d = 0; d < nd; d++)
    if (mask & (1u << d)) {
      if (lo < 0) lo = d;
      hi = d;
    }
  int block = 1;
  for (int d = lo; lo >= 0 && d <= hi; d++)
    if (!(mask & (1u << d))) block = 0;

  p->outer = p->R = p->inner = 1;
  if (lo < 0) { /* 0-d input: one element, reduced to itself */
    p->x = fsvc_contiguous_raw(a);
    return p->x ? 0 : -1;
  }
  if (block) {
    for (int d = 0; d < lo; d++) p->outer *= a->shape[d];
    for (int d = lo; d <= hi; d++) p->R *= a->shape[d];
    for (int d = hi + 1; d < nd; d++) p->inner *= a->shape[d];
    p->x = fsvc_contiguous_raw(a);
    return p->x ? 0 : -1;
  }
  /* Scattered dims, e.g. {0, 2} of [B, C, T]: permute kept dims first, then copy. */
  int64_t shape[FSVC_MAX_DIMS], stride[FSVC_MAX_DIMS];
  int k = 0;
  for (int d = 0; d < nd; d++)
    if (!(mask & (1u << d))) {
      shape[k] = a->shape[d];
      stride[k++] = a->stride[d];
      p->outer *= a->shape[d];
    }
  for (int d = 0; d < nd; d++)
    if (mask & (1u << d)) {
      shape[k] = a->shape[d];
      stride[k++] = a->stride[d];
      p->R *= a->shape[d];
    }
  fsvc_tensor *v = fsvc_view_raw(a, nd, shape, stride, a->offset);
  if (!v) return -1;
  p->x = fsvc_clone_raw(v);
  fsvc_tensor_release(v);
  return p->x ? 0 : -1;
}

int fsvc_reduce_plan_init(fsvc_reduce_plan *p, const fsvc_tensor *a, int n_dims, const int *dims,
                          int keepdim, const char *op) {
  memset(p, 0, sizeof *p);
  if (n_dims < 0 || (n_dims > 0 && !dims)) {
    fsvc_set_error("%s: invalid list of dims", op);
    return -1;
  }
  unsigned mask = 0;
  if (n_dims == 0) {
    mask = a->ndim ? (1u << a->ndim) - 1 : 0;
  } else {
    for (int i = 0; i < n_dims; i++) {
      int d = fsvc_reduce_norm_dim(dims[i], a->ndim, op);
      if (d < 0) return -1;
      if (a->ndim == 0) continue; /* dim 0 / -1 of a 0-d tensor names the tensor itself */
      if (mask & (1u << d)) {
        fsvc_set_error("%s: dim %d appears more than once in the list of dims", op, d);
        return -1;
      }
      mask |= 1u << d;
    }
  }
  return plan_build(p, a, mask, keepdim);
}

int fsvc_reduce_plan_dim(fsvc_reduce_plan *p, const fsvc_tensor *a, int dim, int keepdim,
                         const char *op) {
  return fsvc_reduce_plan_init(p, a, 1, &dim, keepdim, op);
}

int fsvc_reduce_plan_mask(fsvc_reduce_plan *p, const fsvc_tensor *a, unsigned mask, int keepdim) {
  return plan_build(p, a, mask, keepdim);
}

void fsvc_reduce_plan_free(fsvc_reduce_plan *p) {
  fsvc_tensor_release(p->x);
  p->x = NULL;
}

void fsvc_reduce_dim_layout(int ndim, const int64_t *shape, int d, int64_t *outer, int64_t *R,
                            int64_t *inner) {
  *outer = *inner = 1;
  *R = ndim ? shape[d] : 1;
  for (int i = 0; i < d && ndim; i++) *outer *= shape[i];
  for (int i = d + 1; i < ndim; i++) *inner *= shape[i];
}

fsvc_tensor *fsvc_reduce_picked_grad(const fsvc_edge *e, int dim, int64_t k, const fsvc_tensor *g,
                                     const fsvc_tensor *indices) {
  int64_t outer, R, inner;
  fsvc_reduce_dim_layout(e->ndim, e->shape, dim, &outer, &R, &inner);
  fsvc_tensor *g64 = fsvc_reduce_contig_as(g, FSVC_FLOAT64);
  fsvc_tensor *idx = fsvc_contiguous_raw(indices);
  fsvc_tensor *out = fsvc_zeros(e->ndim, e->shape, FSVC_FLOAT64);
  fsvc_tensor *gx = NULL;
  if (g64 && idx && out) {
    const double *gp = fsvc_data(g64);
    const int64_t *ip = fsvc_data(idx);
    double *op = fsvc_data(out);
    for (int64_t o = 0; o < outer; o++)
      for (int64_t j = 0; j < k; j++)
        for (int64_t i = 0; i < inner; i++) {
          int64_t src = (o * k + j) * inner + i;
          op[(o * R + ip[src]) * inner + i] += gp[src];
        }
    gx = e->dtype == FSVC_FLOAT64 ? fsvc_tensor_retain(out) : fsvc_to_dtype_raw(out, e->dtype);
  }
  fsvc_tensor_release(g64);
  fsvc_tensor_release(idx);
  fsvc_tensor_release(out);
  return gx;
}

fsvc_tensor *fsvc_reduce_contig_as(const fsvc_tensor *t, fsvc_dtype dt) {
  if (t->dtype == dt) return fsvc_contiguous_raw(t);
  return fsvc_to_dtype_raw(t, dt);
}

fsvc_tensor *fsvc_reduce_expand(const fsvc_tensor *g, int in_ndim, const int64_t *in_shape,
                                unsigned mask, fsvc_dtype dt) {
  fsvc_tensor *gc = fsvc_contiguous_raw(g);
  if (!gc) return NULL;
  /* g's elements are in kept-dims order; give them the input's rank with stride 0 on the
   * reduced dims (works whether g was produced with keepdim or not). */
  int64_t stride[FSVC_MAX_DIMS];
  int64_t s = 1;
  for (int d = in_ndim - 1; d >= 0; d--) {
    if (mask & (1u << d)) {
      stride[d] = 0;
    } else {
      stride[d] = s;
      s *= in_shape[d];
    }
  }
  if (s != fsvc_numel(gc)) {
    char a[128], b[128];
    fsvc_set_error("reduction backward: gradient of shape %s does not fit input shape %s",
                   fsvc_shape_str(g, a, sizeof a), fsvc_shape_str_n(in_ndim, in_shape, b, sizeof b));
    fsvc_tensor_release(gc);
    return NULL;
  }
  fsvc_tensor *v = fsvc_view_raw(gc, in_ndim, in_shape, stride, gc->offset);
  fsvc_tensor_release(gc);
  if (!v) return NULL;
  fsvc_tensor *out = fsvc_empty(in_ndim, in_shape, dt);
  if (out && fsvc_copy_(out, v) != 0) {
    fsvc_tensor_release(out);
    out = NULL;
  }
  fsvc_tensor_release(v);
  return out;
}

fsvc_tensor *fsvc_reduce_output_from_double(const fsvc_reduce_plan *p, const double *res,
                                            fsvc_dtype dt) {
  return fsvc_from_buffer(p->out_ndim, p->out_shape, dt, res, FSVC_FLOAT64);
}
