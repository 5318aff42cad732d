/* Shape, view and indexing ops. Views share storage with their input; all are differentiable
 * (index tensors are int64 and 0-based). */
#ifndef FSVC_OPS_SHAPE_H
#define FSVC_OPS_SHAPE_H
#include "fsvc/tensor.h"

/* one size may be -1 (inferred). view fails when the strides do not allow it; reshape copies. */
fsvc_tensor *fsvc_view(const fsvc_tensor *a, int ndim, const int64_t *shape);
fsvc_tensor *fsvc_reshape(const fsvc_tensor *a, int ndim, const int64_t *shape);
fsvc_tensor *fsvc_permute(const fsvc_tensor *a, const int *perm); /* perm has a->ndim entries */
fsvc_tensor *fsvc_transpose(const fsvc_tensor *a, int dim0, int dim1);
fsvc_tensor *fsvc_narrow(const fsvc_tensor *a, int dim, int64_t start, int64_t length);
/* Python-style slice: start/end may be negative, are clamped; step >= 1 */
fsvc_tensor *fsvc_slice(const fsvc_tensor *a, int dim, int64_t start, int64_t end, int64_t step);
fsvc_tensor *fsvc_select(const fsvc_tensor *a, int dim, int64_t index); /* removes dim */
/* sizes of -1 keep the input's size; new leading dims allowed */
fsvc_tensor *fsvc_expand(const fsvc_tensor *a, int ndim, const int64_t *shape);
fsvc_tensor *fsvc_squeeze(const fsvc_tensor *a, int dim);
fsvc_tensor *fsvc_squeeze_all(const fsvc_tensor *a);
fsvc_tensor *fsvc_unsqueeze(const fsvc_tensor *a, int dim);
fsvc_tensor *fsvc_contiguous(const fsvc_tensor *a); /* differentiable; retains if contiguous */
fsvc_tensor *fsvc_clone(const fsvc_tensor *a);      /* differentiable copy */
fsvc_tensor *fsvc_to_dtype(const fsvc_tensor *a, fsvc_dtype dt); /* differentiable for floats */

fsvc_tensor *fsvc_cat(int n, fsvc_tensor *const *tensors, int dim);
fsvc_tensor *fsvc_stack(int n, fsvc_tensor *const *tensors, int dim);
/* Splits into pieces of split_size (the last may be smaller); *out is malloc'd, caller frees the
 * array and releases each tensor. chunk splits into `chunks` pieces as PyTorch does. */
int fsvc_split(const fsvc_tensor *a, int64_t split_size, int dim, fsvc_tensor ***out, int *n_out);
int fsvc_chunk(const fsvc_tensor *a, int chunks, int dim, fsvc_tensor ***out, int *n_out);
fsvc_tensor *fsvc_flip(const fsvc_tensor *a, int n_dims, const int *dims);

typedef enum { FSVC_PAD_CONSTANT, FSVC_PAD_REFLECT, FSVC_PAD_REPLICATE } fsvc_pad_mode;
/* pads as torch.nn.functional.pad: (left, right) of the last dim first, then of the dim before;
 * n_pads is even and at most 2*ndim. Negative pads crop (constant mode). */
fsvc_tensor *fsvc_pad(const fsvc_tensor *a, int n_pads, const int64_t *pads, fsvc_pad_mode mode,
                      double value);

fsvc_tensor *fsvc_index_select(const fsvc_tensor *a, int dim, const fsvc_tensor *index);
fsvc_tensor *fsvc_gather(const fsvc_tensor *a, int dim, const fsvc_tensor *index);
/* out = a, then out[index[i][j]][j] += src[i][j] along dim (differentiable in a and src) */
fsvc_tensor *fsvc_scatter_add(const fsvc_tensor *a, int dim, const fsvc_tensor *index,
                              const fsvc_tensor *src);
#endif
