/* Joining and splitting along a dim: cat, stack, split, chunk.
 *
 * cat and stack copy into a new tensor (inputs are promoted to a common dtype); their backward
 * hands each input the slab of the gradient it came from. split and chunk return narrow views,
 * so their gradients flow through narrow's backward. Everything here is made of views and
 * strided copies (fsvc_copy_, fsvc_clone_raw), which every device has: one implementation
 * serves the CPU and CUDA, and all the tensors of a list must be on one device. */
#include <stdlib.h>
#include <string.h>

#include "fsvc/device.h"
#include "fsvc/autograd.h"
#include "fsvc/error.h"
#include "fsvc/ops_shape.h"

__attribute__((constructor)) static void register_ops(void) {
  fsvc_register_differentiable("cat");
  fsvc_register_differentiable("stack");
}

static int check_list(int n, fsvc_tensor *const *ts, const char *op) {
  if (n <= 0 || !ts) { fsvc_set_error("%s: expected a non-empty list of tensors", op); return -1; }
  for (int i = 0; i < n; i++) {
    if (!ts[i]) { fsvc_set_error("%s: tensor %d of the list is nil", op, i); return -1; }
    if (!ts[i]->storage) { fsvc_set_error("%s: tensor %d of the list was freed", op, i); return -1; }
    if (!fsvc_device_equal(ts[i]->storage->device, ts[0]->storage->device)) {
      char di[32], d0[32];
      fsvc_set_error("%s: tensor %d of the list is on %s but tensor 0 is on %s; move it with :to(\"%s\")",
                     op, i, fsvc_device_str(ts[i]->storage->device, di, sizeof di),
                     fsvc_device_str(ts[0]->storage->device, d0, sizeof d0), d0);
      return -1;
    }
  }
  return 0;
}

/* A contiguous copy of the slab [start, start+len) of g along dim; with `drop` the dim (of size
 * 1) is removed, as stack's backward needs. */
static fsvc_tensor *slab(const fsvc_tensor *g, int dim, int64_t start, int64_t len, int drop) {
  int64_t shape[FSVC_MAX_DIMS], stride[FSVC_MAX_DIMS];
  int nd = 0;
  for (int d = 0; d < g->ndim; d++) {
    if (d == dim && drop) continue;
    shape[nd] = d == dim ? len : g->shape[d];
    stride[nd] = g->stride[d];
    nd++;
  }
  fsvc_tensor *v = fsvc_view_raw(g, nd, shape, stride, g->offset + start * g->stride[dim]);
  if (!v) return NULL;
  fsvc_tensor *c = fsvc_clone_raw(v);
  fsvc_tensor_release(v);
  return c;
}

/* iarg[0] = dim of the output; iarg[1] = 1 for stack (each input is one index of dim). */
static int cat_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  int dim = (int)n->iarg[0], stacked = (int)n->iarg[1];
  int64_t start = 0;
  for (int i = 0; i < n->n_inputs; i++) {
    int64_t len = stacked ? 1 : n->edges[i].shape[dim];
    if (n->edges[i].needs_grad) {
      gin[i] = slab(g, dim, start, len, stacked);
      if (!gin[i]) return -1;
    }
    start += len;
  }
  return 0;
}

/* Copies each input into its slab of out along dim; for stack the inputs are viewed with a
 * size-1 dim inserted at dim. */
static int copy_pieces(fsvc_tensor *out, int n, fsvc_tensor *const *ts, int dim, int stacked) {
  int64_t start = 0;
  for (int i = 0; i < n; i++) {
    int64_t len = stacked ? 1 : ts[i]->shape[dim];
    int64_t shape[FSVC_MAX_DIMS], stride[FSVC_MAX_DIMS];
    for (int d = 0; d < out->ndim; d++) {
      shape[d] = d == dim ? len : out->shape[d];
      stride[d] = out->stride[d];
    }
    fsvc_tensor *dst = fsvc_view_raw(out, out->ndim, shape, stride, start * out->stride[dim]);
    if (!dst) return -1;
    /* the source seen with out's rank: for stack, a size-1 dim at `dim` */
    int64_t sstride[FSVC_MAX_DIMS];
    for (int d = 0, k = 0; d < out->ndim; d++) {
      if (stacked && d == dim) { sstride[d] = 0; continue; }
      sstride[d] = ts[i]->stride[k++];
    }
    fsvc_tensor *src = fsvc_view_raw(ts[i], out->ndim, shape, sstride, ts[i]->offset);
    int rc = src ? fsvc_copy_(dst, src) : -1;
    fsvc_tensor_release(src);
    fsvc_tensor_release(dst);
    if (rc != 0) return -1;
    start += len;
  }
  return 0;
}

static fsvc_tensor *join(int n, fsvc_tensor *const *ts, int dim, int stacked, const char *op) {
  if (check_list(n, ts, op) != 0) return NULL;
  const fsvc_tensor *t0 = ts[0];
  int nd_out = stacked ? t0->ndim + 1 : t0->ndim;
  if (nd_out == 0) { fsvc_set_error("%s: cannot concatenate 0-d tensors (use stack)", op); return NULL; }
  if (nd_out > FSVC_MAX_DIMS) { fsvc_set_error("%s: result would have more than %d dims", op, FSVC_MAX_DIMS); return NULL; }
  int d = fsvc_normalize_dim(dim, nd_out, op);
  if (d < 0) return NULL;
  fsvc_dtype dt = t0->dtype;
  int64_t total = 0;
  for (int i = 0; i < n; i++) {
    const fsvc_tensor *t = ts[i];
    int ok = t->ndim == t0->ndim;
    for (int k = 0; ok && k < t->ndim; k++)
      if ((stacked || k != d) && t->shape[k] != t0->shape[k]) ok = 0;
    if (!ok) {
      char sa[128], sb[128];
      fsvc_set_error(stacked ? "%s: tensor %d has shape %s but tensor 0 has %s (stack needs equal shapes)"
                             : "%s: tensor %d has shape %s, incompatible with tensor 0's %s along dim %d",
                     op, i, fsvc_shape_str(t, sa, sizeof sa), fsvc_shape_str(t0, sb, sizeof sb), dim);
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
  if (copy_pieces(out, n, ts, d, stacked) != 0) { fsvc_tensor_release(out); return NULL; }
  fsvc_node *node = fsvc_node_new(op, n, ts, cat_backward);
  if (node) {
    node->iarg[0] = d;
    node->iarg[1] = stacked;
    fsvc_node_attach(node, out);
  }
  return out;
}

fsvc_tensor *fsvc_cat(int n, fsvc_tensor *const *tensors, int dim) {
  return join(n, tensors, dim, 0, "cat");
}

fsvc_tensor *fsvc_stack(int n, fsvc_tensor *const *tensors, int dim) {
  return join(n, tensors, dim, 1, "stack");
}

/* Narrow views of a along dim at the given piece lengths. */
static int split_lengths(const fsvc_tensor *a, int d, int64_t piece, int n_pieces, fsvc_tensor ***out,
                         int *n_out) {
  fsvc_tensor **list = calloc((size_t)(n_pieces > 0 ? n_pieces : 1), sizeof *list);
  if (!list) { fsvc_set_error("split: out of memory"); return -1; }
  int64_t size = a->shape[d];
  for (int i = 0; i < n_pieces; i++) {
    int64_t start = (int64_t)i * piece;
    int64_t len = size - start < piece ? size - start : piece;
    list[i] = fsvc_narrow(a, d, start, len);
    if (!list[i]) {
      for (int k = 0; k < i; k++) fsvc_tensor_release(list[k]);
      free(list);
      return -1;
    }
  }
  *out = list;
  *n_out = n_pieces;
  return 0;
}

int fsvc_split(const fsvc_tensor *a, int64_t split_size, int dim, fsvc_tensor ***out, int *n_out) {
  if (!out || !n_out) { fsvc_set_error("split: no output list"); return -1; }
  *out = NULL;
  *n_out = 0;
  if (!a) { fsvc_set_error("split: tensor is nil"); return -1; }
  if (!a->storage) { fsvc_set_error("split: tensor was freed"); return -1; }
  if (a->ndim == 0) { fsvc_set_error("split: cannot split a 0-d tensor"); return -1; }
  int d = fsvc_normalize_dim(dim, a->ndim, "split");
  if (d < 0) return -1;
  int64_t size = a->shape[d];
  if (split_size < 0 || (split_size == 0 && size != 0)) {
    fsvc_set_error("split: split_size must be positive (got %lld for a dim of size %lld)",
                   (long long)split_size, (long long)size);
    return -1;
  }
  /* PyTorch: an empty dim gives one empty piece */
  int64_t pieces = size == 0 ? 1 : (size + split_size - 1) / split_size;
  if (pieces > 1 << 24) { fsvc_set_error("split: too many pieces (%lld)", (long long)pieces); return -1; }
  return split_lengths(a, d, split_size, (int)pieces, out, n_out);
}

int fsvc_chunk(const fsvc_tensor *a, int chunks, int dim, fsvc_tensor ***out, int *n_out) {
  if (!out || !n_out) { fsvc_set_error("chunk: no output list"); return -1; }
  *out = NULL;
  *n_out = 0;
  if (!a) { fsvc_set_error("chunk: tensor is nil"); return -1; }
  if (!a->storage) { fsvc_set_error("chunk: tensor was freed"); return -1; }
  if (a->ndim == 0) { fsvc_set_error("chunk: cannot chunk a 0-d tensor"); return -1; }
  if (chunks <= 0) { fsvc_set_error("chunk: number of chunks must be positive (got %d)", chunks); return -1; }
  int d = fsvc_normalize_dim(dim, a->ndim, "chunk");
  if (d < 0) return -1;
  int64_t size = a->shape[d];
  /* PyTorch: pieces of ceil(size/chunks); there may be fewer than `chunks` of them */
  int64_t piece = (size + chunks - 1) / chunks;
  if (piece == 0) return fsvc_split(a, 0, d, out, n_out);
  return split_lengths(a, d, piece, (int)((size + piece - 1) / piece), out, n_out);
}
