// topk along R of a contiguous [outer, R, inner] input: the k best (value, index) of each line,
// sorted best first, in the order of core/ops/topk.c (ranks_before): largest puts bigger values
// and NaN first, smallest puts smaller values first and NaN last, equal values (0 and -0 too) go
// by index. That order is total (indices are distinct), so every method below returns exactly the
// CPU's result. Values are compared as the CPU compares them (float32 and the 16-bit dtypes
// through float, which is exact; float64 and int64 as double) and copied from the input, so an
// int64 above 2^53 comes back unchanged.
//
// Three methods, by k and the line's length R:
//   k <= 64              one thread per line keeps a sorted list of its k best by insertion,
//                        O(R k) (the kNN's and the pitch estimator's few neighbours or classes);
//   R <= 4096            one block per line: a bitonic sort of the whole line (padded to a power
//                        of two) in shared memory, then the first k are written;
//   otherwise            a bitonic sort of every line in a global scratch buffer (keys and
//                        indices, from the caching allocator; fsvc_gpu_topk_scratch_bytes):
//                        chunks of 2048 are sorted in shared memory, the merges' strides of
//                        2048 and more run as one launch each over all lines, the shorter ones
//                        again in shared memory.
#include <math.h>

#include "gpu_common.cuh"

using namespace fsvc_gpu;

namespace {

constexpr int kInsertMax = 64;     // k up to this: the insertion list
constexpr int kBlockMax = 4096;    // lines up to this: one block sorts a line in shared memory
constexpr int kChunk = 2048;       // shared-memory part of the global sort
constexpr int kChunkThreads = 128;  // eight compare-exchange pairs each per step

// The key a value is compared by: float for float32 and the 16-bit types (exact), double for
// float64 and for int64 (as the CPU, which loads every element as a double).
template <typename T> struct Key { typedef typename Acc<T>::type type; };
template <> struct Key<long long> { typedef double type; };

template <typename T> __device__ __forceinline__ typename Key<T>::type key_of(const T *p) {
  return (typename Key<T>::type)load(p);
}

// a ranks before b (core/ops/topk.c's ranks_before)
template <typename K>
__device__ __forceinline__ bool ranks_before(K a, int64_t ai, K b, int64_t bi, bool largest) {
  bool an = a != a, bn = b != b;
  if (an || bn) {
    if (an && bn) return ai < bi;
    return largest ? an : bn;
  }
  if (a != b) return largest ? a > b : a < b;
  return ai < bi;
}

// The same over a line padded to a power of two: the padding (indices >= r) ranks last.
template <typename K>
__device__ __forceinline__ bool entry_before(K a, int64_t ai, K b, int64_t bi, int64_t r, bool largest) {
  if (ai >= r || bi >= r) return ai < bi;
  return ranks_before(a, ai, b, bi, largest);
}

// ---- k <= 64: insertion ----------------------------------------------------------------------
template <typename T>
__global__ void topk_insert_kernel(T *vals, int64_t *idx, const T *x, int64_t outer, int64_t r,
                                   int64_t inner, int k, int largest) {
  typedef typename Key<T>::type K;
  FSVC_GRID_LOOP(o, outer * inner) {
    int64_t oi = o / inner, ii = o % inner;
    const T *line = x + oi * r * inner + ii;
    K bv[kInsertMax];
    int64_t bi[kInsertMax];
    int len = 0;
    for (int64_t j = 0; j < r; j++) {
      K v = key_of(line + j * inner);
      if (len == k && !ranks_before(v, j, bv[k - 1], bi[k - 1], largest != 0)) continue;
      int pos = len < k ? len++ : k - 1;
      while (pos > 0 && ranks_before(v, j, bv[pos - 1], bi[pos - 1], largest != 0)) {
        bv[pos] = bv[pos - 1];
        bi[pos] = bi[pos - 1];
        pos--;
      }
      bv[pos] = v;
      bi[pos] = j;
    }
    int64_t obase = oi * (int64_t)k * inner + ii;
    for (int j = 0; j < k; j++) {
      vals[obase + j * inner] = line[bi[j] * inner];
      idx[obase + j * inner] = bi[j];
    }
  }
}

// ---- bitonic sort steps in shared memory ------------------------------------------------------
// The compare-exchange steps of the bitonic merge of size s with strides j_hi, j_hi/2, ..., 1 over
// n entries of shared memory (n a power of two), which sit at position `base` of their line (the
// direction of a pair depends on its position in the whole line). Ends with a barrier.
template <typename K, typename I>
__device__ void bitonic_steps(K *keys, I *ids, int n, int64_t base, int64_t s, int j_hi, int64_t r,
                              bool largest) {
  for (int j = j_hi; j > 0; j >>= 1) {
    for (int p = threadIdx.x; p < n / 2; p += blockDim.x) {
      int i = (p / j) * 2 * j + p % j, l = i + j;
      bool up = ((base + i) & s) == 0;  // this pair's subsequence is sorted best first
      K ki = keys[i], kl = keys[l];
      int64_t ii = ids[i], il = ids[l];
      if (up ? entry_before(kl, il, ki, ii, r, largest) : entry_before(ki, ii, kl, il, r, largest)) {
        keys[i] = kl;
        keys[l] = ki;
        ids[i] = (I)il;
        ids[l] = (I)ii;
      }
    }
    __syncthreads();
  }
}

// A whole sort of n entries at position base (merges of size 2 .. n).
template <typename K, typename I>
__device__ void bitonic_sort(K *keys, I *ids, int n, int64_t base, int64_t r, bool largest) {
  for (int s = 2; s <= n; s <<= 1) bitonic_steps(keys, ids, n, base, s, s / 2, r, largest);
}

// ---- R <= 4096: one block sorts one line -------------------------------------------------------
// p2: R rounded up to a power of two (<= CAP). Indices fit 16 bits, which keeps CAP = 4096 of
// float64 keys at 40 KB of shared memory.
template <int CAP> struct Cap {};  // the capacity as an argument, so that launches deduce it

template <typename T, int CAP>
__global__ void topk_block_kernel(Cap<CAP>, T *vals, int64_t *idx, const T *x, int64_t lines, int64_t r,
                                  int64_t inner, int64_t k, int p2, int largest) {
  typedef typename Key<T>::type K;
  __shared__ K keys[CAP];
  __shared__ unsigned short ids[CAP];
  for (int64_t line = blockIdx.x; line < lines; line += gridDim.x) {
    int64_t oi = line / inner, ii = line % inner;
    const T *row = x + oi * r * inner + ii;
    for (int j = threadIdx.x; j < p2; j += blockDim.x) {
      keys[j] = j < r ? key_of(row + j * inner) : (K)0;
      ids[j] = (unsigned short)j;
    }
    __syncthreads();
    bitonic_sort(keys, ids, p2, 0, r, largest != 0);
    int64_t obase = oi * k * inner + ii;
    for (int64_t j = threadIdx.x; j < k; j += blockDim.x) {
      int64_t id = ids[j];
      vals[obase + j * inner] = row[id * inner];
      idx[obase + j * inner] = id;
    }
    __syncthreads();  // the next line reuses the shared arrays
  }
}

// ---- R > 4096: a bitonic sort of every line in global scratch --------------------------------
// keys/ids: [lines, p2]. s == 0: loads chunks of the input and sorts each (merges of size up to
// kChunk); s > 0: the strides below kChunk of the merge of size s.
template <typename T>
__global__ void topk_chunk_kernel(typename Key<T>::type *gkeys, int64_t *gids, const T *x,
                                  int64_t lines, int64_t r, int64_t inner, int64_t p2, int64_t s,
                                  int largest) {
  typedef typename Key<T>::type K;
  __shared__ K keys[kChunk];
  __shared__ int64_t ids[kChunk];
  const int64_t chunks = p2 / kChunk;
  for (int64_t b = blockIdx.x; b < lines * chunks; b += gridDim.x) {
    int64_t line = b / chunks, base = (b % chunks) * kChunk;
    K *lk = gkeys + line * p2 + base;
    int64_t *li = gids + line * p2 + base;
    const T *row = x + (line / inner) * r * inner + line % inner;
    for (int t = threadIdx.x; t < kChunk; t += blockDim.x) {
      if (s == 0) {
        int64_t j = base + t;
        keys[t] = j < r ? key_of(row + j * inner) : (K)0;
        ids[t] = j;
      } else {
        keys[t] = lk[t];
        ids[t] = li[t];
      }
    }
    __syncthreads();
    if (s == 0) bitonic_sort(keys, ids, kChunk, base, r, largest != 0);
    else bitonic_steps(keys, ids, kChunk, base, s, kChunk / 2, r, largest != 0);
    for (int t = threadIdx.x; t < kChunk; t += blockDim.x) {
      lk[t] = keys[t];
      li[t] = ids[t];
    }
    __syncthreads();
  }
}

// one compare-exchange step (merge size s, stride j >= kChunk) over all lines: one thread per pair
template <typename K>
__global__ void topk_global_step_kernel(K *gkeys, int64_t *gids, int64_t lines, int64_t p2, int64_t s,
                                        int64_t j, int64_t r, int largest) {
  const int64_t half = p2 / 2;
  FSVC_GRID_LOOP(t, lines * half) {
    int64_t line = t / half, p = t % half;
    int64_t i = (p / j) * 2 * j + p % j, l = i + j;
    K *kk = gkeys + line * p2;
    int64_t *id = gids + line * p2;
    bool up = (i & s) == 0;
    K ki = kk[i], kl = kk[l];
    int64_t ii = id[i], il = id[l];
    if (up ? entry_before(kl, il, ki, ii, r, largest != 0) : entry_before(ki, ii, kl, il, r, largest != 0)) {
      kk[i] = kl;
      kk[l] = ki;
      id[i] = il;
      id[l] = ii;
    }
  }
}

// the first k of each sorted line: indices, and the values copied from the input
template <typename T>
__global__ void topk_take_kernel(T *vals, int64_t *idx, const T *x, const int64_t *gids, int64_t lines,
                                 int64_t r, int64_t inner, int64_t k, int64_t p2) {
  FSVC_GRID_LOOP(t, lines * k) {
    int64_t line = t / k, j = t % k;
    int64_t oi = line / inner, ii = line % inner;
    int64_t id = gids[line * p2 + j];
    int64_t o = (oi * k + j) * inner + ii;
    vals[o] = x[oi * r * inner + ii + id * inner];
    idx[o] = id;
  }
}

int64_t next_pow2(int64_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

size_t key_bytes(fsvc_dtype dt) { return dt == FSVC_FLOAT64 || dt == FSVC_INT64 ? 8 : 4; }

unsigned blocks_for_lines(int64_t n) { return (unsigned)(n < 65535LL * 32 ? (n > 0 ? n : 1) : 65535LL * 32); }

// a thread per four compare-exchange pairs of a step, 32 to 256 threads (fewer threads, fewer
// barrier waits; many lines keep the device busy)
template <typename T>
void launch_block(T *vals, int64_t *idx, const T *x, int64_t lines, int64_t r, int64_t inner, int64_t k,
                  int largest) {
  int p2 = (int)next_pow2(r);
  unsigned grid = blocks_for_lines(lines);
  unsigned threads = p2 / 8 < 32 ? 32 : p2 / 8 > 256 ? 256 : (unsigned)(p2 / 8);
  if (p2 <= 256)
    FSVC_LAUNCH(topk_block_kernel, grid, threads, 0, stream())(Cap<256>(), vals, idx, x, lines, r, inner, k, p2,
                                                               largest);
  else if (p2 <= 1024)
    FSVC_LAUNCH(topk_block_kernel, grid, threads, 0, stream())(Cap<1024>(), vals, idx, x, lines, r, inner, k, p2,
                                                               largest);
  else
    FSVC_LAUNCH(topk_block_kernel, grid, threads, 0, stream())(Cap<kBlockMax>(), vals, idx, x, lines, r, inner, k,
                                                               p2, largest);
}

template <typename T>
void launch_global(T *vals, int64_t *idx, const T *x, int64_t lines, int64_t r, int64_t inner, int64_t k,
                   int largest, void *scratch) {
  typedef typename Key<T>::type K;
  const int64_t p2 = next_pow2(r);
  K *keys = (K *)scratch;
  int64_t *ids = (int64_t *)((char *)scratch + (size_t)lines * (size_t)p2 * sizeof(K));
  const unsigned chunk_grid = blocks_for_lines(lines * (p2 / kChunk));
  FSVC_LAUNCH(topk_chunk_kernel, chunk_grid, kChunkThreads, 0, stream())(keys, ids, x, lines, r, inner, p2,
                                                                            (int64_t)0, largest);
  for (int64_t s = 2 * kChunk; s <= p2; s <<= 1) {
    for (int64_t j = s / 2; j >= kChunk; j >>= 1)
      FSVC_LAUNCH(topk_global_step_kernel, blocks_for(lines * (p2 / 2)), kThreads, 0, stream())(
          keys, ids, lines, p2, s, j, r, largest);
    FSVC_LAUNCH(topk_chunk_kernel, chunk_grid, kChunkThreads, 0, stream())(keys, ids, x, lines, r, inner, p2,
                                                                              s, largest);
  }
  FSVC_LAUNCH(topk_take_kernel, blocks_for(lines * k), kThreads, 0, stream())(vals, idx, x, ids, lines, r,
                                                                                 inner, k, p2);
}

}  // namespace

extern "C" size_t fsvc_gpu_topk_scratch_bytes(fsvc_dtype dt, int64_t outer, int64_t r, int64_t inner,
                                              int64_t k) {
  if (outer * inner * k == 0 || k <= kInsertMax || r <= kBlockMax) return 0;
  return (size_t)(outer * inner) * (size_t)next_pow2(r) * (key_bytes(dt) + sizeof(int64_t));
}

extern "C" int fsvc_gpu_topk_launch(fsvc_dtype dt, void *vals, int64_t *idx, const void *x,
                                    int64_t outer, int64_t r, int64_t inner, int64_t k, int largest,
                                    void *scratch) {
  const int64_t lines = outer * inner;
  if (lines * k == 0) return 0;
  if (k <= kInsertMax) {
    FSVC_DISPATCH_ALL(dt, FSVC_LAUNCH(topk_insert_kernel, blocks_for(lines), 128, 0, stream())(
                              (T *)vals, idx, (const T *)x, outer, r, inner, (int)k, largest));
  } else if (r <= kBlockMax) {
    FSVC_DISPATCH_ALL(dt, launch_block<T>((T *)vals, idx, (const T *)x, lines, r, inner, k, largest));
  } else {
    if (!scratch) {
      fsvc_set_error("topk: internal error: no scratch buffer for k = %lld of %lld", (long long)k, (long long)r);
      return -1;
    }
    FSVC_DISPATCH_ALL(dt, launch_global<T>((T *)vals, idx, (const T *)x, lines, r, inner, k, largest, scratch));
  }
  return fsvc_gpu_check_launch("topk");
}
