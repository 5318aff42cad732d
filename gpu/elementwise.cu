// Elementwise kernels: strided copies with casts, fills, binary ops with broadcasting (up to 8
// dims through index arithmetic on each operand's geometry), unary ops with their backward
// kernels, where, and the in-place axpy. Float16/bfloat16 compute in float.
#include <math.h>

#include "gpu_common.cuh"

using namespace fsvc_gpu;

// ---- copies and fills --------------------------------------------------------------------------
template <typename TD, typename TS>
__global__ void copy_kernel(TD *dst, Geom dg, const TS *src, Geom sg, int64_t n) {
  FSVC_GRID_LOOP(i, n) {
    store(dst + offset_of(dg, i), load(src + offset_of(sg, i)));
  }
}
template <typename TD, typename TS>
__global__ void copy_contig_kernel(TD *dst, const TS *src, int64_t n) {
  FSVC_GRID_LOOP(i, n) { store(dst + i, load(src + i)); }
}

static bool contiguous(const Geom &g) {
  int64_t s = 1;
  for (int d = g.ndim - 1; d >= 0; d--) {
    if (g.shape[d] != 1 && g.stride[d] != s) return false;
    s *= g.shape[d];
  }
  return true;
}
static int64_t numel(const Geom &g) {
  int64_t n = 1;
  for (int d = 0; d < g.ndim; d++) n *= g.shape[d];
  return n;
}

template <typename TD>
static void copy_from(TD *dst, const Geom &dg, const void *src, fsvc_dtype sdt, const Geom &sg,
                      int64_t n, bool contig) {
  FSVC_DISPATCH_ALL(sdt, {
    if (contig) FSVC_LAUNCH(copy_contig_kernel, blocks_for(n), kThreads, 0, stream())(dst, (const T *)src, n);
    else FSVC_LAUNCH(copy_kernel, blocks_for(n), kThreads, 0, stream())(dst, dg, (const T *)src, sg, n);
  });
}

extern "C" int fsvc_gpu_copy_launch(void *dst, fsvc_dtype ddt, const fsvc_gpu_geom *dgp,
                                    const void *src, fsvc_dtype sdt, const fsvc_gpu_geom *sgp) {
  Geom dg = to_geom(dgp), sg = to_geom(sgp);
  int64_t n = numel(dg);
  if (n == 0) return 0;
  bool contig = contiguous(dg) && contiguous(sg);
  if (contig && ddt == sdt) {
    return fsvc_gpu_check(cudaMemcpyAsync(dst, src, (size_t)n * fsvc_dtype_size(ddt),
                                          cudaMemcpyDeviceToDevice, stream()), "copy");
  }
  FSVC_DISPATCH_ALL(ddt, copy_from((T *)dst, dg, src, sdt, sg, n, contig));
  return fsvc_gpu_check_launch("copy");
}

template <typename T>
__global__ void fill_kernel(T *dst, Geom g, double v, int64_t n) {
  FSVC_GRID_LOOP(i, n) { store(dst + offset_of(g, i), (typename Acc<T>::type)v); }
}

extern "C" int fsvc_gpu_fill_launch(void *dst, fsvc_dtype dt, const fsvc_gpu_geom *gp, double v) {
  Geom g = to_geom(gp);
  int64_t n = numel(g);
  if (n == 0) return 0;
  FSVC_DISPATCH_ALL(dt, FSVC_LAUNCH(fill_kernel, blocks_for(n), kThreads, 0, stream())((T *)dst, g, v, n));
  return fsvc_gpu_check_launch("fill_");
}

// ---- binary ------------------------------------------------------------------------------------
template <typename A>
__device__ __forceinline__ A binary_op(int op, A x, A y, A g) {
  switch (op) {
    case FSVC_GPU_ADD: return x + y;
    case FSVC_GPU_SUB: return x - y;
    case FSVC_GPU_MUL: return x * y;
    case FSVC_GPU_DIV: return x / y;
    case FSVC_GPU_POW: return (A)pow((double)x, (double)y);
    case FSVC_GPU_MAXIMUM: return (x != x || x > y) ? x : y;  // NaN propagates, as PyTorch
    case FSVC_GPU_MINIMUM: return (x != x || x < y) ? x : y;
    case FSVC_GPU_EQ: return (A)(x == y);
    case FSVC_GPU_NE: return (A)(x != y);
    case FSVC_GPU_LT: return (A)(x < y);
    case FSVC_GPU_LE: return (A)(x <= y);
    case FSVC_GPU_GT: return (A)(x > y);
    case FSVC_GPU_GE: return (A)(x >= y);
    case FSVC_GPU_DIV_GRAD_B: return -g * x / (y * y);
    case FSVC_GPU_POW_GRAD_A: return y == (A)0 ? (A)0 : (A)(g * y * (A)pow((double)x, (double)(y - (A)1)));
    case FSVC_GPU_POW_GRAD_B:
      return (x == (A)0 && y >= (A)0) ? (A)0 : (A)(g * (A)pow((double)x, (double)y) * (A)log((double)x));
    case FSVC_GPU_MAXIMUM_GRAD_A: return x == y ? g / (A)2 : (x < y ? (A)0 : g);
    case FSVC_GPU_MAXIMUM_GRAD_B: return x == y ? g / (A)2 : (x > y ? (A)0 : g);
    case FSVC_GPU_MINIMUM_GRAD_A: return x == y ? g / (A)2 : (x > y ? (A)0 : g);
    case FSVC_GPU_MINIMUM_GRAD_B: return x == y ? g / (A)2 : (x < y ? (A)0 : g);
    default: return (A)0;
  }
}

// int64 arithmetic wraps (through unsigned) as the CPU does; pow/div never reach int64 here.
template <>
__device__ __forceinline__ long long binary_op<long long>(int op, long long x, long long y, long long g) {
  typedef unsigned long long U;
  switch (op) {
    case FSVC_GPU_ADD: return (long long)((U)x + (U)y);
    case FSVC_GPU_SUB: return (long long)((U)x - (U)y);
    case FSVC_GPU_MUL: return (long long)((U)x * (U)y);
    case FSVC_GPU_MAXIMUM: return x > y ? x : y;
    case FSVC_GPU_MINIMUM: return x < y ? x : y;
    case FSVC_GPU_EQ: return x == y;
    case FSVC_GPU_NE: return x != y;
    case FSVC_GPU_LT: return x < y;
    case FSVC_GPU_LE: return x <= y;
    case FSVC_GPU_GT: return x > y;
    case FSVC_GPU_GE: return x >= y;
    default: return 0;
  }
}

template <typename T>
__global__ void binary_kernel(int op, T *out, int64_t n, const T *a, Geom ag, const T *b, Geom bg,
                              const T *g, Geom gg, bool flat) {
  typedef typename Acc<T>::type A;
  FSVC_GRID_LOOP(i, n) {
    A x, y, gv = (A)0;
    if (flat) {  // all operands contiguous with out's shape: no index arithmetic
      x = load(a + i);
      y = load(b + i);
      if (g) gv = load(g + i);
    } else {
      x = load(a + offset_of(ag, i));
      y = load(b + offset_of(bg, i));
      if (g) gv = load(g + offset_of(gg, i));
    }
    store(out + i, binary_op<A>(op, x, y, gv));
  }
}

static bool flat_like(const Geom &g, const Geom &o) {
  if (g.ndim != o.ndim) return false;
  for (int d = 0; d < g.ndim; d++)
    if (g.shape[d] != o.shape[d]) return false;
  return contiguous(g);
}

extern "C" int fsvc_gpu_binary_launch(fsvc_gpu_binary_op op, fsvc_dtype dt, void *out,
                                      const fsvc_gpu_geom *ogp, const void *a,
                                      const fsvc_gpu_geom *agp, const void *b,
                                      const fsvc_gpu_geom *bgp, const void *g,
                                      const fsvc_gpu_geom *ggp) {
  Geom og = to_geom(ogp), ag = to_geom(agp), bg = to_geom(bgp);
  Geom gg = g ? to_geom(ggp) : og;
  int64_t n = numel(og);
  if (n == 0) return 0;
  bool flat = flat_like(ag, og) && flat_like(bg, og) && (!g || flat_like(gg, og));
  FSVC_DISPATCH_ALL(dt, FSVC_LAUNCH(binary_kernel, blocks_for(n), kThreads, 0, stream())(
                            (int)op, (T *)out, n, (const T *)a, ag, (const T *)b, bg, (const T *)g,
                            gg, flat));
  return fsvc_gpu_check_launch("binary op");
}

// ---- unary -------------------------------------------------------------------------------------
template <typename A>
__device__ __forceinline__ A unary_op(int op, A x, double p0, double p1) {
  switch (op) {
    case FSVC_GPU_NEG: return -x;
    case FSVC_GPU_ABS: return x < (A)0 ? -x : x;
    case FSVC_GPU_EXP: return (A)exp((double)x);
    case FSVC_GPU_LOG: return (A)log((double)x);
    case FSVC_GPU_SQRT: return (A)sqrt((double)x);
    case FSVC_GPU_SIN: return (A)sin((double)x);
    case FSVC_GPU_COS: return (A)cos((double)x);
    case FSVC_GPU_TANH: return (A)tanh((double)x);
    case FSVC_GPU_SIGMOID: return (A)(1.0 / (1.0 + exp(-(double)x)));
    case FSVC_GPU_RELU: return x > (A)0 ? x : (A)0;
    case FSVC_GPU_GELU: return (A)(0.5 * (double)x * (1.0 + erf((double)x * 0.70710678118654752440)));
    case FSVC_GPU_LEAKY_RELU: return x > (A)0 ? x : (A)(x * (A)p0);
    case FSVC_GPU_CLAMP: {
      A lo = (A)p0, hi = (A)p1;
      if (x != x) return x;
      return x < lo ? lo : (x > hi ? hi : x);
    }
    case FSVC_GPU_MUL_SCALAR: return (A)(x * (A)p0);
    default: return (A)0;
  }
}
// float32 compute in float (double math on the GPU is slow); float64 stays double above.
template <>
__device__ __forceinline__ float unary_op<float>(int op, float x, double p0, double p1) {
  switch (op) {
    case FSVC_GPU_EXP: return expf(x);
    case FSVC_GPU_LOG: return logf(x);
    case FSVC_GPU_SQRT: return sqrtf(x);
    case FSVC_GPU_SIN: return sinf(x);
    case FSVC_GPU_COS: return cosf(x);
    case FSVC_GPU_TANH: return tanhf(x);
    case FSVC_GPU_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case FSVC_GPU_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678f));
    default: return unary_op<double>(op, (double)x, p0, p1);
  }
}
template <>
__device__ __forceinline__ long long unary_op<long long>(int op, long long x, double p0, double p1) {
  switch (op) {
    case FSVC_GPU_NEG: return (long long)(0ULL - (unsigned long long)x);
    case FSVC_GPU_ABS: return x < 0 ? (long long)(0ULL - (unsigned long long)x) : x;
    case FSVC_GPU_RELU: return x > 0 ? x : 0;
    case FSVC_GPU_CLAMP: {
      double v = (double)x;
      return (long long)(v < p0 ? p0 : (v > p1 ? p1 : v));
    }
    case FSVC_GPU_MUL_SCALAR: return (long long)((double)x * p0);
    default: return 0;
  }
}

template <typename T>
__global__ void unary_kernel(int op, T *out, const T *x, int64_t n, double p0, double p1) {
  typedef typename Acc<T>::type A;
  FSVC_GRID_LOOP(i, n) { store(out + i, unary_op<A>(op, load(x + i), p0, p1)); }
}

extern "C" int fsvc_gpu_unary_launch(fsvc_gpu_unary_op op, fsvc_dtype dt, void *out, const void *x,
                                     int64_t n, double p0, double p1) {
  if (n == 0) return 0;
  FSVC_DISPATCH_ALL(dt, FSVC_LAUNCH(unary_kernel, blocks_for(n), kThreads, 0, stream())(
                            (int)op, (T *)out, (const T *)x, n, p0, p1));
  return fsvc_gpu_check_launch("unary op");
}

// d f / d x, times g; y = f(x) is passed for the ops whose derivative is cheaper from it.
template <typename A>
__device__ __forceinline__ A unary_grad(int op, A g, A x, A y, double p0, double p1) {
  switch (op) {
    case FSVC_GPU_NEG: return -g;
    case FSVC_GPU_ABS: return x > (A)0 ? g : (x < (A)0 ? -g : (A)0);
    case FSVC_GPU_EXP: return g * y;
    case FSVC_GPU_LOG: return g / x;
    case FSVC_GPU_SQRT: return g / ((A)2 * y);
    case FSVC_GPU_SIN: return (A)(g * (A)cos((double)x));
    case FSVC_GPU_COS: return (A)(-g * (A)sin((double)x));
    case FSVC_GPU_TANH: return g * ((A)1 - y * y);
    case FSVC_GPU_SIGMOID: return g * y * ((A)1 - y);
    case FSVC_GPU_RELU: return x > (A)0 ? g : (A)0;
    case FSVC_GPU_GELU: {
      double xd = (double)x;
      double cdf = 0.5 * (1.0 + erf(xd * 0.70710678118654752440));
      double pdf = exp(-0.5 * xd * xd) * 0.39894228040143267794;
      return (A)((double)g * (cdf + xd * pdf));
    }
    case FSVC_GPU_LEAKY_RELU: return x > (A)0 ? g : (A)(g * (A)p0);
    case FSVC_GPU_CLAMP: return ((double)x >= p0 && (double)x <= p1) ? g : (A)0;
    case FSVC_GPU_MUL_SCALAR: return (A)(g * (A)p0);
    default: return (A)0;
  }
}

template <typename T>
__global__ void unary_backward_kernel(int op, T *gx, const T *g, const T *x, const T *y, int64_t n,
                                      double p0, double p1) {
  typedef typename Acc<T>::type A;
  FSVC_GRID_LOOP(i, n) {
    A xv = x ? load(x + i) : (A)0, yv = y ? load(y + i) : (A)0;
    store(gx + i, unary_grad<A>(op, load(g + i), xv, yv, p0, p1));
  }
}

extern "C" int fsvc_gpu_unary_backward_launch(fsvc_gpu_unary_op op, fsvc_dtype dt, void *gx,
                                              const void *g, const void *x, const void *y,
                                              int64_t n, double p0, double p1) {
  if (n == 0) return 0;
  FSVC_DISPATCH_FLOATING(dt, FSVC_LAUNCH(unary_backward_kernel, blocks_for(n), kThreads, 0, stream())(
                              (int)op, (T *)gx, (const T *)g, (const T *)x, (const T *)y, n, p0, p1));
  return fsvc_gpu_check_launch("unary backward");
}

// ---- where and axpy ----------------------------------------------------------------------------
template <typename T, typename C>
__global__ void where_kernel(T *out, int64_t n, const C *c, Geom cg, const T *a, Geom ag, const T *b,
                             Geom bg) {
  FSVC_GRID_LOOP(i, n) {
    bool take_a = load(c + offset_of(cg, i)) != (typename Acc<C>::type)0;
    out[i] = take_a ? a[offset_of(ag, i)] : b[offset_of(bg, i)];
  }
}

extern "C" int fsvc_gpu_where_launch(fsvc_dtype dt, void *out, const fsvc_gpu_geom *ogp,
                                     const void *cond, fsvc_dtype cdt, const fsvc_gpu_geom *cgp,
                                     const void *a, const fsvc_gpu_geom *agp, const void *b,
                                     const fsvc_gpu_geom *bgp) {
  Geom og = to_geom(ogp), cg = to_geom(cgp), ag = to_geom(agp), bg = to_geom(bgp);
  int64_t n = numel(og);
  if (n == 0) return 0;
  switch (cdt) {
    case FSVC_FLOAT32: {
      typedef float C;
      FSVC_DISPATCH_ALL(dt, FSVC_LAUNCH(where_kernel, blocks_for(n), kThreads, 0, stream())(
                                (T *)out, n, (const C *)cond, cg, (const T *)a, ag, (const T *)b, bg));
      break;
    }
    case FSVC_FLOAT64: {
      typedef double C;
      FSVC_DISPATCH_ALL(dt, FSVC_LAUNCH(where_kernel, blocks_for(n), kThreads, 0, stream())(
                                (T *)out, n, (const C *)cond, cg, (const T *)a, ag, (const T *)b, bg));
      break;
    }
    case FSVC_INT64: {
      typedef long long C;
      FSVC_DISPATCH_ALL(dt, FSVC_LAUNCH(where_kernel, blocks_for(n), kThreads, 0, stream())(
                                (T *)out, n, (const C *)cond, cg, (const T *)a, ag, (const T *)b, bg));
      break;
    }
    case FSVC_FLOAT16: {
      typedef __half C;
      FSVC_DISPATCH_ALL(dt, FSVC_LAUNCH(where_kernel, blocks_for(n), kThreads, 0, stream())(
                                (T *)out, n, (const C *)cond, cg, (const T *)a, ag, (const T *)b, bg));
      break;
    }
    case FSVC_BFLOAT16: {
      typedef __nv_bfloat16 C;
      FSVC_DISPATCH_ALL(dt, FSVC_LAUNCH(where_kernel, blocks_for(n), kThreads, 0, stream())(
                                (T *)out, n, (const C *)cond, cg, (const T *)a, ag, (const T *)b, bg));
      break;
    }
    default: fsvc_gpu_check(1, "where: condition dtype not supported on CUDA"); return -1;
  }
  return fsvc_gpu_check_launch("where");
}

template <typename T>
__global__ void axpy_kernel(T *dst, Geom dg, const T *src, Geom sg, int64_t n, double alpha) {
  typedef typename Acc<T>::type A;
  FSVC_GRID_LOOP(i, n) {
    T *d = dst + offset_of(dg, i);
    store(d, (A)(load(d) + (A)alpha * load(src + offset_of(sg, i))));
  }
}

extern "C" int fsvc_gpu_axpy_launch(fsvc_dtype dt, void *dst, const fsvc_gpu_geom *dgp,
                                    const void *src, const fsvc_gpu_geom *sgp, double alpha) {
  Geom dg = to_geom(dgp), sg = to_geom(sgp);
  int64_t n = numel(dg);
  if (n == 0) return 0;
  FSVC_DISPATCH_ALL(dt, FSVC_LAUNCH(axpy_kernel, blocks_for(n), kThreads, 0, stream())(
                            (T *)dst, dg, (const T *)src, sg, n, alpha));
  return fsvc_gpu_check_launch("add_");
}
