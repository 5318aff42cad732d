/* Private helpers shared by the reduction files (reduce.c, reduce_minmax.c, topk.c, softmax.c,
 * cumsum.c). Not part of the public API.
 *
 * Every reduction is brought to one layout: a contiguous buffer viewed as [outer, R, inner],
 * where R is the product of the reduced sizes. When the reduced dims form one consecutive block
 * (the usual case: the last dim, a middle dim such as dim 1 of [B, C, T], dims {1, 2}, all dims)
 * this is the input itself, with no copy when it is already contiguous. Otherwise the kept dims
 * are permuted to the front and copied, giving [outer, R, 1]. In both cases the output elements
 * are in [outer, inner] row-major order, which is the order of the kept dims. */
#ifndef FSVC_REDUCE_INTERNAL_H
#define FSVC_REDUCE_INTERNAL_H

#include <stdint.h>

#include "fsvc/autograd.h"
#include "fsvc/error.h"
#include "fsvc/tensor.h"

/* Work (elements touched) above which kernels spread over OpenMP threads. */
#define FSVC_REDUCE_PAR_THRESHOLD 32768
/* Width of the column blocks used when reducing a non-last dim: the accumulators of one block
 * stay in L1 while R rows stream past. */
#define FSVC_REDUCE_BLOCK 256

typedef struct {
  fsvc_tensor *x;     /* contiguous [outer, R, inner] (owned reference) */
  int64_t outer, R, inner;
  unsigned mask;      /* bit d set when input dim d is reduced */
  int out_ndim;       /* output shape honouring keepdim */
  int64_t out_shape[FSVC_MAX_DIMS];
} fsvc_reduce_plan;

/* NULL, freed tensors and dtypes the CPU kernels do not compute (float16/bfloat16; int64 unless
 * allow_int). Returns 0 or -1 with an error naming op. */
int fsvc_reduce_check_input(const fsvc_tensor *a, const char *op, int allow_int);

/* fsvc_normalize_dim, also accepting -1 for a 0-d tensor (PyTorch does: x:sum(-1) of a scalar). */
int fsvc_reduce_norm_dim(int dim, int ndim, const char *op);

/* Normalises dims (n_dims = 0: all), rejects duplicates, and builds the plan. */
int fsvc_reduce_plan_init(fsvc_reduce_plan *p, const fsvc_tensor *a, int n_dims, const int *dims,
                          int keepdim, const char *op);
/* Plan for one dim (no copy unless a is not contiguous). */
int fsvc_reduce_plan_dim(fsvc_reduce_plan *p, const fsvc_tensor *a, int dim, int keepdim,
                         const char *op);
/* Plan from a mask of already-normalised dims (backward functions). */
int fsvc_reduce_plan_mask(fsvc_reduce_plan *p, const fsvc_tensor *a, unsigned mask, int keepdim);
void fsvc_reduce_plan_free(fsvc_reduce_plan *p);

/* g (shape of a reduction's output, with or without keepdim) broadcast back to the input's shape
 * (in_ndim/in_shape, reduced dims in mask), as a new contiguous tensor of dtype dt. */
fsvc_tensor *fsvc_reduce_expand(const fsvc_tensor *g, int in_ndim, const int64_t *in_shape,
                                unsigned mask, fsvc_dtype dt);

/* The [outer, R, inner] layout of dim d of a contiguous tensor of that shape (R = 1 for 0-d). */
void fsvc_reduce_dim_layout(int ndim, const int64_t *shape, int d, int64_t *outer, int64_t *R,
                            int64_t *inner);

/* Backward of ops that pick k entries along dim (max/min over a dim: k = 1; topk): the gradient
 * for input edge e, zeros except that each value of g ([outer, k, inner] in the dim layout) is
 * added at its entry of indices (int64, g's shape). Accumulates in double. New reference or NULL. */
fsvc_tensor *fsvc_reduce_picked_grad(const fsvc_edge *e, int dim, int64_t k, const fsvc_tensor *g,
                                     const fsvc_tensor *indices);

/* Contiguous copy in dtype dt (retains when already so). */
fsvc_tensor *fsvc_reduce_contig_as(const fsvc_tensor *t, fsvc_dtype dt);

/* New tensor of the plan's output shape and dtype dt filled from res[outer*inner]. */
fsvc_tensor *fsvc_reduce_output_from_double(const fsvc_reduce_plan *p, const double *res,
                                            fsvc_dtype dt);

#endif
