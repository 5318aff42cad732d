// nn kernels: im2col / col2im for the 1-D convolutions' im2col + cuBLAS path (gpu/conv_im2col.c;
// the other path is cuDNN, chosen per shape by gpu/conv_select.c), 1-D pooling forward/backward,
// and linear/nearest interpolation forward/backward along T.
#include <math.h>

#include "gpu_common.cuh"

using namespace fsvc_gpu;

namespace {
// cols [B, C*K, Tout]: cols[b, c*K + k, t] = x[b, c, t*stride - padding + k*dilation] (0 outside);
// batch_inner: cols [C*K, B, Tout] instead (the weight gradient's one-GEMM layout, conv_im2col.c).
// Every float dtype: float16/bfloat16 through load/store (autocast's convolutions).
template <typename T>
__global__ void im2col_kernel(const T *x, T *cols, int64_t B, int64_t C, int64_t Tin, int64_t K,
                              int64_t Tout, int64_t stride, int64_t padding, int64_t dilation, int batch_inner) {
  typedef typename Acc<T>::type A;
  FSVC_GRID_LOOP(i, B * C * K * Tout) {
    int64_t t = i % Tout, ck = (i / Tout) % (C * K), b = i / (Tout * C * K);
    int64_t c = ck / K, k = ck % K;
    int64_t s = t * stride - padding + k * dilation;
    int64_t o = batch_inner ? (ck * B + b) * Tout + t : i;
    store(cols + o, (s >= 0 && s < Tin) ? load(x + (b * C + c) * Tin + s) : (A)0);
  }
}

// x[b, c, s] = sum over (k, t) with t*stride - padding + k*dilation == s of cols[b, c*K+k, t]:
// one thread per input element gathers its taps (no atomics, deterministic), summed in double;
// x is overwritten (every element is written, so it need not be zeroed).
template <typename T>
__global__ void col2im_kernel(T *x, const T *cols, int64_t B, int64_t C, int64_t Tin, int64_t K,
                              int64_t Tout, int64_t stride, int64_t padding, int64_t dilation) {
  typedef typename Acc<T>::type A;
  FSVC_GRID_LOOP(i, B * C * Tin) {
    int64_t s = i % Tin, c = (i / Tin) % C, b = i / (Tin * C);
    double acc = 0;
    for (int64_t k = 0; k < K; k++) {
      int64_t num = s + padding - k * dilation;
      if (num < 0 || num % stride) continue;
      int64_t t = num / stride;
      if (t >= Tout) continue;
      acc += (double)load(cols + ((b * C + c) * K + k) * Tout + t);
    }
    store(x + i, (A)acc);
  }
}

template <typename T>
__global__ void pool_kernel(int kind, T *y, int64_t *idx, const T *x, int64_t rows, int64_t Tin,
                            int64_t Tout, int64_t kernel, int64_t stride, int64_t padding) {
  FSVC_GRID_LOOP(i, rows * Tout) {
    int64_t t = i % Tout, r = i / Tout;
    int64_t start = t * stride - padding;
    const T *xr = x + r * Tin;
    if (kind == 0) {  // average, padding counted (count_include_pad)
      double s = 0;
      for (int64_t k = 0; k < kernel; k++) {
        int64_t j = start + k;
        if (j >= 0 && j < Tin) s += (double)xr[j];
      }
      y[i] = (T)(s / (double)kernel);
    } else {
      double best = -INFINITY;
      int64_t bi = start < 0 ? 0 : start;
      for (int64_t k = 0; k < kernel; k++) {
        int64_t j = start + k;
        if (j < 0 || j >= Tin) continue;
        double v = (double)xr[j];
        if (v > best || v != v) { best = v; bi = j; if (v != v) break; }
      }
      y[i] = (T)best;
      idx[i] = bi;
    }
  }
}

// gradient of pooling, gathered per input element (deterministic)
template <typename T>
__global__ void pool_backward_kernel(int kind, T *gx, const int64_t *idx, const T *gy, int64_t rows,
                                     int64_t Tin, int64_t Tout, int64_t kernel, int64_t stride,
                                     int64_t padding) {
  FSVC_GRID_LOOP(i, rows * Tin) {
    int64_t s = i % Tin, r = i / Tin;
    // windows t with t*stride - padding <= s <= t*stride - padding + kernel - 1
    int64_t tmax = (s + padding) / stride;
    int64_t lo = s + padding - kernel + 1;
    int64_t tmin = lo <= 0 ? 0 : (lo + stride - 1) / stride;
    double acc = 0;
    for (int64_t t = tmin; t <= tmax && t < Tout; t++) {
      int64_t o = r * Tout + t;
      if (kind == 0) acc += (double)gy[o] / (double)kernel;
      else if (idx[o] == s) acc += (double)gy[o];
    }
    gx[i] = (T)acc;
  }
}

// Source coordinates as core/ops/interpolate.c computes them, in T's precision.
template <typename T>
__device__ void interp_coords(int64_t i, int64_t in, int64_t out, double scale, int linear,
                              int align, int64_t *i0, int64_t *i1, T *w1) {
  if (!linear) {
    T r = scale > 0 ? (T)(1.0 / scale) : (T)in / (T)out;
    int64_t s = (int64_t)floor((double)((T)i * r));
    if (out == in) s = i;
    *i0 = *i1 = s < in - 1 ? s : in - 1;
    *w1 = 0;
    return;
  }
  T r;
  if (align) r = out > 1 ? (T)(in - 1) / (T)(out - 1) : (T)0;
  else r = scale > 0 ? (T)(1.0 / scale) : (T)in / (T)out;
  T src = align ? r * (T)i : r * ((T)i + (T)0.5) - (T)0.5;
  if (!align && src < 0) src = 0;
  int64_t a = (int64_t)src;
  if (a > in - 1) a = in - 1;
  *i0 = a;
  *i1 = a + (a < in - 1 ? 1 : 0);
  *w1 = src - (T)a;
}

template <typename T>
__global__ void interp_kernel(T *y, const T *x, int64_t rows, int64_t in, int64_t out, double scale,
                              int linear, int align) {
  FSVC_GRID_LOOP(i, rows * out) {
    int64_t o = i % out, r = i / out, a, b;
    T w;
    interp_coords<T>(o, in, out, scale, linear, align, &a, &b, &w);
    y[i] = ((T)1 - w) * x[r * in + a] + w * x[r * in + b];
  }
}

template <typename T>
__global__ void interp_backward_kernel(T *gx, const T *gy, int64_t rows, int64_t in, int64_t out,
                                       double scale, int linear, int align) {
  FSVC_GRID_LOOP(i, rows * out) {
    int64_t o = i % out, r = i / out, a, b;
    T w;
    interp_coords<T>(o, in, out, scale, linear, align, &a, &b, &w);
    T g = gy[i];
    atomicAdd(gx + r * in + a, ((T)1 - w) * g);
    if (w != (T)0) atomicAdd(gx + r * in + b, w * g);
  }
}
}  // namespace

extern "C" int fsvc_gpu_im2col_launch(fsvc_dtype dt, const void *x, void *cols, int64_t b, int64_t c,
                                      int64_t t, int64_t k, int64_t tout, int64_t stride,
                                      int64_t padding, int64_t dilation, int mode) {
  int col2im = mode == FSVC_COL2IM;
  if (col2im) {
    int64_t n = b * c * t;
    if (n == 0) return 0;
    FSVC_DISPATCH_FLOATING(dt, FSVC_LAUNCH(col2im_kernel, blocks_for(n), kThreads, 0, stream())(
                                (T *)x, (const T *)cols, b, c, t, k, tout, stride, padding, dilation));
  } else {
    int64_t n = b * c * k * tout;
    if (n == 0) return 0;
    FSVC_DISPATCH_FLOATING(dt, FSVC_LAUNCH(im2col_kernel, blocks_for(n), kThreads, 0, stream())(
                                (const T *)x, (T *)cols, b, c, t, k, tout, stride, padding, dilation,
                                mode == FSVC_IM2COL_BATCH_INNER));
  }
  return fsvc_gpu_check_launch(col2im ? "col2im" : "im2col");
}

extern "C" int fsvc_gpu_pool1d_launch(int kind, fsvc_dtype dt, void *y, int64_t *idx, const void *x,
                                      int64_t rows, int64_t t, int64_t tout, int64_t kernel,
                                      int64_t stride, int64_t padding) {
  if (rows * tout == 0) return 0;
  FSVC_DISPATCH_FLOAT(dt, FSVC_LAUNCH(pool_kernel, blocks_for(rows * tout), kThreads, 0, stream())(
                              kind, (T *)y, idx, (const T *)x, rows, t, tout, kernel, stride, padding));
  return fsvc_gpu_check_launch("pool1d");
}

extern "C" int fsvc_gpu_pool1d_backward_launch(int kind, fsvc_dtype dt, void *gx, const int64_t *idx,
                                               const void *gy, int64_t rows, int64_t t, int64_t tout,
                                               int64_t kernel, int64_t stride, int64_t padding) {
  if (rows * t == 0) return 0;
  FSVC_DISPATCH_FLOAT(dt, FSVC_LAUNCH(pool_backward_kernel, blocks_for(rows * t), kThreads, 0, stream())(
                              kind, (T *)gx, idx, (const T *)gy, rows, t, tout, kernel, stride, padding));
  return fsvc_gpu_check_launch("pool1d backward");
}

extern "C" int fsvc_gpu_interpolate_launch(fsvc_dtype dt, void *y, const void *x, int64_t rows,
                                           int64_t t, int64_t tout, double scale, int linear,
                                           int align_corners, int backward) {
  if (rows * tout == 0) return 0;
  if (backward) {  // y is gx [rows, t] (zeroed), x is gy [rows, tout]
    FSVC_DISPATCH_FLOAT(dt, FSVC_LAUNCH(interp_backward_kernel, blocks_for(rows * tout), kThreads, 0, stream())(
                                (T *)y, (const T *)x, rows, t, tout, scale, linear, align_corners));
  } else {
    FSVC_DISPATCH_FLOAT(dt, FSVC_LAUNCH(interp_kernel, blocks_for(rows * tout), kThreads, 0, stream())(
                                (T *)y, (const T *)x, rows, t, tout, scale, linear, align_corners));
  }
  return fsvc_gpu_check_launch("interpolate");
}
