/* Indexing by int64 index tensors (0-based): index_select, gather, scatter_add.
 *
 * Every index is checked against the indexed dim BEFORE anything is read or written, so a bad
 * index gives "op: index V out of range for dim D of size N" and never an out-of-bounds access.
 * The argument checks (prepare_*) run before the CUDA dispatch, so both devices give the same
 * messages: a CPU index is range-checked here for either device; a CUDA index is checked by the
 * device kernels, which skip a bad one and report it at the next synchronisation (gpu/). 
 * Backwards: index_select -> index_add of the gradient into zeros; gather -> scatter_add into
 * zeros; scatter_add -> the gradient itself for `a`, and gather of it for `src`. */
#include <stdlib.h>
#include <string.h>

#include "fsvc/autocast.h"
#include "fsvc/device.h"
#include "fsvc/autograd.h"
#include "fsvc/error.h"
#include "fsvc/ops_shape.h"
#include "index_internal.h"

__attribute__((constructor)) static void register_ops(void) {
  fsvc_register_differentiable("index_select");
  fsvc_register_differentiable("gather");
  fsvc_register_differentiable("scatter_add");
}

static int check_input(const fsvc_tensor *t, const char *op, const char *name) {
  if (!t) { fsvc_set_error("%s: %s is nil", op, name); return -1; }
  if (!t->storage) { fsvc_set_error("%s: %s was freed", op, name); return -1; }
  return 0;
}

static int check_value_dtype(const fsvc_tensor *t, const char *op) {
  if (t->dtype != FSVC_FLOAT32 && t->dtype != FSVC_FLOAT64 && t->dtype != FSVC_INT64) {
    fsvc_set_error("%s: dtype %s is not supported (float32, float64, int64)", op,
                   fsvc_dtype_name(t->dtype));
    return -1;
  }
  return 0;
}

/* index: alive, int64, and on the input's device or on the CPU (a CPU index is moved). */
static int check_index(const fsvc_tensor *index, const fsvc_tensor *a, const char *op) {
  if (check_input(index, op, "index") != 0) return -1;
  if (index->dtype != FSVC_INT64) {
    fsvc_set_error("%s: index must be an int64 tensor (got %s); use :long()", op,
                   fsvc_dtype_name(index->dtype));
    return -1;
  }
  if (fsvc_tensor_is_cuda(index) && !fsvc_device_equal(index->storage->device, a->storage->device)) {
    char di[32], da[32];
    fsvc_set_error("%s: index is on %s but input is on %s; move it with :to(\"%s\")", op,
                   fsvc_device_str(index->storage->device, di, sizeof di),
                   fsvc_device_str(a->storage->device, da, sizeof da), da);
    return -1;
  }
  return 0;
}

/* A CPU index's values all lie in [0, size); -1 with an error naming the first bad value. CUDA
 * indices are left to the device kernels (reading them here would wait for the device). */
static int check_range(const fsvc_tensor *index, int64_t size, int dim, const char *op) {
  if (fsvc_tensor_is_cuda(index)) return 0;
  fsvc_tensor *ic = fsvc_contiguous_raw(index);
  if (!ic) return -1;
  const int64_t *p = fsvc_data(ic);
  int64_t n = fsvc_numel(ic);
  for (int64_t i = 0; i < n; i++) {
    if (p[i] < 0 || p[i] >= size) {
      fsvc_set_error("%s: index %lld out of range for dim %d of size %lld (indices are 0-based)", op,
                     (long long)p[i], dim, (long long)size);
      fsvc_tensor_release(ic);
      return -1;
    }
  }
  fsvc_tensor_release(ic);
  return 0;
}

/* ---- the element walk shared by gather and scatter_add ------------------------------------- */
/* For every position i of `index` (contiguous, values checked):
 *   gather:      other[i] = target[i with i_dim := index[i]]
 *   scatter_add: target[i with i_dim := index[i]] += other[i]
 * `target` and `other` may have any strides; `other` is indexed with index's multi-index. */
#define DEFINE_WALK(NAME, T)                                                                       \
  static void NAME(int scatter, fsvc_tensor *target, fsvc_tensor *other, const fsvc_tensor *ic,    \
                   int dim) {                                                                       \
    T *tp = (T *)fsvc_data(target);                                                                 \
    T *op = (T *)fsvc_data(other);                                                                  \
    const int64_t *ip = (const int64_t *)fsvc_data(ic);                                             \
    int nd = ic->ndim;                                                                              \
    int64_t n = fsvc_numel(ic), idx[FSVC_MAX_DIMS] = {0};                                           \
    int64_t toff = 0, ooff = 0; /* target offset without dim; other offset */                       \
    int64_t tsd = nd ? target->stride[dim] : 0;                                                     \
    for (int64_t i = 0; i < n; i++) {                                                               \
      int64_t t = toff + ip[i] * tsd;                                                               \
      if (scatter) tp[t] += op[ooff];                                                               \
      else op[ooff] = tp[t];                                                                        \
      for (int d = nd - 1; d >= 0; d--) { /* odometer step, offsets kept incrementally */          \
        if (++idx[d] < ic->shape[d]) {                                                              \
          if (d != dim) toff += target->stride[d];                                                  \
          ooff += other->stride[d];                                                                 \
          break;                                                                                    \
        }                                                                                           \
        if (d != dim) toff -= (idx[d] - 1) * target->stride[d];                                     \
        ooff -= (idx[d] - 1) * other->stride[d];                                                    \
        idx[d] = 0;                                                                                 \
      }                                                                                             \
    }                                                                                               \
  }
DEFINE_WALK(walk_f32, float)
DEFINE_WALK(walk_f64, double)
DEFINE_WALK(walk_i64, int64_t)

static void walk(int scatter, fsvc_tensor *target, fsvc_tensor *other, const fsvc_tensor *ic, int dim) {
  if (target->dtype == FSVC_FLOAT32) walk_f32(scatter, target, other, ic, dim);
  else if (target->dtype == FSVC_FLOAT64) walk_f64(scatter, target, other, ic, dim);
  else walk_i64(scatter, target, other, ic, dim);
}

/* dim normalised for a: a 0-d tensor also accepts 0 and -1, as PyTorch. -1 with the error set. */
static int index_dim(const fsvc_tensor *a, int dim, const char *op) {
  if (a->ndim == 0) return (dim == 0 || dim == -1) ? 0 : fsvc_normalize_dim(dim, 0, op);
  return fsvc_normalize_dim(dim, a->ndim, op);
}

/* gather / scatter_add shape rule (PyTorch): same number of dims; index.size(d) <= a.size(d) for
 * d != dim, and <= src.size(d) for every d. */
static int check_index_shape(const fsvc_tensor *a, const fsvc_tensor *index, const fsvc_tensor *src,
                             int dim, const char *op) {
  char sa[128], sb[128], sc[128];
  int ok = index->ndim == a->ndim && (!src || src->ndim == a->ndim);
  for (int d = 0; ok && d < a->ndim; d++) {
    if (d != dim && index->shape[d] > a->shape[d]) ok = 0;
    if (src && index->shape[d] > src->shape[d]) ok = 0;
  }
  if (!ok) {
    if (src)
      fsvc_set_error("%s: index of shape %s does not fit input %s and src %s along dim %d (same "
                     "number of dims; index no larger than src, nor than input except along dim)",
                     op, fsvc_shape_str(index, sb, sizeof sb), fsvc_shape_str(a, sa, sizeof sa),
                     fsvc_shape_str(src, sc, sizeof sc), dim);
    else
      fsvc_set_error("%s: index of shape %s does not fit input %s along dim %d (same number of "
                     "dims; index no larger than input except along dim)",
                     op, fsvc_shape_str(index, sb, sizeof sb), fsvc_shape_str(a, sa, sizeof sa), dim);
  }
  return ok ? 0 : -1;
}

/* out (contiguous, shape of ic) = gather of a; indices already checked */
static fsvc_tensor *gather_raw(const fsvc_tensor *a, const fsvc_tensor *ic, int dim) {
  fsvc_tensor *out = fsvc_empty(ic->ndim, ic->shape, a->dtype);
  if (out && fsvc_numel(out) > 0) walk(0, (fsvc_tensor *)a, out, ic, dim);
  return out;
}

/* ---- gather -------------------------------------------------------------------------------- */
/* The backwards of gather and scatter_add are written with the public ops, so that they run on
 * the gradient's device: the CUDA ops (gpu/ops_shape.c) record their nodes with them too
 * (index_internal.h). Backward runs with grad mode off: these ops record nothing. */
int fsvc_gather_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  const fsvc_edge *e = &n->edges[0];
  fsvc_tensor *z = fsvc_zeros_on(e->ndim, e->shape, g->dtype, fsvc_tensor_device(g));
  gin[0] = z ? fsvc_scatter_add(z, (int)n->iarg[0], n->saved[0], g) : NULL;
  fsvc_tensor_release(z);
  return gin[0] ? 0 : -1;
}

/* The checks of gather (src NULL) and scatter_add, the same on every device, made before the
 * dispatch. Returns the normalised dim, or -1 with the error set. */
static int prepare_gather(const char *op, const fsvc_tensor *a, int dim, const fsvc_tensor *index,
                          const fsvc_tensor *src) {
  if (check_input(a, op, "input") != 0 || check_index(index, a, op) != 0) return -1;
  if (src) {
    if (check_input(src, op, "src") != 0) return -1;
    if (src->dtype != a->dtype) {
      fsvc_set_error("%s: src has dtype %s but input has %s", op, fsvc_dtype_name(src->dtype),
                     fsvc_dtype_name(a->dtype));
      return -1;
    }
    if (!fsvc_device_equal(src->storage->device, a->storage->device)) {
      char ds[32], da[32];
      fsvc_set_error("%s: src is on %s but input is on %s", op,
                     fsvc_device_str(src->storage->device, ds, sizeof ds),
                     fsvc_device_str(a->storage->device, da, sizeof da));
      return -1;
    }
  }
  int d = index_dim(a, dim, op);
  if (d < 0) return -1;
  if (check_index_shape(a, index, src, d, op) != 0) return -1;
  if (check_range(index, a->ndim ? a->shape[d] : 1, dim, op) != 0) return -1;
  return d;
}

fsvc_tensor *fsvc_gather(const fsvc_tensor *a, int dim, const fsvc_tensor *index) {
  const char *op = "gather";
  int d = prepare_gather(op, a, dim, index, NULL);
  if (d < 0) return NULL;
  FSVC_DISPATCH_CUDA(gather, a, dim, index);
  FSVC_CPU_LOWP("gather", FSVC_RECAST_SAME_DTYPE,
                fsvc_gather(FSVC_RECAST_ARG(0), dim, index), a);
  if (check_value_dtype(a, op) != 0) return NULL;
  fsvc_tensor *ic = fsvc_contiguous_raw(index);
  if (!ic) return NULL;
  fsvc_tensor *out = gather_raw(a, ic, d);
  if (!out) { fsvc_tensor_release(ic); return NULL; }
  fsvc_node *n = fsvc_node_new(op, 1, (fsvc_tensor *[]){(fsvc_tensor *)a}, fsvc_gather_backward);
  if (n) {
    fsvc_node_save(n, ic);
    n->iarg[0] = d;
    fsvc_node_attach(n, out);
  }
  fsvc_tensor_release(ic);
  return out;
}

/* ---- scatter_add --------------------------------------------------------------------------- */
int fsvc_scatter_add_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (n->edges[0].needs_grad) {
    gin[0] = fsvc_clone_raw(g);
    if (!gin[0]) return -1;
  }
  if (n->edges[2].needs_grad) {
    /* src's gradient: g gathered at the index, in the leading region of zeros of src's shape
     * (the index may be smaller than src) */
    const fsvc_edge *e = &n->edges[2];
    fsvc_tensor *part = fsvc_gather(g, (int)n->iarg[0], n->saved[0]);
    fsvc_tensor *z = part ? fsvc_zeros_on(e->ndim, e->shape, g->dtype, fsvc_tensor_device(g)) : NULL;
    fsvc_tensor *region = z ? fsvc_view_raw(z, z->ndim, part->shape, z->stride, z->offset) : NULL;
    int rc = region ? fsvc_copy_(region, part) : -1;
    fsvc_tensor_release(region);
    fsvc_tensor_release(part);
    if (rc != 0) { fsvc_tensor_release(z); return -1; }
    gin[2] = z;
  }
  return 0;
}

fsvc_tensor *fsvc_scatter_add(const fsvc_tensor *a, int dim, const fsvc_tensor *index,
                              const fsvc_tensor *src) {
  const char *op = "scatter_add";
  int d = prepare_gather(op, a, dim, index, src);
  if (d < 0) return NULL;
  FSVC_DISPATCH_CUDA(scatter_add, a, dim, index, src);
  FSVC_CPU_LOWP("scatter_add", FSVC_RECAST_SAME_DTYPE,
                fsvc_scatter_add(FSVC_RECAST_ARG(0), dim, index, FSVC_RECAST_ARG(1)), a, src);
  if (check_value_dtype(a, op) != 0) return NULL;
  fsvc_tensor *ic = fsvc_contiguous_raw(index);
  if (!ic) return NULL;
  fsvc_tensor *out = fsvc_clone_raw(a);
  if (!out) { fsvc_tensor_release(ic); return NULL; }
  if (fsvc_numel(ic) > 0) walk(1, out, (fsvc_tensor *)src, ic, d);
  fsvc_node *n = fsvc_node_new(op, 3, (fsvc_tensor *[]){(fsvc_tensor *)a, (fsvc_tensor *)index,
                                                        (fsvc_tensor *)src},
                               fsvc_scatter_add_backward);
  if (n) {
    fsvc_node_save(n, ic);
    n->iarg[0] = d;
    fsvc_node_attach(n, out);
  }
  fsvc_tensor_release(ic);
  return out;
}

/* ---- index_select -------------------------------------------------------------------------- */
/* a viewed as [outer, size, inner] around dim d (contiguous), the index as k positions:
 *   forward:  out[o, i, :] = a[o, index[i], :]    (one block copy of `inner` elements each)
 *   backward: gx[o, index[i], :] += g[o, i, :]   (repeated indices add up) */
static void outer_inner(const int64_t *shape, int ndim, int d, int64_t *outer, int64_t *inner) {
  *outer = 1;
  *inner = 1;
  for (int q = 0; q < d; q++) *outer *= shape[q];
  for (int q = d + 1; q < ndim; q++) *inner *= shape[q];
}

#define DEFINE_INDEX_ADD(NAME, T)                                                                  \
  static void NAME(T *gx, const T *g, const int64_t *ip, int64_t k, int64_t size, int64_t outer,   \
                   int64_t inner) {                                                                \
    for (int64_t o = 0; o < outer; o++)                                                            \
      for (int64_t i = 0; i < k; i++) {                                                            \
        T *dst = gx + (o * size + ip[i]) * inner;                                                  \
        const T *src = g + (o * k + i) * inner;                                                    \
        for (int64_t j = 0; j < inner; j++) dst[j] += src[j];                                      \
      }                                                                                            \
  }
DEFINE_INDEX_ADD(index_add_f32, float)
DEFINE_INDEX_ADD(index_add_f64, double)

static int index_select_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  const fsvc_edge *e = &n->edges[0];
  const fsvc_tensor *ic = n->saved[0];
  fsvc_tensor *z = fsvc_zeros(e->ndim, e->shape, g->dtype);
  fsvc_tensor *gc = z ? fsvc_contiguous_raw(g) : NULL;
  if (!gc) { fsvc_tensor_release(z); return -1; }
  int d = (int)n->iarg[0];
  int64_t outer, inner, size = e->ndim ? e->shape[d] : 1;
  outer_inner(e->shape, e->ndim, d, &outer, &inner);
  /* a 0-d input took one element: k = 1, the gradient is that element's */
  int64_t k = e->ndim ? fsvc_numel(ic) : 1;
  const int64_t *ip = fsvc_data(ic);
  if (g->dtype == FSVC_FLOAT32) index_add_f32(fsvc_data(z), fsvc_data(gc), ip, k, size, outer, inner);
  else index_add_f64(fsvc_data(z), fsvc_data(gc), ip, k, size, outer, inner);
  fsvc_tensor_release(gc);
  gin[0] = z;
  return 0;
}

/* index_select's checks, the same on every device; the normalised dim or -1 */
static int prepare_index_select(const fsvc_tensor *a, int dim, const fsvc_tensor *index) {
  const char *op = "index_select";
  if (check_input(a, op, "input") != 0 || check_index(index, a, op) != 0) return -1;
  if (index->ndim > 1) {
    char sb[128];
    fsvc_set_error("index_select: index must be 0-d or 1-d (got shape %s)",
                   fsvc_shape_str(index, sb, sizeof sb));
    return -1;
  }
  int d = index_dim(a, dim, op);
  if (d < 0) return -1;
  if (check_range(index, a->ndim ? a->shape[d] : 1, dim, op) != 0) return -1;
  return d;
}

fsvc_tensor *fsvc_index_select(const fsvc_tensor *a, int dim, const fsvc_tensor *index) {
  const char *op = "index_select";
  int d = prepare_index_select(a, dim, index);
  if (d < 0) return NULL;
  FSVC_DISPATCH_CUDA(index_select, a, dim, index);
  FSVC_CPU_LOWP("index_select", FSVC_RECAST_SAME_DTYPE,
                fsvc_index_select(FSVC_RECAST_ARG(0), dim, index), a);
  if (check_value_dtype(a, op) != 0) return NULL;
  fsvc_tensor *ic = fsvc_contiguous_raw(index);
  fsvc_tensor *x = ic ? fsvc_contiguous_raw(a) : NULL;
  if (!x) { fsvc_tensor_release(ic); return NULL; }
  const int64_t k = fsvc_numel(ic), size = a->ndim ? a->shape[d] : 1;
  int64_t outer, inner, shape[FSVC_MAX_DIMS];
  outer_inner(a->shape, a->ndim, d, &outer, &inner);
  for (int i = 0; i < a->ndim; i++) shape[i] = i == d ? k : a->shape[i];
  /* PyTorch: a 0-d input gives a 0-d output (its one element, for index [0]) */
  fsvc_tensor *out = a->ndim == 0 ? fsvc_clone_raw(x) : fsvc_empty(a->ndim, shape, a->dtype);
  if (out && a->ndim > 0) {
    const size_t es = fsvc_dtype_size(a->dtype), row = (size_t)inner * es;
    const char *src = fsvc_data(x);
    char *dst = fsvc_data(out);
    const int64_t *ip = fsvc_data(ic);
#pragma omp parallel for if (outer * k * inner > 65536)
    for (int64_t o = 0; o < outer; o++)
      for (int64_t i = 0; i < k; i++)
        memcpy(dst + (size_t)(o * k + i) * row, src + (size_t)(o * size + ip[i]) * row, row);
  }
  fsvc_tensor_release(x);
  if (!out) { fsvc_tensor_release(ic); return NULL; }
  fsvc_node *n = fsvc_node_new(op, 1, (fsvc_tensor *[]){(fsvc_tensor *)a}, index_select_backward);
  if (n) {
    fsvc_node_save(n, ic);
    n->iarg[0] = d;
    fsvc_node_attach(n, out);
  }
  fsvc_tensor_release(ic);
  return out;
}
