/* Devices: where a tensor's bytes live, and the table through which the core reaches a device
 * backend (gpu/, built with -DFSVC_CUDA=ON|AUTO when the CUDA toolkit is found).
 *
 * A tensor is on the device of its storage (t->storage->device). fsvc_data() stays a raw pointer:
 * for a CUDA tensor it is a device pointer, which host code must never dereference. So:
 *  - every public op of core/ops starts with FSVC_DISPATCH_CUDA(op, args...): when an argument is
 *    a CUDA tensor it calls the backend's implementation of that op, or fails with
 *    "op: tensor on cuda:0 but this build has no CUDA backend (rebuild with -DFSVC_CUDA=ON)";
 *  - shape/view ops (view, reshape, permute, narrow, expand, ...) only change geometry and are
 *    device-generic; the raw helpers of tensor.h (clone_raw, copy_, fill_, to_dtype_raw, the
 *    *_like constructors) keep the device of their input; fsvc_get_flat/fsvc_set_flat refuse
 *    device tensors (error set, NaN returned): copy to the host first (fsvc_to_device_raw).
 *  - autograd is unchanged: a backend op records a node with the CPU op's name; its backward
 *    calls public ops, which dispatch again (see gpu/README in docs/cuda.md).
 */
#ifndef FSVC_DEVICE_H
#define FSVC_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "fsvc/ops_extra.h"
#include "fsvc/ops_nn.h"
#include "fsvc/ops_shape.h"
#include "fsvc/random.h"
#include "fsvc/tensor.h"

/* ---- queries (valid in every build; false/0 without the backend or without a GPU) ---------- */
int fsvc_cuda_built(void);        /* 1 when this binary contains the CUDA backend */
int fsvc_cuda_available(void);    /* built and at least one usable device */
/* 1 while this thread's current CUDA stream is being captured into a graph: code that would wait
 * for the device (value checks read back on the host) skips it then */
int fsvc_cuda_is_capturing(void);
int fsvc_cuda_device_count(void); /* 0 when unavailable */
/* "NVIDIA H100 80GB HBM3", or NULL with an error when i is out of range / no device. */
const char *fsvc_cuda_device_name(int i);
/* Why CUDA is unavailable ("this build has no CUDA backend", "no CUDA device: ..."), or "". */
const char *fsvc_cuda_unavailable_reason(void);

fsvc_device fsvc_tensor_device(const fsvc_tensor *t); /* CPU for NULL/freed tensors */
int fsvc_tensor_is_cuda(const fsvc_tensor *t);
int fsvc_device_equal(fsvc_device a, fsvc_device b);
/* "cpu", "cuda:0" into buf; returns buf */
const char *fsvc_device_str(fsvc_device d, char *buf, size_t n);
/* parses "cpu", "cuda", "cuda:N" (0 or -1 with an error) */
int fsvc_device_parse(const char *s, fsvc_device *out);

/* ---- device-aware creation (no autograd) --------------------------------------------------- */
fsvc_tensor *fsvc_empty_on(int ndim, const int64_t *shape, fsvc_dtype dt, fsvc_device d);
fsvc_tensor *fsvc_zeros_on(int ndim, const int64_t *shape, fsvc_dtype dt, fsvc_device d);
fsvc_tensor *fsvc_full_on(int ndim, const int64_t *shape, double value, fsvc_dtype dt,
                          fsvc_device d);
/* Contiguous copy of t on device d (always copies). */
fsvc_tensor *fsvc_to_device_raw(const fsvc_tensor *t, fsvc_device d);
/* Differentiable copy to device d ("to_device" node: the gradient goes back to t's device).
 * Returns a retained t when it already is on d. */
fsvc_tensor *fsvc_to_device(const fsvc_tensor *t, fsvc_device d);
/* Waits for all queued device work (no-op on the CPU). */
int fsvc_device_synchronize(void);

/* ---- the backend table ---------------------------------------------------------------------- */
/* One entry per public op that has a device implementation, with the op's own signature; a NULL
 * entry means "not implemented on this device" (the dispatch then fails with a clear error). */
typedef fsvc_tensor *(*fsvc_binary_fn)(const fsvc_tensor *, const fsvc_tensor *);
typedef fsvc_tensor *(*fsvc_unary_fn)(const fsvc_tensor *);
typedef fsvc_tensor *(*fsvc_reduce_fn)(const fsvc_tensor *, int, const int *, int);
typedef fsvc_tensor *(*fsvc_var_fn)(const fsvc_tensor *, int, const int *, int, int);
typedef fsvc_tensor *(*fsvc_extremum_dim_fn)(const fsvc_tensor *, int, int, fsvc_tensor **);
typedef fsvc_tensor *(*fsvc_arg_dim_fn)(const fsvc_tensor *, int, int);
typedef fsvc_tensor *(*fsvc_dim_fn)(const fsvc_tensor *, int);

typedef struct fsvc_cuda_op_table {
  /* elementwise */
  fsvc_binary_fn add, sub, mul, div, pow, maximum, minimum, eq, ne, lt, le, gt, ge;
  fsvc_unary_fn neg, abs, exp, log, sqrt, sin, cos, tanh, sigmoid, relu, gelu;
  fsvc_tensor *(*leaky_relu)(const fsvc_tensor *, double);
  fsvc_tensor *(*clamp)(const fsvc_tensor *, double, double);
  fsvc_tensor *(*where)(const fsvc_tensor *, const fsvc_tensor *, const fsvc_tensor *);
  fsvc_tensor *(*masked_fill)(const fsvc_tensor *, const fsvc_tensor *, double);
  int (*add_)(fsvc_tensor *, const fsvc_tensor *, double);
  int (*mul_scalar_)(fsvc_tensor *, double);
  /* reductions */
  fsvc_reduce_fn sum, mean;
  fsvc_var_fn var, std;
  fsvc_tensor *(*norm)(const fsvc_tensor *, double, int, const int *, int);
  fsvc_tensor *(*logsumexp)(const fsvc_tensor *, int, int);
  fsvc_extremum_dim_fn max_dim, min_dim;
  fsvc_unary_fn max_all, min_all, argmax_all, argmin_all;
  fsvc_arg_dim_fn argmax, argmin;
  fsvc_tensor *(*topk)(const fsvc_tensor *, int64_t, int, int, int, fsvc_tensor **);
  fsvc_dim_fn softmax, log_softmax, cumsum;
  /* shape and indexing */
  fsvc_tensor *(*pad)(const fsvc_tensor *, int, const int64_t *, fsvc_pad_mode, double);
  fsvc_tensor *(*index_select)(const fsvc_tensor *, int, const fsvc_tensor *);
  fsvc_tensor *(*gather)(const fsvc_tensor *, int, const fsvc_tensor *);
  fsvc_tensor *(*scatter_add)(const fsvc_tensor *, int, const fsvc_tensor *, const fsvc_tensor *);
  /* nn */
  fsvc_binary_fn matmul, bmm;
  fsvc_tensor *(*linear)(const fsvc_tensor *, const fsvc_tensor *, const fsvc_tensor *);
  fsvc_tensor *(*conv1d)(const fsvc_tensor *, const fsvc_tensor *, const fsvc_tensor *,
                         const fsvc_conv1d_params *);
  fsvc_tensor *(*conv_transpose1d)(const fsvc_tensor *, const fsvc_tensor *, const fsvc_tensor *,
                                   const fsvc_conv1d_params *, int64_t);
  fsvc_tensor *(*avg_pool1d)(const fsvc_tensor *, int64_t, int64_t, int64_t);
  fsvc_tensor *(*max_pool1d)(const fsvc_tensor *, int64_t, int64_t, int64_t);
  fsvc_tensor *(*interpolate)(const fsvc_tensor *, int64_t, double, fsvc_interp_mode, int);
  /* signal processing (core/dsp builds the STFT family from these and the ops above) */
  fsvc_unary_fn rfft;
  /* optimisers and random fills (in place) */
  int (*adam_step_)(fsvc_tensor *, const fsvc_tensor *, fsvc_tensor *, fsvc_tensor *,
                    fsvc_tensor *, const fsvc_adam_params *);
  int (*sgd_step_)(fsvc_tensor *, const fsvc_tensor *, fsvc_tensor *, const fsvc_sgd_params *);
  int (*amp_unscale_)(int, fsvc_tensor *const *, double, int *);
  int (*uniform_)(fsvc_tensor *, double, double, fsvc_generator *);
  int (*normal_)(fsvc_tensor *, double, double, fsvc_generator *);
} fsvc_cuda_op_table;

/* What the core needs from a device backend besides the ops. */
typedef struct fsvc_device_backend {
  int (*device_count)(void);
  const char *(*device_name)(int index);
  const char *(*unavailable_reason)(void);
  /* device memory: alloc returns NULL with an error set; release has the storage's signature */
  void *(*alloc)(int device, size_t nbytes);
  void (*release)(void *owner, void *data, size_t nbytes);
  /* raw byte copies between host and device (kinds inferred from the device types) */
  int (*memcpy)(void *dst, fsvc_device dst_dev, const void *src, fsvc_device src_dev,
                size_t nbytes);
  /* dst = src for equal shapes on the same device, any strides, any dtypes (casts) */
  int (*copy_strided)(fsvc_tensor *dst, const fsvc_tensor *src);
  int (*fill)(fsvc_tensor *t, double value);
  int (*synchronize)(void);
  /* 1 while the calling thread's current stream is being captured into a CUDA graph (may be NULL) */
  int (*is_capturing)(void);
  const fsvc_cuda_op_table *ops;
} fsvc_device_backend;

/* The CUDA backend, or NULL when this build has none (without raising an error). */
const fsvc_device_backend *fsvc_cuda_backend(void);
/* Tests only: replaces the CUDA backend (a host-memory mock checks the core's device paths on
 * machines without a GPU); NULL restores the built-in one. */
void fsvc_cuda_set_backend_for_testing(const fsvc_device_backend *b);
/* The op table, or NULL (used by the dispatch macro). */
const fsvc_cuda_op_table *fsvc_cuda_ops(void);
/* Sets "op: tensor on cuda:0 but ..." (no backend) or "op: not implemented on CUDA yet". */
void fsvc_cuda_dispatch_error(const char *op, int have_backend);

/* ---- the dispatch macros, for the first line of each public op ------------------------------ */
/* 1 when x is a tensor (fsvc_tensor * or const fsvc_tensor *) that lives on a CUDA device; 0 for
 * arguments of any other type (dims, options, output pointers). */
int fsvc_dispatch_arg_is_cuda_(const void *pointer_to_tensor_pointer);
#define FSVC_ARG_IS_CUDA_(x)                                                                      \
  _Generic((x), fsvc_tensor *: fsvc_dispatch_arg_is_cuda_((const void *)&(x)),                    \
           const fsvc_tensor *: fsvc_dispatch_arg_is_cuda_((const void *)&(x)), default: 0)
#define FSVC_ANY_CUDA_1_(a) FSVC_ARG_IS_CUDA_(a)
#define FSVC_ANY_CUDA_2_(a, ...) (FSVC_ARG_IS_CUDA_(a) || FSVC_ANY_CUDA_1_(__VA_ARGS__))
#define FSVC_ANY_CUDA_3_(a, ...) (FSVC_ARG_IS_CUDA_(a) || FSVC_ANY_CUDA_2_(__VA_ARGS__))
#define FSVC_ANY_CUDA_4_(a, ...) (FSVC_ARG_IS_CUDA_(a) || FSVC_ANY_CUDA_3_(__VA_ARGS__))
#define FSVC_ANY_CUDA_5_(a, ...) (FSVC_ARG_IS_CUDA_(a) || FSVC_ANY_CUDA_4_(__VA_ARGS__))
#define FSVC_ANY_CUDA_6_(a, ...) (FSVC_ARG_IS_CUDA_(a) || FSVC_ANY_CUDA_5_(__VA_ARGS__))
#define FSVC_ANY_CUDA_7_(a, ...) (FSVC_ARG_IS_CUDA_(a) || FSVC_ANY_CUDA_6_(__VA_ARGS__))
#define FSVC_ANY_CUDA_8_(a, ...) (FSVC_ARG_IS_CUDA_(a) || FSVC_ANY_CUDA_7_(__VA_ARGS__))
#define FSVC_NARGS_(...) FSVC_NARGS_I_(__VA_ARGS__, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define FSVC_NARGS_I_(_1, _2, _3, _4, _5, _6, _7, _8, N, ...) N
#define FSVC_CAT_(a, b) FSVC_CAT_I_(a, b)
#define FSVC_CAT_I_(a, b) a##b
/* 1 when any of the (up to 8) arguments is a CUDA tensor */
#define FSVC_ANY_CUDA(...) FSVC_CAT_(FSVC_ANY_CUDA_, FSVC_CAT_(FSVC_NARGS_(__VA_ARGS__), _))(__VA_ARGS__)

/* Any tensor of a list (cat, stack) on a CUDA device. */
int fsvc_any_cuda_list(int n, fsvc_tensor *const *ts);

/* When `cond` holds, returns the backend's op(args...) or fails (returning `fail`). */
#define FSVC_DISPATCH_CUDA_IF_(cond, fail, op, ...)                                                \
  do {                                                                                             \
    if (cond) {                                                                                    \
      const fsvc_cuda_op_table *fsvc_tbl_ = fsvc_cuda_ops();                                       \
      if (!fsvc_tbl_ || !fsvc_tbl_->op) {                                                          \
        fsvc_cuda_dispatch_error(#op, fsvc_tbl_ != NULL);                                          \
        return fail;                                                                               \
      }                                                                                            \
      return (fsvc_tbl_->op)(__VA_ARGS__); /* parenthesised: <tgmath.h> defines exp(), pow() */ \
    }                                                                                              \
  } while (0)
/* For ops returning a tensor (NULL on failure) ... */
#define FSVC_DISPATCH_CUDA(op, ...) FSVC_DISPATCH_CUDA_IF_(FSVC_ANY_CUDA(__VA_ARGS__), NULL, op, __VA_ARGS__)
/* ... and for ops returning 0 / -1. */
#define FSVC_DISPATCH_CUDA_INT(op, ...) FSVC_DISPATCH_CUDA_IF_(FSVC_ANY_CUDA(__VA_ARGS__), -1, op, __VA_ARGS__)
/* For list ops: cat(n, tensors, dim) and stack(n, tensors, dim). */
#define FSVC_DISPATCH_CUDA_LIST(op, n, ts, ...)                                                    \
  FSVC_DISPATCH_CUDA_IF_(fsvc_any_cuda_list(n, ts), NULL, op, n, ts, __VA_ARGS__)

/* For public functions without a device implementation (DSP, audio, checkpoints): fails with
 * "op: CUDA tensors are not supported yet (move them with :cpu())" when an argument is a CUDA
 * tensor, so host code never dereferences a device pointer. */
void fsvc_cuda_refuse_error(const char *op);
#define FSVC_REFUSE_CUDA(op, ...)                                                                  \
  do {                                                                                             \
    if (FSVC_ANY_CUDA(__VA_ARGS__)) {                                                              \
      fsvc_cuda_refuse_error(#op);                                                                 \
      return NULL;                                                                                 \
    }                                                                                              \
  } while (0)
#define FSVC_REFUSE_CUDA_INT(op, ...)                                                              \
  do {                                                                                             \
    if (FSVC_ANY_CUDA(__VA_ARGS__)) {                                                              \
      fsvc_cuda_refuse_error(#op);                                                                 \
      return -1;                                                                                   \
    }                                                                                              \
  } while (0)

#endif
