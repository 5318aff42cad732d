// CPU emulation of the CUDA runtime (FSVC_CUDA=EMULATE): see include/cuda_runtime.h for why.
//
// Device memory: every cudaMalloc is its own mapping, [guard page][pages][guard page], with the
// allocation placed at the end of its pages (256-byte aligned, as cudaMalloc's are), so a kernel
// that runs past the end faults. The pages are PROT_NONE except while the emulated device uses
// them (a kernel, a copy, a memset, the emulated cuBLAS): host code that dereferences a device
// pointer faults, and the SIGSEGV handler says what happened and where (with a backtrace).
//
// Execution: everything is synchronous on the calling thread; streams and events only order and
// time what already ran. Stream capture records launches, copies and memsets as closures that a
// graph replays; the calls that capture forbids on a GPU (cudaMalloc, synchronous copies,
// synchronisations, use of the legacy stream) fail and invalidate the capture as they do there.
#include <cublas_v2.h>
#include <cudnn.h>
#include <cufft.h>
#include <cuda_runtime.h>

#include <errno.h>
#include <execinfo.h>
#include <map>
#include <mutex>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <string>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include <vector>

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace {

const size_t kPage = 4096;
size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

thread_local cudaError_t last_error = cudaSuccess;
cudaError_t fail(cudaError_t e) {
  last_error = e;
  return e;
}

// ---- device memory ------------------------------------------------------------------------------
struct Allocation {
  char *map;      // the whole mapping, guard pages included
  size_t map_len;
  char *pages;    // the accessible pages
  size_t pages_len;
  char *user;     // what cudaMalloc returned
  size_t size;
  int open;       // its pages are accessible during the current device section
};

std::recursive_mutex device_mutex;  // one emulated device: kernels and copies run one at a time
std::map<uintptr_t, Allocation> allocations;  // keyed by user address
size_t allocated_bytes = 0;
int device_depth = 0;
const char *device_what = "";
bool protect = true;
size_t memory_limit = (size_t)16 << 30;
bool initialised = false;
// FSVC_EMU_ORDER=reverse runs blocks, and threads within a block, last first: a kernel whose result
// depends on the order its threads run in (a race on a GPU) then gives another answer, which the
// CPU-vs-CUDA specs see. CI runs the CUDA spec both ways.
bool reverse_order = false;

void on_segv(int sig, siginfo_t *info, void *ctx);

void init_once() {
  if (initialised) return;
  initialised = true;
  const char *p = getenv("FSVC_EMU_PROTECT");
  if (p && strcmp(p, "0") == 0) protect = false;
  const char *o = getenv("FSVC_EMU_ORDER");
  if (o && strcmp(o, "reverse") == 0) reverse_order = true;
  const char *m = getenv("FSVC_EMU_MEMORY_MB");
  if (m && atol(m) > 0) memory_limit = (size_t)atol(m) << 20;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &sa, nullptr);
}

// the allocation whose mapping (guard pages included) holds p, or null
Allocation *find_mapping(const void *p) {
  uintptr_t a = (uintptr_t)p;
  auto it = allocations.upper_bound(a);  // the first allocation starting after p ...
  if (it != allocations.end() && a >= (uintptr_t)it->second.map) return &it->second;  // its guard page
  if (it == allocations.begin()) return nullptr;
  --it;  // ... or the one before it
  Allocation &al = it->second;
  return a < (uintptr_t)al.map + al.map_len ? &al : nullptr;
}

// the live allocation holding [p, p + n), or null
const Allocation *find_range(const void *p, size_t n) {
  uintptr_t a = (uintptr_t)p;
  auto it = allocations.upper_bound(a);
  if (it == allocations.begin()) return nullptr;
  --it;
  const Allocation &al = it->second;
  if (a >= (uintptr_t)al.user && a + n <= (uintptr_t)al.user + al.size) return &al;
  return nullptr;
}

// Pages open lazily: entering the device opens nothing; the first access to a protected allocation
// from device code faults, and the handler opens that allocation and lets the access retry. Leaving
// closes what was opened. So a launch costs two mprotect calls per allocation it touches, instead of
// two per live allocation.
void close_opened() {
  if (!protect) return;
  for (auto &kv : allocations)
    if (__atomic_exchange_n(&kv.second.open, 0, __ATOMIC_ACQ_REL)) mprotect(kv.second.pages, kv.second.pages_len, PROT_NONE);
}

void on_segv(int sig, siginfo_t *info, void *ctx) {
  (void)sig;
  (void)ctx;
  char msg[512];
  Allocation *al = find_mapping(info->si_addr);
  char *a = (char *)info->si_addr;
  bool in_pages = al && a >= al->pages && a < al->pages + al->pages_len;
  if (al && device_depth > 0 && in_pages && protect) {
    // device code touching a closed allocation: open it and retry the access (threads of the
    // emulated cuBLAS may race here; opening twice is harmless)
    mprotect(al->pages, al->pages_len, PROT_READ | PROT_WRITE);
    __atomic_store_n(&al->open, 1, __ATOMIC_RELEASE);
    return;
  }
  if (al && device_depth == 0)
    snprintf(msg, sizeof msg,
             "fsvc CUDA emulation: host code accessed device memory at %p (allocation of %zu bytes "
             "at %p): a device pointer was dereferenced on the host\n",
             info->si_addr, al->size, (void *)al->user);
  else if (al)
    snprintf(msg, sizeof msg,
             "fsvc CUDA emulation: %s accessed %p, outside its allocation of %zu bytes at %p (out "
             "of bounds)\n",
             device_what, info->si_addr, al->size, (void *)al->user);
  else
    snprintf(msg, sizeof msg, "fsvc CUDA emulation: segmentation fault at %p%s%s\n", info->si_addr,
             device_depth ? " in " : "", device_depth ? device_what : "");
  ssize_t w = write(2, msg, strlen(msg));
  (void)w;
  void *frames[48];
  int n = backtrace(frames, 48);
  backtrace_symbols_fd(frames, n, 2);
  signal(SIGSEGV, SIG_DFL);  // returning re-executes the access, which now dumps core
}

// ---- streams, capture ---------------------------------------------------------------------------
}  // namespace

struct fsvc_emu_stream {
  unsigned flags = 0;
  bool capturing = false;
  bool invalidated = false;
  std::vector<std::function<void()>> captured;
};
struct fsvc_emu_event {
  double t = 0;
  bool recorded = false;
};
struct fsvc_emu_graph {
  std::vector<std::function<void()>> nodes;
};
struct fsvc_emu_graph_exec {
  std::vector<std::function<void()>> nodes;
};

namespace {
std::vector<fsvc_emu_stream *> capturing_streams;

bool any_capture() { return !capturing_streams.empty(); }
void invalidate_captures() {
  for (auto *s : capturing_streams) s->invalidated = true;
}
// a call that capture forbids: fails, and invalidates the captures in progress
cudaError_t refuse_during_capture() {
  invalidate_captures();
  return fail(cudaErrorStreamCaptureUnsupported);
}

double now_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// Work on a stream: run now, or record while the stream is being captured. Work on the legacy
// stream while a capture is in progress is an error on a GPU (it would synchronise with it).
cudaError_t enqueue(cudaStream_t s, std::function<void()> work) {
  if (s && s->capturing) {
    s->captured.push_back(std::move(work));
    return cudaSuccess;
  }
  if (!s && any_capture()) {
    invalidate_captures();
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  work();
  return cudaSuccess;
}

// ---- fibers for blocks that use __syncthreads ---------------------------------------------------
enum FiberState { kReady, kAtBarrier, kDone };
const size_t kFiberStack = 256 * 1024;
thread_local ucontext_t scheduler_ctx;
thread_local std::vector<ucontext_t> fiber_ctx;
thread_local std::vector<char *> fiber_stack;
thread_local std::vector<int> fiber_state;
thread_local int current_fiber = -1;
thread_local const std::function<void()> *fiber_body = nullptr;
thread_local bool barrier_reached = false;
thread_local const char *running_kernel = "";

void fiber_main() {
  (*fiber_body)();
  fiber_state[current_fiber] = kDone;
  // returning resumes uc_link, the scheduler
}

void set_thread_index(unsigned t) {
  threadIdx.x = t % blockDim.x;
  threadIdx.y = (t / blockDim.x) % blockDim.y;
  threadIdx.z = t / (blockDim.x * blockDim.y);
}

void run_block_fibers(const std::function<void()> &body, unsigned n) {
  if (fiber_ctx.size() < n) {
    fiber_ctx.resize(n);
    while (fiber_stack.size() < n) fiber_stack.push_back((char *)malloc(kFiberStack));
  }
  fiber_state.assign(n, kReady);
  fiber_body = &body;
  for (unsigned t = 0; t < n; t++) {
    getcontext(&fiber_ctx[t]);
    fiber_ctx[t].uc_stack.ss_sp = fiber_stack[t];
    fiber_ctx[t].uc_stack.ss_size = kFiberStack;
    fiber_ctx[t].uc_link = &scheduler_ctx;
    makecontext(&fiber_ctx[t], fiber_main, 0);
  }
  unsigned done = 0;
  bool reported = false;
  while (done < n) {
    // one round: every thread runs to its next barrier or to its end
    unsigned arrived = 0, finished = 0;
    for (unsigned i = 0; i < n; i++) {
      unsigned t = reverse_order ? n - 1 - i : i;
      if (fiber_state[t] == kDone) continue;
      fiber_state[t] = kReady;
      current_fiber = (int)t;
      set_thread_index(t);
      swapcontext(&scheduler_ctx, &fiber_ctx[t]);
      if (fiber_state[t] == kDone) {
        done++;
        finished++;
      } else {
        arrived++;
      }
    }
    // Some threads waiting at a barrier while others of the block ended without reaching it: a
    // __syncthreads in code the block does not run uniformly, which may hang a GPU or let the
    // waiting threads go on early. Reported once per block; the waiting threads still finish.
    if (arrived > 0 && finished > 0 && !reported) {
      fprintf(stderr,
              "fsvc CUDA emulation: %s: block (%u,%u,%u): %u threads wait at __syncthreads while %u ended "
              "without reaching it (a barrier in divergent code)\n",
              running_kernel, blockIdx.x, blockIdx.y, blockIdx.z, arrived, finished);
      fail(cudaErrorLaunchFailure);
      reported = true;
    }
  }
  current_fiber = -1;
}

void run_grid(const fsvc_emu::LaunchConfig &cfg, const std::function<void()> &body, int *barrier_use) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  fsvc_emu_enter_device(cfg.kernel_name);
  gridDim = cfg.grid;
  blockDim = cfg.block;
  running_kernel = cfg.kernel_name;
  unsigned n = cfg.block.x * cfg.block.y * cfg.block.z;
  bool fibers = *barrier_use != fsvc_emu::kBarrierNone;
  barrier_reached = false;
  uint64_t n_blocks = (uint64_t)cfg.grid.x * cfg.grid.y * cfg.grid.z;
  for (uint64_t i = 0; i < n_blocks; i++) {
    uint64_t b = reverse_order ? n_blocks - 1 - i : i;
    blockIdx.x = (unsigned)(b % cfg.grid.x);
    blockIdx.y = (unsigned)(b / cfg.grid.x % cfg.grid.y);
    blockIdx.z = (unsigned)(b / ((uint64_t)cfg.grid.x * cfg.grid.y));
    if (fibers) {
      run_block_fibers(body, n);
    } else {
      for (unsigned k = 0; k < n; k++) {
        set_thread_index(reverse_order ? n - 1 - k : k);
        body();
      }
    }
  }
  if (*barrier_use == fsvc_emu::kBarrierUnknown)
    *barrier_use = barrier_reached ? fsvc_emu::kBarrierUsed : fsvc_emu::kBarrierNone;
  fsvc_emu_leave_device();
}

}  // namespace

void fsvc_emu::syncthreads() {
  if (current_fiber < 0) {
    fprintf(stderr,
            "fsvc CUDA emulation: %s reached __syncthreads in a launch run without fibers (its "
            "first launch never did); the emulator cannot suspend it\n",
            running_kernel);
    abort();
  }
  barrier_reached = true;
  fiber_state[current_fiber] = kAtBarrier;
  swapcontext(&fiber_ctx[current_fiber], &scheduler_ctx);
}

// launches per kernel name (the host's launches: a capture counts, a graph replay does not), for
// finding the kernels a step launches most (fsvc.cuda.launch_counts().by_kernel)
static std::mutex count_mutex;
static std::map<std::string, int64_t> launches_by_kernel;

extern "C" void *fsvc_gpu_count_launch(void *stream);

extern "C" int fsvc_emu_kernel_count(int i, const char **name, int64_t *count) {
  std::lock_guard<std::mutex> lock(count_mutex);
  if (i < 0 || (size_t)i >= launches_by_kernel.size()) return 0;
  auto it = launches_by_kernel.begin();
  std::advance(it, i);
  *name = it->first.c_str();
  *count = it->second;
  return 1;
}

void fsvc_emu::submit(const LaunchConfig &cfg, std::function<void()> body, int *barrier_use) {
  fsvc_gpu_count_launch(cfg.stream);
  {
    std::lock_guard<std::mutex> lock(count_mutex);
    launches_by_kernel[cfg.kernel_name]++;
  }
  unsigned n = cfg.block.x * cfg.block.y * cfg.block.z;
  if (cfg.block.x == 0 || cfg.block.y == 0 || cfg.block.z == 0 || n > 1024 || cfg.block.z > 64 ||
      cfg.grid.x == 0 || cfg.grid.y == 0 || cfg.grid.z == 0 || cfg.grid.y > 65535 ||
      cfg.grid.z > 65535 || cfg.grid.x > 2147483647u || cfg.shared_bytes > 48 * 1024) {
    fprintf(stderr, "fsvc CUDA emulation: %s launched with grid (%u,%u,%u) block (%u,%u,%u)\n",
            cfg.kernel_name, cfg.grid.x, cfg.grid.y, cfg.grid.z, cfg.block.x, cfg.block.y, cfg.block.z);
    fail(cudaErrorInvalidConfiguration);
    return;
  }
  LaunchConfig c = cfg;
  enqueue(cfg.stream, [c, body, barrier_use]() { run_grid(c, body, barrier_use); });
}

cudaError_t fsvc_emu::enqueue_work(cudaStream_t stream, std::function<void()> work) {
  return enqueue(stream, std::move(work));
}

bool fsvc_emu::check_kernel_pointer(const char *kernel, int index, const void *p) {
  if (!p || fsvc_emu_is_device_pointer(p)) return true;
  fprintf(stderr,
          "fsvc CUDA emulation: %s: argument %d is the host pointer %p (a kernel can only use "
          "device memory)\n",
          kernel, index, p);
  fail(cudaErrorIllegalAddress);
  return false;
}

extern "C" {

int fsvc_emu_is_device_pointer(const void *p) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  return find_mapping(p) != nullptr;
}

void fsvc_emu_set_reverse_order(int reverse) {
  init_once();
  reverse_order = reverse != 0;
}

int fsvc_emu_is_device_range(const void *p, size_t n) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  return find_range(p, n) != nullptr;
}

// The emulated cuBLAS, for gpu/ops_nn.c, which otherwise opens the real one with dlopen. It is
// here, in the file every emulated build links, so the weak reference there always resolves.
void *fsvc_gpu_emulated_cublas(const char *name) {
  struct { const char *name; void *fn; } table[] = {
    {"cublasCreate_v2", (void *)&cublasCreate_v2},
    {"cublasSetStream_v2", (void *)&cublasSetStream_v2},
    {"cublasDgemmStridedBatched", (void *)&cublasDgemmStridedBatched},
    {"cublasGemmStridedBatchedEx", (void *)&cublasGemmStridedBatchedEx},
    {"cublasGetStatusString", (void *)&cublasGetStatusString},
  };
  for (auto &e : table)
    if (strcmp(e.name, name) == 0) return e.fn;
  return nullptr;
}

// The emulated cuFFT (emu_fft.cpp), for gpu/ops_fft.c, which otherwise opens libcufft with dlopen.
void *fsvc_gpu_emulated_cufft(const char *name) {
  struct { const char *name; void *fn; } table[] = {
    {"cufftPlanMany", (void *)&cufftPlanMany},
    {"cufftSetStream", (void *)&cufftSetStream},
    {"cufftDestroy", (void *)&cufftDestroy},
    {"cufftExecR2C", (void *)&cufftExecR2C},
    {"cufftExecC2R", (void *)&cufftExecC2R},
    {"cufftExecD2Z", (void *)&cufftExecD2Z},
    {"cufftExecZ2D", (void *)&cufftExecZ2D},
  };
  for (auto &e : table)
    if (strcmp(e.name, name) == 0) return e.fn;
  return nullptr;
}

// The emulated cuDNN convolutions (emu_dnn.cpp), for gpu/conv_cudnn.c, which otherwise opens
// libcudnn with dlopen.
void *fsvc_gpu_emulated_cudnn(const char *name) {
  struct { const char *name; void *fn; } table[] = {
    {"cudnnGetVersion", (void *)&cudnnGetVersion},
    {"cudnnGetErrorString", (void *)&cudnnGetErrorString},
    {"cudnnCreate", (void *)&cudnnCreate},
    {"cudnnSetStream", (void *)&cudnnSetStream},
    {"cudnnCreateTensorDescriptor", (void *)&cudnnCreateTensorDescriptor},
    {"cudnnSetTensor4dDescriptor", (void *)&cudnnSetTensor4dDescriptor},
    {"cudnnDestroyTensorDescriptor", (void *)&cudnnDestroyTensorDescriptor},
    {"cudnnCreateFilterDescriptor", (void *)&cudnnCreateFilterDescriptor},
    {"cudnnSetFilter4dDescriptor", (void *)&cudnnSetFilter4dDescriptor},
    {"cudnnDestroyFilterDescriptor", (void *)&cudnnDestroyFilterDescriptor},
    {"cudnnCreateConvolutionDescriptor", (void *)&cudnnCreateConvolutionDescriptor},
    {"cudnnSetConvolution2dDescriptor", (void *)&cudnnSetConvolution2dDescriptor},
    {"cudnnSetConvolutionGroupCount", (void *)&cudnnSetConvolutionGroupCount},
    {"cudnnSetConvolutionMathType", (void *)&cudnnSetConvolutionMathType},
    {"cudnnDestroyConvolutionDescriptor", (void *)&cudnnDestroyConvolutionDescriptor},
    {"cudnnGetConvolutionForwardAlgorithm_v7", (void *)&cudnnGetConvolutionForwardAlgorithm_v7},
    {"cudnnGetConvolutionBackwardDataAlgorithm_v7", (void *)&cudnnGetConvolutionBackwardDataAlgorithm_v7},
    {"cudnnGetConvolutionBackwardFilterAlgorithm_v7", (void *)&cudnnGetConvolutionBackwardFilterAlgorithm_v7},
    {"cudnnGetConvolutionForwardWorkspaceSize", (void *)&cudnnGetConvolutionForwardWorkspaceSize},
    {"cudnnGetConvolutionBackwardDataWorkspaceSize", (void *)&cudnnGetConvolutionBackwardDataWorkspaceSize},
    {"cudnnGetConvolutionBackwardFilterWorkspaceSize", (void *)&cudnnGetConvolutionBackwardFilterWorkspaceSize},
    {"cudnnConvolutionForward", (void *)&cudnnConvolutionForward},
    {"cudnnConvolutionBackwardData", (void *)&cudnnConvolutionBackwardData},
    {"cudnnConvolutionBackwardFilter", (void *)&cudnnConvolutionBackwardFilter},
  };
  for (auto &e : table)
    if (strcmp(e.name, name) == 0) return e.fn;
  return nullptr;
}

void fsvc_emu_enter_device(const char *what) {
  device_mutex.lock();
  if (device_depth++ == 0) device_what = what;
}

void fsvc_emu_leave_device(void) {
  if (--device_depth == 0) close_opened();
  device_mutex.unlock();
}

// ---- device queries and errors -------------------------------------------------------------------
cudaError_t cudaGetDeviceCount(int *count) {
  init_once();
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device) {
  init_once();
  if (device != 0) return fail(cudaErrorInvalidDevice);
  memset(prop, 0, sizeof *prop);
  snprintf(prop->name, sizeof prop->name, "fsvc CPU emulation of a CUDA device");
  prop->totalGlobalMem = memory_limit;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 1;
  prop->maxThreadsPerBlock = 1024;
  prop->warpSize = 32;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device) {
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }

cudaError_t cudaProfilerStart(void) { return cudaSuccess; }
cudaError_t cudaProfilerStop(void) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize(void) { return any_capture() ? refuse_during_capture() : cudaSuccess; }

cudaError_t cudaGetLastError(void) {
  cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError(void) { return last_error; }

const char *cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureWrongThread: return "cudaErrorStreamCaptureWrongThread";
  }
  return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureWrongThread: return "attempt to terminate a thread-local capture sequence from another thread";
  }
  return "unknown error";
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
  init_once();
  *total_bytes = memory_limit;
  *free_bytes = memory_limit - allocated_bytes;
  return cudaSuccess;
}

// ---- memory ---------------------------------------------------------------------------------------
cudaError_t cudaMalloc(void **p, size_t size) {
  init_once();
  *p = nullptr;
  if (any_capture()) return refuse_during_capture();
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  size_t user_len = round_up(size ? size : 1, 256);
  if (allocated_bytes + user_len > memory_limit) return fail(cudaErrorMemoryAllocation);
  Allocation al;
  al.pages_len = round_up(user_len, kPage);
  al.map_len = al.pages_len + 2 * kPage;
  void *m = mmap(nullptr, al.map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return fail(cudaErrorMemoryAllocation);
  al.map = (char *)m;
  al.pages = al.map + kPage;
  al.user = al.pages + al.pages_len - user_len;
  al.size = size;
  al.open = 0;
  if (!protect) mprotect(al.pages, al.pages_len, PROT_READ | PROT_WRITE);
  allocations[(uintptr_t)al.user] = al;
  allocated_bytes += user_len;
  *p = al.user;
  return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
  if (!p) return cudaSuccess;
  if (any_capture()) return refuse_during_capture();
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  auto it = allocations.find((uintptr_t)p);
  if (it == allocations.end()) {
    fprintf(stderr, "fsvc CUDA emulation: cudaFree(%p) of a pointer cudaMalloc did not return\n", p);
    return fail(cudaErrorInvalidValue);
  }
  allocated_bytes -= round_up(it->second.size ? it->second.size : 1, 256);
  munmap(it->second.map, it->second.map_len);
  allocations.erase(it);
  return cudaSuccess;
}

}  // extern "C"

namespace {
// checks one side of a copy: device memory must lie inside a live allocation, host memory must not
// be device memory
bool copy_side_ok(const void *p, size_t n, bool device, const char *side) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  if (device ? find_range(p, n) != nullptr : find_mapping(p) == nullptr) return true;
  fprintf(stderr, "fsvc CUDA emulation: memcpy %s %p (%zu bytes) is %s\n", side, p, n,
          device ? "not inside a device allocation" : "device memory but the copy kind says host");
  return false;
}

cudaError_t check_copy(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind) {
  if (n == 0) return cudaSuccess;
  bool dst_dev, src_dev;
  switch (kind) {
    case cudaMemcpyHostToHost: dst_dev = false; src_dev = false; break;
    case cudaMemcpyHostToDevice: dst_dev = true; src_dev = false; break;
    case cudaMemcpyDeviceToHost: dst_dev = false; src_dev = true; break;
    case cudaMemcpyDeviceToDevice: dst_dev = true; src_dev = true; break;
    case cudaMemcpyDefault:
      dst_dev = fsvc_emu_is_device_pointer(dst);
      src_dev = fsvc_emu_is_device_pointer(src);
      break;
    default: return fail(cudaErrorInvalidMemcpyDirection);
  }
  if (!copy_side_ok(dst, n, dst_dev, "destination") || !copy_side_ok(src, n, src_dev, "source"))
    return fail(cudaErrorInvalidValue);
  return cudaSuccess;
}

void do_copy(void *dst, const void *src, size_t n) {
  fsvc_emu_enter_device("cudaMemcpy");
  memmove(dst, src, n);
  fsvc_emu_leave_device();
}
}  // namespace

extern "C" {

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind) {
  if (any_capture()) return refuse_during_capture();
  cudaError_t e = check_copy(dst, src, n, kind);
  if (e != cudaSuccess || n == 0) return e;
  do_copy(dst, src, n);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind,
                            cudaStream_t stream) {
  cudaError_t e = check_copy(dst, src, n, kind);
  if (e != cudaSuccess || n == 0) return e;
  if (stream && stream->capturing && (!fsvc_emu_is_device_pointer(dst) || !fsvc_emu_is_device_pointer(src))) {
    // a graph's memcpy node cannot use pageable host memory, which is all fsvc has
    stream->invalidated = true;
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  return enqueue(stream, [dst, src, n]() { do_copy(dst, src, n); });
}

cudaError_t cudaMemset(void *p, int value, size_t n) {
  if (any_capture()) return refuse_during_capture();
  return cudaMemsetAsync(p, value, n, nullptr);
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  if (!copy_side_ok(p, n, true, "memset")) return fail(cudaErrorInvalidValue);
  return enqueue(stream, [p, value, n]() {
    fsvc_emu_enter_device("cudaMemset");
    memset(p, value, n);
    fsvc_emu_leave_device();
  });
}

// ---- streams and events ---------------------------------------------------------------------------
cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
  *s = new fsvc_emu_stream();
  (*s)->flags = flags;
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (!s) return fail(cudaErrorInvalidResourceHandle);
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if ((s && s->capturing) || (!s && any_capture())) return refuse_during_capture();
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags) {
  (void)s;
  (void)flags;
  return e ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags) {
  (void)flags;
  *e = new fsvc_emu_event();
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  if (!e) return fail(cudaErrorInvalidResourceHandle);
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!e) return fail(cudaErrorInvalidResourceHandle);
  return enqueue(s, [e]() {
    e->t = now_ms();
    e->recorded = true;
  });
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (!e) return fail(cudaErrorInvalidResourceHandle);
  if (any_capture()) return refuse_during_capture();
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t e) { return e ? cudaSuccess : fail(cudaErrorInvalidResourceHandle); }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
  if (!start || !end) return fail(cudaErrorInvalidResourceHandle);
  if (!start->recorded || !end->recorded) return fail(cudaErrorInvalidResourceHandle);
  *ms = (float)(end->t - start->t);
  return cudaSuccess;
}

// ---- stream capture and graphs --------------------------------------------------------------------
cudaError_t cudaStreamBeginCapture(cudaStream_t s, enum cudaStreamCaptureMode mode) {
  (void)mode;
  if (!s) return fail(cudaErrorStreamCaptureUnsupported);  // the legacy stream cannot be captured
  if (s->capturing) return fail(cudaErrorInvalidValue);
  s->capturing = true;
  s->invalidated = false;
  s->captured.clear();
  capturing_streams.push_back(s);
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *graph) {
  *graph = nullptr;
  if (!s || !s->capturing) return fail(cudaErrorInvalidValue);
  s->capturing = false;
  for (size_t i = 0; i < capturing_streams.size(); i++)
    if (capturing_streams[i] == s) capturing_streams.erase(capturing_streams.begin() + (long)i);
  if (s->invalidated) {
    s->captured.clear();
    return fail(cudaErrorStreamCaptureInvalidated);
  }
  *graph = new fsvc_emu_graph();
  (*graph)->nodes.swap(s->captured);
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t s, enum cudaStreamCaptureStatus *status) {
  if (!s) *status = cudaStreamCaptureStatusNone;
  else if (s->capturing) *status = s->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive;
  else *status = cudaStreamCaptureStatusNone;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags) {
  (void)flags;
  if (!graph) return fail(cudaErrorInvalidValue);
  *exec = new fsvc_emu_graph_exec();
  (*exec)->nodes = graph->nodes;
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
  if (!exec) return fail(cudaErrorInvalidResourceHandle);
  return enqueue(s, [exec]() {
    for (auto &node : exec->nodes) node();
  });
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

}  // extern "C"
