/* fsvc tensors: refcounted storage plus strided views.
 *
 * Conventions every op follows:
 *  - Functions that create a tensor return a NEW reference (refcount 1 owned by the caller) or
 *    NULL on error, with a one-line message naming the op and the shapes in fsvc_last_error().
 *  - Dims are 0-based as in PyTorch; negative dims count from the end (-1 = last). Index values
 *    stored in int64 tensors are 0-based too.
 *  - Shapes, strides and offsets are in elements, not bytes.
 */
#ifndef FSVC_TENSOR_H
#define FSVC_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define FSVC_MAX_DIMS 8

typedef enum {
  FSVC_FLOAT32 = 0,
  FSVC_FLOAT64 = 1,
  FSVC_INT64 = 2,
  FSVC_FLOAT16 = 3,  /* mixed precision: the CPU computes it through float32 (fsvc/autocast.h) */
  FSVC_BFLOAT16 = 4, /* idem */
  FSVC_NUM_DTYPES
} fsvc_dtype;

typedef enum { FSVC_CPU = 0, FSVC_CUDA = 1 } fsvc_device_type;

typedef struct {
  fsvc_device_type type;
  int index;
} fsvc_device;

typedef struct fsvc_storage {
  int refcount;
  void *data;
  size_t nbytes;
  fsvc_device device;
  /* Who frees `data`: NULL means the core's own allocator (aligned_alloc); otherwise called with
   * `owner` (memory-mapped files, device allocators). */
  void (*release)(void *owner, void *data, size_t nbytes);
  void *owner;
} fsvc_storage;

struct fsvc_node;

typedef struct fsvc_tensor {
  int refcount;
  fsvc_storage *storage; /* NULL once freed explicitly */
  int64_t offset;        /* in elements */
  int ndim;
  int64_t shape[FSVC_MAX_DIMS];
  int64_t stride[FSVC_MAX_DIMS];
  fsvc_dtype dtype;
  /* autograd */
  int requires_grad;         /* leaf wants .grad, or produced by an op that needs grad */
  struct fsvc_tensor *grad;  /* accumulated gradient for leaves (owned reference) */
  struct fsvc_node *grad_fn; /* op that produced this tensor (owned reference), NULL for leaves */
} fsvc_tensor;

/* ---- dtypes and devices --------------------------------------------------------------------- */
size_t fsvc_dtype_size(fsvc_dtype dt);
const char *fsvc_dtype_name(fsvc_dtype dt); /* "float32", ... */
int fsvc_dtype_from_name(const char *name, fsvc_dtype *out); /* accepts float/double/long aliases */
int fsvc_dtype_is_float(fsvc_dtype dt);
fsvc_dtype fsvc_promote_types(fsvc_dtype a, fsvc_dtype b);
static inline fsvc_device fsvc_cpu(void) { fsvc_device d = {FSVC_CPU, 0}; return d; }

/* ---- lifetime ------------------------------------------------------------------------------- */
fsvc_tensor *fsvc_tensor_retain(fsvc_tensor *t); /* returns t */
void fsvc_tensor_release(fsvc_tensor *t);        /* NULL is fine */
/* Drops this tensor's data now (deterministic release). Views sharing the storage keep it alive;
 * the tensor itself becomes unusable (ops on it fail with "tensor was freed"). */
void fsvc_tensor_free_data(fsvc_tensor *t);
/* Bytes of tensor storage currently allocated by the core's CPU allocator, and a running total
 * of bytes ever allocated (the Lua binding uses the latter to pace the garbage collector). */
int64_t fsvc_memory_allocated(void);
int64_t fsvc_memory_allocated_total(void);
/* Large freed blocks are kept for reuse (page faults are expensive); these bound and drop them. */
int64_t fsvc_memory_cached(void);
void fsvc_set_cache_limit(int64_t bytes); /* default 2 GiB; 0 disables caching */
void fsvc_empty_cache(void);

/* ---- creation (no autograd) ----------------------------------------------------------------- */
fsvc_tensor *fsvc_empty(int ndim, const int64_t *shape, fsvc_dtype dt);
fsvc_tensor *fsvc_zeros(int ndim, const int64_t *shape, fsvc_dtype dt);
fsvc_tensor *fsvc_full(int ndim, const int64_t *shape, double value, fsvc_dtype dt);
fsvc_tensor *fsvc_scalar(double value, fsvc_dtype dt); /* 0-d tensor */
/* Copies n elements of `src` (of dtype src_dt) into a new tensor of dtype dt. */
fsvc_tensor *fsvc_from_buffer(int ndim, const int64_t *shape, fsvc_dtype dt, const void *src,
                              fsvc_dtype src_dt);
/* Wraps external memory without copying; `release(owner, data, nbytes)` is called when the last
 * view goes away (memory-mapped checkpoints). */
fsvc_tensor *fsvc_wrap(int ndim, const int64_t *shape, fsvc_dtype dt, void *data, size_t nbytes,
                       void (*release)(void *, void *, size_t), void *owner);
fsvc_tensor *fsvc_empty_like(const fsvc_tensor *t);
fsvc_tensor *fsvc_zeros_like(const fsvc_tensor *t);

/* ---- shape queries -------------------------------------------------------------------------- */
int64_t fsvc_numel(const fsvc_tensor *t);
/* row-major with no gaps; a tensor with no elements is contiguous whatever its strides */
int fsvc_is_contiguous(const fsvc_tensor *t);
void *fsvc_data(const fsvc_tensor *t); /* pointer to element 0 of the view */
int fsvc_same_shape(const fsvc_tensor *a, const fsvc_tensor *b);
/* "[2, 3]" into buf; returns buf. */
const char *fsvc_shape_str(const fsvc_tensor *t, char *buf, size_t n);
const char *fsvc_shape_str_n(int ndim, const int64_t *shape, char *buf, size_t n);
/* Normalises a possibly negative dim against ndim (for insertion points pass ndim+1).
 * Returns -1 and sets an error naming `op` when out of range. */
int fsvc_normalize_dim(int dim, int ndim, const char *op);
void fsvc_contiguous_strides(int ndim, const int64_t *shape, int64_t *stride);

/* ---- raw helpers (no autograd; used by kernels, backward functions and bindings) ------------ */
/* A view sharing storage: new tensor struct with the given geometry. */
fsvc_tensor *fsvc_view_raw(const fsvc_tensor *t, int ndim, const int64_t *shape,
                           const int64_t *stride, int64_t offset);
/* Alias without autograd history (same storage, same geometry). */
fsvc_tensor *fsvc_detach(const fsvc_tensor *t);
/* Contiguous copy (always copies). */
fsvc_tensor *fsvc_clone_raw(const fsvc_tensor *t);
/* Retained t if already contiguous, else a contiguous copy. */
fsvc_tensor *fsvc_contiguous_raw(const fsvc_tensor *t);
/* Cast (always copies, result contiguous). */
fsvc_tensor *fsvc_to_dtype_raw(const fsvc_tensor *t, fsvc_dtype dt);
/* dst[...] = src[...] elementwise for equal shapes, any strides and dtypes. Returns 0 or -1. */
int fsvc_copy_(fsvc_tensor *dst, const fsvc_tensor *src);
/* Fill every element of the view with value. */
int fsvc_fill_(fsvc_tensor *t, double value);
/* Element access by multi-index-free linear position in row-major order of the view. */
double fsvc_get_flat(const fsvc_tensor *t, int64_t i);
void fsvc_set_flat(fsvc_tensor *t, int64_t i, double v);
/* Any NaN or Inf among the elements (float dtypes only; 0 for int64). */
int fsvc_has_nonfinite(const fsvc_tensor *t);

#endif
