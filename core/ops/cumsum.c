/* cumsum along one dim. The running sum is kept in double for float32 (the decoder's phase is a
 * cumsum over tens of thousands of samples: a float accumulator would drift) and in int64 for
 * int64. Backward is the reversed cumulative sum of the gradient. */
#include <stdlib.h>

#include "fsvc/autocast.h"
#include "fsvc/device.h"
#include "fsvc/ops_reduce.h"
#include "reduce_internal.h"

#define BLK FSVC_REDUCE_BLOCK

/* y[o, r, i] = sum_{r' <= r} x[o, r', i]   (or sum_{r' >= r} when reverse) */
#define DEFINE_CUMSUM(NAME, T, ACC)                                                                \
  static void NAME(const T *x, T *y, int64_t outer, int64_t R, int64_t inner, int reverse) {       \
    int64_t nblk = (inner + BLK - 1) / BLK;                                                        \
    int64_t work = outer * R * inner;                                                              \
    _Pragma("omp parallel for schedule(static) if(work > FSVC_REDUCE_PAR_THRESHOLD)")              \
    for (int64_t t = 0; t < outer * nblk; t++) {                                                   \
      int64_t o = t / nblk, i0 = (t % nblk) * BLK;                                                 \
      int64_t w = inner - i0 < BLK ? inner - i0 : BLK;                                             \
      ACC acc[BLK];                                                                                \
      for (int64_t j = 0; j < w; j++) acc[j] = 0;                                                  \
      for (int64_t s = 0; s < R; s++) {                                                            \
        int64_t r = reverse ? R - 1 - s : s;                                                       \
        int64_t q = (o * R + r) * inner + i0;                                                      \
        _Pragma("omp simd")                                                                        \
        for (int64_t j = 0; j < w; j++) {                                                          \
          acc[j] += x[q + j];                                                                      \
          y[q + j] = (T)acc[j];                                                                    \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
  }

DEFINE_CUMSUM(cumsum_f32, float, double)
DEFINE_CUMSUM(cumsum_f64, double, double)
DEFINE_CUMSUM(cumsum_i64, int64_t, int64_t)

static void cumsum_kernel(const fsvc_tensor *x, fsvc_tensor *y, int64_t outer, int64_t R,
                          int64_t inner, int reverse) {
  switch (x->dtype) {
    case FSVC_FLOAT32: cumsum_f32(fsvc_data(x), fsvc_data(y), outer, R, inner, reverse); break;
    case FSVC_FLOAT64: cumsum_f64(fsvc_data(x), fsvc_data(y), outer, R, inner, reverse); break;
    default: cumsum_i64(fsvc_data(x), fsvc_data(y), outer, R, inner, reverse); break;
  }
}

/* iarg[0] = dim */
static int cumsum_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gi) {
  if (!n->edges[0].needs_grad) return 0;
  const fsvc_edge *e = &n->edges[0];
  int64_t outer, R, inner;
  fsvc_reduce_dim_layout(e->ndim, e->shape, (int)n->iarg[0], &outer, &R, &inner);
  fsvc_tensor *gc = fsvc_reduce_contig_as(g, e->dtype);
  fsvc_tensor *gx = gc ? fsvc_empty(e->ndim, e->shape, e->dtype) : NULL;
  if (gx) cumsum_kernel(gc, gx, outer, R, inner, 1);
  fsvc_tensor_release(gc);
  gi[0] = gx;
  return gx ? 0 : -1;
}

fsvc_tensor *fsvc_cumsum(const fsvc_tensor *a, int dim) {
  FSVC_DISPATCH_CUDA(cumsum, a, dim);
  FSVC_CPU_LOWP("cumsum", FSVC_RECAST_SAME_DTYPE,
                fsvc_cumsum(FSVC_RECAST_ARG(0), dim), a);
  if (fsvc_reduce_check_input(a, "cumsum", 1) != 0) return NULL;
  int d = fsvc_reduce_norm_dim(dim, a->ndim, "cumsum");
  if (d < 0) return NULL;
  int64_t outer, R, inner;
  fsvc_reduce_dim_layout(a->ndim, a->shape, d, &outer, &R, &inner);
  fsvc_tensor *x = fsvc_contiguous_raw(a);
  fsvc_tensor *y = x ? fsvc_empty(a->ndim, a->shape, a->dtype) : NULL;
  if (y) cumsum_kernel(x, y, outer, R, inner, 0);
  fsvc_tensor_release(x);
  if (!y) return NULL;
  fsvc_tensor *in[1] = {(fsvc_tensor *)a};
  fsvc_node *n = fsvc_node_new("cumsum", 1, in, cumsum_backward);
  if (n) n->iarg[0] = a->ndim ? d : 0;
  fsvc_node_attach(n, y);
  return y;
}

__attribute__((constructor)) static void register_cumsum_ops(void) {
  fsvc_register_differentiable("cumsum");
}
