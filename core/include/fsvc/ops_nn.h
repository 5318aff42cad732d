/* The heavy ops: matrix products on OpenBLAS, 1-D convolutions, pooling, interpolation.
 * Layouts as PyTorch: x [B, C, T], conv weight [Cout, Cin/groups, K], transposed conv weight
 * [Cin, Cout/groups, K]. */
#ifndef FSVC_OPS_NN_H
#define FSVC_OPS_NN_H
#include "fsvc/tensor.h"

/* numpy.matmul semantics: 1-D operands, batch dims broadcast */
fsvc_tensor *fsvc_matmul(const fsvc_tensor *a, const fsvc_tensor *b);
fsvc_tensor *fsvc_bmm(const fsvc_tensor *a, const fsvc_tensor *b); /* [B,n,k] x [B,k,m] */
/* y = x w^T + b over the last dim of x; b may be NULL */
fsvc_tensor *fsvc_linear(const fsvc_tensor *x, const fsvc_tensor *w, const fsvc_tensor *b);

typedef struct {
  int64_t stride, padding, dilation, groups;
} fsvc_conv1d_params; /* zero-initialised fields mean stride 1, padding 0, dilation 1, groups 1 */

fsvc_tensor *fsvc_conv1d(const fsvc_tensor *x, const fsvc_tensor *w, const fsvc_tensor *bias,
                         const fsvc_conv1d_params *p);
fsvc_tensor *fsvc_conv_transpose1d(const fsvc_tensor *x, const fsvc_tensor *w,
                                   const fsvc_tensor *bias, const fsvc_conv1d_params *p,
                                   int64_t output_padding);
/* [B, C, T] (or [C, T]); count_include_pad as PyTorch's default (true) */
fsvc_tensor *fsvc_avg_pool1d(const fsvc_tensor *x, int64_t kernel, int64_t stride, int64_t padding);
fsvc_tensor *fsvc_max_pool1d(const fsvc_tensor *x, int64_t kernel, int64_t stride, int64_t padding);

/* Resizes the last dim of [B, C, T] to out_size. scale > 0 gives the coordinate scale as
 * F.interpolate(scale_factor=...) uses it (1/scale); scale <= 0 uses T/out_size. */
typedef enum { FSVC_INTERP_NEAREST, FSVC_INTERP_LINEAR } fsvc_interp_mode;
fsvc_tensor *fsvc_interpolate(const fsvc_tensor *x, int64_t out_size, double scale,
                              fsvc_interp_mode mode, int align_corners);
#endif
