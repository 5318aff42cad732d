/* flip: reverses the order of elements along the given dims (a copy, as in PyTorch).
 * The reversed view is a negative stride starting at the last element; copying it gives the
 * result. The backward flips the gradient along the same dims. A view and a strided copy: the
 * same code serves every device. */
#include "fsvc/device.h"
#include "fsvc/autograd.h"
#include "fsvc/error.h"
#include "fsvc/ops_shape.h"

__attribute__((constructor)) static void register_ops(void) { fsvc_register_differentiable("flip"); }

/* flags[d] != 0 for each flipped dim; returns a contiguous copy */
static fsvc_tensor *flip_raw(const fsvc_tensor *a, const int *flags) {
  int64_t stride[FSVC_MAX_DIMS], offset = a->offset;
  for (int d = 0; d < a->ndim; d++) {
    stride[d] = a->stride[d];
    if (flags[d] && a->shape[d] > 0) {
      offset += (a->shape[d] - 1) * a->stride[d];
      stride[d] = -a->stride[d];
    }
  }
  fsvc_tensor *v = fsvc_view_raw(a, a->ndim, a->shape, stride, offset);
  if (!v) return NULL;
  fsvc_tensor *out = fsvc_clone_raw(v);
  fsvc_tensor_release(v);
  return out;
}

static int flip_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  int flags[FSVC_MAX_DIMS];
  for (int d = 0; d < g->ndim; d++) flags[d] = (int)n->iarg[d];
  gin[0] = flip_raw(g, flags);
  return gin[0] ? 0 : -1;
}

fsvc_tensor *fsvc_flip(const fsvc_tensor *a, int n_dims, const int *dims) {
  if (!a) { fsvc_set_error("flip: tensor is nil"); return NULL; }
  if (!a->storage) { fsvc_set_error("flip: tensor was freed"); return NULL; }
  if (n_dims < 0 || (n_dims > 0 && !dims)) { fsvc_set_error("flip: invalid list of dims"); return NULL; }
  int flags[FSVC_MAX_DIMS] = {0};
  for (int i = 0; i < n_dims; i++) {
    int d = fsvc_normalize_dim(dims[i], a->ndim, "flip");
    if (d < 0) return NULL;
    if (a->ndim == 0) continue; /* flipping a 0-d tensor along 0 / -1 is the identity */
    if (flags[d]) { fsvc_set_error("flip: dim %d appears more than once", dims[i]); return NULL; }
    flags[d] = 1;
  }
  fsvc_tensor *out = flip_raw(a, flags);
  if (!out) return NULL;
  fsvc_node *n = fsvc_node_new("flip", 1, (fsvc_tensor *[]){(fsvc_tensor *)a}, flip_backward);
  if (n) {
    for (int d = 0; d < a->ndim; d++) n->iarg[d] = flags[d];
    fsvc_node_attach(n, out);
  }
  return out;
}
