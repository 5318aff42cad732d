/* Mixed precision: autocast (a thread-local state that makes the matrix ops compute in float16 or
 * bfloat16) and the casts the ops make around their kernels.
 *
 * Autocast. While it is on, the autocast-eligible ops (fsvc_matmul, fsvc_bmm, fsvc_linear,
 * fsvc_conv1d, fsvc_conv_transpose1d) cast their float32 (and other 16-bit) tensor arguments to
 * the autocast dtype with the differentiable cast (fsvc_to_dtype) before anything else, so the
 * result is in the low dtype and the gradients reach float32 master weights as float32. float64
 * arguments are left alone, as PyTorch does. Every other op runs in the dtype it gets. The state
 * is per thread; fsvc_backward turns it off while it runs (backward ops follow the forward's
 * dtypes, not the state at backward time).
 *
 * The weight-cast cache (PyTorch's autocast cache). Inside a region (fsvc_autocast_enter ..
 * fsvc_autocast_exit, what fsvc.autocast opens), the cast of a float32 leaf that requires grad (a
 * parameter: requires_grad, no grad_fn) to a given dtype is made once and kept until the
 * outermost region exits; a weight used by several ops of one forward is converted once. Every
 * use still gets its own differentiable "to" node (sharing the cached 16-bit data), so gradients
 * reach the float32 weight as float32 and add up in float32, exactly as without the cache, and a
 * first use under no_grad does not leave later uses without gradients. Non-leaf tensors
 * (activations, weight_norm's computed weights) and other dtypes are cast at every use. The
 * cache holds a reference to each cached weight until it is cleared. Writing into a cached weight
 * in place inside the region is not seen (PyTorch's caveat): fsvc.optim's step() clears the
 * cache, anything else should call fsvc_autocast_clear_cache afterwards.
 *
 * float16/bfloat16 on the CPU. The CPU has no 16-bit kernels: an op given a float16/bfloat16
 * CPU tensor casts it to float32 (differentiably), runs its float32 kernel (float32 accumulation,
 * as the GPU's 16-bit GEMMs do) and rounds the result to the 16-bit dtype. Its backward is the
 * same chain, so the input's gradient comes back in its own dtype. The graph of such an op reads
 * to -> op -> to where a device op records one node.
 */
#ifndef FSVC_AUTOCAST_H
#define FSVC_AUTOCAST_H

#include "fsvc/tensor.h"

typedef struct {
  int enabled;
  fsvc_dtype dtype;  /* FSVC_FLOAT16 or FSVC_BFLOAT16 */
  int cache_enabled; /* use the weight-cast cache (inside a region; on by default) */
} fsvc_autocast_state;

/* The calling thread's state (off, float16 until set). */
int fsvc_autocast_enabled(void);
fsvc_dtype fsvc_autocast_dtype(void);
fsvc_autocast_state fsvc_autocast_get(void);
/* Sets the state; returns 0, or -1 with an error when dtype is not float16/bfloat16 (the state
 * is then unchanged). `prev` (may be NULL) receives the state before the call. */
int fsvc_set_autocast(int enabled, fsvc_dtype dtype, fsvc_autocast_state *prev);
/* Puts back a state returned by fsvc_autocast_get / fsvc_set_autocast (never fails). */
void fsvc_autocast_restore(fsvc_autocast_state s);

/* A region: sets the state as fsvc_set_autocast does (and cache_enabled) and counts one more
 * level; returns 0, or -1 with an error (nothing changed). Every successful enter must be paired
 * with one fsvc_autocast_exit(prev), innermost first: it restores prev and, when the outermost
 * region ends, clears the weight-cast cache. */
int fsvc_autocast_enter(int enabled, fsvc_dtype dtype, int cache_enabled,
                        fsvc_autocast_state *prev);
void fsvc_autocast_exit(fsvc_autocast_state prev);
/* Drops every cached cast now (a weight was changed in place inside a region). */
void fsvc_autocast_clear_cache(void);

/* Counters of this thread, for tests and profiling: casts made by autocast (each a conversion
 * kernel), casts served from the cache, entries now cached, and the open regions. */
typedef struct {
  int64_t casts;
  int64_t cache_hits;
  int cached;
  int depth;
} fsvc_autocast_stats;
fsvc_autocast_stats fsvc_autocast_get_stats(void);
void fsvc_autocast_reset_stats(void); /* zeroes casts and cache_hits */

/* ---- the casts around an op (for core/ops and device backends) ------------------------------ */
typedef enum {
  FSVC_RECAST_AUTOCAST, /* float32/16-bit tensors -> the autocast dtype, when autocast is on */
  FSVC_RECAST_CPU_LOWP, /* float16/bfloat16 CPU tensors -> float32; autocast is off inside */
  FSVC_RECAST_LOWP      /* the same on every device (device kernels without 16-bit versions) */
} fsvc_recast_mode;

/* A result dtype meaning "the one float dtype of the arguments": the op fails with
 * "op: dtypes differ (...)" when its float arguments disagree (int64 arguments are ignored). */
#define FSVC_RECAST_SAME_DTYPE FSVC_NUM_DTYPES

/* Fills cast[i] for the n arguments (new references; NULL stays NULL, and tensors the mode does
 * not touch, freed ones included, are retained as they are) and returns 1
 * when the mode applies to at least one of them, 0 when the op should run as it is (cast[] is
 * then untouched), -1 with an error. *saved keeps the autocast state to restore in _end. */
int fsvc_recast_begin_(fsvc_recast_mode mode, const char *op, int n, const fsvc_tensor *const *in,
                       fsvc_tensor **cast, fsvc_dtype *result_dtype, fsvc_autocast_state *saved);
/* Releases cast[], restores the state, and returns `result` (consumed) cast to result_dtype when
 * it is a float tensor of another float dtype. NULL passes through. */
fsvc_tensor *fsvc_recast_end_(int n, fsvc_tensor **cast, fsvc_tensor *result,
                              fsvc_dtype result_dtype, const fsvc_autocast_state *saved);

/* The i-th cast argument inside the `call` of the macros below. */
#define FSVC_RECAST_ARG(i) (fsvc_recast_args_[i])

/* When `mode` applies to the listed tensor arguments: returns `call` evaluated on the cast
 * arguments (FSVC_RECAST_ARG(i) is the i-th of the list), its result cast to `result_dtype`.
 * Otherwise falls through. For ops returning a tensor (NULL on failure). */
#define FSVC_RECAST_(mode, op, result_dtype, call, ...)                                            \
  do {                                                                                             \
    const fsvc_tensor *const fsvc_recast_in_[] = {__VA_ARGS__};                                    \
    enum { fsvc_recast_n_ = (int)(sizeof fsvc_recast_in_ / sizeof fsvc_recast_in_[0]) };          \
    fsvc_tensor *fsvc_recast_args_[fsvc_recast_n_];                                                \
    fsvc_dtype fsvc_recast_dt_ = (result_dtype);                                                   \
    fsvc_autocast_state fsvc_recast_saved_;                                                        \
    int fsvc_recast_rc_ = fsvc_recast_begin_(mode, op, fsvc_recast_n_, fsvc_recast_in_,            \
                                             fsvc_recast_args_, &fsvc_recast_dt_,                  \
                                             &fsvc_recast_saved_);                                 \
    if (fsvc_recast_rc_ < 0) return NULL;                                                          \
    if (fsvc_recast_rc_ > 0)                                                                       \
      return fsvc_recast_end_(fsvc_recast_n_, fsvc_recast_args_, (call), fsvc_recast_dt_,          \
                              &fsvc_recast_saved_);                                                \
  } while (0)

/* First line of an autocast-eligible op, before FSVC_DISPATCH_CUDA, so that the CPU and the
 * device paths both get the cast arguments:
 *     FSVC_AUTOCAST("linear", fsvc_linear(FSVC_RECAST_ARG(0), FSVC_RECAST_ARG(1),
 *                                         FSVC_RECAST_ARG(2)), x, w, b);
 * The inner call finds nothing left to cast and runs normally. */
#define FSVC_AUTOCAST(op, call, ...)                                                               \
  FSVC_RECAST_(FSVC_RECAST_AUTOCAST, op, FSVC_RECAST_SAME_DTYPE, call, __VA_ARGS__)

/* After FSVC_DISPATCH_CUDA in a CPU op: float16/bfloat16 arguments run through the float32
 * kernels (see the top of this file); the result is cast to result_dtype
 * (FSVC_RECAST_SAME_DTYPE: the arguments' common dtype). */
#define FSVC_CPU_LOWP(op, result_dtype, call, ...)                                                 \
  FSVC_RECAST_(FSVC_RECAST_CPU_LOWP, op, result_dtype, call, __VA_ARGS__)

/* The same for a device op whose kernels have no 16-bit version (pooling, interpolation on CUDA):
 * 16-bit arguments on any device go through its float32 path. */
#define FSVC_VIA_FLOAT32(op, result_dtype, call, ...)                                              \
  FSVC_RECAST_(FSVC_RECAST_LOWP, op, result_dtype, call, __VA_ARGS__)

/* 1 for FSVC_FLOAT16 and FSVC_BFLOAT16 */
static inline int fsvc_dtype_is_16bit(fsvc_dtype dt) {
  return dt == FSVC_FLOAT16 || dt == FSVC_BFLOAT16;
}

#endif
