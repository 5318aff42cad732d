/* Shape and indexing ops on CUDA tensors: cat/stack (strided device copies into the output),
 * flip (a copy through negated strides), pad, index_select, gather, scatter_add. Node names and
 * gradients as core/ops/{cat,flip,pad,index}.c. */
#include <stdlib.h>
#include <string.h>

#include "gpu_ops.h"
#include "fsvc/ops_shape.h"

/* ---- cat / stack ---------------------------------------------------------------------------------- */
/* iarg[0] = dim (of the output), iarg[1] = stacked */
static int join_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  int d = (int)n->iarg[0], stacked = (int)n->iarg[1];
  int64_t start = 0;
  for (int i = 0; i < n->n_inputs; i++) {
    const fsvc_edge *e = &n->edges[i];
    int64_t len = stacked ? 1 : e->shape[d];
    if (e->needs_grad) {
      fsvc_tensor *piece = stacked ? fsvc_select(g, d, start) : fsvc_narrow(g, d, start, len);
      gin[i] = piece ? fsvc_clone_raw(piece) : NULL;
      fsvc_tensor_release(piece);
      if (!gin[i]) return -1;
    }
    start += len;
  }
  return 0;
}

static fsvc_tensor *join(int n, fsvc_tensor *const *ts, int dim, int stacked, const char *op) {
  if (n <= 0 || !ts) { fsvc_set_error("%s: needs at least one tensor", op); return NULL; }
  for (int i = 0; i < n; i++)
    if (fsvc_gpu_check_tensor(op, ts[i], "tensors[i]") != 0) return NULL;
  const fsvc_tensor *t0 = ts[0];
  int nd_out = t0->ndim + (stacked ? 1 : 0);
  int d = fsvc_normalize_dim(dim, nd_out > 0 ? nd_out : 1, op);
  if (d < 0) return NULL;
  if (!stacked && t0->ndim == 0) { fsvc_set_error("%s: zero-dimensional tensors cannot be concatenated", op); return NULL; }
  fsvc_dtype dt = t0->dtype;
  int64_t total = 0;
  for (int i = 0; i < n; i++) {
    const fsvc_tensor *t = ts[i];
    int ok = t->ndim == t0->ndim && fsvc_device_equal(t->storage->device, t0->storage->device);
    for (int k = 0; ok && k < t->ndim; k++)
      if ((stacked || k != d) && t->shape[k] != t0->shape[k]) ok = 0;
    if (!ok) {
      char sa[128], sb[128];
      fsvc_set_error("%s: tensor %d has shape %s, incompatible with tensor 0's %s (dim %d)", op, i,
                     fsvc_shape_str(t, sa, sizeof sa), fsvc_shape_str(t0, sb, sizeof sb), dim);
      return NULL;
    }
    dt = fsvc_promote_types(dt, t->dtype);
    total += stacked ? 1 : t->shape[d];
  }
  int64_t shape[FSVC_MAX_DIMS];
  for (int k = 0, j = 0; k < nd_out; k++) {
    if (k == d) { shape[k] = total; if (!stacked) j++; continue; }
    shape[k] = t0->shape[j++];
  }
  fsvc_tensor *out = fsvc_empty_on(nd_out, shape, dt, t0->storage->device);
  if (!out) return NULL;
  int64_t start = 0;
  for (int i = 0; i < n; i++) {
    int64_t len = stacked ? 1 : ts[i]->shape[d];
    fsvc_tensor *win = fsvc_narrow(out, d, start, len); /* out has no history yet: a plain view */
    fsvc_tensor *src = NULL;
    if (win && stacked) { /* the source seen with a size-1 dim inserted at d */
      int64_t sh[FSVC_MAX_DIMS], st[FSVC_MAX_DIMS];
      for (int k = 0, j = 0; k < nd_out; k++) {
        if (k == d) { sh[k] = 1; st[k] = 1; continue; }
        sh[k] = ts[i]->shape[j];
        st[k] = ts[i]->stride[j++];
      }
      src = fsvc_view_raw(ts[i], nd_out, sh, st, ts[i]->offset);
    }
    int rc = win && (!stacked || src) ? fsvc_copy_(win, stacked ? src : ts[i]) : -1;
    fsvc_tensor_release(win);
    fsvc_tensor_release(src);
    if (rc != 0) { fsvc_tensor_release(out); return NULL; }
    start += len;
  }
  fsvc_node *node = fsvc_node_new(op, n, ts, join_backward);
  if (node) {
    node->iarg[0] = d;
    node->iarg[1] = stacked;
    fsvc_node_attach(node, out);
  }
  return out;
}
static fsvc_tensor *gpu_cat(int n, fsvc_tensor *const *ts, int dim) { return join(n, ts, dim, 0, "cat"); }
static fsvc_tensor *gpu_stack(int n, fsvc_tensor *const *ts, int dim) { return join(n, ts, dim, 1, "stack"); }

/* ---- flip --------------------------------------------------------------------------------------------- */
static fsvc_tensor *flip_raw(const fsvc_tensor *a, unsigned mask) {
  int64_t stride[FSVC_MAX_DIMS];
  int64_t off = a->offset;
  for (int d = 0; d < a->ndim; d++) {
    stride[d] = a->stride[d];
    if ((mask & (1u << d)) && a->shape[d] > 0) {
      off += (a->shape[d] - 1) * a->stride[d];
      stride[d] = -a->stride[d];
    }
  }
  fsvc_tensor *v = fsvc_view_raw(a, a->ndim, a->shape, stride, off);
  fsvc_tensor *out = v ? fsvc_clone_raw(v) : NULL;
  fsvc_tensor_release(v);
  return out;
}
static int flip_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  gin[0] = flip_raw(g, (unsigned)n->iarg[0]);
  return gin[0] ? 0 : -1;
}
static fsvc_tensor *gpu_flip(const fsvc_tensor *a, int n_dims, const int *dims) {
  if (fsvc_gpu_check_tensor("flip", a, "input") != 0) return NULL;
  unsigned mask = 0;
  for (int i = 0; i < n_dims; i++) {
    int d = fsvc_normalize_dim(dims[i], a->ndim, "flip");
    if (d < 0) return NULL;
    if (mask & (1u << d)) { fsvc_set_error("flip: dim %d appears twice", dims[i]); return NULL; }
    mask |= 1u << d;
  }
  fsvc_tensor *out = flip_raw(a, mask);
  if (!out) return NULL;
  fsvc_node *n = fsvc_node_new("flip", 1, (fsvc_tensor *[]){(fsvc_tensor *)a}, flip_backward);
  if (n) {
    n->iarg[0] = mask;
    fsvc_node_attach(n, out);
  }
  return out;
}

/* ---- 16-bit accumulations -------------------------------------------------------------------------- */
/* The index ops' accumulations (pad's, index_select's and gather's backward, scatter_add) add many
 * values into one element with atomics. A float16/bfloat16 atomicAdd rounds at every add, so the
 * sum would depend on the order the atomics land in (and lose the small terms); these ops
 * accumulate 16-bit tensors in a float32 buffer instead and round once at the end (as the CPU,
 * which runs 16-bit ops through float32). Other dtypes accumulate in place. */
static fsvc_dtype accumulation_dtype(fsvc_dtype dt) {
  return dt == FSVC_FLOAT16 || dt == FSVC_BFLOAT16 ? FSVC_FLOAT32 : dt;
}

/* the accumulator acc (consumed) as a tensor of dt: acc itself, or its rounding to dt */
static fsvc_tensor *accumulated_as(fsvc_tensor *acc, fsvc_dtype dt) {
  if (!acc || acc->dtype == dt) return acc;
  fsvc_tensor *r = fsvc_to_dtype_raw(acc, dt);
  fsvc_tensor_release(acc);
  return r;
}

/* ---- pad ---------------------------------------------------------------------------------------------- */
/* iarg[0] = mode, iarg[1..4] = left pads of the last dims (last first) */
static int pad_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  const fsvc_edge *e = &n->edges[0];
  /* reflect/replicate pads add several output gradients into one input element (16-bit: in float32) */
  const fsvc_dtype acc = accumulation_dtype(g->dtype);
  fsvc_tensor *gx = fsvc_zeros_on(e->ndim, e->shape, acc, fsvc_tensor_device(g));
  fsvc_tensor *gc = gx ? fsvc_gpu_contig_as(g, acc) : NULL;
  int rc = -1;
  if (gc) {
    fsvc_gpu_geom og = fsvc_gpu_geom_of(gc), ig = fsvc_gpu_geom_of(gx);
    rc = fsvc_gpu_pad_launch(acc, fsvc_data(gc), &og, fsvc_data(gx), &ig, &n->iarg[1],
                             (int)n->iarg[0], 0, 1);
  }
  fsvc_tensor_release(gc);
  if (rc != 0) { fsvc_tensor_release(gx); return -1; }
  gin[0] = accumulated_as(gx, g->dtype);
  return gin[0] ? 0 : -1;
}

static fsvc_tensor *gpu_pad(const fsvc_tensor *a, int n_pads, const int64_t *pads, fsvc_pad_mode mode,
                            double value) {
  if (fsvc_gpu_check_tensor("pad", a, "input") != 0) return NULL;
  if (n_pads < 0 || n_pads % 2 || n_pads > 2 * a->ndim) {
    fsvc_set_error("pad: %d pad values for a tensor of %d dims (need an even count <= %d)", n_pads,
                   a->ndim, 2 * a->ndim);
    return NULL;
  }
  if (n_pads > 8) { fsvc_set_error("pad: more than 4 padded dims is not implemented on CUDA yet"); return NULL; }
  int64_t shape[FSVC_MAX_DIMS], left[4] = {0, 0, 0, 0};
  memcpy(shape, a->shape, sizeof shape);
  for (int k = 0; k < n_pads / 2; k++) {
    int d = a->ndim - 1 - k;
    int64_t l = pads[2 * k], r = pads[2 * k + 1], n = a->shape[d];
    if (mode != FSVC_PAD_CONSTANT && (l < 0 || r < 0)) { fsvc_set_error("pad: negative pads need constant mode"); return NULL; }
    if (mode == FSVC_PAD_REFLECT && (l >= n || r >= n)) {
      fsvc_set_error("pad: reflect needs each pad < the dim's size (dim %d of size %lld, pads %lld, %lld)",
                     d, (long long)n, (long long)l, (long long)r);
      return NULL;
    }
    if (mode == FSVC_PAD_REPLICATE && n == 0 && (l || r)) { fsvc_set_error("pad: replicate of an empty dim"); return NULL; }
    if (n + l + r < 0) { fsvc_set_error("pad: negative pads crop more than dim %d holds", d); return NULL; }
    shape[d] = n + l + r;
    left[k] = l;
  }
  fsvc_tensor *out = fsvc_empty_on(a->ndim, shape, a->dtype, a->storage->device);
  if (!out) return NULL;
  fsvc_gpu_geom og = fsvc_gpu_geom_of(out), ig = fsvc_gpu_geom_of(a);
  if (fsvc_gpu_pad_launch(a->dtype, fsvc_data(out), &og, fsvc_data(a), &ig, left, (int)mode, value, 0) != 0) {
    fsvc_tensor_release(out);
    return NULL;
  }
  fsvc_node *n = fsvc_node_new("pad", 1, (fsvc_tensor *[]){(fsvc_tensor *)a}, pad_backward);
  if (n) {
    n->iarg[0] = mode;
    for (int k = 0; k < 4; k++) n->iarg[1 + k] = left[k];
    fsvc_node_attach(n, out);
  }
  return out;
}

/* ---- index_select / gather / scatter_add ------------------------------------------------------------ */
/* The index on a's device (new reference). A CPU int64 index (built from a Lua list) is checked
 * on the host, where it already is, against [0, bound) and moved; a CUDA index is used as it is:
 * the kernels check it and report through the index-error word (gpu_internal.h), so no index is
 * copied to the host (no synchronisation, and the op can be captured into a CUDA graph). */
static fsvc_tensor *device_index(const char *op, const fsvc_tensor *index, const fsvc_tensor *a, int64_t bound) {
  if (!index || !index->storage) { fsvc_set_error("%s: index is missing or freed", op); return NULL; }
  if (index->dtype != FSVC_INT64) { fsvc_set_error("%s: index must be int64, got %s", op, fsvc_dtype_name(index->dtype)); return NULL; }
  if (fsvc_tensor_is_cuda(index)) {
    if (!fsvc_device_equal(index->storage->device, a->storage->device)) { fsvc_set_error("%s: index on another device", op); return NULL; }
    return fsvc_tensor_retain((fsvc_tensor *)index);
  }
  fsvc_tensor *h = fsvc_contiguous_raw(index);
  if (!h) return NULL;
  const int64_t *p = fsvc_data(h);
  for (int64_t i = 0, n = fsvc_numel(h); i < n; i++) {
    if (p[i] < 0) {
      fsvc_set_error("%s: index %lld is negative", op, (long long)p[i]);
      fsvc_tensor_release(h);
      return NULL;
    }
    if (p[i] >= bound) {
      fsvc_set_error("%s: index %lld out of range for a dim of size %lld", op, (long long)p[i], (long long)bound);
      fsvc_tensor_release(h);
      return NULL;
    }
  }
  fsvc_tensor *moved = fsvc_to_device_raw(h, a->storage->device);
  fsvc_tensor_release(h);
  return moved;
}

/* saved[0] = index (contiguous); iarg[0] = dim */
static int index_select_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  const fsvc_edge *e = &n->edges[0];
  int d = (int)n->iarg[0];
  const fsvc_dtype acc = accumulation_dtype(g->dtype); /* repeated indices add up: 16-bit in float32 */
  fsvc_tensor *gx = fsvc_zeros_on(e->ndim, e->shape, acc, fsvc_tensor_device(g));
  fsvc_tensor *gc = gx ? fsvc_gpu_contig_as(g, acc) : NULL;
  int64_t outer = 1, inner = 1;
  for (int k = 0; k < d; k++) outer *= e->shape[k];
  for (int k = d + 1; k < e->ndim; k++) inner *= e->shape[k];
  int rc = gc ? fsvc_gpu_index_select_launch(1, acc, fsvc_data(gx), e->ndim ? e->shape[d] : 1,
                                             fsvc_data(gc), fsvc_numel(n->saved[0]),
                                             fsvc_data(n->saved[0]), outer, inner) : -1;
  fsvc_tensor_release(gc);
  if (rc != 0) { fsvc_tensor_release(gx); return -1; }
  gin[0] = accumulated_as(gx, g->dtype);
  return gin[0] ? 0 : -1;
}

static fsvc_tensor *gpu_index_select(const fsvc_tensor *a, int dim, const fsvc_tensor *index) {
  if (fsvc_gpu_check_tensor("index_select", a, "input") != 0) return NULL;
  if (index && index->ndim > 1) { fsvc_set_error("index_select: index must be 0-d or 1-d"); return NULL; }
  int d = fsvc_normalize_dim(dim, a->ndim, "index_select");
  if (d < 0) return NULL;
  int64_t size = a->ndim ? a->shape[d] : 1;
  fsvc_tensor *di = device_index("index_select", index, a, size);
  if (!di) return NULL;
  fsvc_tensor *x = fsvc_contiguous_raw(a), *ic = fsvc_contiguous_raw(di);
  fsvc_tensor_release(di);
  int64_t k = fsvc_numel(index), shape[FSVC_MAX_DIMS], outer = 1, inner = 1;
  memcpy(shape, a->shape, sizeof shape);
  if (a->ndim) shape[d] = k;
  for (int q = 0; q < d; q++) outer *= a->shape[q];
  for (int q = d + 1; q < a->ndim; q++) inner *= a->shape[q];
  fsvc_tensor *out = x && ic ? fsvc_empty_on(a->ndim, shape, a->dtype, a->storage->device) : NULL;
  if (!out || fsvc_gpu_index_select_launch(0, a->dtype, fsvc_data(x), size, fsvc_data(out), k,
                                           fsvc_data(ic), outer, inner) != 0) {
    fsvc_tensor_release(out);
    out = NULL;
  }
  if (out) {
    fsvc_node *n = fsvc_node_new("index_select", 1, (fsvc_tensor *[]){(fsvc_tensor *)a}, index_select_backward);
    if (n) {
      fsvc_node_save(n, ic);
      n->iarg[0] = d;
      fsvc_node_attach(n, out);
    }
  }
  fsvc_tensor_release(x);
  fsvc_tensor_release(ic);
  return out;
}

static int gather_shapes_ok(const char *op, const fsvc_tensor *a, const fsvc_tensor *index, int d,
                            const fsvc_tensor *src) {
  char x[96], y[96];
  if (index->ndim != a->ndim) goto bad;
  for (int k = 0; k < a->ndim; k++) {
    if (k != d && index->shape[k] > a->shape[k]) goto bad;
    if (src && index->shape[k] > src->shape[k]) goto bad;
  }
  return 0;
bad:
  fsvc_set_error("%s: index %s does not fit the input %s along dim %d", op, fsvc_shape_str(index, x, sizeof x),
                 fsvc_shape_str(a, y, sizeof y), d);
  return -1;
}

/* gather: saved[0] = index; iarg[0] = dim. scatter_add: edges (a, index, src), saved[0] = index */
static int gather_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  const fsvc_edge *e = &n->edges[0];
  const fsvc_tensor *idx = n->saved[0];
  const fsvc_dtype acc = accumulation_dtype(g->dtype); /* repeated indices add up: 16-bit in float32 */
  fsvc_tensor *gx = fsvc_zeros_on(e->ndim, e->shape, acc, fsvc_tensor_device(g));
  /* g as it is (any strides) unless it needs the cast */
  fsvc_tensor *gs = !gx ? NULL : acc == g->dtype ? fsvc_tensor_retain((fsvc_tensor *)g) : fsvc_to_dtype_raw(g, acc);
  int rc = -1;
  if (gs) {
    fsvc_gpu_geom og = fsvc_gpu_geom_of(gx), sg = fsvc_gpu_geom_of(gs), ig = fsvc_gpu_geom_of(idx);
    rc = fsvc_gpu_gather_scatter_launch(1, acc, fsvc_data(gx), &og, fsvc_data(gs), &sg, fsvc_data(idx), &ig,
                                        (int)n->iarg[0]);
  }
  fsvc_tensor_release(gs);
  if (rc != 0) { fsvc_tensor_release(gx); return -1; }
  gin[0] = accumulated_as(gx, g->dtype);
  return gin[0] ? 0 : -1;
}

static fsvc_tensor *gather_raw(const fsvc_tensor *a, int d, const fsvc_tensor *index) {
  fsvc_tensor *out = fsvc_empty_on(index->ndim, index->shape, a->dtype, a->storage->device);
  if (!out) return NULL;
  fsvc_gpu_geom og = fsvc_gpu_geom_of(out), sg = fsvc_gpu_geom_of(a), ig = fsvc_gpu_geom_of(index);
  if (fsvc_gpu_gather_scatter_launch(0, a->dtype, fsvc_data(out), &og, fsvc_data(a), &sg, fsvc_data(index),
                                     &ig, d) != 0) {
    fsvc_tensor_release(out);
    return NULL;
  }
  return out;
}

static fsvc_tensor *gpu_gather(const fsvc_tensor *a, int dim, const fsvc_tensor *index) {
  if (fsvc_gpu_check_tensor("gather", a, "input") != 0) return NULL;
  int d = fsvc_normalize_dim(dim, a->ndim, "gather");
  fsvc_tensor *di = d < 0 ? NULL : device_index("gather", index, a, a->ndim ? a->shape[d] : 1);
  if (!di || gather_shapes_ok("gather", a, di, d, NULL) != 0) { fsvc_tensor_release(di); return NULL; }
  fsvc_tensor *out = gather_raw(a, d, di);
  if (out) {
    fsvc_node *n = fsvc_node_new("gather", 1, (fsvc_tensor *[]){(fsvc_tensor *)a}, gather_backward);
    if (n) {
      fsvc_node_save(n, di);
      n->iarg[0] = d;
      fsvc_node_attach(n, out);
    }
  }
  fsvc_tensor_release(di);
  return out;
}

static int scatter_add_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (n->edges[0].needs_grad) {
    gin[0] = fsvc_clone_raw(g);
    if (!gin[0]) return -1;
  }
  if (n->edges[2].needs_grad) {
    /* src's gradient: g gathered at the index, on src's shape (index may be smaller than src) */
    const fsvc_edge *e = &n->edges[2];
    fsvc_tensor *part = gather_raw(g, (int)n->iarg[0], n->saved[0]);
    if (!part) return -1;
    fsvc_tensor *full = fsvc_zeros_on(e->ndim, e->shape, g->dtype, fsvc_tensor_device(g));
    int64_t st[FSVC_MAX_DIMS];
    for (int k = 0; k < e->ndim; k++) st[k] = full ? full->stride[k] : 0;
    fsvc_tensor *win = full ? fsvc_view_raw(full, part->ndim, part->shape, st, 0) : NULL;
    int rc = win ? fsvc_copy_(win, part) : -1;
    fsvc_tensor_release(win);
    fsvc_tensor_release(part);
    if (rc != 0) { fsvc_tensor_release(full); return -1; }
    gin[2] = full;
  }
  return 0;
}

static fsvc_tensor *gpu_scatter_add(const fsvc_tensor *a, int dim, const fsvc_tensor *index,
                                    const fsvc_tensor *src) {
  if (fsvc_gpu_check_tensor("scatter_add", a, "input") != 0 || fsvc_gpu_check_tensor("scatter_add", src, "src") != 0)
    return NULL;
  int d = fsvc_normalize_dim(dim, a->ndim, "scatter_add");
  fsvc_tensor *di = d < 0 ? NULL : device_index("scatter_add", index, a, a->ndim ? a->shape[d] : 1);
  if (!di || gather_shapes_ok("scatter_add", a, di, d, src) != 0) { fsvc_tensor_release(di); return NULL; }
  /* repeated indices add up: a 16-bit a accumulates in a float32 copy, rounded once at the end */
  const fsvc_dtype acc = accumulation_dtype(a->dtype);
  /* src in a's dtype (rounded first, as if a 16-bit a were added to in 16 bits), then in acc's */
  fsvc_tensor *sa = src->dtype == a->dtype ? fsvc_tensor_retain((fsvc_tensor *)src) : fsvc_to_dtype_raw(src, a->dtype);
  fsvc_tensor *sc = !sa || acc == a->dtype ? sa : fsvc_to_dtype_raw(sa, acc);
  if (sc != sa) fsvc_tensor_release(sa);
  fsvc_tensor *out = !sc ? NULL : acc == a->dtype ? fsvc_clone_raw(a) : fsvc_to_dtype_raw(a, acc);
  if (out) {
    fsvc_gpu_geom og = fsvc_gpu_geom_of(out), sg = fsvc_gpu_geom_of(sc), ig = fsvc_gpu_geom_of(di);
    if (fsvc_gpu_gather_scatter_launch(1, acc, fsvc_data(out), &og, fsvc_data(sc), &sg,
                                       fsvc_data(di), &ig, d) != 0) {
      fsvc_tensor_release(out);
      out = NULL;
    }
  }
  fsvc_tensor_release(sc);
  out = accumulated_as(out, a->dtype);
  if (out) {
    fsvc_node *n = fsvc_node_new("scatter_add", 3, (fsvc_tensor *[]){(fsvc_tensor *)a, (fsvc_tensor *)index,
                                                                    (fsvc_tensor *)src}, scatter_add_backward);
    if (n) {
      fsvc_node_save(n, di);
      n->iarg[0] = d;
      fsvc_node_attach(n, out);
    }
  }
  fsvc_tensor_release(di);
  return out;
}

void fsvc_gpu_fill_shape(fsvc_cuda_op_table *t) {
  t->cat = gpu_cat; t->stack = gpu_stack; t->flip = gpu_flip; t->pad = gpu_pad;
  t->index_select = gpu_index_select; t->gather = gpu_gather; t->scatter_add = gpu_scatter_add;
}
