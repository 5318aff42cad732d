// Fused optimiser kernels: Adam/AdamW over a list of parameters in one launch (multi-tensor
// apply: a small table of (pointer, length) chunks in device memory; each block takes one chunk),
// SGD, clip_grad_norm (sum of squares of every gradient accumulated in double, then one
// scaling launch), and the unscale-and-check pass of dynamic loss scaling (fsvc.amp). Arithmetic follows core/ops/fused_optim.c (PyTorch's single-tensor formulas).
#include <math.h>
#include <stdlib.h>

#include "gpu_common.cuh"

using namespace fsvc_gpu;

namespace {
constexpr int64_t kChunk = 65536;  // elements per block-chunk

struct AdamChunk {
  void *p, *m, *v, *vmax;
  const void *g;
  int64_t start, n;
};

template <typename T>
__global__ void adam_kernel(const AdamChunk *chunks, double lr, double beta1, double beta2, double eps,
                            double wd, double bc1, double bc2_sqrt, int maximize, int decoupled) {
  AdamChunk c = chunks[blockIdx.x];
  T *p = (T *)c.p, *m = (T *)c.m, *v = (T *)c.v, *vmax = (T *)c.vmax;
  const T *g = (const T *)c.g;
  const T decay = (T)(1.0 - lr * wd), twd = (T)wd, b1 = (T)beta1, omb1 = (T)(1.0 - beta1);
  const T b2 = (T)beta2, omb2 = (T)(1.0 - beta2), neg_step = (T)(-(lr / bc1)), teps = (T)eps;
  const T tbc2 = (T)bc2_sqrt;
  for (int64_t j = threadIdx.x; j < c.n; j += blockDim.x) {
    int64_t i = c.start + j;
    T gi = maximize ? -g[i] : g[i];
    T pi = p[i];
    if (decoupled) pi = pi * decay;
    else if (wd != 0) gi = gi + twd * pi;
    T mi = m[i] * b1 + omb1 * gi;
    T vi = v[i] * b2 + omb2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    T second = vi;
    if (vmax) {
      if (vi > vmax[i] || vi != vi) vmax[i] = vi;
      second = vmax[i];
    }
    T denom = sqrt(second) / tbc2 + teps;
    p[i] = pi + neg_step * mi / denom;
  }
}

template <typename T>
__global__ void sgd_kernel(T *p, const T *g, T *buf, int64_t n, double lr, double momentum,
                           double dampening, double wd, int nesterov, int maximize, int first) {
  FSVC_GRID_LOOP(i, n) {
    T gi = maximize ? -g[i] : g[i];
    if (wd != 0) gi = gi + (T)wd * p[i];
    if (buf) {
      T b = first ? gi : buf[i] * (T)momentum + (T)(1.0 - dampening) * gi;
      buf[i] = b;
      gi = nesterov ? gi + (T)momentum * b : b;
    }
    p[i] = p[i] - (T)lr * gi;
  }
}

template <typename T>
__global__ void sumsq_kernel(const T *x, int64_t n, double *acc) {
  __shared__ double shm[kThreads];
  double s = 0;
  FSVC_GRID_LOOP(i, n) {
    double v = (double)x[i];
    s += v * v;
  }
  shm[threadIdx.x] = s;
  __syncthreads();
  for (int k = blockDim.x / 2; k > 0; k >>= 1) {
    if ((int)threadIdx.x < k) shm[threadIdx.x] += shm[threadIdx.x + k];
    __syncthreads();
  }
  if (threadIdx.x == 0) atomicAdd(acc, shm[0]);
}

template <typename T>
__global__ void scale_kernel(T *x, int64_t n, const double *total_sq, double max_norm) {
  double norm = sqrt(*total_sq);
  double coef = max_norm / (norm + 1e-6);
  if (coef >= 1.0) return;
  FSVC_GRID_LOOP(i, n) { x[i] = (T)((double)x[i] * coef); }
}
// Dynamic loss scaling: g *= inv_scale in g's dtype's compute type, and *found = 1 when a result
// is NaN or Inf (every writer stores the same value, so the race is benign).
template <typename T>
__global__ void amp_unscale_kernel(T *g, int64_t n, double inv_scale, int *found) {
  typedef typename Acc<T>::type A;
  const A inv = (A)inv_scale;
  FSVC_GRID_LOOP(i, n) {
    store(g + i, (A)(load(g + i) * inv));
    if (!isfinite((double)load(g + i))) *found = 1;
  }
}
}  // namespace

extern "C" int fsvc_gpu_amp_unscale_launch(const fsvc_dtype *dts, void *const *bufs, const int64_t *ns,
                                           int n_bufs, double inv_scale, int *found_inf) {
  int *flag = (int *)fsvc_gpu_alloc(0, sizeof(int));
  if (!flag) return -1;
  int rc = fsvc_gpu_check((int)cudaMemsetAsync(flag, 0, sizeof(int), stream()), "amp_unscale_");
  for (int i = 0; i < n_bufs && rc == 0; i++) {
    if (ns[i] == 0) continue;
    FSVC_DISPATCH_FLOATING(dts[i], FSVC_LAUNCH(amp_unscale_kernel, blocks_for(ns[i]), kThreads, 0, stream())(
                                       (T *)bufs[i], ns[i], inv_scale, flag));
    rc = fsvc_gpu_check_launch("amp_unscale_");
  }
  int found = 0;
  if (rc == 0) rc = fsvc_gpu_check((int)cudaMemcpyAsync(&found, flag, sizeof found, cudaMemcpyDeviceToHost, stream()), "amp_unscale_");
  if (rc == 0) rc = fsvc_gpu_check((int)cudaStreamSynchronize(stream()), "amp_unscale_");
  fsvc_gpu_release(NULL, flag, sizeof(int));
  if (rc == 0) *found_inf = found != 0;
  return rc;
}

extern "C" int fsvc_gpu_adam_launch(fsvc_dtype dt, const fsvc_gpu_adam_tensor *list, int n_tensors,
                                    double lr, double beta1, double beta2, double eps, double wd,
                                    int64_t step, int maximize, int decoupled) {
  int64_t n_chunks = 0;
  for (int t = 0; t < n_tensors; t++) n_chunks += (list[t].n + kChunk - 1) / kChunk;
  if (n_chunks == 0) return 0;
  AdamChunk *host = (AdamChunk *)malloc(sizeof(AdamChunk) * (size_t)n_chunks);
  if (!host) return fsvc_gpu_check((int)cudaErrorMemoryAllocation, "adam");
  int64_t c = 0;
  for (int t = 0; t < n_tensors; t++)
    for (int64_t s = 0; s < list[t].n; s += kChunk) {
      host[c].p = list[t].param;
      host[c].m = list[t].exp_avg;
      host[c].v = list[t].exp_avg_sq;
      host[c].vmax = list[t].max_exp_avg_sq;
      host[c].g = list[t].grad;
      host[c].start = s;
      host[c].n = list[t].n - s < kChunk ? list[t].n - s : kChunk;
      c++;
    }
  size_t bytes = sizeof(AdamChunk) * (size_t)n_chunks;
  AdamChunk *dev = (AdamChunk *)fsvc_gpu_alloc(0, bytes);
  if (!dev) { free(host); return -1; }
  int rc = fsvc_gpu_check((int)cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, stream()), "adam");
  double bc1 = 1.0 - pow(beta1, (double)step), bc2_sqrt = sqrt(1.0 - pow(beta2, (double)step));
  if (rc == 0) {
    for (int64_t first = 0; first < n_chunks && rc == 0; first += 65535) {  // grid.x limit per launch
      unsigned nb = (unsigned)(n_chunks - first < 65535 ? n_chunks - first : 65535);
      FSVC_DISPATCH_FLOAT(dt, FSVC_LAUNCH(adam_kernel<T>, nb, kThreads, 0, stream())(
                                  dev + first, lr, beta1, beta2, eps, wd, bc1, bc2_sqrt, maximize, decoupled));
      rc = fsvc_gpu_check_launch("adam");
    }
  }
  /* No wait: a copy from pageable host memory has read `host` when cudaMemcpyAsync returns, and
   * the device table goes back to this stream's cache, whose next user is ordered after these
   * kernels on the same stream. */
  fsvc_gpu_release(NULL, dev, bytes);
  free(host);
  return rc;
}

extern "C" int fsvc_gpu_sgd_launch(fsvc_dtype dt, void *param, const void *grad, void *buf, int64_t n,
                                   double lr, double momentum, double dampening, double wd, int nesterov,
                                   int maximize, int first) {
  if (n == 0) return 0;
  FSVC_DISPATCH_FLOAT(dt, FSVC_LAUNCH(sgd_kernel, blocks_for(n), kThreads, 0, stream())(
                              (T *)param, (const T *)grad, (T *)buf, n, lr, momentum, dampening, wd,
                              nesterov, maximize, first));
  return fsvc_gpu_check_launch("sgd");
}

extern "C" int fsvc_gpu_clip_grad_norm_launch(fsvc_dtype dt, void *const *bufs, const int64_t *ns, int n_bufs,
                                              double max_norm, double *norm) {
  double *acc = (double *)fsvc_gpu_alloc(0, sizeof(double));
  if (!acc) return -1;
  int rc = fsvc_gpu_check((int)cudaMemsetAsync(acc, 0, sizeof(double), stream()), "clip_grad_norm");
  for (int i = 0; i < n_bufs && rc == 0; i++) {
    if (ns[i] == 0) continue;
    unsigned nb = blocks_for(ns[i]) < 1024 ? blocks_for(ns[i]) : 1024;
    FSVC_DISPATCH_FLOAT(dt, FSVC_LAUNCH(sumsq_kernel, nb, kThreads, 0, stream())((const T *)bufs[i], ns[i], acc));
    rc = fsvc_gpu_check_launch("clip_grad_norm");
  }
  for (int i = 0; i < n_bufs && rc == 0; i++) {
    if (ns[i] == 0) continue;
    FSVC_DISPATCH_FLOAT(dt, FSVC_LAUNCH(scale_kernel, blocks_for(ns[i]), kThreads, 0, stream())((T *)bufs[i], ns[i], acc, max_norm));
    rc = fsvc_gpu_check_launch("clip_grad_norm");
  }
  double sq = 0;
  if (rc == 0) rc = fsvc_gpu_check((int)cudaMemcpyAsync(&sq, acc, sizeof sq, cudaMemcpyDeviceToHost, stream()), "clip_grad_norm");
  if (rc == 0) rc = fsvc_gpu_check((int)cudaStreamSynchronize(stream()), "clip_grad_norm");
  fsvc_gpu_release(NULL, acc, sizeof(double));
  if (rc == 0 && norm) *norm = sqrt(sq);
  return rc;
}
