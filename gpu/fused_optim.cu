// Fused optimiser kernels: Adam/AdamW over a list of parameters in one launch (multi-tensor
// apply: a table of (pointer, length) chunks in device memory, each block taking one chunk; the
// table is cached per optimiser (fsvc_gpu_adam_plan_*) or built for one call (fsvc_gpu_adam_launch)),
// SGD, clip_grad_norm over a whole gradient list (per-block sums of squares in double added in a
// fixed order, then the scaling; a few launches for any number of tensors), and the unscale-and-check pass of dynamic loss scaling (fsvc.amp). Arithmetic follows core/ops/fused_optim.c (PyTorch's single-tensor formulas).
#include <math.h>
#include <stdlib.h>

#include "gpu_common.cuh"

using namespace fsvc_gpu;

namespace {
constexpr int64_t kChunk = 65536;  // elements per block-chunk

// Adam's scalars after rounding to T, as core/ops/fused_optim.c rounds them (the bias
// corrections in double first).
template <typename T> struct AdamScalars {
  T decay, wd, b1, omb1, b2, omb2, neg_step, eps, bc2;
};
template <typename T>
__device__ __forceinline__ AdamScalars<T> adam_scalars(double lr, double beta1, double beta2, double eps,
                                                       double wd, double bc1, double bc2_sqrt) {
  AdamScalars<T> s;
  s.decay = (T)(1.0 - lr * wd);
  s.wd = (T)wd;
  s.b1 = (T)beta1;
  s.omb1 = (T)(1.0 - beta1);
  s.b2 = (T)beta2;
  s.omb2 = (T)(1.0 - beta2);
  s.neg_step = (T)(-(lr / bc1));
  s.eps = (T)eps;
  s.bc2 = (T)bc2_sqrt;
  return s;
}
// one element of PyTorch's single-tensor Adam/AdamW, operation by operation
template <typename T>
__device__ __forceinline__ void adam_element(int64_t i, T *p, const T *g, T *m, T *v, T *vmax,
                                             const AdamScalars<T> &s, int use_wd, int maximize,
                                             int decoupled) {
  T gi = maximize ? -g[i] : g[i];
  T pi = p[i];
  if (decoupled) pi = pi * s.decay;
  else if (use_wd) gi = gi + s.wd * pi;
  T mi = m[i] * s.b1 + s.omb1 * gi;
  T vi = v[i] * s.b2 + s.omb2 * gi * gi;
  m[i] = mi;
  v[i] = vi;
  T second = vi;
  if (vmax) {
    if (vi > vmax[i] || vi != vi) vmax[i] = vi;
    second = vmax[i];
  }
  T denom = sqrt(second) / s.bc2 + s.eps;
  p[i] = pi + s.neg_step * mi / denom;
}

// The cached chunk table of an optimiser's parameter list (fsvc_gpu_adam_plan): the chunks, then
// one gradient pointer per tensor (rewritten by set_pointers_kernel at every step, so the table
// itself is uploaded only when the list changes), then one step-counter pointer per tensor
// (capturable mode: the counters live on the device).
struct PlanChunk {
  void *p, *m, *v, *vmax;
  int64_t start, n, tensor;
};
constexpr int kPtrBatch = 128;  // pointers per set_pointers launch: ~1 KiB of kernel parameters
struct PtrBatch {
  const void *p[kPtrBatch];
  int n;
};

// The pointers travel as kernel parameters, which a captured graph keeps by value: no host
// memory is read at replay time.
__global__ void set_pointers_kernel(const void **dst, PtrBatch b) {
  if ((int)threadIdx.x < b.n) dst[threadIdx.x] = b.p[threadIdx.x];
}

__global__ void step_increment_kernel(double *const *steps, int64_t n) {
  FSVC_GRID_LOOP(i, n) { *steps[i] += 1.0; }
}

// steps != NULL: the step count comes from the (already incremented) device counter of the
// chunk's tensor, else it is `step`; lr_dev != NULL: the learning rate is read on the device. Both
// make a replayed graph follow the counters and the rate instead of the values seen at capture.
// The bias corrections are computed here in both cases: the device's pow() and the host's may
// differ in the last bit, and capturable and default steps must give the same parameters.
template <typename T>
__global__ void adam_plan_kernel(const PlanChunk *chunks, const void *const *grads, double *const *steps,
                                 const double *lr_dev, double lr, double beta1, double beta2, double eps,
                                 double wd, double step, int maximize, int decoupled) {
  PlanChunk c = chunks[blockIdx.x];
  if (lr_dev) lr = *lr_dev;
  if (steps) step = *steps[c.tensor];
  const double bc1 = 1.0 - pow(beta1, step);
  const double bc2_sqrt = sqrt(1.0 - pow(beta2, step));
  const AdamScalars<T> s = adam_scalars<T>(lr, beta1, beta2, eps, wd, bc1, bc2_sqrt);
  const T *g = (const T *)grads[c.tensor];
  for (int64_t j = threadIdx.x; j < c.n; j += blockDim.x)
    adam_element<T>(c.start + j, (T *)c.p, g, (T *)c.m, (T *)c.v, (T *)c.vmax, s, wd != 0, maximize,
                    decoupled);
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

// clip_grad_norm over a whole gradient list in a few launches. The tensors travel as kernel
// parameters in batches of kClipBatch (pointer, size, first block), so nothing is uploaded and a
// launch can be captured into a graph. Each block sums the squares of one kClipChunk-element slice
// of one tensor in double and writes its own partial; one block then adds the partials in a fixed
// order, so the norm does not depend on the order blocks run in (an atomicAdd per block would).
constexpr int kClipBatch = 48;        // tensors per launch: ~1.2 KiB of kernel parameters
constexpr int64_t kClipChunk = 16384; // elements per block
struct ClipBatch {
  void *p[kClipBatch];
  int64_t n[kClipBatch];
  int64_t first_block[kClipBatch + 1];  // block ranges of the tensors within this launch
  int count;
};

__device__ inline int clip_tensor_of(const ClipBatch &b, int64_t block) {
  int t = 0;
  while (t + 1 < b.count && b.first_block[t + 1] <= block) t++;
  return t;
}

template <typename T>
__global__ void sumsq_multi_kernel(ClipBatch b, double *partials) {
  __shared__ double shm[kThreads];
  int t = clip_tensor_of(b, blockIdx.x);
  const T *x = (const T *)b.p[t];
  int64_t start = (blockIdx.x - b.first_block[t]) * kClipChunk;
  int64_t end = start + kClipChunk < b.n[t] ? start + kClipChunk : b.n[t];
  double s = 0;
  for (int64_t i = start + threadIdx.x; i < end; i += blockDim.x) {
    double v = (double)x[i];
    s += v * v;
  }
  shm[threadIdx.x] = s;
  __syncthreads();
  for (int k = blockDim.x / 2; k > 0; k >>= 1) {
    if ((int)threadIdx.x < k) shm[threadIdx.x] += shm[threadIdx.x + k];
    __syncthreads();
  }
  if (threadIdx.x == 0) partials[blockIdx.x] = shm[0];
}

// one block: *total_sq = the sum of n partials, in a fixed order
__global__ void sum_partials_kernel(const double *partials, int64_t n, double *total_sq) {
  __shared__ double shm[kThreads];
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += partials[i];
  shm[threadIdx.x] = s;
  __syncthreads();
  for (int k = blockDim.x / 2; k > 0; k >>= 1) {
    if ((int)threadIdx.x < k) shm[threadIdx.x] += shm[threadIdx.x + k];
    __syncthreads();
  }
  if (threadIdx.x == 0) *total_sq = shm[0];
}

template <typename T>
__global__ void scale_multi_kernel(ClipBatch b, const double *total_sq, double max_norm) {
  double coef = max_norm / (sqrt(*total_sq) + 1e-6);
  if (coef >= 1.0) return;
  int t = clip_tensor_of(b, blockIdx.x);
  T *x = (T *)b.p[t];
  int64_t start = (blockIdx.x - b.first_block[t]) * kClipChunk;
  int64_t end = start + kClipChunk < b.n[t] ? start + kClipChunk : b.n[t];
  for (int64_t i = start + threadIdx.x; i < end; i += blockDim.x) x[i] = (T)((double)x[i] * coef);
}

// the batches of a gradient list (empty tensors left out); returns the number of blocks in all
static int64_t clip_batches(void *const *bufs, const int64_t *ns, int n_bufs, ClipBatch **out, int *n_out) {
  int nb = 0;
  ClipBatch *batches = (ClipBatch *)calloc((size_t)(n_bufs / kClipBatch + 1), sizeof(ClipBatch));
  *out = batches;
  if (!batches) return -1;
  int64_t blocks = 0;
  for (int i = 0; i < n_bufs; i++) {
    if (ns[i] == 0) continue;
    ClipBatch *b = &batches[nb];
    if (b->count == kClipBatch) b = &batches[++nb];
    int64_t first = b->count ? b->first_block[b->count] : 0;
    b->p[b->count] = bufs[i];
    b->n[b->count] = ns[i];
    b->first_block[b->count] = first;
    b->first_block[b->count + 1] = first + (ns[i] + kClipChunk - 1) / kClipChunk;
    b->count++;
    blocks += (ns[i] + kClipChunk - 1) / kClipChunk;
  }
  *n_out = batches[0].count ? nb + 1 : 0;
  return blocks;
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

static int64_t count_chunks(const fsvc_gpu_adam_tensor *list, int n_tensors) {
  int64_t n_chunks = 0;
  for (int t = 0; t < n_tensors; t++) n_chunks += (list[t].n + kChunk - 1) / kChunk;
  return n_chunks;
}

extern "C" int fsvc_gpu_adam_plan_upload(const fsvc_gpu_adam_tensor *list, double *const *steps, int n_tensors,
                                         void **dev_out, size_t *bytes_out, int64_t *chunks_out) {
  *dev_out = NULL;
  *bytes_out = 0;
  *chunks_out = 0;
  int64_t n_chunks = count_chunks(list, n_tensors);
  size_t chunk_bytes = sizeof(PlanChunk) * (size_t)n_chunks;
  size_t bytes = chunk_bytes + 2 * sizeof(void *) * (size_t)n_tensors;
  if (bytes == 0) return 0;
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream(), &status) == cudaSuccess && status != cudaStreamCaptureStatusNone) {
    fsvc_set_error("adam: the optimiser's parameter table must be built before a CUDA graph capture "
                   "(the parameters, their state or the set with gradients changed since the warm-up)");
    return -1;
  }
  unsigned char *host = (unsigned char *)calloc(1, bytes);
  if (!host) return fsvc_gpu_check((int)cudaErrorMemoryAllocation, "adam");
  PlanChunk *chunks = (PlanChunk *)host;
  double **step_ptrs = (double **)(host + chunk_bytes + sizeof(void *) * (size_t)n_tensors);
  int64_t c = 0;
  for (int t = 0; t < n_tensors; t++) {
    for (int64_t s = 0; s < list[t].n; s += kChunk) {
      chunks[c].p = list[t].param;
      chunks[c].m = list[t].exp_avg;
      chunks[c].v = list[t].exp_avg_sq;
      chunks[c].vmax = list[t].max_exp_avg_sq;
      chunks[c].start = s;
      chunks[c].n = list[t].n - s < kChunk ? list[t].n - s : kChunk;
      chunks[c].tensor = t;
      c++;
    }
    step_ptrs[t] = steps ? steps[t] : NULL;
  }
  void *dev = fsvc_gpu_alloc(0, bytes);
  if (!dev) { free(host); return -1; }
  int rc = fsvc_gpu_check((int)cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, stream()), "adam");
  free(host); /* a copy from pageable memory has read it when cudaMemcpyAsync returns */
  if (rc != 0) { fsvc_gpu_release(NULL, dev, bytes); return -1; }
  *dev_out = dev;
  *bytes_out = bytes;
  *chunks_out = n_chunks;
  return 0;
}

extern "C" int fsvc_gpu_adam_plan_launch(fsvc_dtype dt, void *dev, int64_t n_chunks, int n_tensors,
                                         const void *const *grads, int capturable, const double *lr_dev,
                                         double lr, double beta1, double beta2, double eps, double wd,
                                         int64_t step, int maximize, int decoupled) {
  if (n_chunks == 0 || n_tensors == 0) return 0;
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (!capturable && cudaStreamIsCapturing(stream(), &status) == cudaSuccess &&
      status != cudaStreamCaptureStatusNone) {
    /* the bias corrections would be frozen at this step's values in every replay */
    fsvc_set_error("adam: a CUDA graph capture of a step with capturable = false would replay this "
                   "step's bias corrections; make the optimiser with capturable = true");
    return -1;
  }
  PlanChunk *chunks = (PlanChunk *)dev;
  const void **dev_grads = (const void **)(chunks + n_chunks);
  double *const *dev_steps = (double *const *)(dev_grads + n_tensors);
  int rc = 0;
  for (int first = 0; first < n_tensors && rc == 0; first += kPtrBatch) {
    PtrBatch b;
    b.n = n_tensors - first < kPtrBatch ? n_tensors - first : kPtrBatch;
    for (int i = 0; i < kPtrBatch; i++) b.p[i] = i < b.n ? grads[first + i] : NULL;
    FSVC_LAUNCH(set_pointers_kernel, 1, kPtrBatch, 0, stream())(dev_grads + first, b);
    rc = fsvc_gpu_check_launch("adam");
  }
  if (rc == 0 && capturable) {
    FSVC_LAUNCH(step_increment_kernel, blocks_for(n_tensors), kThreads, 0, stream())(dev_steps, (int64_t)n_tensors);
    rc = fsvc_gpu_check_launch("adam");
  }
  for (int64_t first = 0; first < n_chunks && rc == 0; first += 65535) {  // grid.x limit per launch
    unsigned nb = (unsigned)(n_chunks - first < 65535 ? n_chunks - first : 65535);
    FSVC_DISPATCH_FLOAT(dt, FSVC_LAUNCH(adam_plan_kernel<T>, nb, kThreads, 0, stream())(
                                chunks + first, (const void *const *)dev_grads, capturable ? dev_steps : NULL,
                                lr_dev, lr, beta1, beta2, eps, wd, (double)step, maximize, decoupled));
    rc = fsvc_gpu_check_launch("adam");
  }
  return rc;
}

// A one-shot step (no cached table): the plan's table built for this call, used once, released to
// the stream's cache (its next user is ordered after these kernels on the same stream).
extern "C" int fsvc_gpu_adam_launch(fsvc_dtype dt, const fsvc_gpu_adam_tensor *list, int n_tensors,
                                    double lr, double beta1, double beta2, double eps, double wd,
                                    int64_t step, int maximize, int decoupled) {
  void *dev = NULL;
  size_t bytes = 0;
  int64_t n_chunks = 0;
  if (fsvc_gpu_adam_plan_upload(list, NULL, n_tensors, &dev, &bytes, &n_chunks) != 0) return -1;
  if (!dev) return 0;
  const void **grads = (const void **)malloc(sizeof(void *) * (size_t)(n_tensors > 0 ? n_tensors : 1));
  int rc = grads ? 0 : fsvc_gpu_check((int)cudaErrorMemoryAllocation, "adam");
  for (int t = 0; rc == 0 && t < n_tensors; t++) grads[t] = list[t].grad;
  if (rc == 0)
    rc = fsvc_gpu_adam_plan_launch(dt, dev, n_chunks, n_tensors, grads, 0, NULL, lr, beta1, beta2, eps,
                                   wd, step, maximize, decoupled);
  free(grads);
  fsvc_gpu_release(NULL, dev, bytes);
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
                                              double max_norm, double *norm, double *sum_sq_out) {
  /* sum_sq_out (device memory): the sum of squares stays there and nothing is read back, so the
   * call does not wait for the device and can be captured into a CUDA graph */
  ClipBatch *batches = NULL;
  int n_batches = 0;
  int64_t blocks = clip_batches(bufs, ns, n_bufs, &batches, &n_batches);
  if (blocks < 0) return fsvc_gpu_check((int)cudaErrorMemoryAllocation, "clip_grad_norm");
  double *acc = sum_sq_out ? sum_sq_out : (double *)fsvc_gpu_alloc(0, sizeof(double));
  double *partials = blocks > 0 ? (double *)fsvc_gpu_alloc(0, sizeof(double) * (size_t)blocks) : NULL;
  int rc = acc && (blocks == 0 || partials) ? 0 : -1;
  if (rc == 0 && blocks == 0)
    rc = fsvc_gpu_check((int)cudaMemsetAsync(acc, 0, sizeof(double), stream()), "clip_grad_norm");
  int64_t done = 0;
  for (int k = 0; k < n_batches && rc == 0; k++) {
    const ClipBatch &b = batches[k];
    FSVC_DISPATCH_FLOAT(dt, FSVC_LAUNCH(sumsq_multi_kernel<T>, (unsigned)b.first_block[b.count], kThreads, 0,
                                        stream())(b, partials + done));
    rc = fsvc_gpu_check_launch("clip_grad_norm");
    done += b.first_block[b.count];
  }
  if (rc == 0 && blocks > 0) {
    FSVC_LAUNCH(sum_partials_kernel, 1, kThreads, 0, stream())(partials, blocks, acc);
    rc = fsvc_gpu_check_launch("clip_grad_norm");
  }
  for (int k = 0; k < n_batches && rc == 0; k++) {
    const ClipBatch &b = batches[k];
    FSVC_DISPATCH_FLOAT(dt, FSVC_LAUNCH(scale_multi_kernel<T>, (unsigned)b.first_block[b.count], kThreads, 0,
                                        stream())(b, acc, max_norm));
    rc = fsvc_gpu_check_launch("clip_grad_norm");
  }
  free(batches);
  /* stream-ordered: the partials' next user runs after these kernels */
  if (partials) fsvc_gpu_release(NULL, partials, sizeof(double) * (size_t)blocks);
  if (sum_sq_out || !acc) return rc;
  double sq = 0;
  if (rc == 0) rc = fsvc_gpu_check((int)cudaMemcpyAsync(&sq, acc, sizeof sq, cudaMemcpyDeviceToHost, stream()), "clip_grad_norm");
  if (rc == 0) rc = fsvc_gpu_check((int)cudaStreamSynchronize(stream()), "clip_grad_norm");
  fsvc_gpu_release(NULL, acc, sizeof(double));
  if (rc == 0 && norm) *norm = sqrt(sq);
  return rc;
}
