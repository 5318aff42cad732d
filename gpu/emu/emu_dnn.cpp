// CPU emulation of cuDNN's convolution API as gpu/conv_cudnn.c calls it (FSVC_CUDA=EMULATE).
//
// It checks what cuDNN checks: descriptors set before use, consistent data types (float16 and
// bfloat16 data with float32 compute), the output shape the convolution implies, the group count,
// that data and workspace pointers are device memory, and that the workspace passed is as large
// as the algorithm asked for (the emulated algorithm writes all of it, so a short buffer trips the
// allocation's guard page). The work runs on the handle's stream (recorded under capture).
//
// The arithmetic is a direct loop over the output and the taps in double, independent of the
// im2col + GEMM path it is compared with. Float32 data with a math type other than CUDNN_FMA_MATH
// has its inputs rounded to TF32, as an Ampere-or-later GPU may do, so the TF32 bounds are honest.
//
// The emulated algorithms differ only in their workspace and in what they refuse, so that the
// selection code's paths all run: forward IMPLICIT_PRECOMP_GEMM is listed first for undilated
// convolutions and last for dilated ones, where the heuristic still reports it as usable but running
// it returns CUDNN_STATUS_NOT_SUPPORTED (a refusal at run time, which the autotuner must survive);
// forward GEMM is not supported for grouped convolutions (its heuristic status says so).
#include <cudnn.h>

#include <math.h>
#include <mutex>
#include <stdio.h>
#include <string.h>
#include <vector>

#include "emu_tf32.h"

#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "fsvc_emu_device.h"

struct fsvc_emu_cudnn {
  cudaStream_t stream = nullptr;
};
struct fsvc_emu_cudnn_tensor {
  bool set = false;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  int n = 0, c = 0, h = 0, w = 0;
};
struct fsvc_emu_cudnn_filter {
  bool set = false;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  int k = 0, c = 0, h = 0, w = 0;
};
struct fsvc_emu_cudnn_conv {
  bool set = false;
  int pad_h = 0, pad_w = 0, u = 1, v = 1, dil_h = 1, dil_w = 1, groups = 1;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

namespace {

size_t elem_size(cudnnDataType_t t) {
  return t == CUDNN_DATA_DOUBLE ? 8 : t == CUDNN_DATA_FLOAT ? 4 : 2;
}

bool known_type(cudnnDataType_t t) {
  return t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_DOUBLE || t == CUDNN_DATA_HALF || t == CUDNN_DATA_BFLOAT16;
}


double load(const void *p, cudnnDataType_t t, size_t i, bool tf32) {
  switch (t) {
    case CUDNN_DATA_DOUBLE: return ((const double *)p)[i];
    case CUDNN_DATA_FLOAT: return tf32 ? (double)fsvc_emu_to_tf32(((const float *)p)[i]) : (double)((const float *)p)[i];
    case CUDNN_DATA_HALF: return (double)(float)((const __half *)p)[i];
    case CUDNN_DATA_BFLOAT16: return (double)(float)((const __nv_bfloat16 *)p)[i];
  }
  return 0;
}
void store(void *p, cudnnDataType_t t, size_t i, double v) {
  switch (t) {
    case CUDNN_DATA_DOUBLE: ((double *)p)[i] = v; break;
    case CUDNN_DATA_FLOAT: ((float *)p)[i] = (float)v; break;
    case CUDNN_DATA_HALF: ((__half *)p)[i] = __half((float)v); break;
    case CUDNN_DATA_BFLOAT16: ((__nv_bfloat16 *)p)[i] = __nv_bfloat16((float)v); break;
  }
}

// The convolution's shapes, checked for consistency.
struct Shape {
  int N, C, H, W, K, R, S, P, Q, G;
  cudnnDataType_t type;
  fsvc_emu_cudnn_conv conv;
};

cudnnStatus_t shape_of(const fsvc_emu_cudnn_tensor *x, const fsvc_emu_cudnn_filter *w, const fsvc_emu_cudnn_conv *cv,
                       const fsvc_emu_cudnn_tensor *y, const char *what, Shape *s) {
  if (!x || !w || !cv || !y) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
  if (!x->set || !w->set || !cv->set || !y->set) {
    fprintf(stderr, "fsvc CUDA emulation: %s: a descriptor was used before it was set\n", what);
    return CUDNN_STATUS_BAD_PARAM;
  }
  if (x->type != w->type || x->type != y->type) return CUDNN_STATUS_BAD_PARAM;
  cudnnDataType_t want = x->type == CUDNN_DATA_DOUBLE ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
  if (cv->compute != want) return CUDNN_STATUS_NOT_SUPPORTED;
  if (cv->mode != CUDNN_CROSS_CORRELATION) return CUDNN_STATUS_NOT_SUPPORTED;
  int G = cv->groups;
  if (x->c % G || w->k % G || w->c * G != x->c || y->c != w->k || y->n != x->n) {
    fprintf(stderr, "fsvc CUDA emulation: %s: channels do not fit (x c %d, filter %d x %d, y c %d, groups %d)\n",
            what, x->c, w->k, w->c, y->c, G);
    return CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH;
  }
  int P = (x->h + 2 * cv->pad_h - cv->dil_h * (w->h - 1) - 1) / cv->u + 1;
  int Q = (x->w + 2 * cv->pad_w - cv->dil_w * (w->w - 1) - 1) / cv->v + 1;
  if (x->h + 2 * cv->pad_h - cv->dil_h * (w->h - 1) - 1 < 0 || x->w + 2 * cv->pad_w - cv->dil_w * (w->w - 1) - 1 < 0 ||
      y->h != P || y->w != Q) {
    fprintf(stderr, "fsvc CUDA emulation: %s: output %dx%d does not match the convolution's %dx%d\n", what, y->h,
            y->w, P, Q);
    return CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH;
  }
  *s = Shape{x->n, x->c, x->h, x->w, w->k, w->h, w->w, P, Q, G, x->type, *cv};
  return CUDNN_STATUS_SUCCESS;
}

enum Pass { FORWARD, BACKWARD_DATA, BACKWARD_FILTER };

// the workspace each emulated algorithm asks for; SIZE_MAX = not supported for this shape
size_t workspace_for(Pass pass, int algo, const Shape &s) {
  size_t es = elem_size(s.type);
  if (pass == FORWARD) {
    if (algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM) return 0;
    if (algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM) return (size_t)s.C / s.G * s.R * s.S * sizeof(int);
    if (algo == CUDNN_CONVOLUTION_FWD_ALGO_GEMM)
      return s.G > 1 ? SIZE_MAX : (size_t)s.C * s.R * s.S * s.P * s.Q * es;
    return SIZE_MAX;
  }
  if (pass == BACKWARD_DATA) {
    if (algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0) return 0;
    if (algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1) return (size_t)s.K * sizeof(int) + 64;
    return SIZE_MAX;
  }
  if (algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0) return 0;
  if (algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1) return (size_t)s.K * s.C / s.G * s.R * s.S * 8;
  if (algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3) return 256;
  return SIZE_MAX;
}

// the heuristic's order for the pass and shape
std::vector<int> heuristic_order(Pass pass, const Shape &s) {
  if (pass == FORWARD) {
    bool dilated = s.conv.dil_h > 1 || s.conv.dil_w > 1;
    if (dilated)
      return {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, CUDNN_CONVOLUTION_FWD_ALGO_GEMM,
              CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM};
    return {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
            CUDNN_CONVOLUTION_FWD_ALGO_GEMM};
  }
  if (pass == BACKWARD_DATA) return {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, CUDNN_CONVOLUTION_BWD_DATA_ALGO_0};
  return {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0,
          CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3};
}

template <class Perf>
cudnnStatus_t heuristics(Pass pass, const Shape &s, int requested, int *returned, Perf *perf) {
  if (!returned || !perf || requested < 1) return CUDNN_STATUS_BAD_PARAM;
  std::vector<int> order = heuristic_order(pass, s);
  int n = 0;
  for (int a : order) {
    if (n == requested) break;
    size_t ws = workspace_for(pass, a, s);
    Perf p;
    memset(&p, 0, sizeof p);
    p.algo = (decltype(p.algo))a;
    p.status = ws == SIZE_MAX ? CUDNN_STATUS_NOT_SUPPORTED : CUDNN_STATUS_SUCCESS;
    p.time = -1;
    p.memory = ws == SIZE_MAX ? 0 : ws;
    p.determinism = CUDNN_DETERMINISTIC;
    p.mathType = s.conv.math;
    perf[n++] = p;
  }
  *returned = n;
  return CUDNN_STATUS_SUCCESS;
}

bool device_range(const void *p, size_t n) { return n == 0 || (p && fsvc_emu_is_device_range(p, n)); }

// Runs one pass as work on the handle's stream. a, b: the pass's inputs, out: its output.
cudnnStatus_t run(cudnnHandle_t h, Pass pass, int algo, const Shape &s, const void *alpha, const void *a,
                  const void *b, void *work, size_t work_bytes, const void *beta, void *out, const char *what) {
  if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
  if (!alpha || !beta) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
  size_t need = workspace_for(pass, algo, s);
  if (need == SIZE_MAX) return CUDNN_STATUS_NOT_SUPPORTED;
  if (pass == FORWARD && algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM &&
      (s.conv.dil_h > 1 || s.conv.dil_w > 1))
    return CUDNN_STATUS_NOT_SUPPORTED;  // listed by the heuristic, refused when run (see the top)
  if (work_bytes < need || (need > 0 && !work)) {
    fprintf(stderr, "fsvc CUDA emulation: %s: algorithm %d needs %zu bytes of workspace, got %zu\n", what, algo,
            need, work_bytes);
    return CUDNN_STATUS_BAD_PARAM;
  }
  size_t es = elem_size(s.type);
  size_t nx = (size_t)s.N * s.C * s.H * s.W, nw = (size_t)s.K * (s.C / s.G) * s.R * s.S,
         ny = (size_t)s.N * s.K * s.P * s.Q;
  size_t na = pass == BACKWARD_DATA ? nw : nx, nb = pass == FORWARD ? nw : ny,
         nout = pass == FORWARD ? ny : pass == BACKWARD_DATA ? nx : nw;
  if (!device_range(a, na * es) || !device_range(b, nb * es) || !device_range(out, nout * es) ||
      !device_range(work, need)) {
    fprintf(stderr, "fsvc CUDA emulation: %s: a data or workspace pointer is not device memory of the needed size\n",
            what);
    return CUDNN_STATUS_BAD_PARAM;
  }
  double al = s.type == CUDNN_DATA_DOUBLE ? *(const double *)alpha : (double)*(const float *)alpha;
  double be = s.type == CUDNN_DATA_DOUBLE ? *(const double *)beta : (double)*(const float *)beta;
  bool tf32 = s.type == CUDNN_DATA_FLOAT && s.conv.math != CUDNN_FMA_MATH;
  int e = fsvc_emu::enqueue_work(h->stream, [=]() {
    fsvc_emu_enter_device(what);
    if (need > 0) memset(work, 0xA5, need);  // the algorithm uses all of its workspace
    const void *x = pass == BACKWARD_DATA ? nullptr : a;
    const void *w = pass == FORWARD ? b : pass == BACKWARD_DATA ? a : nullptr;
    const void *y = pass == FORWARD ? nullptr : b;
    std::vector<double> acc(nout, 0.0);
    const int cpg = s.C / s.G, kpg = s.K / s.G;
    for (int n = 0; n < s.N; n++)
      for (int k = 0; k < s.K; k++) {
        int g = k / kpg;
        for (int p = 0; p < s.P; p++)
          for (int q = 0; q < s.Q; q++) {
            size_t yi = (((size_t)n * s.K + k) * s.P + p) * s.Q + q;
            double yv = y ? load(y, s.type, yi, tf32) : 0;
            double sum = 0;
            for (int c = 0; c < cpg; c++)
              for (int r = 0; r < s.R; r++) {
                int hh = p * s.conv.u - s.conv.pad_h + r * s.conv.dil_h;
                if (hh < 0 || hh >= s.H) continue;
                for (int t = 0; t < s.S; t++) {
                  int ww = q * s.conv.v - s.conv.pad_w + t * s.conv.dil_w;
                  if (ww < 0 || ww >= s.W) continue;
                  size_t xi = (((size_t)n * s.C + g * cpg + c) * s.H + hh) * s.W + ww;
                  size_t wi = (((size_t)k * cpg + c) * s.R + r) * s.S + t;
                  if (pass == FORWARD) sum += load(x, s.type, xi, tf32) * load(w, s.type, wi, tf32);
                  else if (pass == BACKWARD_DATA) acc[xi] += load(w, s.type, wi, tf32) * yv;
                  else acc[wi] += load(x, s.type, xi, tf32) * yv;
                }
              }
            if (pass == FORWARD) acc[yi] = sum;
          }
      }
    for (size_t i = 0; i < nout; i++)
      store(out, s.type, i, be == 0 ? al * acc[i] : al * acc[i] + be * load(out, s.type, i, false));
    fsvc_emu_leave_device();
  });
  return e == cudaSuccess ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_EXECUTION_FAILED;
}

}  // namespace

extern "C" {

size_t cudnnGetVersion(void) { return CUDNN_VERSION; }

const char *cudnnGetErrorString(cudnnStatus_t s) {
  switch (s) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_BAD_PARAM_NULL_POINTER: return "CUDNN_STATUS_BAD_PARAM_NULL_POINTER";
    case CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH: return "CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_NOT_SUPPORTED_SHAPE: return "CUDNN_STATUS_NOT_SUPPORTED_SHAPE";
    case CUDNN_STATUS_INTERNAL_ERROR: return "CUDNN_STATUS_INTERNAL_ERROR";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
  }
  return "CUDNN_STATUS_UNKNOWN";
}

cudnnStatus_t cudnnCreate(cudnnHandle_t *h) {
  if (!h) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
  *h = new fsvc_emu_cudnn();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t h) {
  delete h;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s) {
  if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
  h->stream = s;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *d) {
  if (!d) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
  *d = new fsvc_emu_cudnn_tensor();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t format, cudnnDataType_t type,
                                         int n, int c, int h, int w) {
  if (!d) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
  if (format != CUDNN_TENSOR_NCHW) return CUDNN_STATUS_NOT_SUPPORTED;
  if (!known_type(type) || n < 1 || c < 1 || h < 1 || w < 1) return CUDNN_STATUS_BAD_PARAM;
  *d = fsvc_emu_cudnn_tensor{true, type, n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *d) {
  if (!d) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
  *d = new fsvc_emu_cudnn_filter();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t type, cudnnTensorFormat_t format,
                                         int k, int c, int h, int w) {
  if (!d) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
  if (format != CUDNN_TENSOR_NCHW) return CUDNN_STATUS_NOT_SUPPORTED;
  if (!known_type(type) || k < 1 || c < 1 || h < 1 || w < 1) return CUDNN_STATUS_BAD_PARAM;
  *d = fsvc_emu_cudnn_filter{true, type, k, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *d) {
  if (!d) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
  *d = new fsvc_emu_cudnn_conv();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h, int pad_w, int u, int v,
                                              int dil_h, int dil_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t compute) {
  if (!d) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
  if (pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dil_h < 1 || dil_w < 1 || !known_type(compute))
    return CUDNN_STATUS_BAD_PARAM;
  d->set = true;
  d->pad_h = pad_h; d->pad_w = pad_w; d->u = u; d->v = v; d->dil_h = dil_h; d->dil_w = dil_w;
  d->mode = mode;
  d->compute = compute;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t d, int groups) {
  if (!d) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
  if (groups < 1) return CUDNN_STATUS_BAD_PARAM;
  d->groups = groups;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t math) {
  if (!d) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
  d->math = math;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                     const cudnnFilterDescriptor_t w,
                                                     const cudnnConvolutionDescriptor_t conv,
                                                     const cudnnTensorDescriptor_t y, const int requested,
                                                     int *returned, cudnnConvolutionFwdAlgoPerf_t *perf) {
  if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
  Shape s;
  cudnnStatus_t st = shape_of(x, w, conv, y, "cudnnGetConvolutionForwardAlgorithm_v7", &s);
  return st != CUDNN_STATUS_SUCCESS ? st : heuristics(FORWARD, s, requested, returned, perf);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t h, const cudnnFilterDescriptor_t w,
                                                          const cudnnTensorDescriptor_t dy,
                                                          const cudnnConvolutionDescriptor_t conv,
                                                          const cudnnTensorDescriptor_t dx, const int requested,
                                                          int *returned, cudnnConvolutionBwdDataAlgoPerf_t *perf) {
  if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
  Shape s;
  cudnnStatus_t st = shape_of(dx, w, conv, dy, "cudnnGetConvolutionBackwardDataAlgorithm_v7", &s);
  return st != CUDNN_STATUS_SUCCESS ? st : heuristics(BACKWARD_DATA, s, requested, returned, perf);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                            const cudnnTensorDescriptor_t dy,
                                                            const cudnnConvolutionDescriptor_t conv,
                                                            const cudnnFilterDescriptor_t dw, const int requested,
                                                            int *returned,
                                                            cudnnConvolutionBwdFilterAlgoPerf_t *perf) {
  if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
  Shape s;
  cudnnStatus_t st = shape_of(x, dw, conv, dy, "cudnnGetConvolutionBackwardFilterAlgorithm_v7", &s);
  return st != CUDNN_STATUS_SUCCESS ? st : heuristics(BACKWARD_FILTER, s, requested, returned, perf);
}

static cudnnStatus_t workspace(Pass pass, const Shape &s, int algo, size_t *bytes) {
  if (!bytes) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
  size_t ws = workspace_for(pass, algo, s);
  if (ws == SIZE_MAX) return CUDNN_STATUS_NOT_SUPPORTED;
  *bytes = ws;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                      const cudnnFilterDescriptor_t w,
                                                      const cudnnConvolutionDescriptor_t conv,
                                                      const cudnnTensorDescriptor_t y, cudnnConvolutionFwdAlgo_t algo,
                                                      size_t *bytes) {
  if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
  Shape s;
  cudnnStatus_t st = shape_of(x, w, conv, y, "cudnnGetConvolutionForwardWorkspaceSize", &s);
  return st != CUDNN_STATUS_SUCCESS ? st : workspace(FORWARD, s, algo, bytes);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t h, const cudnnFilterDescriptor_t w,
                                                           const cudnnTensorDescriptor_t dy,
                                                           const cudnnConvolutionDescriptor_t conv,
                                                           const cudnnTensorDescriptor_t dx,
                                                           cudnnConvolutionBwdDataAlgo_t algo, size_t *bytes) {
  if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
  Shape s;
  cudnnStatus_t st = shape_of(dx, w, conv, dy, "cudnnGetConvolutionBackwardDataWorkspaceSize", &s);
  return st != CUDNN_STATUS_SUCCESS ? st : workspace(BACKWARD_DATA, s, algo, bytes);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                             const cudnnTensorDescriptor_t dy,
                                                             const cudnnConvolutionDescriptor_t conv,
                                                             const cudnnFilterDescriptor_t dw,
                                                             cudnnConvolutionBwdFilterAlgo_t algo, size_t *bytes) {
  if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
  Shape s;
  cudnnStatus_t st = shape_of(x, dw, conv, dy, "cudnnGetConvolutionBackwardFilterWorkspaceSize", &s);
  return st != CUDNN_STATUS_SUCCESS ? st : workspace(BACKWARD_FILTER, s, algo, bytes);
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void *alpha, const cudnnTensorDescriptor_t xd,
                                      const void *x, const cudnnFilterDescriptor_t wd, const void *w,
                                      const cudnnConvolutionDescriptor_t conv, cudnnConvolutionFwdAlgo_t algo,
                                      void *work, size_t work_bytes, const void *beta,
                                      const cudnnTensorDescriptor_t yd, void *y) {
  Shape s;
  cudnnStatus_t st = shape_of(xd, wd, conv, yd, "cudnnConvolutionForward", &s);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  return run(h, FORWARD, algo, s, alpha, x, w, work, work_bytes, beta, y, "cudnnConvolutionForward");
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void *alpha, const cudnnFilterDescriptor_t wd,
                                           const void *w, const cudnnTensorDescriptor_t dyd, const void *dy,
                                           const cudnnConvolutionDescriptor_t conv,
                                           cudnnConvolutionBwdDataAlgo_t algo, void *work, size_t work_bytes,
                                           const void *beta, const cudnnTensorDescriptor_t dxd, void *dx) {
  Shape s;
  cudnnStatus_t st = shape_of(dxd, wd, conv, dyd, "cudnnConvolutionBackwardData", &s);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  return run(h, BACKWARD_DATA, algo, s, alpha, w, dy, work, work_bytes, beta, dx, "cudnnConvolutionBackwardData");
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void *alpha, const cudnnTensorDescriptor_t xd,
                                             const void *x, const cudnnTensorDescriptor_t dyd, const void *dy,
                                             const cudnnConvolutionDescriptor_t conv,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void *work, size_t work_bytes,
                                             const void *beta, const cudnnFilterDescriptor_t dwd, void *dw) {
  Shape s;
  cudnnStatus_t st = shape_of(xd, dwd, conv, dyd, "cudnnConvolutionBackwardFilter", &s);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  return run(h, BACKWARD_FILTER, algo, s, alpha, x, dy, work, work_bytes, beta, dw, "cudnnConvolutionBackwardFilter");
}

}  // extern "C"
