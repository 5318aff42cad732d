// Reductions over the generic [outer, R, inner] layout of a contiguous input (the host side
// permutes/merges dims into it): sum, mean, var, p-norm, max/min with first index, logsumexp;
// softmax / log_softmax and their backward; cumsum. topk is in topk.cu.
//
// Two kernels cover every shape: when inner == 1 (the reduced dims are last, the common case) a
// block of 256 threads reduces one row with a shared-memory tree; otherwise one thread per output
// walks R (reads are coalesced across inner). Few outputs over long extents (a loss's mean, a bias
// gradient) are split into segments instead (split_reduce, below), so that every SM has work.
// Float32 accumulates in double, as the CPU does, so results agree to ~1e-7 relative.
#include <math.h>

#include "gpu_common.cuh"

using namespace fsvc_gpu;

namespace {

struct Extremum {
  double v;
  int64_t i;
};

// a better than b for max (largest) or min; NaN wins (propagates); ties keep the first index
__device__ __forceinline__ bool better(double a, int64_t ai, double b, int64_t bi, bool largest) {
  if (a != a) return b == b || ai < bi;
  if (b != b) return false;
  if (a == b) return ai < bi;
  return largest ? a > b : a < b;
}

__device__ double block_sum(double v, double *shm) {
  shm[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) shm[threadIdx.x] += shm[threadIdx.x + s];
    __syncthreads();
  }
  double r = shm[0];
  __syncthreads();
  return r;
}

__device__ Extremum block_best(Extremum e, Extremum *shm, bool largest) {
  shm[threadIdx.x] = e;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) {
      Extremum o = shm[threadIdx.x + s];
      if (better(o.v, o.i, shm[threadIdx.x].v, shm[threadIdx.x].i, largest)) shm[threadIdx.x] = o;
    }
    __syncthreads();
  }
  Extremum r = shm[0];
  __syncthreads();
  return r;
}

// One block per row (inner == 1). Threads stride over R; results written by thread 0.
template <typename T>
__global__ void reduce_rows_kernel(int op, T *out, int64_t *idx, const T *x, int64_t r, double p) {
  __shared__ double shm[kThreads];
  __shared__ Extremum shx[kThreads];
  const T *row = x + (int64_t)blockIdx.x * r;
  double res = 0;
  if (op == FSVC_GPU_RED_MAX || op == FSVC_GPU_RED_MIN || op == FSVC_GPU_RED_LOGSUMEXP ||
      (op == FSVC_GPU_RED_NORM && isinf(p))) {
    bool largest = op != FSVC_GPU_RED_MIN;
    bool absval = op == FSVC_GPU_RED_NORM;
    Extremum e = {largest ? -INFINITY : INFINITY, r};
    for (int64_t j = threadIdx.x; j < r; j += blockDim.x) {
      double v = (double)load(row + j);
      if (absval) v = fabs(v);
      if (better(v, j, e.v, e.i, largest)) { e.v = v; e.i = j; }
    }
    e = block_best(e, shx, largest);
    res = e.v;
    if (op == FSVC_GPU_RED_LOGSUMEXP) {
      double m = isinf(e.v) ? 0.0 : e.v;
      double s = 0;
      for (int64_t j = threadIdx.x; j < r; j += blockDim.x) s += exp((double)load(row + j) - m);
      s = block_sum(s, shm);
      res = m + log(s);
    }
    if (threadIdx.x == 0 && idx) idx[blockIdx.x] = e.i;
  } else {
    double s = 0;
    for (int64_t j = threadIdx.x; j < r; j += blockDim.x) {
      double v = (double)load(row + j);
      s += op == FSVC_GPU_RED_NORM ? (p == 2 ? v * v : pow(fabs(v), p)) : v;
    }
    s = block_sum(s, shm);
    if (op == FSVC_GPU_RED_SUM) res = s;
    else if (op == FSVC_GPU_RED_MEAN) res = s / (double)r;
    else if (op == FSVC_GPU_RED_NORM) res = p == 2 ? sqrt(s) : pow(s, 1.0 / p);
    else {  // var: second pass around the mean (stable, like the CPU)
      double mean = s / (double)r, q = 0;
      for (int64_t j = threadIdx.x; j < r; j += blockDim.x) {
        double d = (double)load(row + j) - mean;
        q += d * d;
      }
      q = block_sum(q, shm);
      res = r > 0 ? q / ((double)r - p) : NAN;  // no elements: NaN, as the CPU (and 0 / -1 is not)
    }
  }
  if (threadIdx.x == 0) store(out + blockIdx.x, (typename Acc<T>::type)res);
}

// One thread per output (outer * inner of them), walking R with stride inner.
template <typename T>
__global__ void reduce_cols_kernel(int op, T *out, int64_t *idx, const T *x, int64_t outer, int64_t r,
                                   int64_t inner, double p) {
  FSVC_GRID_LOOP(o, outer * inner) {
    int64_t oi = o / inner, ii = o % inner;
    const T *base = x + oi * r * inner + ii;
    double res = 0;
    if (op == FSVC_GPU_RED_MAX || op == FSVC_GPU_RED_MIN || op == FSVC_GPU_RED_LOGSUMEXP ||
        (op == FSVC_GPU_RED_NORM && isinf(p))) {
      bool largest = op != FSVC_GPU_RED_MIN;
      double best = largest ? -INFINITY : INFINITY;
      int64_t bi = r;
      for (int64_t j = 0; j < r; j++) {
        double v = (double)load(base + j * inner);
        if (op == FSVC_GPU_RED_NORM) v = fabs(v);
        if (better(v, j, best, bi, largest)) { best = v; bi = j; }
      }
      res = best;
      if (op == FSVC_GPU_RED_LOGSUMEXP) {
        double m = isinf(best) ? 0.0 : best, s = 0;
        for (int64_t j = 0; j < r; j++) s += exp((double)load(base + j * inner) - m);
        res = m + log(s);
      }
      if (idx) idx[o] = bi;
    } else {
      double s = 0;
      for (int64_t j = 0; j < r; j++) {
        double v = (double)load(base + j * inner);
        s += op == FSVC_GPU_RED_NORM ? (p == 2 ? v * v : pow(fabs(v), p)) : v;
      }
      if (op == FSVC_GPU_RED_SUM) res = s;
      else if (op == FSVC_GPU_RED_MEAN) res = s / (double)r;
      else if (op == FSVC_GPU_RED_NORM) res = p == 2 ? sqrt(s) : pow(s, 1.0 / p);
      else {
        double mean = s / (double)r, q = 0;
        for (int64_t j = 0; j < r; j++) {
          double d = (double)load(base + j * inner) - mean;
          q += d * d;
        }
        res = r > 0 ? q / ((double)r - p) : NAN;  // no elements: NaN, as the CPU (and 0 / -1 is not)
      }
    }
    store(out + o, (typename Acc<T>::type)res);
  }
}

// ---- split reductions: few outputs over long rows ------------------------------------------------
// One block per row (or one thread per column) leaves most of the GPU idle when there are few
// outputs: a loss's mean over a whole batch (one output), a bias gradient (a few dozen channels
// over B * T elements each). Then the reduced extent is cut into S segments, each reduced into a
// double partial, and a second kernel adds every output's S partials in segment order. S depends
// on the shape alone, so results stay deterministic. Used for the additive reductions (sum, mean,
// finite p-norms, var); max/min/logsumexp keep the kernels above.
enum SplitTerm { kTermValue = 0, kTermPower = 1, kTermDeviation = 2 };

// the term a segment adds up: v, |v|^p (v*v for p = 2), or (v - center[o])^2
__device__ __forceinline__ double split_term(double v, int term, double p, double center) {
  if (term == kTermValue) return v;
  if (term == kTermPower) return p == 2 ? v * v : pow(fabs(v), p);
  double d = v - center;
  return d * d;
}

// rows (inner == 1): block o * S + s reduces segment s of row o into part[o * S + s]
template <typename T>
__global__ void split_rows_kernel(double *part, const T *x, int64_t r, int64_t seg, int64_t S, int term,
                                  double p, const double *center) {
  __shared__ double shm[kThreads];
  const int64_t o = blockIdx.x / S, sidx = blockIdx.x % S;
  const T *row = x + o * r;
  const int64_t lo = sidx * seg, hi = lo + seg < r ? lo + seg : r;
  const double c = center ? center[o] : 0.0;
  double acc = 0;
  for (int64_t j = lo + threadIdx.x; j < hi; j += blockDim.x) acc += split_term((double)load(row + j), term, p, c);
  acc = block_sum(acc, shm);
  if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

// columns (inner > 1): thread (s, oi, ii) walks segment s of output (oi, ii); part[o * S + s]
template <typename T>
__global__ void split_cols_kernel(double *part, const T *x, int64_t outer, int64_t r, int64_t inner,
                                  int64_t seg, int64_t S, int term, double p, const double *center) {
  const int64_t n_out = outer * inner;
  FSVC_GRID_LOOP(t, n_out * S) {
    const int64_t sidx = t / n_out, o = t % n_out, oi = o / inner, ii = o % inner;
    const T *base = x + oi * r * inner + ii;
    const int64_t lo = sidx * seg, hi = lo + seg < r ? lo + seg : r;
    const double c = center ? center[o] : 0.0;
    double acc = 0;
    for (int64_t j = lo; j < hi; j++) acc += split_term((double)load(base + j * inner), term, p, c);
    part[o * S + sidx] = acc;
  }
}

// one thread per output: the S partials in order, then the reduction's own finish; `center`
// (var's first pass) receives the mean instead of `out`
template <typename T>
__global__ void split_finish_kernel(T *out, double *center, const double *part, int64_t n_out, int64_t S,
                                    int op, int64_t r, double p) {
  FSVC_GRID_LOOP(o, n_out) {
    double acc = 0;
    for (int64_t k = 0; k < S; k++) acc += part[o * S + k];
    if (center) {
      center[o] = acc / (double)r;
      continue;
    }
    double res = acc;
    if (op == FSVC_GPU_RED_MEAN) res = acc / (double)r;
    else if (op == FSVC_GPU_RED_NORM) res = p == 2 ? sqrt(acc) : pow(acc, 1.0 / p);
    else if (op == FSVC_GPU_RED_VAR) res = acc / ((double)r - p);
    store(out + o, (typename Acc<T>::type)res);
  }
}

// segments for a split, or 1 when the plain kernels keep the GPU busy enough
constexpr int64_t kSplitRowOutputs = 256;   // rows: fewer outputs than this (about 2 per SM)
constexpr int64_t kSplitRowBlocks = 1024;   //   aim for this many blocks
constexpr int64_t kSplitRowSegment = 4096;  //   of at least this many elements each
constexpr int64_t kSplitColOutputs = 16384; // columns: fewer outputs (threads) than this
constexpr int64_t kSplitColThreads = 65536; //   aim for this many threads
constexpr int64_t kSplitColSegment = 64;    //   walking at least this many elements each
int64_t split_segments(int op, int64_t outer, int64_t r, int64_t inner, double p) {
  const bool additive = op == FSVC_GPU_RED_SUM || op == FSVC_GPU_RED_MEAN || op == FSVC_GPU_RED_VAR ||
                        (op == FSVC_GPU_RED_NORM && !isinf(p));
  if (!additive) return 1;
  int64_t s = 1;
  if (inner == 1 && r >= 64) {
    if (outer < kSplitRowOutputs && r >= 2 * kSplitRowSegment)
      s = (kSplitRowBlocks + outer - 1) / outer;
    if (s > (r + kSplitRowSegment - 1) / kSplitRowSegment) s = (r + kSplitRowSegment - 1) / kSplitRowSegment;
  } else if (outer * inner < kSplitColOutputs && r >= 2 * kSplitColSegment) {
    s = (kSplitColThreads + outer * inner - 1) / (outer * inner);
    if (s > (r + kSplitColSegment - 1) / kSplitColSegment) s = (r + kSplitColSegment - 1) / kSplitColSegment;
  }
  return s < 1 ? 1 : s;
}

template <typename T>
int split_reduce(int op, T *out, const T *x, int64_t outer, int64_t r, int64_t inner, double p, int64_t S) {
  const int64_t n_out = outer * inner, seg = (r + S - 1) / S;
  int dev = 0;
  cudaGetDevice(&dev);
  const size_t part_bytes = sizeof(double) * (size_t)(n_out * S);
  const size_t center_bytes = op == FSVC_GPU_RED_VAR ? sizeof(double) * (size_t)n_out : 0;
  double *part = (double *)fsvc_gpu_alloc(dev, part_bytes + center_bytes);
  if (!part) return -1;
  double *center = center_bytes ? part + n_out * S : nullptr;
  auto partials = [&](int term, const double *c) {
    if (inner == 1)
      FSVC_LAUNCH(split_rows_kernel<T>, (unsigned)(n_out * S), kThreads, 0, stream())(part, x, r, seg, S, term, p, c);
    else
      FSVC_LAUNCH(split_cols_kernel<T>, blocks_for(n_out * S), kThreads, 0, stream())(part, x, outer, r, inner, seg,
                                                                                     S, term, p, c);
  };
  if (op == FSVC_GPU_RED_VAR) {  // the mean first, then the squared deviations around it (as the CPU)
    partials(kTermValue, nullptr);
    FSVC_LAUNCH(split_finish_kernel<T>, blocks_for(n_out), kThreads, 0, stream())(out, center, part, n_out, S, op,
                                                                                 r, p);
    partials(kTermDeviation, center);
  } else {
    partials(op == FSVC_GPU_RED_NORM ? kTermPower : kTermValue, nullptr);
  }
  FSVC_LAUNCH(split_finish_kernel<T>, blocks_for(n_out), kThreads, 0, stream())(out, (double *)nullptr, part, n_out,
                                                                               S, op, r, p);
  int rc = fsvc_gpu_check_launch("reduction");
  fsvc_gpu_release(NULL, part, part_bytes + center_bytes);  // stream-ordered: reused after these kernels
  return rc;
}

}  // namespace

extern "C" int fsvc_gpu_reduce_launch(fsvc_gpu_reduce_op op, fsvc_dtype dt, void *out, int64_t *idx,
                                      const void *x, int64_t outer, int64_t r, int64_t inner,
                                      double p) {
  if (outer * inner == 0) return 0;
  const int64_t S = r > 0 ? split_segments((int)op, outer, r, inner, p) : 1;
  if (S > 1 && outer * inner * S <= 2147483647LL) {
    int rc = 0;
    FSVC_DISPATCH_ALL(dt, rc = split_reduce<T>((int)op, (T *)out, (const T *)x, outer, r, inner, p, S));
    return rc;
  }
  if (inner == 1 && r >= 64 && outer <= 2147483647LL) {
    FSVC_DISPATCH_ALL(dt, FSVC_LAUNCH(reduce_rows_kernel, (unsigned)outer, kThreads, 0, stream())(
                              (int)op, (T *)out, idx, (const T *)x, r, p));
  } else {
    FSVC_DISPATCH_ALL(dt, FSVC_LAUNCH(reduce_cols_kernel, blocks_for(outer * inner), kThreads, 0, stream())(
                              (int)op, (T *)out, idx, (const T *)x, outer, r, inner, p));
  }
  return fsvc_gpu_check_launch("reduction");
}

// ---- softmax: one thread per (outer, inner) line; three passes over R ---------------------------
namespace {
template <typename T>
__global__ void softmax_kernel(T *y, const T *x, int64_t outer, int64_t r, int64_t inner, int logf) {
  FSVC_GRID_LOOP(o, outer * inner) {
    int64_t base = (o / inner) * r * inner + o % inner;
    double m = -INFINITY;
    for (int64_t j = 0; j < r; j++) m = fmax(m, (double)load(x + base + j * inner));
    if (isinf(m)) m = 0;
    double s = 0;
    for (int64_t j = 0; j < r; j++) s += exp((double)load(x + base + j * inner) - m);
    double ls = log(s);
    for (int64_t j = 0; j < r; j++) {
      double v = (double)load(x + base + j * inner) - m;
      store(y + base + j * inner, (typename Acc<T>::type)(logf ? v - ls : exp(v - ls)));
    }
  }
}

template <typename T>
__global__ void softmax_backward_kernel(T *gx, const T *g, const T *y, int64_t outer, int64_t r,
                                        int64_t inner, int logf) {
  FSVC_GRID_LOOP(o, outer * inner) {
    int64_t base = (o / inner) * r * inner + o % inner;
    double s = 0;
    for (int64_t j = 0; j < r; j++) {
      int64_t k = base + j * inner;
      s += logf ? (double)load(g + k) : (double)load(g + k) * (double)load(y + k);
    }
    for (int64_t j = 0; j < r; j++) {
      int64_t k = base + j * inner;
      double gv = (double)load(g + k), yv = (double)load(y + k);
      store(gx + k, (typename Acc<T>::type)(logf ? gv - exp(yv) * s : yv * (gv - s)));
    }
  }
}

template <typename T>
__global__ void cumsum_kernel(T *y, const T *x, int64_t outer, int64_t r, int64_t inner, int reverse) {
  FSVC_GRID_LOOP(o, outer * inner) {
    int64_t base = (o / inner) * r * inner + o % inner;
    double s = 0;
    for (int64_t jj = 0; jj < r; jj++) {
      int64_t j = reverse ? r - 1 - jj : jj;
      s += (double)load(x + base + j * inner);
      store(y + base + j * inner, (typename Acc<T>::type)s);
    }
  }
}
}  // namespace

extern "C" int fsvc_gpu_softmax_launch(fsvc_dtype dt, void *y, const void *x, int64_t outer, int64_t r,
                                       int64_t inner, int log) {
  if (outer * inner * r == 0) return 0;
  FSVC_DISPATCH_FLOATING(dt, FSVC_LAUNCH(softmax_kernel, blocks_for(outer * inner), kThreads, 0, stream())(
                              (T *)y, (const T *)x, outer, r, inner, log));
  return fsvc_gpu_check_launch("softmax");
}

extern "C" int fsvc_gpu_softmax_backward_launch(fsvc_dtype dt, void *gx, const void *g, const void *y,
                                                int64_t outer, int64_t r, int64_t inner, int log) {
  if (outer * inner * r == 0) return 0;
  FSVC_DISPATCH_FLOATING(dt, FSVC_LAUNCH(softmax_backward_kernel, blocks_for(outer * inner), kThreads, 0, stream())(
                              (T *)gx, (const T *)g, (const T *)y, outer, r, inner, log));
  return fsvc_gpu_check_launch("softmax backward");
}

extern "C" int fsvc_gpu_cumsum_launch(fsvc_dtype dt, void *y, const void *x, int64_t outer, int64_t r,
                                      int64_t inner, int reverse) {
  if (outer * inner * r == 0) return 0;
  FSVC_DISPATCH_ALL(dt, FSVC_LAUNCH(cumsum_kernel, blocks_for(outer * inner), kThreads, 0, stream())(
                            (T *)y, (const T *)x, outer, r, inner, reverse));
  return fsvc_gpu_check_launch("cumsum");
}
