/* Shared helpers of the elementwise ops (see elementwise_common.h). */
#include "ops/elementwise_common.h"

#include "fsvc/error.h"
#include "ops/broadcast.h"

int fsvc_ew_check_live(const char *op, const fsvc_tensor *t, const char *name) {
  if (!t) {
    fsvc_set_error("%s: argument %s is missing (NULL)", op, name);
    return -1;
  }
  if (!t->storage) {
    fsvc_set_error("%s: argument %s: tensor was freed", op, name);
    return -1;
  }
  if (t->storage->device.type != FSVC_CPU) {
    fsvc_set_error("%s: argument %s is on a CUDA device; the CPU kernel needs a CPU tensor", op,
                   name);
    return -1;
  }
  return 0;
}

int fsvc_ew_check(const char *op, const fsvc_tensor *t, const char *name) {
  if (fsvc_ew_check_live(op, t, name) != 0) return -1;
  if (t->dtype != FSVC_FLOAT32 && t->dtype != FSVC_FLOAT64 && t->dtype != FSVC_INT64) {
    fsvc_set_error("%s: argument %s has dtype %s, which this CPU kernel does not take; cast it "
                   "to float32 first",
                   op, name, fsvc_dtype_name(t->dtype));
    return -1;
  }
  return 0;
}

fsvc_dtype fsvc_ew_result_dtype(const fsvc_tensor *a, const fsvc_tensor *b) {
  int a0 = a->ndim == 0, b0 = b->ndim == 0;
  if (a0 != b0) {
    const fsvc_tensor *dimmed = a0 ? b : a, *scalar = a0 ? a : b;
    if (fsvc_dtype_is_float(dimmed->dtype) == fsvc_dtype_is_float(scalar->dtype))
      return dimmed->dtype;
  }
  return fsvc_promote_types(a->dtype, b->dtype);
}

fsvc_tensor *fsvc_ew_cast(const fsvc_tensor *t, fsvc_dtype dt) {
  return t->dtype == dt ? fsvc_detach(t) : fsvc_to_dtype_raw(t, dt);
}

fsvc_tensor *fsvc_ew_reduce_grad(fsvc_tensor *g, const fsvc_edge *e) {
  if (!g) return NULL;
  int same = g->ndim == e->ndim;
  for (int d = 0; same && d < e->ndim; d++) same = g->shape[d] == e->shape[d];
  if (same) return g;
  fsvc_tensor *r = fsvc_sum_to_shape(g, e->ndim, e->shape);
  fsvc_tensor_release(g);
  return r;
}

/* Checks shared by the in-place ops: writable, no autograd involvement. Any device: the ops make
 * them before the CUDA dispatch, so both devices give the same messages. */
int fsvc_ew_check_inplace(const char *op, const fsvc_tensor *dst) {
  if (!dst) {
    fsvc_set_error("%s: argument self is missing (NULL)", op);
    return -1;
  }
  if (!dst->storage) {
    fsvc_set_error("%s: argument self: tensor was freed", op);
    return -1;
  }
  if (fsvc_needs_grad(dst)) {
    fsvc_set_error("%s: a tensor that requires grad cannot be modified in place while grad mode "
                   "is on (wrap the update in fsvc.no_grad, or use the out-of-place op)",
                   op);
    return -1;
  }
  if (fsvc_has_internal_overlap(dst)) {
    char buf[128];
    fsvc_set_error("%s: cannot write in place to an expanded tensor of shape %s (several elements "
                   "share memory); clone it first",
                   op, fsvc_shape_str(dst, buf, sizeof buf));
    return -1;
  }
  return 0;
}
