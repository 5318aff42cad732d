/* Broadcasting (NumPy/PyTorch rules) and a strided iterator over up to four operands.
 *
 * An elementwise kernel is written as a "row function" that processes n elements of one innermost
 * row, given a pointer and an element stride per operand. The iterator aligns every operand to the
 * output shape (stride 0 on broadcast dims), drops size-1 dims and merges dims that are laid out
 * contiguously for every operand, so that the common cases (all contiguous; tensor op scalar;
 * [B, C, T] op [1, C, 1]) become long rows with strides 1 or 0 and the row function's fast paths
 * vectorise. Work is split into blocks run in parallel with OpenMP when large enough.
 *
 * Operand 0 is conventionally the output. Internal to core/ops (not part of the public API).
 */
#ifndef FSVC_OPS_BROADCAST_H
#define FSVC_OPS_BROADCAST_H

#include <stdint.h>

#include "fsvc/tensor.h"

#define FSVC_BCAST_MAX_OPS 4

/* Elements below which a kernel runs on one thread (thread start-up costs more than the work). */
#define FSVC_BCAST_PARALLEL_MIN 32768

typedef struct {
  int ndim; /* after coalescing, >= 1 */
  int nops;
  int64_t numel;
  int64_t shape[FSVC_MAX_DIMS];
  int64_t stride[FSVC_BCAST_MAX_OPS][FSVC_MAX_DIMS]; /* in elements */
  char *data[FSVC_BCAST_MAX_OPS];                     /* element 0 of each view */
  int64_t elsize[FSVC_BCAST_MAX_OPS];
} fsvc_bcast_iter;

/* Processes n elements: operand k starts at ptr[k] and advances stride[k] elements per step. */
typedef void (*fsvc_bcast_row_fn)(char **ptr, const int64_t *stride, int64_t n, void *ctx);

/* Broadcast shape of n tensors (NULL entries are skipped). Returns 0, or -1 with an error
 * "op: shapes [..] and [..] cannot be broadcast together". */
int fsvc_broadcast_shape(int n, const fsvc_tensor *const *ts, int *ndim, int64_t *shape,
                         const char *op);

/* Sets up iteration of nops tensors over `shape`; each tensor must be broadcastable to it
 * (same rank or lower, dims equal or 1). Returns 0 or -1 with an error naming op. */
int fsvc_bcast_iter_init(fsvc_bcast_iter *it, int nops, const fsvc_tensor *const *ts, int ndim,
                         const int64_t *shape, const char *op);

/* Calls fn over every row; in parallel blocks when numel >= parallel_min (pass
 * FSVC_BCAST_PARALLEL_MIN, or a smaller value for costly per-element work). */
void fsvc_bcast_run(const fsvc_bcast_iter *it, fsvc_bcast_row_fn fn, void *ctx,
                    int64_t parallel_min);

/* 1 when some element of t is reachable through two index tuples (a dim of size > 1 with stride
 * 0, as from expand): such a tensor must not be written in place. */
int fsvc_has_internal_overlap(const fsvc_tensor *t);

#endif
