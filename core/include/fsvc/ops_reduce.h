/* Reductions over dims. `dims` lists n_dims dims (negative allowed); n_dims = 0 means all dims.
 * keepdim keeps reduced dims with size 1. Float results accumulate in double for float32. */
#ifndef FSVC_OPS_REDUCE_H
#define FSVC_OPS_REDUCE_H
#include "fsvc/tensor.h"

fsvc_tensor *fsvc_sum(const fsvc_tensor *a, int n_dims, const int *dims, int keepdim);
fsvc_tensor *fsvc_mean(const fsvc_tensor *a, int n_dims, const int *dims, int keepdim);
/* unbiased: divide by N-1 (Bessel) instead of N */
fsvc_tensor *fsvc_var(const fsvc_tensor *a, int n_dims, const int *dims, int unbiased, int keepdim);
fsvc_tensor *fsvc_std(const fsvc_tensor *a, int n_dims, const int *dims, int unbiased, int keepdim);
/* p-norm (p = 2 by default in the binding; p = INFINITY for max-abs) */
fsvc_tensor *fsvc_norm(const fsvc_tensor *a, double p, int n_dims, const int *dims, int keepdim);
fsvc_tensor *fsvc_logsumexp(const fsvc_tensor *a, int dim, int keepdim);

/* max/min over one dim: values (differentiable; gradient to the first extremum) and, if
 * indices != NULL, the int64 indices. *_all reduce every element to a 0-d tensor. */
fsvc_tensor *fsvc_max_dim(const fsvc_tensor *a, int dim, int keepdim, fsvc_tensor **indices);
fsvc_tensor *fsvc_min_dim(const fsvc_tensor *a, int dim, int keepdim, fsvc_tensor **indices);
fsvc_tensor *fsvc_max_all(const fsvc_tensor *a);
fsvc_tensor *fsvc_min_all(const fsvc_tensor *a);
fsvc_tensor *fsvc_argmax(const fsvc_tensor *a, int dim, int keepdim);
fsvc_tensor *fsvc_argmin(const fsvc_tensor *a, int dim, int keepdim);
/* index (0-d int64) of the first extremum in row-major order of every element */
fsvc_tensor *fsvc_argmax_all(const fsvc_tensor *a);
fsvc_tensor *fsvc_argmin_all(const fsvc_tensor *a);
/* k largest (or smallest) along dim; values differentiable, indices int64 */
fsvc_tensor *fsvc_topk(const fsvc_tensor *a, int64_t k, int dim, int largest, int sorted,
                       fsvc_tensor **indices);

fsvc_tensor *fsvc_softmax(const fsvc_tensor *a, int dim);
fsvc_tensor *fsvc_log_softmax(const fsvc_tensor *a, int dim);
fsvc_tensor *fsvc_cumsum(const fsvc_tensor *a, int dim);
#endif
