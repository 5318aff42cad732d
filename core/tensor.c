/* Tensor lifetime, creation, geometry and raw (non-autograd) copies. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsvc/autograd.h"
#include "fsvc/error.h"
#include "fsvc/tensor.h"
#include "allocator.h"
#include "device_internal.h"
#include "half.h"

static _Atomic int64_t bytes_live = 0;
static _Atomic int64_t bytes_total = 0;

int64_t fsvc_memory_allocated(void) { return atomic_load(&bytes_live); }
/* device bytes count too: Lua's collector, paced by this total, must also run for GPU tensors */
int64_t fsvc_memory_allocated_total(void) { return atomic_load(&bytes_total) + fsvc_device_bytes_total(); }

/* ---- dtypes --------------------------------------------------------------------------------- */
static const struct {
  const char *name;
  size_t size;
} dtype_table[FSVC_NUM_DTYPES] = {
    [FSVC_FLOAT32] = {"float32", 4}, [FSVC_FLOAT64] = {"float64", 8},
    [FSVC_INT64] = {"int64", 8},     [FSVC_FLOAT16] = {"float16", 2},
    [FSVC_BFLOAT16] = {"bfloat16", 2},
};

size_t fsvc_dtype_size(fsvc_dtype dt) { return (unsigned)dt < FSVC_NUM_DTYPES ? dtype_table[dt].size : 0; }
const char *fsvc_dtype_name(fsvc_dtype dt) {
  return (unsigned)dt < FSVC_NUM_DTYPES ? dtype_table[dt].name : "invalid";
}
int fsvc_dtype_is_float(fsvc_dtype dt) { return dt != FSVC_INT64; }

int fsvc_dtype_from_name(const char *name, fsvc_dtype *out) {
  static const struct { const char *alias; fsvc_dtype dt; } aliases[] = {
      {"float32", FSVC_FLOAT32}, {"float", FSVC_FLOAT32},   {"float64", FSVC_FLOAT64},
      {"double", FSVC_FLOAT64},  {"int64", FSVC_INT64},     {"long", FSVC_INT64},
      {"float16", FSVC_FLOAT16}, {"half", FSVC_FLOAT16},    {"bfloat16", FSVC_BFLOAT16},
  };
  for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
    if (strcmp(name, aliases[i].alias) == 0) { *out = aliases[i].dt; return 0; }
  fsvc_set_error("unknown dtype '%s' (expected float32, float64, int64, float16 or bfloat16)", name);
  return -1;
}

/* float64 > float32 > float16/bfloat16 > int64, as PyTorch does for tensor-tensor ops. */
fsvc_dtype fsvc_promote_types(fsvc_dtype a, fsvc_dtype b) {
  if (a == b) return a;
  if (a == FSVC_FLOAT64 || b == FSVC_FLOAT64) return FSVC_FLOAT64;
  if (a == FSVC_FLOAT32 || b == FSVC_FLOAT32) return FSVC_FLOAT32;
  if (a == FSVC_INT64) return b;
  if (b == FSVC_INT64) return a;
  return FSVC_FLOAT32; /* float16 with bfloat16 */
}

/* ---- geometry ------------------------------------------------------------------------------- */
int64_t fsvc_numel(const fsvc_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

void fsvc_contiguous_strides(int ndim, const int64_t *shape, int64_t *stride) {
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    stride[i] = s;
    s *= shape[i] > 0 ? shape[i] : 1;
  }
}

int fsvc_is_contiguous(const fsvc_tensor *t) {
  for (int i = 0; i < t->ndim; i++)
    if (t->shape[i] == 0) return 1; /* no elements: any strides will do (PyTorch's rule too) */
  int64_t s = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] != 1 && t->stride[i] != s) return 0;
    s *= t->shape[i];
  }
  return 1;
}

void *fsvc_data(const fsvc_tensor *t) {
  if (!t->storage) return NULL;
  return (char *)t->storage->data + t->offset * (int64_t)fsvc_dtype_size(t->dtype);
}

int fsvc_same_shape(const fsvc_tensor *a, const fsvc_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

const char *fsvc_shape_str_n(int ndim, const int64_t *shape, char *buf, size_t n) {
  size_t used = 0;
  used += (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < ndim && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, i ? ", %lld" : "%lld", (long long)shape[i]);
  if (used < n) snprintf(buf + used, n - used, "]");
  return buf;
}

const char *fsvc_shape_str(const fsvc_tensor *t, char *buf, size_t n) {
  return fsvc_shape_str_n(t->ndim, t->shape, buf, n);
}

int fsvc_normalize_dim(int dim, int ndim, const char *op) {
  int n = ndim > 0 ? ndim : 1; /* a 0-d tensor accepts dim 0 and -1, as PyTorch */
  int d = dim < 0 ? dim + n : dim;
  if (d < 0 || d >= n) {
    fsvc_set_error("%s: dim %d out of range for a tensor of %d dims (valid: %d to %d)", op, dim,
                   ndim, ndim > 0 ? -ndim : -1, ndim > 0 ? ndim - 1 : 0);
    return -1;
  }
  return d;
}

/* ---- storage -------------------------------------------------------------------------------- */
static fsvc_storage *storage_new(size_t nbytes) {
  fsvc_storage *s = calloc(1, sizeof *s);
  if (!s) { fsvc_set_error("out of memory allocating a tensor header"); return NULL; }
  s->data = fsvc_cpu_alloc(nbytes);
  if (!s->data) {
    free(s);
    fsvc_set_error("out of memory allocating %zu bytes of tensor data", nbytes);
    return NULL;
  }
  s->refcount = 1;
  s->nbytes = nbytes;
  s->device = fsvc_cpu();
  atomic_fetch_add(&bytes_live, (int64_t)nbytes);
  atomic_fetch_add(&bytes_total, (int64_t)nbytes);
  return s;
}

static void storage_release(fsvc_storage *s) {
  if (!s || --s->refcount > 0) return;
  if (s->release) {
    s->release(s->owner, s->data, s->nbytes);
  } else {
    atomic_fetch_sub(&bytes_live, (int64_t)s->nbytes);
    fsvc_cpu_free(s->data, s->nbytes);
  }
  free(s);
}

/* ---- lifetime ------------------------------------------------------------------------------- */
fsvc_tensor *fsvc_tensor_retain(fsvc_tensor *t) {
  if (t) t->refcount++;
  return t;
}

void fsvc_tensor_release(fsvc_tensor *t) {
  if (!t || --t->refcount > 0) return;
  storage_release(t->storage);
  fsvc_tensor_release(t->grad);
  fsvc_node_release(t->grad_fn);
  free(t);
}

void fsvc_tensor_free_data(fsvc_tensor *t) {
  if (!t) return;
  storage_release(t->storage);
  t->storage = NULL;
  fsvc_tensor_release(t->grad);
  t->grad = NULL;
  fsvc_node_release(t->grad_fn);
  t->grad_fn = NULL;
}

/* Element counts above 2^40 are refused, and the product is checked step by step so that a
 * shape like {2^62, 4} cannot wrap around to a small count. */
#define FSVC_MAX_NUMEL ((int64_t)1 << 40)
static int numel_fits(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0 || shape[i] > FSVC_MAX_NUMEL) return 0;
    if (shape[i] == 0) return 1;
    if (n > FSVC_MAX_NUMEL / shape[i]) return 0;
    n *= shape[i];
  }
  return 1;
}

static fsvc_tensor *tensor_header(int ndim, const int64_t *shape, fsvc_dtype dt) {
  if (ndim < 0 || ndim > FSVC_MAX_DIMS) {
    fsvc_set_error("tensors have at most %d dims (asked for %d)", FSVC_MAX_DIMS, ndim);
    return NULL;
  }
  if ((unsigned)dt >= FSVC_NUM_DTYPES) { fsvc_set_error("invalid dtype %d", (int)dt); return NULL; }
  for (int i = 0; i < ndim; i++)
    if (shape[i] < 0) {
      char buf[128];
      fsvc_set_error("negative size in shape %s", fsvc_shape_str_n(ndim, shape, buf, sizeof buf));
      return NULL;
    }
  if (!numel_fits(ndim, shape)) {
    char buf[160];
    fsvc_set_error("tensor of shape %s is too large", fsvc_shape_str_n(ndim, shape, buf, sizeof buf));
    return NULL;
  }
  fsvc_tensor *t = calloc(1, sizeof *t);
  if (!t) { fsvc_set_error("out of memory allocating a tensor header"); return NULL; }
  t->refcount = 1;
  t->ndim = ndim;
  t->dtype = dt;
  for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
  fsvc_contiguous_strides(ndim, shape, t->stride);
  return t;
}

fsvc_tensor *fsvc_empty(int ndim, const int64_t *shape, fsvc_dtype dt) {
  fsvc_tensor *t = tensor_header(ndim, shape, dt);
  if (!t) return NULL;
  int64_t n = fsvc_numel(t);
  if (n > ((int64_t)1 << 40)) {
    char buf[128];
    fsvc_set_error("tensor of shape %s is too large", fsvc_shape_str(t, buf, sizeof buf));
    free(t);
    return NULL;
  }
  t->storage = storage_new((size_t)n * fsvc_dtype_size(dt));
  if (!t->storage) { free(t); return NULL; }
  return t;
}

fsvc_tensor *fsvc_zeros(int ndim, const int64_t *shape, fsvc_dtype dt) {
  fsvc_tensor *t = fsvc_empty(ndim, shape, dt);
  if (t) memset(t->storage->data, 0, t->storage->nbytes);
  return t;
}

fsvc_tensor *fsvc_full(int ndim, const int64_t *shape, double value, fsvc_dtype dt) {
  fsvc_tensor *t = fsvc_empty(ndim, shape, dt);
  if (t) fsvc_fill_(t, value);
  return t;
}

fsvc_tensor *fsvc_scalar(double value, fsvc_dtype dt) { return fsvc_full(0, NULL, value, dt); }

/* the *_like constructors keep the device of t (as PyTorch) */
fsvc_tensor *fsvc_empty_like(const fsvc_tensor *t) {
  return fsvc_empty_on(t->ndim, t->shape, t->dtype, fsvc_tensor_device(t));
}
fsvc_tensor *fsvc_zeros_like(const fsvc_tensor *t) {
  return fsvc_zeros_on(t->ndim, t->shape, t->dtype, fsvc_tensor_device(t));
}

fsvc_tensor *fsvc_wrap(int ndim, const int64_t *shape, fsvc_dtype dt, void *data, size_t nbytes,
                       void (*release)(void *, void *, size_t), void *owner) {
  fsvc_tensor *t = tensor_header(ndim, shape, dt);
  if (!t) return NULL;
  if ((size_t)fsvc_numel(t) * fsvc_dtype_size(dt) > nbytes) {
    fsvc_set_error("wrap: %zu bytes are too few for the shape", nbytes);
    free(t);
    return NULL;
  }
  fsvc_storage *s = calloc(1, sizeof *s);
  if (!s) { free(t); fsvc_set_error("out of memory"); return NULL; }
  s->refcount = 1;
  s->data = data;
  s->nbytes = nbytes;
  s->device = fsvc_cpu();
  s->release = release;
  s->owner = owner;
  t->storage = s;
  return t;
}

/* ---- element access ------------------------------------------------------------------------- */
static inline double load_as_double(const void *p, fsvc_dtype dt) {
  switch (dt) {
    case FSVC_FLOAT32: return *(const float *)p;
    case FSVC_FLOAT64: return *(const double *)p;
    case FSVC_INT64: return (double)*(const int64_t *)p;
    case FSVC_FLOAT16: return fsvc_half_to_float(*(const uint16_t *)p);
    case FSVC_BFLOAT16: return fsvc_bfloat_to_float(*(const uint16_t *)p);
    default: return 0;
  }
}

static inline void store_double(void *p, fsvc_dtype dt, double v) {
  switch (dt) {
    case FSVC_FLOAT32: *(float *)p = (float)v; break;
    case FSVC_FLOAT64: *(double *)p = v; break;
    case FSVC_INT64: *(int64_t *)p = (int64_t)v; break;
    case FSVC_FLOAT16: *(uint16_t *)p = fsvc_float_to_half((float)v); break;
    case FSVC_BFLOAT16: *(uint16_t *)p = fsvc_float_to_bfloat((float)v); break;
    default: break;
  }
}

/* Element offset (in elements, relative to the view's start) of row-major position i. */
static inline int64_t flat_to_offset(const fsvc_tensor *t, int64_t i) {
  int64_t off = 0;
  for (int d = t->ndim - 1; d >= 0; d--) {
    int64_t n = t->shape[d];
    off += (i % n) * t->stride[d];
    i /= n;
  }
  return off;
}

/* Device memory is never dereferenced on the host: element access on a device tensor fails
 * (NaN, error set); callers copy to the host first (fsvc_to_device_raw). */
static int refuse_device(const fsvc_tensor *t, const char *what) {
  if (!fsvc_tensor_is_cuda(t)) return 0;
  fsvc_set_error("%s: tensor is on cuda:%d; copy it to the host first (x:cpu())", what,
                 t->storage->device.index);
  return 1;
}

double fsvc_get_flat(const fsvc_tensor *t, int64_t i) {
  if (refuse_device(t, "element access")) return NAN;
  size_t es = fsvc_dtype_size(t->dtype);
  return load_as_double((char *)fsvc_data(t) + flat_to_offset(t, i) * (int64_t)es, t->dtype);
}

void fsvc_set_flat(fsvc_tensor *t, int64_t i, double v) {
  if (refuse_device(t, "element access")) return;
  size_t es = fsvc_dtype_size(t->dtype);
  store_double((char *)fsvc_data(t) + flat_to_offset(t, i) * (int64_t)es, t->dtype, v);
}

/* ---- copies --------------------------------------------------------------------------------- */
/* Calls body(dst_ptr, src_ptr) over all elements of two equal-shape views, walking the innermost
 * dim in a tight loop. */
typedef void (*copy_row_fn)(char *dst, int64_t dst_stride, const char *src, int64_t src_stride,
                            int64_t n);

#define DEFINE_COPY_ROW(name, TD, TS, CONV)                                                        \
  static void name(char *dst, int64_t ds, const char *src, int64_t ss, int64_t n) {               \
    TD *d = (TD *)dst;                                                                              \
    const TS *s = (const TS *)src;                                                                  \
    for (int64_t i = 0; i < n; i++) d[i * ds] = CONV(s[i * ss]);                                    \
  }
#define CONV_ID(x) (x)
DEFINE_COPY_ROW(copy_f32_f32, float, float, CONV_ID)
DEFINE_COPY_ROW(copy_f64_f64, double, double, CONV_ID)
DEFINE_COPY_ROW(copy_i64_i64, int64_t, int64_t, CONV_ID)
DEFINE_COPY_ROW(copy_f32_f64, float, double, (float))
DEFINE_COPY_ROW(copy_f64_f32, double, float, (double))
/* 16-bit storage <-> float32: the casts around every float16/bfloat16 CPU op (autocast) */
DEFINE_COPY_ROW(copy_u16_u16, uint16_t, uint16_t, CONV_ID)
DEFINE_COPY_ROW(copy_f16_f32, uint16_t, float, fsvc_float_to_half)
DEFINE_COPY_ROW(copy_f32_f16, float, uint16_t, fsvc_half_to_float)
DEFINE_COPY_ROW(copy_bf16_f32, uint16_t, float, fsvc_float_to_bfloat)
DEFINE_COPY_ROW(copy_f32_bf16, float, uint16_t, fsvc_bfloat_to_float)

static void copy_generic(char *dst, int64_t ds, const char *src, int64_t ss, int64_t n,
                         fsvc_dtype dt_dst, fsvc_dtype dt_src) {
  size_t ed = fsvc_dtype_size(dt_dst), es = fsvc_dtype_size(dt_src);
  for (int64_t i = 0; i < n; i++)
    store_double(dst + i * ds * (int64_t)ed, dt_dst, load_as_double(src + i * ss * (int64_t)es, dt_src));
}

int fsvc_copy_(fsvc_tensor *dst, const fsvc_tensor *src) {
  if (!fsvc_same_shape(dst, src)) {
    char a[128], b[128];
    fsvc_set_error("copy: shape %s does not match %s", fsvc_shape_str(dst, a, sizeof a),
                   fsvc_shape_str(src, b, sizeof b));
    return -1;
  }
  int64_t n = fsvc_numel(dst);
  if (n == 0) return 0;
  if (fsvc_tensor_is_cuda(dst) || fsvc_tensor_is_cuda(src)) return fsvc_device_copy_(dst, src);
  copy_row_fn row = NULL;
  if (dst->dtype == src->dtype) {
    if (dst->dtype == FSVC_FLOAT32) row = copy_f32_f32;
    else if (dst->dtype == FSVC_FLOAT64) row = copy_f64_f64;
    else if (dst->dtype == FSVC_INT64) row = copy_i64_i64;
    else row = copy_u16_u16; /* float16, bfloat16 */
  } else if (dst->dtype == FSVC_FLOAT32 && src->dtype == FSVC_FLOAT64) row = copy_f32_f64;
  else if (dst->dtype == FSVC_FLOAT64 && src->dtype == FSVC_FLOAT32) row = copy_f64_f32;
  else if (dst->dtype == FSVC_FLOAT16 && src->dtype == FSVC_FLOAT32) row = copy_f16_f32;
  else if (dst->dtype == FSVC_FLOAT32 && src->dtype == FSVC_FLOAT16) row = copy_f32_f16;
  else if (dst->dtype == FSVC_BFLOAT16 && src->dtype == FSVC_FLOAT32) row = copy_bf16_f32;
  else if (dst->dtype == FSVC_FLOAT32 && src->dtype == FSVC_BFLOAT16) row = copy_f32_bf16;

  size_t ed = fsvc_dtype_size(dst->dtype), es = fsvc_dtype_size(src->dtype);
  if (row && fsvc_is_contiguous(dst) && fsvc_is_contiguous(src)) {
    if (dst->dtype == src->dtype) memmove(fsvc_data(dst), fsvc_data(src), (size_t)n * ed);
    else row(fsvc_data(dst), 1, fsvc_data(src), 1, n);
    return 0;
  }
  int nd = dst->ndim;
  int64_t inner = nd ? dst->shape[nd - 1] : 1;
  int64_t ds = nd ? dst->stride[nd - 1] : 1, ss = nd ? src->stride[nd - 1] : 1;
  int64_t rows = n / inner;
  int64_t idx[FSVC_MAX_DIMS] = {0};
  char *dbase = fsvc_data(dst);
  const char *sbase = fsvc_data(src);
  for (int64_t r = 0; r < rows; r++) {
    int64_t doff = 0, soff = 0;
    for (int d = 0; d < nd - 1; d++) {
      doff += idx[d] * dst->stride[d];
      soff += idx[d] * src->stride[d];
    }
    char *dp = dbase + doff * (int64_t)ed;
    const char *sp = sbase + soff * (int64_t)es;
    if (row) row(dp, ds, sp, ss, inner);
    else copy_generic(dp, ds, sp, ss, inner, dst->dtype, src->dtype);
    for (int d = nd - 2; d >= 0; d--) {
      if (++idx[d] < dst->shape[d]) break;
      idx[d] = 0;
    }
  }
  return 0;
}

int fsvc_fill_(fsvc_tensor *t, double value) {
  if (fsvc_tensor_is_cuda(t)) return fsvc_device_fill_(t, value);
  int64_t n = fsvc_numel(t);
  if (fsvc_is_contiguous(t)) {
    void *p = fsvc_data(t);
    switch (t->dtype) {
      case FSVC_FLOAT32: for (int64_t i = 0; i < n; i++) ((float *)p)[i] = (float)value; break;
      case FSVC_FLOAT64: for (int64_t i = 0; i < n; i++) ((double *)p)[i] = value; break;
      case FSVC_INT64: for (int64_t i = 0; i < n; i++) ((int64_t *)p)[i] = (int64_t)value; break;
      default: for (int64_t i = 0; i < n; i++) fsvc_set_flat(t, i, value); break;
    }
    return 0;
  }
  for (int64_t i = 0; i < n; i++) fsvc_set_flat(t, i, value);
  return 0;
}

fsvc_tensor *fsvc_from_buffer(int ndim, const int64_t *shape, fsvc_dtype dt, const void *src,
                              fsvc_dtype src_dt) {
  fsvc_tensor *t = fsvc_empty(ndim, shape, dt);
  if (!t) return NULL;
  int64_t n = fsvc_numel(t);
  if (dt == src_dt) {
    memcpy(fsvc_data(t), src, (size_t)n * fsvc_dtype_size(dt));
  } else {
    size_t es = fsvc_dtype_size(src_dt);
    for (int64_t i = 0; i < n; i++)
      store_double((char *)fsvc_data(t) + i * (int64_t)fsvc_dtype_size(dt), dt,
                   load_as_double((const char *)src + i * (int64_t)es, src_dt));
  }
  return t;
}

fsvc_tensor *fsvc_view_raw(const fsvc_tensor *t, int ndim, const int64_t *shape,
                           const int64_t *stride, int64_t offset) {
  if (!t->storage) { fsvc_set_error("tensor was freed"); return NULL; }
  if (ndim < 0 || ndim > FSVC_MAX_DIMS || !numel_fits(ndim, shape)) {
    fsvc_set_error("view: invalid or too large shape");
    return NULL;
  }
  fsvc_tensor *v = calloc(1, sizeof *v);
  if (!v) { fsvc_set_error("out of memory"); return NULL; }
  v->refcount = 1;
  v->storage = t->storage;
  v->storage->refcount++;
  v->offset = offset;
  v->ndim = ndim;
  v->dtype = t->dtype;
  for (int i = 0; i < ndim; i++) {
    v->shape[i] = shape[i];
    v->stride[i] = stride[i];
  }
  return v;
}

fsvc_tensor *fsvc_detach(const fsvc_tensor *t) {
  return fsvc_view_raw(t, t->ndim, t->shape, t->stride, t->offset);
}

fsvc_tensor *fsvc_clone_raw(const fsvc_tensor *t) {
  fsvc_tensor *c = fsvc_empty_on(t->ndim, t->shape, t->dtype, fsvc_tensor_device(t));
  if (c && fsvc_copy_(c, t) != 0) { fsvc_tensor_release(c); return NULL; }
  return c;
}

fsvc_tensor *fsvc_contiguous_raw(const fsvc_tensor *t) {
  if (fsvc_is_contiguous(t)) return fsvc_detach(t);
  return fsvc_clone_raw(t);
}

fsvc_tensor *fsvc_to_dtype_raw(const fsvc_tensor *t, fsvc_dtype dt) {
  fsvc_tensor *c = fsvc_empty_on(t->ndim, t->shape, dt, fsvc_tensor_device(t));
  if (c && fsvc_copy_(c, t) != 0) { fsvc_tensor_release(c); return NULL; }
  return c;
}

int fsvc_has_nonfinite(const fsvc_tensor *t) {
  if (!fsvc_dtype_is_float(t->dtype)) return 0;
  if (fsvc_tensor_is_cuda(t)) { /* checked on a host copy (a device reduction would be faster) */
    fsvc_tensor *h = fsvc_to_device_raw(t, fsvc_cpu());
    int r = h ? fsvc_has_nonfinite(h) : 1;
    fsvc_tensor_release(h);
    return r;
  }
  int64_t n = fsvc_numel(t);
  if (fsvc_is_contiguous(t) && t->dtype == FSVC_FLOAT32) {
    const float *p = fsvc_data(t);
    for (int64_t i = 0; i < n; i++)
      if (!isfinite(p[i])) return 1;
    return 0;
  }
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(fsvc_get_flat(t, i))) return 1;
  return 0;
}
