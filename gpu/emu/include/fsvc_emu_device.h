// Device-side half of the CUDA emulation (C++ only): kernel qualifiers, the thread and block
// indices, __syncthreads, atomics and the launch used by FSVC_LAUNCH in gpu/gpu_common.cuh.
#ifndef FSVC_EMU_DEVICE_H
#define FSVC_EMU_DEVICE_H

#include <functional>
#include <type_traits>
#include <math.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
// One block runs at a time on a host thread, so a static per host thread is the block's memory.
#define __shared__ static thread_local

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;

namespace fsvc_emu {

struct LaunchConfig {
  dim3 grid, block;
  size_t shared_bytes;
  cudaStream_t stream;
  const char *kernel_name;
};

// Barrier use of one kernel instantiation: unknown until its first launch, which runs every block
// as fibers and records whether __syncthreads was reached; barrier-free kernels then run their
// threads as plain calls (fast), the others always as fibers.
enum BarrierUse { kBarrierUnknown = 0, kBarrierNone = 1, kBarrierUsed = 2 };

// Runs (or, while the stream is being captured, records) a grid of `body` calls.
void submit(const LaunchConfig &cfg, std::function<void()> body, int *barrier_use);
void syncthreads();
// Library work on a stream (the emulated cuBLAS's GEMMs and cuFFT's transforms): runs now, or is recorded while the
// stream is being captured, as a kernel would be; fails on the legacy stream during a capture.
cudaError_t enqueue_work(cudaStream_t stream, std::function<void()> work);
// false (and a message, and cudaErrorIllegalAddress as the launch's error) when p is a host pointer
bool check_kernel_pointer(const char *kernel, int index, const void *p);
template <class A> inline bool check_argument(const char *kernel, int index, const A &a) {
  if constexpr (std::is_pointer<A>::value) return check_kernel_pointer(kernel, index, (const void *)a);
  else return true;
}

template <class F> inline int barrier_use_of = kBarrierUnknown;

template <class F> struct BoundKernel {
  LaunchConfig cfg;
  F kernel;
  template <class... A> void operator()(A... args) const {
    int index = 0;
    bool ok = true;
    ((ok = check_argument(cfg.kernel_name, index++, args) && ok), ...);
    if (!ok) return;  // a GPU would fault inside the kernel; the launch reports it instead
    F k = kernel;
    // arguments are copied once here, as a launch copies them to the device's parameter space
    submit(cfg, [k, args...]() { k(args...); }, &barrier_use_of<F>);
  }
};

struct Launch {
  LaunchConfig cfg;
  Launch(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, const char *name)
      : cfg{grid, block, shared_bytes, stream, name} {}
  template <class F> BoundKernel<F> operator%(F kernel) const { return BoundKernel<F>{cfg, kernel}; }
};

}  // namespace fsvc_emu

// kernel<<<grid, block, shared, stream>>>(args) is written FSVC_LAUNCH(kernel, grid, block, shared,
// stream)(args) in gpu/; here it becomes a call of the kernel body for every thread of the grid.
#define FSVC_LAUNCH(kernel, grid, block, shared_bytes, strm)                                         \
  (::fsvc_emu::Launch((grid), (block), (shared_bytes), (strm), #kernel) %                           \
   [](auto... fsvc_emu_args) { kernel(fsvc_emu_args...); })

inline void __syncthreads() { fsvc_emu::syncthreads(); }

// Blocks run one thread at a time, so the atomics are plain read-modify-writes.
template <class T> inline T atomicAdd(T *p, T v) {
  T old = *p;
  *p = old + v;
  return old;
}
template <class T> inline T atomicMax(T *p, T v) {
  T old = *p;
  if (v > old) *p = v;
  return old;
}
template <class T> inline T atomicMin(T *p, T v) {
  T old = *p;
  if (v < old) *p = v;
  return old;
}
template <class T> inline T atomicExch(T *p, T v) {
  T old = *p;
  *p = v;
  return old;
}
template <class T> inline T atomicCAS(T *p, T compare, T v) {
  T old = *p;
  if (old == compare) *p = v;
  return old;
}

template <class T> inline T min(T a, T b) { return b < a ? b : a; }
template <class T> inline T max(T a, T b) { return a < b ? b : a; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }

#endif
