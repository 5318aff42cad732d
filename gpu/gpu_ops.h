/* Host-side helpers of the CUDA op implementations (gpu/ops_*.c) and the op setters that
 * backend.c calls to fill the table. Internal to gpu/. */
#ifndef FSVC_GPU_OPS_H
#define FSVC_GPU_OPS_H

#include "fsvc/autograd.h"
#include "fsvc/device.h"
#include "fsvc/error.h"
#include "fsvc/ops.h"
#include "fsvc/ops_extra.h"
#include "gpu_internal.h"

/* geometry of a view */
fsvc_gpu_geom fsvc_gpu_geom_of(const fsvc_tensor *t);
/* t's geometry broadcast (right-aligned, stride 0 on size-1/missing dims) to ndim/shape */
fsvc_gpu_geom fsvc_gpu_geom_bcast(const fsvc_tensor *t, int ndim, const int64_t *shape);
/* 0 when t is a usable CUDA tensor, else -1 with "op: argument NAME ..." */
int fsvc_gpu_check_tensor(const char *op, const fsvc_tensor *t, const char *name);
/* An operand on `dev` in dtype dt (new reference): CUDA tensors are cast if needed; a 0-d CPU
 * tensor (a Lua number) is moved, as PyTorch allows; any other CPU tensor is an error. */
fsvc_tensor *fsvc_gpu_operand(const char *op, const fsvc_tensor *t, const char *name, fsvc_dtype dt,
                              fsvc_device dev);
/* A selector (where's condition, masked_fill's mask) on `dev`, any dtype (new reference): a CPU
 * tensor of any shape is moved, for convenience (masks are often built from Lua lists). */
fsvc_tensor *fsvc_gpu_selector(const char *op, const fsvc_tensor *t, const char *name, fsvc_device dev);
/* the device of the first CUDA tensor among ts */
fsvc_device fsvc_gpu_device_of(int n, const fsvc_tensor *const *ts);
/* contiguous copy in dtype dt on t's device (retains when already so) */
fsvc_tensor *fsvc_gpu_contig_as(const fsvc_tensor *t, fsvc_dtype dt);
/* g (a reduction's output, any keepdim) broadcast back to in_shape (reduced dims in mask) */
fsvc_tensor *fsvc_gpu_expand_back(const fsvc_tensor *g, int in_ndim, const int64_t *in_shape,
                                  unsigned mask);

void fsvc_gpu_fill_elementwise(fsvc_cuda_op_table *t);
void fsvc_gpu_fill_reduce(fsvc_cuda_op_table *t);
void fsvc_gpu_fill_shape(fsvc_cuda_op_table *t);
void fsvc_gpu_fill_nn(fsvc_cuda_op_table *t);
void fsvc_gpu_fill_optim(fsvc_cuda_op_table *t);
void fsvc_gpu_fill_fft(fsvc_cuda_op_table *t);
#endif
