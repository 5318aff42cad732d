/* Resizing the last dim of [B, C, T] (or any [..., T]) as torch.nn.functional.interpolate (1.13):
 *  - linear, align_corners false: src = r*(i+0.5) - 0.5 clamped at 0, with r = 1/scale_factor when
 *    a scale factor was given, else T/out;
 *  - linear, align_corners true: src = i*(T-1)/(out-1) (scale factor ignored; 0 when out == 1);
 *  - nearest: src = min(floor(i*r), T-1), r as above.
 * The coordinates are computed in the tensor's own precision (float for float32), as PyTorch's
 * CPU kernels do, so that ties like floor(i * 1/3) round the same way. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fsvc/autocast.h"
#include "fsvc/device.h"
#include "fsvc/ops_nn.h"
#include "nn_internal.h"

#define DEFINE_INTERP(T, SUF, FLOOR)                                                              \
  /* For each output index: two source indices and their weights (nearest: w1 = 0). */           \
  static void coords_##SUF(int64_t in, int64_t out, double scale, fsvc_interp_mode mode,         \
                           int align, int64_t *i0, int64_t *i1, T *w1) {                         \
    if (mode == FSVC_INTERP_NEAREST) {                                                           \
      T r = scale > 0 ? (T)(1.0 / scale) : (T)in / (T)out;                                       \
      for (int64_t i = 0; i < out; i++) {                                                        \
        int64_t s = (int64_t)FLOOR((T)i * r);                                                    \
        if (out == in) s = i;                                                                    \
        i0[i] = i1[i] = s < in - 1 ? s : in - 1;                                                 \
        w1[i] = 0;                                                                               \
      }                                                                                          \
      return;                                                                                    \
    }                                                                                            \
    T r;                                                                                         \
    if (align) r = out > 1 ? (T)(in - 1) / (T)(out - 1) : (T)0;                                  \
    else r = scale > 0 ? (T)(1.0 / scale) : (T)in / (T)out;                                      \
    for (int64_t i = 0; i < out; i++) {                                                          \
      T src = align ? r * (T)i : r * ((T)i + (T)0.5) - (T)0.5;                                   \
      if (!align && src < 0) src = 0;                                                            \
      int64_t a = (int64_t)src;                                                                  \
      if (a > in - 1) a = in - 1;                                                                \
      i0[i] = a;                                                                                 \
      i1[i] = a + (a < in - 1 ? 1 : 0);                                                          \
      w1[i] = src - (T)a;                                                                        \
    }                                                                                            \
  }                                                                                              \
  static void fwd_##SUF(int64_t rows, int64_t in, int64_t out, const int64_t *i0,                \
                        const int64_t *i1, const T *w1, const T *x, T *y) {                      \
    _Pragma("omp parallel for if (rows * out > 65536)")                                          \
    for (int64_t r = 0; r < rows; r++) {                                                         \
      const T *xr = x + r * in;                                                                  \
      T *yr = y + r * out;                                                                       \
      for (int64_t i = 0; i < out; i++) yr[i] = ((T)1 - w1[i]) * xr[i0[i]] + w1[i] * xr[i1[i]];  \
    }                                                                                            \
  }                                                                                              \
  static void bwd_##SUF(int64_t rows, int64_t in, int64_t out, const int64_t *i0,                \
                        const int64_t *i1, const T *w1, const T *gy, T *gx) {                    \
    _Pragma("omp parallel for if (rows * out > 65536)")                                          \
    for (int64_t r = 0; r < rows; r++) {                                                         \
      T *gr = gx + r * in;                                                                       \
      const T *g = gy + r * out;                                                                 \
      for (int64_t i = 0; i < in; i++) gr[i] = 0;                                                \
      for (int64_t i = 0; i < out; i++) {                                                        \
        gr[i0[i]] += ((T)1 - w1[i]) * g[i];                                                      \
        gr[i1[i]] += w1[i] * g[i];                                                               \
      }                                                                                          \
    }                                                                                            \
  }
DEFINE_INTERP(float, f32, floorf)
DEFINE_INTERP(double, f64, floor)

/* Runs forward (backward = 0) or backward on contiguous buffers; src is x or grad. */
static int interp_run(fsvc_dtype dt, int64_t rows, int64_t in, int64_t out, double scale,
                      fsvc_interp_mode mode, int align, const void *src, void *dst, int backward) {
  int64_t *idx = malloc(sizeof(int64_t) * 2 * (size_t)out + 1);
  void *w = malloc(fsvc_dtype_size(dt) * (size_t)out + 1);
  if (!idx || !w) {
    free(idx);
    free(w);
    fsvc_set_error("interpolate: out of memory");
    return -1;
  }
  if (dt == FSVC_FLOAT32) {
    coords_f32(in, out, scale, mode, align, idx, idx + out, w);
    if (backward) bwd_f32(rows, in, out, idx, idx + out, w, src, dst);
    else fwd_f32(rows, in, out, idx, idx + out, w, src, dst);
  } else {
    coords_f64(in, out, scale, mode, align, idx, idx + out, w);
    if (backward) bwd_f64(rows, in, out, idx, idx + out, w, src, dst);
    else fwd_f64(rows, in, out, idx, idx + out, w, src, dst);
  }
  free(idx);
  free(w);
  return 0;
}

static int interpolate_backward(fsvc_node *node, const fsvc_tensor *grad, fsvc_tensor **grad_in) {
  fsvc_edge *e = &node->edges[0];
  int64_t in = e->shape[e->ndim - 1], out = grad->shape[grad->ndim - 1];
  fsvc_tensor *gc = fsvc_contiguous_raw(grad);
  fsvc_tensor *gx = gc ? fsvc_empty(e->ndim, e->shape, e->dtype) : NULL;
  if (!gx || interp_run(e->dtype, fsvc_numel(gx) / in, in, out, node->farg[0],
                        (fsvc_interp_mode)node->iarg[0], (int)node->iarg[1], fsvc_data(gc),
                        fsvc_data(gx), 1)) {
    fsvc_tensor_release(gc);
    fsvc_tensor_release(gx);
    return -1;
  }
  fsvc_tensor_release(gc);
  grad_in[0] = gx;
  return 0;
}

/* interpolate's checks, the same on every device (made before the dispatch) */
static int check_interpolate(const fsvc_tensor *x, int64_t out_size, double scale, fsvc_interp_mode mode) {
  char sx[128];
  if (nn_check_float(x, "interpolate", "input")) return -1;
  if (x->ndim < 1 || fsvc_numel(x) == 0) {
    fsvc_set_error("interpolate: expected a non-empty [B, C, T] input, got %s",
                   fsvc_shape_str(x, sx, 128));
    return -1;
  }
  if (mode != FSVC_INTERP_NEAREST && mode != FSVC_INTERP_LINEAR) {
    fsvc_set_error("interpolate: unknown mode %d", (int)mode);
    return -1;
  }
  if (out_size < 1 || out_size > NN_MAX_PARAM || isnan(scale) || isinf(scale)) {
    fsvc_set_error("interpolate: output size must be in 1..2^31 and the scale finite (size %lld, input "
                   "%s)", (long long)out_size, fsvc_shape_str(x, sx, 128));
    return -1;
  }
  return 0;
}

fsvc_tensor *fsvc_interpolate(const fsvc_tensor *x, int64_t out_size, double scale,
                              fsvc_interp_mode mode, int align_corners) {
  if (check_interpolate(x, out_size, scale, mode) != 0) return NULL;
  FSVC_DISPATCH_CUDA(interpolate, x, out_size, scale, mode, align_corners);
  FSVC_CPU_LOWP("interpolate", FSVC_RECAST_SAME_DTYPE,
                fsvc_interpolate(FSVC_RECAST_ARG(0), out_size, scale, mode, align_corners), x);
  if (mode == FSVC_INTERP_NEAREST) align_corners = 0;
  int64_t in = x->shape[x->ndim - 1];
  int64_t shape[FSVC_MAX_DIMS];
  memcpy(shape, x->shape, sizeof shape);
  shape[x->ndim - 1] = out_size;
  fsvc_tensor *xc = fsvc_contiguous_raw(x);
  fsvc_tensor *out = xc ? fsvc_empty(x->ndim, shape, x->dtype) : NULL;
  if (!out || interp_run(x->dtype, fsvc_numel(x) / in, in, out_size, scale, mode, align_corners,
                         fsvc_data(xc), fsvc_data(out), 0)) {
    fsvc_tensor_release(xc);
    fsvc_tensor_release(out);
    return NULL;
  }
  fsvc_tensor_release(xc);
  fsvc_node *n = fsvc_node_new("interpolate", 1, (fsvc_tensor *[]){(fsvc_tensor *)x},
                               interpolate_backward);
  if (n) {
    n->iarg[0] = mode;
    n->iarg[1] = align_corners;
    n->farg[0] = scale;
    fsvc_node_attach(n, out);
  }
  return out;
}

__attribute__((constructor)) static void register_ops(void) {
  fsvc_register_differentiable("interpolate");
}
