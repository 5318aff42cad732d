/* CUDA runtime glue: device queries (cached; a machine without a GPU or driver answers 0 devices
 * with the runtime's reason), the current stream, events, synchronisation and error messages. */
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "fsvc/error.h"
#include "gpu_internal.h"

#define MAX_DEVICES 16

static pthread_once_t query_once = PTHREAD_ONCE_INIT;
static int n_devices = 0;
static char names[MAX_DEVICES][256];
static char reason[256] = "";

static void query_devices(void) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    snprintf(reason, sizeof reason, "no usable CUDA device or driver (%s: %s)", cudaGetErrorName(e),
             cudaGetErrorString(e));
    (void)cudaGetLastError(); /* clear the sticky-less error so later calls start clean */
    n_devices = 0;
    return;
  }
  if (n == 0) snprintf(reason, sizeof reason, "no CUDA device found");
  n_devices = n < MAX_DEVICES ? n : MAX_DEVICES;
  for (int i = 0; i < n_devices; i++) {
    struct cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, i) == cudaSuccess) snprintf(names[i], sizeof names[i], "%s", p.name);
    else snprintf(names[i], sizeof names[i], "CUDA device %d", i);
  }
}

int fsvc_gpu_device_count(void) {
  pthread_once(&query_once, query_devices);
  return n_devices;
}

const char *fsvc_gpu_device_name(int i) {
  if (i < 0 || i >= fsvc_gpu_device_count()) return NULL;
  return names[i];
}

const char *fsvc_gpu_unavailable_reason(void) {
  fsvc_gpu_device_count();
  return reason;
}

/* One current stream per thread, the legacy default stream (NULL) unless set. */
static _Thread_local cudaStream_t current_stream = NULL;
void *fsvc_gpu_stream(void) { return current_stream; }

static int64_t kernel_launches, library_calls; /* relaxed atomics: counts, not synchronisation */
void *fsvc_gpu_count_launch(void *stream) {
  __atomic_fetch_add(&kernel_launches, 1, __ATOMIC_RELAXED);
  return stream;
}
void fsvc_gpu_count_library_call(void) { __atomic_fetch_add(&library_calls, 1, __ATOMIC_RELAXED); }
void fsvc_gpu_launch_counts(int64_t *kernels, int64_t *library) {
  *kernels = __atomic_load_n(&kernel_launches, __ATOMIC_RELAXED);
  *library = __atomic_load_n(&library_calls, __ATOMIC_RELAXED);
}
void fsvc_gpu_set_stream(void *s) { current_stream = (cudaStream_t)s; }

int fsvc_gpu_check(int code, const char *what) {
  if (code == 0) return 0;
  cudaError_t e = (cudaError_t)code;
  fsvc_set_error("%s: CUDA error %s: %s", what, cudaGetErrorName(e), cudaGetErrorString(e));
  return -1;
}

int fsvc_gpu_check_launch(const char *what) { return fsvc_gpu_check((int)cudaGetLastError(), what); }

/* a profiler started with collection off (ncu --profile-from-start off) records only between
 * these: one step of a benchmark instead of its warm-ups (spec/bench/bench_train.lua --profile) */
int fsvc_gpu_profiler(int on) {
  return fsvc_gpu_check((int)(on ? cudaProfilerStart() : cudaProfilerStop()), on ? "profiler_start" : "profiler_stop");
}

int fsvc_gpu_synchronize(void) {
  if (fsvc_gpu_check((int)cudaDeviceSynchronize(), "synchronize") != 0) return -1;
  return fsvc_gpu_check_index_errors();
}

/* ---- the index-error word (see gpu_internal.h) ---------------------------------------------- */
static int *index_error_word = NULL;
static pthread_mutex_t index_error_lock = PTHREAD_MUTEX_INITIALIZER;
static int index_check_pending = 0;

int *fsvc_gpu_index_error_word(void) {
  pthread_mutex_lock(&index_error_lock);
  if (!index_error_word) {
    /* plain cudaMalloc, once: the caching allocator's blocks come and go, this word stays */
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, sizeof(int));
    if (e == cudaSuccess) e = cudaMemset(p, 0, sizeof(int));
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      pthread_mutex_unlock(&index_error_lock);
      fsvc_set_error("indexing: cannot allocate the device's index-error word (%s)%s", cudaGetErrorString(e),
                     e == cudaErrorStreamCaptureUnsupported ? "; run an index op once before capturing a graph" : "");
      return NULL;
    }
    index_error_word = p;
  }
  index_check_pending = 1;
  pthread_mutex_unlock(&index_error_lock);
  return index_error_word;
}

void fsvc_gpu_index_check_pending(void) {
  pthread_mutex_lock(&index_error_lock);
  if (index_error_word) index_check_pending = 1;
  pthread_mutex_unlock(&index_error_lock);
}

int fsvc_gpu_check_index_errors(void) {
  pthread_mutex_lock(&index_error_lock);
  if (!index_check_pending || !index_error_word) {
    pthread_mutex_unlock(&index_error_lock);
    return 0;
  }
  int code = 0;
  cudaStream_t s = current_stream;
  cudaError_t e = cudaMemcpyAsync(&code, index_error_word, sizeof code, cudaMemcpyDeviceToHost, s);
  if (e == cudaSuccess) e = cudaStreamSynchronize(s);
  if (e == cudaSuccess && code != 0) e = cudaMemsetAsync(index_error_word, 0, sizeof(int), s);
  if (e != cudaSuccess) {
    /* inside a capture, for instance: leave the check for the next synchronisation */
    (void)cudaGetLastError();
    pthread_mutex_unlock(&index_error_lock);
    return 0;
  }
  index_check_pending = 0;
  pthread_mutex_unlock(&index_error_lock);
  if (code == 0) return 0;
  static const char *const ops[] = {"indexing", "index_select", "gather", "scatter_add"};
  fsvc_set_error("%s: an index was out of range (found on the device, where it was skipped; "
                 "reported at the next synchronisation)", ops[code >= 1 && code <= 3 ? code : 0]);
  return -1;
}

/* ---- streams and events (the Lua binding exposes these) ------------------------------------ */
void *fsvc_gpu_stream_create(void) {
  cudaStream_t s = NULL;
  if (fsvc_gpu_check((int)cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream") != 0) return NULL;
  return s;
}
void fsvc_gpu_stream_destroy(void *s) {
  fsvc_gpu_fft_forget_stream(s);
  if (s) cudaStreamDestroy((cudaStream_t)s);
}
int fsvc_gpu_stream_synchronize(void *s) {
  return fsvc_gpu_check((int)cudaStreamSynchronize((cudaStream_t)s), "stream synchronize");
}
void *fsvc_gpu_event_record(void) {
  cudaEvent_t e = NULL;
  if (fsvc_gpu_check((int)cudaEventCreate(&e), "event") != 0) return NULL;
  if (fsvc_gpu_check((int)cudaEventRecord(e, current_stream), "event record") != 0) {
    cudaEventDestroy(e);
    return NULL;
  }
  return e;
}
/* milliseconds between two recorded events (waits for the second) */
double fsvc_gpu_event_elapsed_ms(void *start, void *end) {
  float ms = -1;
  if (cudaEventSynchronize((cudaEvent_t)end) != cudaSuccess) return -1;
  if (cudaEventElapsedTime(&ms, (cudaEvent_t)start, (cudaEvent_t)end) != cudaSuccess) return -1;
  return ms;
}
void fsvc_gpu_event_destroy(void *e) {
  if (e) cudaEventDestroy((cudaEvent_t)e);
}
