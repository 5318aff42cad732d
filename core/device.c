/* Devices: queries, device-aware creation and copies, the differentiable to_device op, and the
 * error paths of the dispatch (see fsvc/device.h). Without the CUDA backend every query answers
 * "no device" and every attempt to put a tensor on one fails with a message naming the fix. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsvc/autograd.h"
#include "fsvc/device.h"
#include "fsvc/error.h"

#ifdef FSVC_HAVE_CUDA
/* gpu/backend.c; referencing it here also pulls the backend's objects out of libfsvc_gpu.a. */
const fsvc_device_backend *fsvc_gpu_backend(void);
#endif

static const fsvc_device_backend *test_backend = NULL;
void fsvc_cuda_set_backend_for_testing(const fsvc_device_backend *b) { test_backend = b; }

const fsvc_device_backend *fsvc_cuda_backend(void) {
  if (test_backend) return test_backend;
#ifdef FSVC_HAVE_CUDA
  return fsvc_gpu_backend();
#else
  return NULL;
#endif
}

const fsvc_cuda_op_table *fsvc_cuda_ops(void) {
  const fsvc_device_backend *b = fsvc_cuda_backend();
  return b ? b->ops : NULL;
}

#define NO_BACKEND "this build has no CUDA backend (rebuild with -DFSVC_CUDA=ON)"

int fsvc_cuda_built(void) { return fsvc_cuda_backend() != NULL; }

int fsvc_cuda_device_count(void) {
  const fsvc_device_backend *b = fsvc_cuda_backend();
  return b ? b->device_count() : 0;
}

int fsvc_cuda_available(void) { return fsvc_cuda_device_count() > 0; }

int fsvc_cuda_is_capturing(void) {
  const fsvc_device_backend *b = fsvc_cuda_backend();
  return b && b->is_capturing ? b->is_capturing() : 0;
}

const char *fsvc_cuda_unavailable_reason(void) {
  const fsvc_device_backend *b = fsvc_cuda_backend();
  if (!b) return NO_BACKEND;
  return b->unavailable_reason();
}

const char *fsvc_cuda_device_name(int i) {
  const fsvc_device_backend *b = fsvc_cuda_backend();
  if (!b) { fsvc_set_error("cuda: " NO_BACKEND); return NULL; }
  int n = b->device_count();
  if (n == 0) { fsvc_set_error("cuda: %s", b->unavailable_reason()); return NULL; }
  if (i < 0 || i >= n) {
    fsvc_set_error("cuda: device %d out of range (%d device%s)", i, n, n == 1 ? "" : "s");
    return NULL;
  }
  return b->device_name(i);
}

/* ---- devices of tensors --------------------------------------------------------------------- */
fsvc_device fsvc_tensor_device(const fsvc_tensor *t) {
  if (!t || !t->storage) return fsvc_cpu();
  return t->storage->device;
}

int fsvc_tensor_is_cuda(const fsvc_tensor *t) {
  return t && t->storage && t->storage->device.type == FSVC_CUDA;
}

int fsvc_dispatch_arg_is_cuda_(const void *pointer_to_tensor_pointer) {
  const fsvc_tensor *t = *(const fsvc_tensor *const *)pointer_to_tensor_pointer;
  return fsvc_tensor_is_cuda(t);
}

int fsvc_any_cuda_list(int n, fsvc_tensor *const *ts) {
  if (!ts) return 0;
  for (int i = 0; i < n; i++)
    if (fsvc_tensor_is_cuda(ts[i])) return 1;
  return 0;
}

int fsvc_device_equal(fsvc_device a, fsvc_device b) {
  return a.type == b.type && (a.type == FSVC_CPU || a.index == b.index);
}

const char *fsvc_device_str(fsvc_device d, char *buf, size_t n) {
  if (d.type == FSVC_CPU) snprintf(buf, n, "cpu");
  else snprintf(buf, n, "cuda:%d", d.index);
  return buf;
}

int fsvc_device_parse(const char *s, fsvc_device *out) {
  if (!s) { fsvc_set_error("device: expected a string such as \"cpu\" or \"cuda:0\""); return -1; }
  if (strcmp(s, "cpu") == 0) { *out = fsvc_cpu(); return 0; }
  if (strncmp(s, "cuda", 4) == 0) {
    const char *rest = s + 4;
    int index = 0;
    if (*rest == ':') {
      char *end = NULL;
      long v = strtol(rest + 1, &end, 10);
      if (end == rest + 1 || *end || v < 0 || v > 1024) goto bad;
      index = (int)v;
    } else if (*rest) {
      goto bad;
    }
    out->type = FSVC_CUDA;
    out->index = index;
    return 0;
  }
bad:
  fsvc_set_error("device: unknown device '%s' (expected \"cpu\", \"cuda\" or \"cuda:N\")", s);
  return -1;
}

void fsvc_cuda_dispatch_error(const char *op, int have_backend) {
  if (!have_backend) fsvc_set_error("%s: tensor on cuda:0 but " NO_BACKEND, op);
  else fsvc_set_error("%s: not implemented on CUDA yet (move the tensors with :cpu())", op);
}

void fsvc_cuda_refuse_error(const char *op) {
  fsvc_set_error("%s: CUDA tensors are not supported yet (move them with :cpu())", op);
}

/* A backend usable for device d, or NULL with an error naming what is missing. */
static const fsvc_device_backend *backend_for(fsvc_device d, const char *op) {
  const fsvc_device_backend *b = fsvc_cuda_backend();
  if (!b) { fsvc_set_error("%s: cuda:%d requested but " NO_BACKEND, op, d.index); return NULL; }
  int n = b->device_count();
  if (n == 0) {
    fsvc_set_error("%s: cuda:%d requested but CUDA is unavailable: %s", op, d.index,
                   b->unavailable_reason());
    return NULL;
  }
  if (d.index < 0 || d.index >= n) {
    fsvc_set_error("%s: cuda:%d does not exist (%d device%s)", op, d.index, n, n == 1 ? "" : "s");
    return NULL;
  }
  return b;
}

/* ---- creation --------------------------------------------------------------------------------- */
static _Atomic int64_t device_bytes_total = 0;
int64_t fsvc_device_bytes_total(void) { return atomic_load(&device_bytes_total); }

fsvc_tensor *fsvc_empty_on(int ndim, const int64_t *shape, fsvc_dtype dt, fsvc_device d) {
  if (d.type == FSVC_CPU) return fsvc_empty(ndim, shape, dt);
  const fsvc_device_backend *b = backend_for(d, "empty");
  if (!b) return NULL;
  /* the header (shape checks) first, around a dummy pointer, so nothing is allocated twice;
   * SIZE_MAX passes wrap's size check, the real size is set below */
  static char dummy;
  fsvc_tensor *t = fsvc_wrap(ndim, shape, dt, &dummy, SIZE_MAX, NULL, NULL);
  if (!t) return NULL;
  size_t nbytes = (size_t)fsvc_numel(t) * fsvc_dtype_size(dt);
  void *p = b->alloc(d.index, nbytes);
  if (!p) { /* out of device memory: the header must not free the dummy as if it were host memory */
    t->storage->data = NULL;
    t->storage->nbytes = 0;
    fsvc_tensor_release(t);
    return NULL;
  }
  atomic_fetch_add(&device_bytes_total, (int64_t)nbytes);
  t->storage->data = p;
  t->storage->nbytes = nbytes;
  t->storage->device = d;
  t->storage->release = b->release;
  t->storage->owner = NULL;
  return t;
}

fsvc_tensor *fsvc_full_on(int ndim, const int64_t *shape, double value, fsvc_dtype dt,
                          fsvc_device d) {
  if (d.type == FSVC_CPU) return fsvc_full(ndim, shape, value, dt);
  fsvc_tensor *t = fsvc_empty_on(ndim, shape, dt, d);
  if (t && fsvc_fill_(t, value) != 0) { fsvc_tensor_release(t); return NULL; }
  return t;
}

fsvc_tensor *fsvc_zeros_on(int ndim, const int64_t *shape, fsvc_dtype dt, fsvc_device d) {
  return fsvc_full_on(ndim, shape, 0.0, dt, d);
}

/* ---- copies between devices (tensor.c's raw helpers call these for device tensors) ---------- */
/* dst = src where at least one is on a device. Same device: the backend's strided kernel.
 * Across devices: made contiguous (and cast) on the source side, then one memcpy. */
int fsvc_device_copy_(fsvc_tensor *dst, const fsvc_tensor *src) {
  fsvc_device dd = fsvc_tensor_device(dst), sd = fsvc_tensor_device(src);
  const fsvc_device_backend *b = backend_for(dd.type == FSVC_CUDA ? dd : sd, "copy");
  if (!b) return -1;
  if (fsvc_device_equal(dd, sd)) return b->copy_strided(dst, src);
  if (dd.type == FSVC_CUDA && sd.type == FSVC_CUDA) {
    fsvc_set_error("copy: between two CUDA devices (cuda:%d to cuda:%d) is not supported; go "
                   "through the host", sd.index, dd.index);
    return -1;
  }
  /* staging: a contiguous tensor of dst's dtype on the source device */
  fsvc_tensor *stage = fsvc_empty_on(src->ndim, src->shape, dst->dtype, sd);
  if (!stage) return -1;
  if (fsvc_copy_(stage, src) != 0) { fsvc_tensor_release(stage); return -1; }
  int rc;
  if (fsvc_is_contiguous(dst)) {
    rc = b->memcpy(fsvc_data(dst), dd, fsvc_data(stage), sd, stage->storage->nbytes);
  } else {
    fsvc_tensor *landing = fsvc_empty_on(dst->ndim, dst->shape, dst->dtype, dd);
    rc = landing ? b->memcpy(fsvc_data(landing), dd, fsvc_data(stage), sd, stage->storage->nbytes)
                 : -1;
    if (rc == 0) rc = fsvc_copy_(dst, landing);
    fsvc_tensor_release(landing);
  }
  fsvc_tensor_release(stage);
  return rc;
}

int fsvc_device_fill_(fsvc_tensor *t, double value) {
  const fsvc_device_backend *b = backend_for(fsvc_tensor_device(t), "fill_");
  return b ? b->fill(t, value) : -1;
}

fsvc_tensor *fsvc_to_device_raw(const fsvc_tensor *t, fsvc_device d) {
  if (!t || !t->storage) { fsvc_set_error("to: tensor is missing or was freed"); return NULL; }
  if (d.type == FSVC_CUDA && !backend_for(d, "to")) return NULL;
  fsvc_tensor *out = fsvc_empty_on(t->ndim, t->shape, t->dtype, d);
  if (!out) return NULL;
  if (fsvc_copy_(out, t) != 0) { fsvc_tensor_release(out); return NULL; }
  return out;
}

int fsvc_device_synchronize(void) {
  const fsvc_device_backend *b = fsvc_cuda_backend();
  if (!b || b->device_count() == 0) return 0;
  return b->synchronize();
}

/* ---- the differentiable move: gradient goes back to the source device ------------------------ */
/* iarg[0], iarg[1] = type and index of the source device */
static int to_device_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  fsvc_device src = {(fsvc_device_type)n->iarg[0], (int)n->iarg[1]};
  gin[0] = fsvc_to_device_raw(g, src);
  return gin[0] ? 0 : -1;
}

fsvc_tensor *fsvc_to_device(const fsvc_tensor *t, fsvc_device d) {
  if (!t || !t->storage) { fsvc_set_error("to: tensor is missing or was freed"); return NULL; }
  fsvc_device src = fsvc_tensor_device(t);
  if (fsvc_device_equal(src, d)) return fsvc_tensor_retain((fsvc_tensor *)t);
  fsvc_tensor *out = fsvc_to_device_raw(t, d);
  if (!out) return NULL;
  fsvc_node *n = fsvc_node_new("to_device", 1, (fsvc_tensor *[]){(fsvc_tensor *)t}, to_device_backward);
  if (n) {
    n->iarg[0] = src.type;
    n->iarg[1] = src.index;
    fsvc_node_attach(n, out);
  }
  return out;
}

/* ---- gradient helpers of the engine for device tensors -------------------------------------- */


/* Sums the broadcast dims of a device gradient with the backend's sum (keepdim), then reshapes. */

/* "to_device" is registered as differentiable on first use only (fsvc_node_new does it): a build
 * without a GPU never records it, so the gradient-check coverage list is unchanged there. */
