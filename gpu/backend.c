/* The CUDA backend as the core sees it (fsvc_device_backend): device queries, memory, copies and
 * the op table, filled once by each gpu/ops_*.c file. */
#include <cuda_runtime.h>
#include <pthread.h>
#include <string.h>

#include "gpu_ops.h"

/* ---- helpers shared by the op files ------------------------------------------------------------ */
fsvc_gpu_geom fsvc_gpu_geom_of(const fsvc_tensor *t) {
  fsvc_gpu_geom g;
  memset(&g, 0, sizeof g);
  g.ndim = t->ndim;
  for (int d = 0; d < t->ndim; d++) {
    g.shape[d] = t->shape[d];
    g.stride[d] = t->stride[d];
  }
  return g;
}

fsvc_gpu_geom fsvc_gpu_geom_bcast(const fsvc_tensor *t, int ndim, const int64_t *shape) {
  fsvc_gpu_geom g;
  memset(&g, 0, sizeof g);
  g.ndim = ndim;
  int lead = ndim - t->ndim;
  for (int d = 0; d < ndim; d++) {
    g.shape[d] = shape[d];
    int sd = d - lead;
    g.stride[d] = (sd >= 0 && t->shape[sd] != 1) ? t->stride[sd] : 0;
  }
  return g;
}

int fsvc_gpu_check_tensor(const char *op, const fsvc_tensor *t, const char *name) {
  if (!t) { fsvc_set_error("%s: argument %s is missing (NULL)", op, name); return -1; }
  if (!t->storage) { fsvc_set_error("%s: argument %s: tensor was freed", op, name); return -1; }
  if (!fsvc_tensor_is_cuda(t)) {
    fsvc_set_error("%s: argument %s is on the CPU while the others are on CUDA; move it with "
                   ":cuda()", op, name);
    return -1;
  }
  return 0;
}

fsvc_device fsvc_gpu_device_of(int n, const fsvc_tensor *const *ts) {
  for (int i = 0; i < n; i++)
    if (fsvc_tensor_is_cuda(ts[i])) return ts[i]->storage->device;
  fsvc_device d = {FSVC_CUDA, 0};
  return d;
}

fsvc_tensor *fsvc_gpu_operand(const char *op, const fsvc_tensor *t, const char *name, fsvc_dtype dt,
                              fsvc_device dev) {
  if (!t) { fsvc_set_error("%s: argument %s is missing (NULL)", op, name); return NULL; }
  if (!t->storage) { fsvc_set_error("%s: argument %s: tensor was freed", op, name); return NULL; }
  fsvc_tensor *moved = NULL;
  if (!fsvc_tensor_is_cuda(t)) {
    if (t->ndim != 0) {
      fsvc_set_error("%s: argument %s is on the CPU while the others are on cuda:%d; move it "
                     "with :cuda()", op, name, dev.index);
      return NULL;
    }
    /* a fill kernel with the value, not a host-to-device copy: no stream synchronisation per Lua
     * number, and it can be captured into a CUDA graph (a copy from pageable memory cannot) */
    double v = fsvc_get_flat(t, 0);
    return fsvc_full_on(0, NULL, v, dt, dev);
  } else if (!fsvc_device_equal(t->storage->device, dev)) {
    fsvc_set_error("%s: arguments on different CUDA devices", op);
    return NULL;
  }
  fsvc_tensor *r = t->dtype == dt ? fsvc_tensor_retain((fsvc_tensor *)t) : fsvc_to_dtype_raw(t, dt);
  fsvc_tensor_release(moved);
  return r;
}

fsvc_tensor *fsvc_gpu_selector(const char *op, const fsvc_tensor *t, const char *name, fsvc_device dev) {
  if (!t || !t->storage) { fsvc_set_error("%s: argument %s is missing or freed", op, name); return NULL; }
  if (!fsvc_tensor_is_cuda(t)) return fsvc_to_device_raw(t, dev);
  return fsvc_gpu_operand(op, t, name, t->dtype, dev);
}

fsvc_tensor *fsvc_gpu_contig_as(const fsvc_tensor *t, fsvc_dtype dt) {
  if (t->dtype == dt) return fsvc_contiguous_raw(t);
  return fsvc_to_dtype_raw(t, dt);
}

fsvc_tensor *fsvc_gpu_expand_back(const fsvc_tensor *g, int in_ndim, const int64_t *in_shape,
                                  unsigned mask) {
  /* g has the kept dims (and maybe size-1 reduced ones): strides 0 on reduced dims */
  fsvc_tensor *gc = fsvc_contiguous_raw(g);
  if (!gc) return NULL;
  int64_t stride[FSVC_MAX_DIMS];
  int keep = g->ndim == in_ndim;
  int64_t s = 1;
  for (int d = in_ndim - 1; d >= 0; d--) {
    if (mask & (1u << d)) {
      stride[d] = 0;
    } else {
      stride[d] = s;
      s *= in_shape[d];
    }
  }
  (void)keep; /* with or without keepdim the kept dims are laid out the same */
  fsvc_tensor *v = fsvc_view_raw(gc, in_ndim, in_shape, stride, gc->offset);
  fsvc_tensor *out = v ? fsvc_clone_raw(v) : NULL;
  fsvc_tensor_release(v);
  fsvc_tensor_release(gc);
  return out;
}

/* ---- backend entries ---------------------------------------------------------------------------- */
static int be_memcpy(void *dst, fsvc_device dd, const void *src, fsvc_device sd, size_t n) {
  if (n == 0) return 0;
  enum cudaMemcpyKind kind = dd.type == FSVC_CUDA
                                 ? (sd.type == FSVC_CUDA ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                 : cudaMemcpyDeviceToHost;
  /* synchronous with respect to the host: the CPU side reads or frees its buffer right after */
  cudaStream_t s = (cudaStream_t)fsvc_gpu_stream();
  if (fsvc_gpu_check((int)cudaMemcpyAsync(dst, src, n, kind, s), "copy") != 0) return -1;
  if (fsvc_gpu_check((int)cudaStreamSynchronize(s), "copy") != 0) return -1;
  /* a copy to the host is where results are seen: index errors found on the device surface here */
  return kind == cudaMemcpyDeviceToHost ? fsvc_gpu_check_index_errors() : 0;
}

static int be_copy_strided(fsvc_tensor *dst, const fsvc_tensor *src) {
  fsvc_gpu_geom dg = fsvc_gpu_geom_of(dst), sg = fsvc_gpu_geom_of(src);
  return fsvc_gpu_copy_launch(fsvc_data(dst), dst->dtype, &dg, fsvc_data(src), src->dtype, &sg);
}

static int be_fill(fsvc_tensor *t, double v) {
  fsvc_gpu_geom g = fsvc_gpu_geom_of(t);
  return fsvc_gpu_fill_launch(fsvc_data(t), t->dtype, &g, v);
}

static fsvc_cuda_op_table table;
static fsvc_device_backend backend;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_backend(void) {
  fsvc_gpu_fill_elementwise(&table);
  fsvc_gpu_fill_reduce(&table);
  fsvc_gpu_fill_shape(&table);
  fsvc_gpu_fill_nn(&table);
  fsvc_gpu_fill_optim(&table);
  fsvc_gpu_fill_fft(&table);
  backend.device_count = fsvc_gpu_device_count;
  backend.device_name = fsvc_gpu_device_name;
  backend.unavailable_reason = fsvc_gpu_unavailable_reason;
  backend.alloc = fsvc_gpu_alloc;
  backend.release = fsvc_gpu_release;
  backend.memcpy = be_memcpy;
  backend.copy_strided = be_copy_strided;
  backend.fill = be_fill;
  backend.synchronize = fsvc_gpu_synchronize;
  backend.is_capturing = fsvc_gpu_is_capturing;
  backend.ops = &table;
}

const fsvc_device_backend *fsvc_gpu_backend(void) {
  pthread_once(&init_once, init_backend);
  return &backend;
}
