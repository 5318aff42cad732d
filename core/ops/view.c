/* Views and copies that change a tensor's geometry: view, reshape, permute, transpose, narrow,
 * slice, select, expand, squeeze, unsqueeze, contiguous, clone, to_dtype.
 *
 * Views share storage with their input (fsvc_view_raw) and work for any input strides. Their
 * backward functions return CONTIGUOUS gradients, so that backward functions downstream never
 * see a strided or zero-stride grad_out coming from a view. */
#include <stdlib.h>
#include <string.h>

#include "fsvc/device.h"
#include "fsvc/autograd.h"
#include "fsvc/error.h"
#include "fsvc/ops_shape.h"

__attribute__((constructor)) static void register_ops(void) {
  static const char *ops[] = {"view",   "reshape", "permute",   "transpose",  "narrow",
                              "slice",  "select",  "expand",    "squeeze",    "unsqueeze",
                              "contiguous", "clone", "to"};
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) fsvc_register_differentiable(ops[i]);
}

/* NULL or freed inputs are the first thing every op rejects. */
static int check_input(const fsvc_tensor *a, const char *op) {
  if (!a) { fsvc_set_error("%s: tensor is nil", op); return -1; }
  if (!a->storage) { fsvc_set_error("%s: tensor was freed", op); return -1; }
  return 0;
}

/* A contiguous copy (or alias) of g with the given shape: the usual backward of shape-only ops. */
static fsvc_tensor *reshape_grad(const fsvc_tensor *g, int ndim, const int64_t *shape) {
  fsvc_tensor *c = fsvc_contiguous_raw(g);
  if (!c) return NULL;
  int64_t stride[FSVC_MAX_DIMS];
  fsvc_contiguous_strides(ndim, shape, stride);
  fsvc_tensor *v = fsvc_view_raw(c, ndim, shape, stride, c->offset);
  fsvc_tensor_release(c);
  return v;
}

/* grad_in[0] = grad_out reshaped to input 0's shape (view, reshape, squeeze, unsqueeze, clone,
 * contiguous, to). */
static int reshape_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  gin[0] = reshape_grad(g, n->edges[0].ndim, n->edges[0].shape);
  return gin[0] ? 0 : -1;
}

static void record_unary(const char *op, const fsvc_tensor *a, fsvc_tensor *out,
                         fsvc_backward_fn bw) {
  fsvc_node *n = fsvc_node_new(op, 1, (fsvc_tensor *[]){(fsvc_tensor *)a}, bw);
  if (n) fsvc_node_attach(n, out);
}

/* ---- view / reshape ------------------------------------------------------------------------ */
/* Resolves one -1 and checks the element count. Writes the final shape into out_shape. */
static int infer_shape(const fsvc_tensor *a, int ndim, const int64_t *shape, int64_t *out_shape,
                       const char *op) {
  char sa[128], sb[128];
  if (ndim < 0 || ndim > FSVC_MAX_DIMS || (ndim > 0 && !shape)) {
    fsvc_set_error("%s: a shape has 0 to %d dims (got %d)", op, FSVC_MAX_DIMS, ndim);
    return -1;
  }
  int infer = -1, overflow = 0; /* a product past 2^63 cannot match any tensor's element count */
  int64_t known = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] == -1) {
      if (infer >= 0) {
        fsvc_set_error("%s: only one size may be -1 in shape %s", op,
                       fsvc_shape_str_n(ndim, shape, sb, sizeof sb));
        return -1;
      }
      infer = i;
    } else if (shape[i] < 0) {
      fsvc_set_error("%s: negative size in shape %s", op, fsvc_shape_str_n(ndim, shape, sb, sizeof sb));
      return -1;
    } else if (known != 0 && shape[i] > INT64_MAX / known) {
      overflow = 1;
    } else {
      known *= shape[i];
    }
    out_shape[i] = shape[i];
  }
  int64_t n = fsvc_numel(a);
  if (overflow) {
    fsvc_set_error("%s: shape %s is invalid for input of shape %s (%lld elements)", op,
                   fsvc_shape_str_n(ndim, shape, sb, sizeof sb), fsvc_shape_str(a, sa, sizeof sa),
                   (long long)n);
    return -1;
  }
  if (infer >= 0) {
    if (known == 0 || n % known != 0) {
      fsvc_set_error("%s: shape %s is invalid for input of shape %s (%lld elements)", op,
                     fsvc_shape_str_n(ndim, shape, sb, sizeof sb), fsvc_shape_str(a, sa, sizeof sa),
                     (long long)n);
      return -1;
    }
    out_shape[infer] = n / known;
  } else if (known != n) {
    fsvc_set_error("%s: shape %s is invalid for input of shape %s (%lld elements)", op,
                   fsvc_shape_str_n(ndim, shape, sb, sizeof sb), fsvc_shape_str(a, sa, sizeof sa),
                   (long long)n);
    return -1;
  }
  return 0;
}

/* Strides that let a view of `a` have shape new_shape without copying, as PyTorch's
 * computeStride: walk a's dims in chunks of mutually contiguous dims and match each chunk's
 * element count with a run of new dims. Returns 0, or -1 when the strides don't allow it. */
static int view_strides(const fsvc_tensor *a, int ndim, const int64_t *shape, int64_t *stride) {
  int64_t numel = fsvc_numel(a);
  if (numel == 0 || a->ndim == 0) {
    fsvc_contiguous_strides(ndim, shape, stride);
    return 0;
  }
  int view_d = ndim - 1;
  int64_t chunk_base_stride = a->stride[a->ndim - 1];
  int64_t tensor_numel = 1, view_numel = 1;
  for (int d = a->ndim - 1; d >= 0; d--) {
    tensor_numel *= a->shape[d];
    /* end of a contiguous chunk of a's dims */
    if (d == 0 || (a->shape[d - 1] != 1 && a->stride[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        stride[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        view_d--;
      }
      if (view_numel != tensor_numel) return -1;
      if (d > 0) {
        chunk_base_stride = a->stride[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1 ? 0 : -1;
}

fsvc_tensor *fsvc_view(const fsvc_tensor *a, int ndim, const int64_t *shape) {
  if (check_input(a, "view") != 0) return NULL;
  int64_t s[FSVC_MAX_DIMS], st[FSVC_MAX_DIMS];
  if (infer_shape(a, ndim, shape, s, "view") != 0) return NULL;
  if (view_strides(a, ndim, s, st) != 0) {
    char sa[128], sb[128];
    fsvc_set_error("view: input of shape %s has strides that do not allow shape %s without a "
                   "copy; use reshape (or contiguous first)",
                   fsvc_shape_str(a, sa, sizeof sa), fsvc_shape_str_n(ndim, s, sb, sizeof sb));
    return NULL;
  }
  fsvc_tensor *out = fsvc_view_raw(a, ndim, s, st, a->offset);
  if (out) record_unary("view", a, out, reshape_backward);
  return out;
}

fsvc_tensor *fsvc_reshape(const fsvc_tensor *a, int ndim, const int64_t *shape) {
  if (check_input(a, "reshape") != 0) return NULL;
  int64_t s[FSVC_MAX_DIMS], st[FSVC_MAX_DIMS];
  if (infer_shape(a, ndim, shape, s, "reshape") != 0) return NULL;
  fsvc_tensor *out;
  if (view_strides(a, ndim, s, st) == 0) {
    out = fsvc_view_raw(a, ndim, s, st, a->offset);
  } else {
    fsvc_tensor *c = fsvc_clone_raw(a);
    if (!c) return NULL;
    fsvc_contiguous_strides(ndim, s, st);
    out = fsvc_view_raw(c, ndim, s, st, 0);
    fsvc_tensor_release(c);
  }
  if (out) record_unary("reshape", a, out, reshape_backward);
  return out;
}

/* ---- permute / transpose ------------------------------------------------------------------- */
static int permute_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  /* out dim i is input dim perm[i]: the grad goes back by placing g's dim i at perm[i]. */
  int nd = g->ndim;
  int64_t shape[FSVC_MAX_DIMS], stride[FSVC_MAX_DIMS];
  for (int i = 0; i < nd; i++) {
    shape[n->iarg[i]] = g->shape[i];
    stride[n->iarg[i]] = g->stride[i];
  }
  fsvc_tensor *v = fsvc_view_raw(g, nd, shape, stride, g->offset);
  if (!v) return -1;
  gin[0] = fsvc_contiguous_raw(v);
  fsvc_tensor_release(v);
  return gin[0] ? 0 : -1;
}

static fsvc_tensor *permute_impl(const fsvc_tensor *a, const int *perm, const char *op) {
  int nd = a->ndim;
  int seen[FSVC_MAX_DIMS] = {0}, p[FSVC_MAX_DIMS];
  int64_t shape[FSVC_MAX_DIMS], stride[FSVC_MAX_DIMS];
  for (int i = 0; i < nd; i++) {
    int d = fsvc_normalize_dim(perm[i], nd, op);
    if (d < 0) return NULL;
    if (seen[d]) {
      fsvc_set_error("%s: dim %d appears twice in the permutation", op, perm[i]);
      return NULL;
    }
    seen[d] = 1;
    p[i] = d;
    shape[i] = a->shape[d];
    stride[i] = a->stride[d];
  }
  fsvc_tensor *out = fsvc_view_raw(a, nd, shape, stride, a->offset);
  if (!out) return NULL;
  fsvc_node *n = fsvc_node_new(op, 1, (fsvc_tensor *[]){(fsvc_tensor *)a}, permute_backward);
  if (n) {
    for (int i = 0; i < nd; i++) n->iarg[i] = p[i];
    fsvc_node_attach(n, out);
  }
  return out;
}

fsvc_tensor *fsvc_permute(const fsvc_tensor *a, const int *perm) {
  if (check_input(a, "permute") != 0) return NULL;
  if (a->ndim > 0 && !perm) { fsvc_set_error("permute: no permutation given"); return NULL; }
  return permute_impl(a, perm, "permute");
}

fsvc_tensor *fsvc_transpose(const fsvc_tensor *a, int dim0, int dim1) {
  if (check_input(a, "transpose") != 0) return NULL;
  if (a->ndim == 0) { /* PyTorch allows transpose(0, 0) of a scalar */
    if ((dim0 != 0 && dim0 != -1) || (dim1 != 0 && dim1 != -1)) {
      fsvc_set_error("transpose: dims %d, %d out of range for a 0-d tensor", dim0, dim1);
      return NULL;
    }
    return permute_impl(a, NULL, "transpose");
  }
  int d0 = fsvc_normalize_dim(dim0, a->ndim, "transpose");
  if (d0 < 0) return NULL;
  int d1 = fsvc_normalize_dim(dim1, a->ndim, "transpose");
  if (d1 < 0) return NULL;
  int perm[FSVC_MAX_DIMS];
  for (int i = 0; i < a->ndim; i++) perm[i] = i;
  perm[d0] = d1;
  perm[d1] = d0;
  return permute_impl(a, perm, "transpose");
}

/* ---- narrow / slice / select: a strided window; backward writes the grad into zeros ---------- */
/* iarg[0] = dim, iarg[1] = start, iarg[2] = step, iarg[3] = 1 when the dim was removed (select) */
static int window_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  const fsvc_edge *e = &n->edges[0];
  fsvc_tensor *z = fsvc_zeros_on(e->ndim, e->shape, g->dtype, fsvc_tensor_device(g));
  if (!z) return -1;
  int dim = (int)n->iarg[0];
  int64_t start = n->iarg[1], step = n->iarg[2];
  int64_t shape[FSVC_MAX_DIMS], stride[FSVC_MAX_DIMS];
  int nd = 0;
  for (int d = 0; d < e->ndim; d++) {
    if (d == dim) {
      if (n->iarg[3]) continue; /* select: the dim is gone from g */
      shape[nd] = g->shape[nd];
      stride[nd] = z->stride[d] * step;
    } else {
      shape[nd] = z->shape[d];
      stride[nd] = z->stride[d];
    }
    nd++;
  }
  fsvc_tensor *win = fsvc_view_raw(z, nd, shape, stride, start * z->stride[dim]);
  int rc = win ? fsvc_copy_(win, g) : -1;
  fsvc_tensor_release(win);
  if (rc != 0) { fsvc_tensor_release(z); return -1; }
  gin[0] = z;
  return 0;
}

/* A view of `a` restricted to start, start+step, ... (len elements) along dim; drops dim when
 * `drop`. `op` names the node. */
static fsvc_tensor *window(const fsvc_tensor *a, int dim, int64_t start, int64_t len, int64_t step,
                           int drop, const char *op) {
  int64_t shape[FSVC_MAX_DIMS], stride[FSVC_MAX_DIMS];
  int nd = 0;
  for (int d = 0; d < a->ndim; d++) {
    if (d == dim) {
      if (drop) continue;
      shape[nd] = len;
      stride[nd] = a->stride[d] * step;
    } else {
      shape[nd] = a->shape[d];
      stride[nd] = a->stride[d];
    }
    nd++;
  }
  fsvc_tensor *out = fsvc_view_raw(a, nd, shape, stride, a->offset + start * a->stride[dim]);
  if (!out) return NULL;
  fsvc_node *n = fsvc_node_new(op, 1, (fsvc_tensor *[]){(fsvc_tensor *)a}, window_backward);
  if (n) {
    n->iarg[0] = dim;
    n->iarg[1] = start;
    n->iarg[2] = step;
    n->iarg[3] = drop;
    fsvc_node_attach(n, out);
  }
  return out;
}

fsvc_tensor *fsvc_narrow(const fsvc_tensor *a, int dim, int64_t start, int64_t length) {
  if (check_input(a, "narrow") != 0) return NULL;
  if (a->ndim == 0) { fsvc_set_error("narrow: cannot narrow a 0-d tensor"); return NULL; }
  int d = fsvc_normalize_dim(dim, a->ndim, "narrow");
  if (d < 0) return NULL;
  int64_t size = a->shape[d];
  if (start < 0) start += size; /* PyTorch: negative start counts from the end */
  if (start < 0 || start > size || length < 0 || start + length > size) {
    char sa[128];
    fsvc_set_error("narrow: start %lld, length %lld out of range for dim %d of size %lld (shape %s)",
                   (long long)start, (long long)length, dim, (long long)size,
                   fsvc_shape_str(a, sa, sizeof sa));
    return NULL;
  }
  return window(a, d, start, length, 1, 0, "narrow");
}

fsvc_tensor *fsvc_slice(const fsvc_tensor *a, int dim, int64_t start, int64_t end, int64_t step) {
  if (check_input(a, "slice") != 0) return NULL;
  if (a->ndim == 0) { fsvc_set_error("slice: cannot slice a 0-d tensor"); return NULL; }
  int d = fsvc_normalize_dim(dim, a->ndim, "slice");
  if (d < 0) return NULL;
  if (step < 1) { fsvc_set_error("slice: step must be >= 1 (got %lld)", (long long)step); return NULL; }
  int64_t size = a->shape[d];
  /* Python semantics: negative counts from the end, then clamp to [0, size] */
  if (start < 0) start += size;
  if (end < 0) end += size;
  if (start < 0) start = 0;
  if (start > size) start = size;
  if (end > size) end = size;
  if (end < start) end = start;
  int64_t len = (end - start + step - 1) / step;
  return window(a, d, start, len, step, 0, "slice");
}

fsvc_tensor *fsvc_select(const fsvc_tensor *a, int dim, int64_t index) {
  if (check_input(a, "select") != 0) return NULL;
  if (a->ndim == 0) { fsvc_set_error("select: cannot select from a 0-d tensor"); return NULL; }
  int d = fsvc_normalize_dim(dim, a->ndim, "select");
  if (d < 0) return NULL;
  int64_t size = a->shape[d];
  int64_t i = index < 0 ? index + size : index;
  if (i < 0 || i >= size) {
    char sa[128];
    fsvc_set_error("select: index %lld out of range for dim %d of size %lld (shape %s)",
                   (long long)index, dim, (long long)size, fsvc_shape_str(a, sa, sizeof sa));
    return NULL;
  }
  return window(a, d, i, 1, 1, 1, "select");
}

/* ---- expand -------------------------------------------------------------------------------- */
static int expand_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  gin[0] = fsvc_sum_to_shape(g, n->edges[0].ndim, n->edges[0].shape);
  return gin[0] ? 0 : -1;
}

fsvc_tensor *fsvc_expand(const fsvc_tensor *a, int ndim, const int64_t *shape) {
  if (check_input(a, "expand") != 0) return NULL;
  char sa[128], sb[128];
  if (ndim < a->ndim || ndim > FSVC_MAX_DIMS || (ndim > 0 && !shape)) {
    fsvc_set_error("expand: cannot expand shape %s to %d dims (need %d to %d)",
                   fsvc_shape_str(a, sa, sizeof sa), ndim, a->ndim, FSVC_MAX_DIMS);
    return NULL;
  }
  int lead = ndim - a->ndim;
  int64_t s[FSVC_MAX_DIMS], st[FSVC_MAX_DIMS];
  for (int d = 0; d < ndim; d++) {
    if (d < lead) {
      if (shape[d] < 0) goto bad; /* -1 is not allowed for new leading dims */
      s[d] = shape[d];
      st[d] = 0;
      continue;
    }
    int64_t in = a->shape[d - lead];
    if (shape[d] == -1 || shape[d] == in) {
      s[d] = in;
      st[d] = a->stride[d - lead];
    } else if (in == 1 && shape[d] >= 0) {
      s[d] = shape[d];
      st[d] = 0;
    } else {
      goto bad;
    }
  }
  fsvc_tensor *out = fsvc_view_raw(a, ndim, s, st, a->offset);
  if (out) record_unary("expand", a, out, expand_backward);
  return out;
bad:
  fsvc_set_error("expand: cannot expand shape %s to %s (only size-1 dims can grow; -1 keeps a size)",
                 fsvc_shape_str(a, sa, sizeof sa), fsvc_shape_str_n(ndim, shape, sb, sizeof sb));
  return NULL;
}

/* ---- squeeze / unsqueeze ------------------------------------------------------------------- */
/* The view of a without dim `only` when that dim has size 1 (PyTorch leaves a dim of size != 1
 * alone), or without every size-1 dim when only < 0. */
static fsvc_tensor *squeeze_view(const fsvc_tensor *a, int only) {
  int64_t shape[FSVC_MAX_DIMS], stride[FSVC_MAX_DIMS];
  int nd = 0;
  for (int i = 0; i < a->ndim; i++) {
    if (a->shape[i] == 1 && (only < 0 || i == only)) continue;
    shape[nd] = a->shape[i];
    stride[nd] = a->stride[i];
    nd++;
  }
  fsvc_tensor *out = fsvc_view_raw(a, nd, shape, stride, a->offset);
  if (out) record_unary("squeeze", a, out, reshape_backward);
  return out;
}

fsvc_tensor *fsvc_squeeze(const fsvc_tensor *a, int dim) {
  if (check_input(a, "squeeze") != 0) return NULL;
  if (a->ndim == 0) { /* PyTorch accepts dim 0 / -1 on a 0-d tensor and returns it as is */
    if (dim != 0 && dim != -1) {
      fsvc_set_error("squeeze: dim %d out of range for a 0-d tensor", dim);
      return NULL;
    }
    return squeeze_view(a, -1); /* no dims to drop */
  }
  int d = fsvc_normalize_dim(dim, a->ndim, "squeeze");
  if (d < 0) return NULL;
  return squeeze_view(a, d);
}

fsvc_tensor *fsvc_squeeze_all(const fsvc_tensor *a) {
  if (check_input(a, "squeeze") != 0) return NULL;
  return squeeze_view(a, -1);
}

fsvc_tensor *fsvc_unsqueeze(const fsvc_tensor *a, int dim) {
  if (check_input(a, "unsqueeze") != 0) return NULL;
  if (a->ndim >= FSVC_MAX_DIMS) {
    fsvc_set_error("unsqueeze: tensors have at most %d dims", FSVC_MAX_DIMS);
    return NULL;
  }
  int d = fsvc_normalize_dim(dim, a->ndim + 1, "unsqueeze");
  if (d < 0) return NULL;
  int64_t shape[FSVC_MAX_DIMS], stride[FSVC_MAX_DIMS];
  int nd = 0;
  for (int i = 0; i <= a->ndim; i++) {
    if (i == d) {
      shape[nd] = 1;
      /* any stride works for a size-1 dim; this one keeps a contiguous input contiguous */
      stride[nd] = i < a->ndim ? a->shape[i] * a->stride[i] : 1;
      nd++;
    }
    if (i < a->ndim) {
      shape[nd] = a->shape[i];
      stride[nd] = a->stride[i];
      nd++;
    }
  }
  fsvc_tensor *out = fsvc_view_raw(a, nd, shape, stride, a->offset);
  if (out) record_unary("unsqueeze", a, out, reshape_backward);
  return out;
}

/* ---- copies -------------------------------------------------------------------------------- */
fsvc_tensor *fsvc_contiguous(const fsvc_tensor *a) {
  if (check_input(a, "contiguous") != 0) return NULL;
  if (fsvc_is_contiguous(a)) return fsvc_tensor_retain((fsvc_tensor *)a);
  fsvc_tensor *out = fsvc_clone_raw(a);
  if (out) record_unary("contiguous", a, out, reshape_backward);
  return out;
}

fsvc_tensor *fsvc_clone(const fsvc_tensor *a) {
  if (check_input(a, "clone") != 0) return NULL;
  fsvc_tensor *out = fsvc_clone_raw(a);
  if (out) record_unary("clone", a, out, reshape_backward);
  return out;
}

fsvc_tensor *fsvc_to_dtype(const fsvc_tensor *a, fsvc_dtype dt) {
  if (check_input(a, "to") != 0) return NULL;
  if ((unsigned)dt >= FSVC_NUM_DTYPES) { fsvc_set_error("to: invalid dtype %d", (int)dt); return NULL; }
  if (!fsvc_dtype_is_float(dt) && fsvc_dtype_is_float(a->dtype) && fsvc_has_nonfinite(a)) {
    fsvc_set_error("to: cannot convert NaN or Inf from %s to %s", fsvc_dtype_name(a->dtype),
                   fsvc_dtype_name(dt));
    return NULL;
  }
  fsvc_tensor *out = fsvc_to_dtype_raw(a, dt);
  /* the engine casts grad_in to the input's dtype; integer outputs carry no gradient */
  if (out && fsvc_dtype_is_float(dt)) record_unary("to", a, out, reshape_backward);
  return out;
}
