// Device-side helpers shared by the kernels: dtype dispatch, strided offsets, launch shapes.
#ifndef FSVC_GPU_COMMON_CUH
#define FSVC_GPU_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "gpu_internal.h"

extern "C" {
#include "fsvc/error.h"
}

namespace fsvc_gpu {

// Geometry passed by value to kernels (fits the 4 KB parameter space many times over).
struct Geom {
  int ndim;
  int64_t shape[FSVC_MAX_DIMS];
  int64_t stride[FSVC_MAX_DIMS];
};

inline Geom to_geom(const fsvc_gpu_geom *g) {
  Geom r;
  r.ndim = g->ndim;
  for (int d = 0; d < FSVC_MAX_DIMS; d++) {
    r.shape[d] = d < g->ndim ? g->shape[d] : 1;
    r.stride[d] = d < g->ndim ? g->stride[d] : 0;
  }
  return r;
}

// Element offset of row-major position i in a strided view: index arithmetic, no tables.
__device__ __forceinline__ int64_t offset_of(const Geom &g, int64_t i) {
  int64_t off = 0;
  for (int d = g.ndim - 1; d >= 0; d--) {
    int64_t n = g.shape[d];
    off += (i % n) * g.stride[d];
    i /= n;
  }
  return off;
}

inline cudaStream_t stream() { return (cudaStream_t)fsvc_gpu_stream(); }

constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  if (b > 65535LL * 32) b = 65535LL * 32;  // grid-stride loops cover the rest
  return (unsigned)(b > 0 ? b : 1);
}

// kernel<<<grid, block, shared_bytes, stream>>>(args) is written
// FSVC_LAUNCH(kernel, grid, block, shared_bytes, stream)(args), so that the CPU emulation of CUDA
// (gpu/emu, FSVC_CUDA=EMULATE), which defines its own FSVC_LAUNCH, can run the same kernels.
#ifndef FSVC_LAUNCH
#define FSVC_LAUNCH(kernel, grid, block, shared_bytes, strm) \
  kernel<<<(grid), (block), (shared_bytes), (cudaStream_t)fsvc_gpu_count_launch(strm)>>>
#endif

#define FSVC_GRID_LOOP(i, n)                                                                   \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                    \
       i += (int64_t)blockDim.x * gridDim.x)

// Loads and stores through float for the 16-bit types (compute in float, as autocast does).
template <typename T> struct Acc { typedef T type; };
template <> struct Acc<__half> { typedef float type; };
template <> struct Acc<__nv_bfloat16> { typedef float type; };

template <typename T> __device__ __forceinline__ typename Acc<T>::type load(const T *p) { return *p; }
template <> __device__ __forceinline__ float load<__half>(const __half *p) { return __half2float(*p); }
template <> __device__ __forceinline__ float load<__nv_bfloat16>(const __nv_bfloat16 *p) {
  return __bfloat162float(*p);
}
template <typename T, typename V> __device__ __forceinline__ void store(T *p, V v) { *p = (T)v; }
template <> __device__ __forceinline__ void store<__half, float>(__half *p, float v) { *p = __float2half(v); }
template <> __device__ __forceinline__ void store<__nv_bfloat16, float>(__nv_bfloat16 *p, float v) {
  *p = __float2bfloat16(v);
}

// Calls F.template operator()<T>() with T the C++ type of dtype dt (float types and int64).
#define FSVC_DISPATCH_ALL(dt, ...)                                                             \
  switch (dt) {                                                                                \
    case FSVC_FLOAT32: { typedef float T; __VA_ARGS__; break; }                                \
    case FSVC_FLOAT64: { typedef double T; __VA_ARGS__; break; }                               \
    case FSVC_INT64: { typedef long long T; __VA_ARGS__; break; }                              \
    case FSVC_FLOAT16: { typedef __half T; __VA_ARGS__; break; }                               \
    case FSVC_BFLOAT16: { typedef __nv_bfloat16 T; __VA_ARGS__; break; }                       \
    default: break;                                                                            \
  }
// float32/float64 only: any other dtype fails (the launcher returns -1 with an error naming
// it) instead of launching nothing and reporting success.
#define FSVC_DISPATCH_FLOAT(dt, ...)                                                           \
  switch (dt) {                                                                                \
    case FSVC_FLOAT32: { typedef float T; __VA_ARGS__; break; }                                \
    case FSVC_FLOAT64: { typedef double T; __VA_ARGS__; break; }                               \
    default: return fsvc_gpu_unsupported_dtype(dt, __func__);                                  \
  }
// The float dtypes, 16-bit ones included (kernels read and write them through load/store and
// compute in float, as autocast expects).
#define FSVC_DISPATCH_FLOATING(dt, ...)                                                        \
  switch (dt) {                                                                                \
    case FSVC_FLOAT32: { typedef float T; __VA_ARGS__; break; }                                \
    case FSVC_FLOAT64: { typedef double T; __VA_ARGS__; break; }                               \
    case FSVC_FLOAT16: { typedef __half T; __VA_ARGS__; break; }                               \
    case FSVC_BFLOAT16: { typedef __nv_bfloat16 T; __VA_ARGS__; break; }                       \
    default: return fsvc_gpu_unsupported_dtype(dt, __func__);                                  \
  }

inline int fsvc_gpu_unsupported_dtype(fsvc_dtype dt, const char *launcher) {
  fsvc_set_error("%s: dtype %s is not supported by this CUDA kernel; cast to float32 first",
                 launcher, fsvc_dtype_name(dt));
  return -1;
}

}  // namespace fsvc_gpu

#endif
