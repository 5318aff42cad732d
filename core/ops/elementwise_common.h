/* Helpers shared by the elementwise op files (binary, unary, where): argument checks, the result
 * dtype of a binary op, casts, gradient reduction and a `where` without autograd.
 * Internal to core/ops. */
#ifndef FSVC_OPS_ELEMENTWISE_COMMON_H
#define FSVC_OPS_ELEMENTWISE_COMMON_H

#include "fsvc/autocast.h"
#include "fsvc/autograd.h"
#include "fsvc/tensor.h"

/* Asks the compiler to vectorise a loop whatever its cost model says (-O2 in GCC 12 only
 * vectorises loops whose trip count is a known multiple of the vector width). */
#define FSVC_SIMD _Pragma("omp simd")

/* Scalar parameters handed to row kernels through ctx (clamp bounds, slopes, alpha), in both
 * forms so that int64 kernels need no float-to-int conversion per element. */
typedef struct {
  double d[2];
  int64_t i[2];
} fsvc_ew_params;

/* 0, or -1 with "op: argument NAME ..." when t is NULL, freed, or on another device ... */
int fsvc_ew_check_live(const char *op, const fsvc_tensor *t, const char *name);
/* ... or of a dtype the CPU kernels do not take (float16/bfloat16: the public ops send those
 * through FSVC_CPU_LOWP first, so this is a guard). */
int fsvc_ew_check(const char *op, const fsvc_tensor *t, const char *name);

/* dtype of a binary op's result, PyTorch's rule: a 0-d tensor takes part in promotion only when
 * it is of a higher category (float vs int) than the other, dimensioned operand. So
 * float32[N] op float64-scalar -> float32, int64[N] op float32-scalar -> float32. */
fsvc_dtype fsvc_ew_result_dtype(const fsvc_tensor *a, const fsvc_tensor *b);

/* Checks of an in-place op's destination: live (any dtype: the caller handles float16/bfloat16),
 * not taking part in autograd (grad mode on and requires grad), no two elements sharing memory.
 * 0 or -1 with an error. */
int fsvc_ew_check_inplace(const char *op, const fsvc_tensor *dst);

/* An alias of t (no copy) when it already has dtype dt, else a contiguous cast copy. */
fsvc_tensor *fsvc_ew_cast(const fsvc_tensor *t, fsvc_dtype dt);

/* Gradient g (new reference, consumed; NULL passes through) summed to the edge's shape, undoing
 * broadcasting. Returns g itself when it already has that shape. */
fsvc_tensor *fsvc_ew_reduce_grad(fsvc_tensor *g, const fsvc_edge *e);

/* where(cond, a, b) with broadcasting over all three and no autograd; `op` names errors. */
fsvc_tensor *fsvc_ew_where_raw(const fsvc_tensor *cond, const fsvc_tensor *a,
                               const fsvc_tensor *b, const char *op);

#endif
