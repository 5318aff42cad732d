// Indexing and shape kernels: gather / scatter_add along a dim, index_select and its backward,
// pad (constant, reflect, replicate) and its backward. Strided copies (contiguous, cat, flip,
// narrow views) go through fsvc_gpu_copy_launch in elementwise.cu. Accumulations use atomicAdd
// (float64 atomics need sm_60+, float16 sm_70+, bfloat16 sm_80+: all within our sm_80 floor).
// Where many adds can meet in one element, the host (ops_shape.c) runs 16-bit tensors through
// float32 buffers, so 16-bit atomics only serve scatters to distinct indices (max/topk backward).
#include "gpu_common.cuh"

using namespace fsvc_gpu;

namespace {
template <typename T> __device__ __forceinline__ void atomic_add(T *p, T v) { atomicAdd(p, v); }
template <> __device__ __forceinline__ void atomic_add<long long>(long long *p, long long v) {
  atomicAdd((unsigned long long *)p, (unsigned long long)v);
}

// Over every element of the index tensor (geometry ig): position i has coordinates c; the source
// element is at c in sg (scatter) or with c[dim] replaced by index (gather), and the same for out.
// An index outside [0, bound) is skipped and recorded in *err (the device's index-error word,
// runtime.c), which the host reads at its next synchronisation: no host copy of the indices.
__device__ __forceinline__ bool index_ok(int64_t idx, int64_t bound, int *err, int code) {
  if (idx >= 0 && idx < bound) return true;
  if (*err == 0) *err = code;
  return false;
}

template <typename T>
__global__ void gather_scatter_kernel(int mode, T *out, Geom og, const T *src, Geom sg,
                                      const int64_t *index, Geom ig, int dim, int64_t n, int *err) {
  const int64_t bound = mode == 0 ? sg.shape[dim] : og.shape[dim];
  FSVC_GRID_LOOP(i, n) {
    int64_t rem = i, ooff = 0, soff = 0, ioff = 0, idx_at_dim = 0;
    int64_t coord[FSVC_MAX_DIMS];
    for (int d = ig.ndim - 1; d >= 0; d--) {
      coord[d] = rem % ig.shape[d];
      rem /= ig.shape[d];
      ioff += coord[d] * ig.stride[d];
    }
    idx_at_dim = index[ioff];
    if (!index_ok(idx_at_dim, bound, err, mode == 0 ? FSVC_GPU_INDEX_ERR_GATHER : FSVC_GPU_INDEX_ERR_SCATTER_ADD))
      continue;
    for (int d = 0; d < ig.ndim; d++) {
      int64_t c = coord[d];
      if (mode == 0) {  // gather: out[c] = src[c with c[dim] = index]
        ooff += c * og.stride[d];
        soff += (d == dim ? idx_at_dim : c) * sg.stride[d];
      } else {          // scatter_add: out[c with c[dim] = index] += src[c]
        ooff += (d == dim ? idx_at_dim : c) * og.stride[d];
        soff += c * sg.stride[d];
      }
    }
    if (mode == 0) out[ooff] = src[soff];
    else atomic_add(out + ooff, src[soff]);
  }
}

// big [outer, big_n, inner], small [outer, small_n, inner] (contiguous), index [small_n]
template <typename T>
__global__ void index_select_kernel(int mode, T *big, int64_t big_n, T *small, int64_t small_n,
                                    const int64_t *index, int64_t outer, int64_t inner, int *err) {
  FSVC_GRID_LOOP(i, outer * small_n * inner) {
    int64_t in = i % inner, j = (i / inner) % small_n, o = i / (inner * small_n);
    if (!index_ok(index[j], big_n, err, FSVC_GPU_INDEX_ERR_INDEX_SELECT)) continue;
    int64_t b = (o * big_n + index[j]) * inner + in;
    if (mode == 0) small[i] = big[b];
    else atomic_add(big + b, small[i]);
  }
}

__device__ __forceinline__ int64_t reflect_index(int64_t j, int64_t n) {
  if (n == 1) return 0;
  int64_t period = 2 * (n - 1);
  j %= period;
  if (j < 0) j += period;
  return j < n ? j : period - j;
}

// out position -> input position per padded dim (the last `np` dims of og); -1 when it falls
// in a constant pad.
template <typename T>
__global__ void pad_kernel(T *out, Geom og, T *in, Geom ig, const int64_t *left_unused, int64_t l0,
                           int64_t l1, int64_t l2, int64_t l3, int np, int mode, double value,
                           int backward, int64_t n) {
  int64_t left[4] = {l0, l1, l2, l3};
  FSVC_GRID_LOOP(i, n) {
    int64_t rem = i, ioff = 0;
    bool inside = true;
    for (int d = og.ndim - 1; d >= 0; d--) {
      int64_t c = rem % og.shape[d];
      rem /= og.shape[d];
      int k = og.ndim - 1 - d;  // 0 = last dim
      if (k < np) {
        int64_t src = c - left[k], size = ig.shape[d];
        if (src < 0 || src >= size) {
          if (mode == 0) inside = false;
          else if (mode == 1) src = reflect_index(src, size);
          else src = src < 0 ? 0 : size - 1;
        }
        c = src;
      }
      ioff += c * ig.stride[d];
    }
    if (!backward) out[i] = inside ? in[ioff] : (T)value;
    else if (inside) atomic_add(in + ioff, out[i]);
  }
}
}  // namespace

#define FSVC_DISPATCH_ACC(dt, ...)                                                              \
  switch (dt) {                                                                                 \
    case FSVC_FLOAT32: { typedef float T; __VA_ARGS__; break; }                                 \
    case FSVC_FLOAT64: { typedef double T; __VA_ARGS__; break; }                                \
    case FSVC_INT64: { typedef long long T; __VA_ARGS__; break; }                               \
    case FSVC_FLOAT16: { typedef __half T; __VA_ARGS__; break; }                                \
    case FSVC_BFLOAT16: { typedef __nv_bfloat16 T; __VA_ARGS__; break; }                        \
    default: fsvc_gpu_check(1, "indexing: dtype not supported on CUDA"); return -1;              \
  }

extern "C" int fsvc_gpu_gather_scatter_launch(int mode, fsvc_dtype dt, void *out, const fsvc_gpu_geom *ogp,
                                              const void *src, const fsvc_gpu_geom *sgp,
                                              const int64_t *index, const fsvc_gpu_geom *igp, int dim) {
  Geom og = to_geom(ogp), sg = to_geom(sgp), ig = to_geom(igp);
  int64_t n = 1;
  for (int d = 0; d < ig.ndim; d++) n *= ig.shape[d];
  if (n == 0) return 0;
  int *err = fsvc_gpu_index_error_word();
  if (!err) return -1;
  FSVC_DISPATCH_ACC(dt, FSVC_LAUNCH(gather_scatter_kernel, blocks_for(n), kThreads, 0, stream())(
                            mode, (T *)out, og, (const T *)src, sg, index, ig, dim, n, err));
  return fsvc_gpu_check_launch(mode ? "scatter_add" : "gather");
}

extern "C" int fsvc_gpu_index_select_launch(int mode, fsvc_dtype dt, void *big, int64_t big_n, void *small,
                                            int64_t small_n, const int64_t *index, int64_t outer,
                                            int64_t inner) {
  int64_t n = outer * small_n * inner;
  if (n == 0) return 0;
  int *err = fsvc_gpu_index_error_word();
  if (!err) return -1;
  FSVC_DISPATCH_ACC(dt, FSVC_LAUNCH(index_select_kernel, blocks_for(n), kThreads, 0, stream())(
                            mode, (T *)big, big_n, (T *)small, small_n, index, outer, inner, err));
  return fsvc_gpu_check_launch("index_select");
}

extern "C" int fsvc_gpu_pad_launch(fsvc_dtype dt, void *out, const fsvc_gpu_geom *ogp, void *in,
                                   const fsvc_gpu_geom *igp, const int64_t *pad_left, int mode,
                                   double value, int backward) {
  Geom og = to_geom(ogp), ig = to_geom(igp);
  int64_t n = 1;
  for (int d = 0; d < og.ndim; d++) n *= og.shape[d];
  if (n == 0) return 0;
  int np = og.ndim < 4 ? og.ndim : 4;
  int64_t l[4] = {0, 0, 0, 0};
  for (int k = 0; k < np; k++) l[k] = pad_left[k];
  FSVC_DISPATCH_ACC(dt, FSVC_LAUNCH(pad_kernel, blocks_for(n), kThreads, 0, stream())(
                            (T *)out, og, (T *)in, ig, nullptr, l[0], l[1], l[2], l[3], np, mode,
                            value, backward, n));
  return fsvc_gpu_check_launch("pad");
}
