/* Private helpers shared by the heavy ops (matmul.c, conv1d.c, conv_transpose1d.c, pool1d.c,
 * interpolate.c): argument checks, a dtype-dispatching GEMM, and the 1-D convolution kernels on
 * raw contiguous buffers (conv_transpose1d is built from the same kernels: its forward is the
 * data-gradient of a convolution). */
#ifndef FSVC_OPS_NN_INTERNAL_H
#define FSVC_OPS_NN_INTERNAL_H
#include <cblas.h>
#include <stdint.h>

#include "fsvc/autograd.h"
#include "fsvc/error.h"
#include "fsvc/tensor.h"

/* Upper bound of stride, padding, dilation, kernel and interpolation sizes: keeps every index
 * computation far from int64 overflow. */
#define NN_MAX_PARAM ((int64_t)1 << 31)

/* A usable float32/float64 tensor (not NULL, not freed); sets an error naming op and arg. */
/* t alive and of a float dtype. The ops check their arguments with it before the CUDA dispatch
 * (the same messages on both devices); 16-bit tensors reach the CPU kernels as float32. */
static inline int nn_check_float(const fsvc_tensor *t, const char *op, const char *arg) {
  if (!t) { fsvc_set_error("%s: %s is NULL", op, arg); return -1; }
  if (!t->storage) { fsvc_set_error("%s: %s: tensor was freed", op, arg); return -1; }
  if (!fsvc_dtype_is_float(t->dtype)) {
    fsvc_set_error("%s: %s must be a float tensor (float32, float64, float16 or bfloat16), got %s",
                   op, arg, fsvc_dtype_name(t->dtype));
    return -1;
  }
  return 0;
}

/* a, b and c (c may be NULL) of one dtype; the message names the first two that differ and the fix
 * (the matrix ops are the ones autocast would cast). */
static inline int nn_check_same_dtype(const char *op, const fsvc_tensor *a, const fsvc_tensor *b,
                                      const fsvc_tensor *c) {
  const fsvc_tensor *other = a->dtype != b->dtype ? b : c && c->dtype != a->dtype ? c : NULL;
  if (!other) return 0;
  fsvc_set_error("%s: dtypes differ (%s and %s); cast with :to(dtype), or run the op under "
                 "fsvc.autocast to have it cast",
                 op, fsvc_dtype_name(a->dtype), fsvc_dtype_name(other->dtype));
  return -1;
}

/* C[M,N] = alpha * op(A) op(B) + beta * C, row-major, on float32 or float64 buffers.
 * Threads: OpenBLAS runs single-threaded and large products are split over OpenMP threads here
 * (matmul.c), so that one thread pool serves every kernel: an OpenMP pool spinning next to
 * OpenBLAS's own pthreads made 2-thread runs many times slower on a loaded machine. */
void nn_gemm(fsvc_dtype dt, int transa, int transb, int64_t M, int64_t N, int64_t K, double alpha,
             const void *A, int64_t lda, const void *B, int64_t ldb, double beta, void *C,
             int64_t ldc);

/* Geometry of one 1-D convolution y = conv(x, w): x [B, Cin, Tx], w [Cout, Cin/groups, K],
 * y [B, Cout, Ty], y[t] reads x[t*stride + k*dilation - padding]. */
typedef struct {
  int64_t B, Cin, Cout, K, Tx, Ty, stride, padding, dilation, groups;
  fsvc_dtype dtype;
} nn_conv_geom;

/* All buffers contiguous, of geom.dtype. y = conv(x, w) (+ bias[Cout] if bias != NULL). */
int nn_conv1d_forward_kernel(const nn_conv_geom *g, const void *x, const void *w,
                             const void *bias, void *y);
/* gx = conv^T(gy, w): the gradient of conv w.r.t. x, written (not accumulated) into gx. */
int nn_conv1d_backward_data_kernel(const nn_conv_geom *g, const void *gy, const void *w, void *gx);
/* gw = d conv / d w contracted with gy, written into gw [Cout, Cin/groups, K]. */
int nn_conv1d_backward_weight_kernel(const nn_conv_geom *g, const void *x, const void *gy,
                                     void *gw);
int nn_conv1d_direct_wgrad_f32(int64_t B, int64_t groups, int64_t Cin_g, int64_t Tx,
                               int64_t Cout_g, int64_t Ty, int64_t K, int64_t dil, int64_t pad,
                               const float *x, const float *gy, float *gw);
int nn_conv1d_direct_wgrad_short_f32(int64_t B, int64_t groups, int64_t Cin_g, int64_t Tx,
                                     int64_t Cout_g, int64_t Ty, int64_t K, int64_t dil,
                                     int64_t pad, const float *x, const float *gy, float *gw);
/* Per-thread scratch buffers kept between calls (conv1d.c); slots must not be shared by two live
 * buffers. nn_scratch_done frees only buffers too large to keep. */
enum { NN_SCRATCH_WEIGHT = 0, NN_SCRATCH_COL = 1, NN_SCRATCH_DIRECT = 2 };
void *nn_scratch(int slot, size_t bytes);
void nn_scratch_done(int slot, void *p);

/* The AVX-512 direct float32 kernel for stride 1 (conv1d_direct.c); see there. */
int nn_conv1d_direct_available(void);
int nn_conv1d_direct_f32(int64_t B, int64_t groups, int64_t Cin_g, int64_t Tx, int64_t Cout_g,
                         int64_t Ty, int64_t K, int64_t dil, int64_t pad, const float *x,
                         const float *w, int flip_transpose, const float *bias, float *y);
/* gb[c] = sum over batch and time of gy[b, c, t] (gy [B, C, T]), written into gb. */
void nn_sum_bias_grad(fsvc_dtype dt, int64_t B, int64_t C, int64_t T, const void *gy, void *gb);
#endif
