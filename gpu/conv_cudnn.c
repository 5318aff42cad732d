/* The 1-D convolution passes on cuDNN (gpu/conv.h), through its convolution API (cudnn_cnn),
 * opened with dlopen on first use like cuBLAS: cuDNN 9's libraries are ~500 MB and most runs of
 * fsvc never need them. A 1-D convolution is a 2-D one of height 1: x [B, cin, 1, t], filters
 * [cout, cin/g, 1, k], padding/stride/dilation (0/1/1, p/s/d) and a group count.
 *
 * Precision: float32 without TF32 runs with CUDNN_FMA_MATH (cuDNN's default math would allow TF32
 * on Ampere and later, ~1e-3 instead of 1e-5), float32 with fsvc.cuda.set_allow_tf32(true) with the
 * default math, float16/bfloat16 with tensor cores and float32 accumulation, float64 in double.
 *
 * Descriptors are cached per (geometry, dtype): creating four per call would cost more host time
 * than a small convolution's kernels. The workspace comes from the caching allocator (so a CUDA
 * graph's capture uses its private pool), at most FSVC_CUDNN_WORKSPACE_MB (512 by default). */
#include <cudnn.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "gpu_ops.h"

/* The CPU emulation of CUDA (gpu/emu) serves its own cuDNN through this; NULL in a real build. */
void *fsvc_gpu_emulated_cudnn(const char *name) __attribute__((weak));

static struct {
  __typeof__(&cudnnGetVersion) get_version;
  __typeof__(&cudnnGetErrorString) error_string;
  __typeof__(&cudnnCreate) create;
  __typeof__(&cudnnSetStream) set_stream;
  __typeof__(&cudnnCreateTensorDescriptor) create_tensor;
  __typeof__(&cudnnSetTensor4dDescriptor) set_tensor;
  __typeof__(&cudnnDestroyTensorDescriptor) destroy_tensor;
  __typeof__(&cudnnCreateFilterDescriptor) create_filter;
  __typeof__(&cudnnSetFilter4dDescriptor) set_filter;
  __typeof__(&cudnnDestroyFilterDescriptor) destroy_filter;
  __typeof__(&cudnnCreateConvolutionDescriptor) create_conv;
  __typeof__(&cudnnSetConvolution2dDescriptor) set_conv;
  __typeof__(&cudnnSetConvolutionGroupCount) set_groups;
  __typeof__(&cudnnSetConvolutionMathType) set_math;
  __typeof__(&cudnnDestroyConvolutionDescriptor) destroy_conv;
  __typeof__(&cudnnGetConvolutionForwardAlgorithm_v7) fwd_algos;
  __typeof__(&cudnnGetConvolutionBackwardDataAlgorithm_v7) bwd_data_algos;
  __typeof__(&cudnnGetConvolutionBackwardFilterAlgorithm_v7) bwd_filter_algos;
  __typeof__(&cudnnGetConvolutionForwardWorkspaceSize) fwd_ws;
  __typeof__(&cudnnGetConvolutionBackwardDataWorkspaceSize) bwd_data_ws;
  __typeof__(&cudnnGetConvolutionBackwardFilterWorkspaceSize) bwd_filter_ws;
  __typeof__(&cudnnConvolutionForward) fwd;
  __typeof__(&cudnnConvolutionBackwardData) bwd_data;
  __typeof__(&cudnnConvolutionBackwardFilter) bwd_filter;
} dnn;

static cudnnHandle_t handle;
static pthread_once_t open_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t dnn_mutex = PTHREAD_MUTEX_INITIALIZER;
static char unavailable[1024] = "cuDNN was not loaded yet";
static int version = 0;
static char last_refusal[1200] = "";

static int opened; /* open_cudnn has run (whatever its outcome) */

static void open_cudnn(void) {
  __atomic_store_n(&opened, 1, __ATOMIC_RELEASE);
  void *lib = NULL;
  if (!fsvc_gpu_emulated_cudnn) {
    static const char *const names[] = {"libcudnn.so.9", "libcudnn.so", NULL};
    char why[768];
    lib = fsvc_gpu_dlopen(names, why, sizeof why);
    if (!lib) {
      snprintf(unavailable, sizeof unavailable, "cannot load cuDNN: %s", why);
      return;
    }
  }
#define DNN_SYMBOL(field, name)                                                                 \
  do {                                                                                          \
    *(void **)&dnn.field = fsvc_gpu_emulated_cudnn ? fsvc_gpu_emulated_cudnn(name) : dlsym(lib, name); \
    if (!dnn.field) {                                                                           \
      snprintf(unavailable, sizeof unavailable, "cuDNN lacks %s", name);                        \
      return;                                                                                   \
    }                                                                                           \
  } while (0)
  DNN_SYMBOL(get_version, "cudnnGetVersion");
  DNN_SYMBOL(error_string, "cudnnGetErrorString");
  DNN_SYMBOL(create, "cudnnCreate");
  DNN_SYMBOL(set_stream, "cudnnSetStream");
  DNN_SYMBOL(create_tensor, "cudnnCreateTensorDescriptor");
  DNN_SYMBOL(set_tensor, "cudnnSetTensor4dDescriptor");
  DNN_SYMBOL(destroy_tensor, "cudnnDestroyTensorDescriptor");
  DNN_SYMBOL(create_filter, "cudnnCreateFilterDescriptor");
  DNN_SYMBOL(set_filter, "cudnnSetFilter4dDescriptor");
  DNN_SYMBOL(destroy_filter, "cudnnDestroyFilterDescriptor");
  DNN_SYMBOL(create_conv, "cudnnCreateConvolutionDescriptor");
  DNN_SYMBOL(set_conv, "cudnnSetConvolution2dDescriptor");
  DNN_SYMBOL(set_groups, "cudnnSetConvolutionGroupCount");
  DNN_SYMBOL(set_math, "cudnnSetConvolutionMathType");
  DNN_SYMBOL(destroy_conv, "cudnnDestroyConvolutionDescriptor");
  DNN_SYMBOL(fwd_algos, "cudnnGetConvolutionForwardAlgorithm_v7");
  DNN_SYMBOL(bwd_data_algos, "cudnnGetConvolutionBackwardDataAlgorithm_v7");
  DNN_SYMBOL(bwd_filter_algos, "cudnnGetConvolutionBackwardFilterAlgorithm_v7");
  DNN_SYMBOL(fwd_ws, "cudnnGetConvolutionForwardWorkspaceSize");
  DNN_SYMBOL(bwd_data_ws, "cudnnGetConvolutionBackwardDataWorkspaceSize");
  DNN_SYMBOL(bwd_filter_ws, "cudnnGetConvolutionBackwardFilterWorkspaceSize");
  DNN_SYMBOL(fwd, "cudnnConvolutionForward");
  DNN_SYMBOL(bwd_data, "cudnnConvolutionBackwardData");
  DNN_SYMBOL(bwd_filter, "cudnnConvolutionBackwardFilter");
#undef DNN_SYMBOL
  size_t v = dnn.get_version();
  if (v / 10000 < 9) { /* 9.x is 90000 + 100 * minor + patch */
    snprintf(unavailable, sizeof unavailable, "cuDNN %zu is too old (need 9)", v);
    return;
  }
  if (fsvc_gpu_device_count() < 1) {
    snprintf(unavailable, sizeof unavailable, "no CUDA device");
    return;
  }
  cudnnStatus_t s = dnn.create(&handle);
  if (s != CUDNN_STATUS_SUCCESS) {
    snprintf(unavailable, sizeof unavailable, "cudnnCreate failed: %s", dnn.error_string(s));
    return;
  }
  version = (int)v;
  unavailable[0] = '\0';
}

int fsvc_gpu_cudnn_available(void) {
  pthread_once(&open_once, open_cudnn);
  return version != 0;
}
const char *fsvc_gpu_cudnn_unavailable_reason(void) {
  pthread_once(&open_once, open_cudnn);
  return unavailable;
}
int fsvc_gpu_cudnn_version(void) {
  pthread_once(&open_once, open_cudnn);
  return version;
}
const char *fsvc_gpu_cudnn_last_refusal(void) { return last_refusal; }

static int refuse(const char *fmt, const char *what) {
  snprintf(last_refusal, sizeof last_refusal, fmt, what);
  return FSVC_CONV_UNSUPPORTED;
}

/* ---- descriptors, cached per geometry and dtype ---------------------------------------------------- */
typedef struct {
  fsvc_gpu_conv_geom geom;
  fsvc_dtype dtype;
  int used;
  cudnnTensorDescriptor_t x, y;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
} descriptors;

#define N_CACHED 64
static descriptors cache[N_CACHED];
static int cache_next; /* round-robin replacement once full */

static int same_geom(const fsvc_gpu_conv_geom *a, const fsvc_gpu_conv_geom *b) {
  return memcmp(a, b, sizeof *a) == 0;
}

static void destroy_descriptors(descriptors *e) {
  if (e->x) dnn.destroy_tensor(e->x);
  if (e->y) dnn.destroy_tensor(e->y);
  if (e->w) dnn.destroy_filter(e->w);
  if (e->conv) dnn.destroy_conv(e->conv);
  memset(e, 0, sizeof *e);
}

static int dtype_of(fsvc_dtype dt, cudnnDataType_t *data, cudnnDataType_t *compute) {
  switch (dt) {
  case FSVC_FLOAT32: *data = CUDNN_DATA_FLOAT; *compute = CUDNN_DATA_FLOAT; return 0;
  case FSVC_FLOAT64: *data = CUDNN_DATA_DOUBLE; *compute = CUDNN_DATA_DOUBLE; return 0;
  case FSVC_FLOAT16: *data = CUDNN_DATA_HALF; *compute = CUDNN_DATA_FLOAT; return 0;
  case FSVC_BFLOAT16: *data = CUDNN_DATA_BFLOAT16; *compute = CUDNN_DATA_FLOAT; return 0;
  default: return -1;
  }
}

static cudnnMathType_t math_of(fsvc_dtype dt) {
  if (dt == FSVC_FLOAT16 || dt == FSVC_BFLOAT16) return CUDNN_TENSOR_OP_MATH;
  if (dt == FSVC_FLOAT32 && fsvc_gpu_allow_tf32) return CUDNN_DEFAULT_MATH;
  return CUDNN_FMA_MATH;
}

/* the descriptors for (c, dt), created on first use; NULL with last_refusal set. dnn_mutex held. */
static descriptors *descriptors_for(const fsvc_gpu_conv_geom *c, fsvc_dtype dt) {
  for (int i = 0; i < N_CACHED; i++)
    if (cache[i].used && cache[i].dtype == dt && same_geom(&cache[i].geom, c)) return &cache[i];
  /* cuDNN derives the output length from the input's; a transposed convolution whose
   * output_padding is not below its stride (allowed when below the dilation) has an input
   * longer than that output needs, which the descriptors cannot express */
  const int64_t span = c->t + 2 * c->p - c->d * (c->k - 1) - 1;
  if (span < 0 || span / c->s + 1 != c->tout) {
    refuse("%s", "an output length the descriptors cannot express (output_padding >= stride)");
    return NULL;
  }
  cudnnDataType_t data, compute;
  if (dtype_of(dt, &data, &compute) != 0) {
    refuse("dtype %s", fsvc_dtype_name(dt));
    return NULL;
  }
  const int64_t dims[] = {c->B, c->cin, c->cout, c->t, c->tout, c->k, c->s, c->p, c->d, c->g};
  for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
    if (dims[i] > INT_MAX) {
      refuse("%s", "a size over 2^31");
      return NULL;
    }
  descriptors *e = &cache[cache_next];
  cache_next = (cache_next + 1) % N_CACHED;
  if (e->used) destroy_descriptors(e);
  e->geom = *c;
  e->dtype = dt;
  cudnnStatus_t s = dnn.create_tensor(&e->x);
  if (s == CUDNN_STATUS_SUCCESS) s = dnn.create_tensor(&e->y);
  if (s == CUDNN_STATUS_SUCCESS) s = dnn.create_filter(&e->w);
  if (s == CUDNN_STATUS_SUCCESS) s = dnn.create_conv(&e->conv);
  if (s == CUDNN_STATUS_SUCCESS)
    s = dnn.set_tensor(e->x, CUDNN_TENSOR_NCHW, data, (int)c->B, (int)c->cin, 1, (int)c->t);
  if (s == CUDNN_STATUS_SUCCESS)
    s = dnn.set_tensor(e->y, CUDNN_TENSOR_NCHW, data, (int)c->B, (int)c->cout, 1, (int)c->tout);
  if (s == CUDNN_STATUS_SUCCESS)
    s = dnn.set_filter(e->w, data, CUDNN_TENSOR_NCHW, (int)c->cout, (int)(c->cin / c->g), 1, (int)c->k);
  if (s == CUDNN_STATUS_SUCCESS)
    s = dnn.set_conv(e->conv, 0, (int)c->p, 1, (int)c->s, 1, (int)c->d, CUDNN_CROSS_CORRELATION, compute);
  if (s == CUDNN_STATUS_SUCCESS) s = dnn.set_groups(e->conv, (int)c->g);
  if (s != CUDNN_STATUS_SUCCESS) {
    refuse("descriptors: %s", dnn.error_string(s));
    destroy_descriptors(e);
    return NULL;
  }
  e->used = 1;
  return e;
}

static size_t workspace_limit(void) {
  const char *v = getenv("FSVC_CUDNN_WORKSPACE_MB");
  long mb = v && *v ? strtol(v, NULL, 10) : 512;
  return (size_t)(mb < 0 ? 0 : mb) << 20;
}

/* cuDNN's heuristic list for the pass, filtered; dnn_mutex held */
static int list_algorithms(fsvc_gpu_conv_pass pass, descriptors *e, fsvc_dtype dt, int *algos, int max) {
  int n = 0, got = 0;
  size_t limit = workspace_limit();
  cudnnStatus_t s = dnn.set_math(e->conv, math_of(dt));
  if (s != CUDNN_STATUS_SUCCESS) return 0;
  /* the three perf structs share their layout apart from the algorithm's enum type */
  if (pass == FSVC_CONV_FORWARD) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    s = dnn.fwd_algos(handle, e->x, e->w, e->conv, e->y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf);
    for (int i = 0; s == CUDNN_STATUS_SUCCESS && i < got && n < max; i++)
      if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= limit) algos[n++] = (int)perf[i].algo;
  } else if (pass == FSVC_CONV_BACKWARD_DATA) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    s = dnn.bwd_data_algos(handle, e->w, e->y, e->conv, e->x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, perf);
    for (int i = 0; s == CUDNN_STATUS_SUCCESS && i < got && n < max; i++)
      if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= limit) algos[n++] = (int)perf[i].algo;
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    s = dnn.bwd_filter_algos(handle, e->x, e->y, e->conv, e->w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, perf);
    for (int i = 0; s == CUDNN_STATUS_SUCCESS && i < got && n < max; i++)
      if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= limit) algos[n++] = (int)perf[i].algo;
  }
  if (s != CUDNN_STATUS_SUCCESS) snprintf(last_refusal, sizeof last_refusal, "heuristics: %s", dnn.error_string(s));
  else if (n == 0) snprintf(last_refusal, sizeof last_refusal, "no algorithm within the workspace limit");
  return n;
}

int fsvc_gpu_cudnn_algorithms(fsvc_gpu_conv_pass pass, const fsvc_gpu_conv_geom *c, fsvc_dtype dt, int *algos,
                              int max) {
  if (!fsvc_gpu_cudnn_available()) return 0;
  pthread_mutex_lock(&dnn_mutex);
  descriptors *e = descriptors_for(c, dt);
  int n = e ? list_algorithms(pass, e, dt, algos, max) : 0;
  pthread_mutex_unlock(&dnn_mutex);
  return n;
}

/* Statuses below EXECUTION_FAILED (a kernel failed on the device) say cuDNN could not or would not
 * run this call: a parameter or shape it does not support, a sub-library that failed to load, an
 * engine that failed to compile at run time, a workspace it could not allocate. The convolution
 * then falls back to im2col instead of failing. */
static int is_refusal(cudnnStatus_t s) { return s < CUDNN_STATUS_EXECUTION_FAILED; }

/* dnn_mutex held */
static int run_pass(fsvc_gpu_conv_pass pass, descriptors *e, fsvc_dtype dt, const void *in0, const void *in1,
                    void *out, fsvc_device dev, int algo) {
  cudnnStatus_t s = dnn.set_math(e->conv, math_of(dt));
  size_t ws = 0;
  if (s == CUDNN_STATUS_SUCCESS) {
    if (pass == FSVC_CONV_FORWARD)
      s = dnn.fwd_ws(handle, e->x, e->w, e->conv, e->y, (cudnnConvolutionFwdAlgo_t)algo, &ws);
    else if (pass == FSVC_CONV_BACKWARD_DATA)
      s = dnn.bwd_data_ws(handle, e->w, e->y, e->conv, e->x, (cudnnConvolutionBwdDataAlgo_t)algo, &ws);
    else
      s = dnn.bwd_filter_ws(handle, e->x, e->y, e->conv, e->w, (cudnnConvolutionBwdFilterAlgo_t)algo, &ws);
  }
  if (s != CUDNN_STATUS_SUCCESS) {
    snprintf(last_refusal, sizeof last_refusal, "algorithm %d: %s", algo, dnn.error_string(s));
    return FSVC_CONV_UNSUPPORTED;
  }
  if (ws > workspace_limit()) {
    snprintf(last_refusal, sizeof last_refusal, "algorithm %d needs %zu bytes of workspace", algo, ws);
    return FSVC_CONV_UNSUPPORTED;
  }
  fsvc_tensor *work = NULL;
  if (ws > 0) {
    int64_t n = (int64_t)((ws + 3) / 4);
    work = fsvc_empty_on(1, &n, FSVC_FLOAT32, dev);
    if (!work) return -1;
  }
  void *wp = work ? fsvc_data(work) : NULL;
  double one64 = 1.0, zero64 = 0.0;
  float one32 = 1.0f, zero32 = 0.0f;
  const void *alpha = dt == FSVC_FLOAT64 ? (const void *)&one64 : (const void *)&one32;
  const void *beta = dt == FSVC_FLOAT64 ? (const void *)&zero64 : (const void *)&zero32;
  s = dnn.set_stream(handle, (cudaStream_t)fsvc_gpu_stream());
  fsvc_gpu_count_library_call();
  if (s == CUDNN_STATUS_SUCCESS) {
    if (pass == FSVC_CONV_FORWARD)
      s = dnn.fwd(handle, alpha, e->x, in0, e->w, in1, e->conv, (cudnnConvolutionFwdAlgo_t)algo, wp, ws, beta,
                  e->y, out);
    else if (pass == FSVC_CONV_BACKWARD_DATA)
      s = dnn.bwd_data(handle, alpha, e->w, in0, e->y, in1, e->conv, (cudnnConvolutionBwdDataAlgo_t)algo, wp, ws,
                       beta, e->x, out);
    else
      s = dnn.bwd_filter(handle, alpha, e->x, in0, e->y, in1, e->conv, (cudnnConvolutionBwdFilterAlgo_t)algo, wp,
                         ws, beta, e->w, out);
  }
  fsvc_tensor_release(work); /* stream-ordered: the allocator reuses it only after this work */
  if (s == CUDNN_STATUS_SUCCESS) return 0;
  if (is_refusal(s)) {
    snprintf(last_refusal, sizeof last_refusal, "algorithm %d: %s", algo, dnn.error_string(s));
    return FSVC_CONV_UNSUPPORTED;
  }
  fsvc_set_error("conv1d: cuDNN %s failed: %s", fsvc_gpu_conv_pass_name(pass), dnn.error_string(s));
  return -1;
}

int fsvc_gpu_conv_cudnn(fsvc_gpu_conv_pass pass, const fsvc_gpu_conv_geom *c, fsvc_dtype dt, const void *in0,
                        const void *in1, void *out, fsvc_device dev, int algo) {
  /* cudnnCreate allocates device memory: it cannot run inside a CUDA graph capture (a capture's
   * warm-up normally opens cuDNN first) */
  if (!__atomic_load_n(&opened, __ATOMIC_ACQUIRE) && fsvc_gpu_is_capturing())
    return refuse("%s", "cuDNN is not opened yet and a CUDA graph is being captured");
  if (!fsvc_gpu_cudnn_available()) return refuse("%s", unavailable);
  if (c->B == 0 || c->cout == 0 || c->cin == 0) return refuse("%s", "an empty tensor");
  pthread_mutex_lock(&dnn_mutex);
  descriptors *e = descriptors_for(c, dt);
  int rc = FSVC_CONV_UNSUPPORTED;
  if (e && algo < 0) {
    int best;
    if (list_algorithms(pass, e, dt, &best, 1) == 1) algo = best;
  }
  if (e && algo >= 0) rc = run_pass(pass, e, dt, in0, in1, out, dev, algo);
  pthread_mutex_unlock(&dnn_mutex);
  return rc;
}
