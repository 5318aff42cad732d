/* The three passes of a 1-D convolution on CUDA and the implementations that compute them.
 *
 * A convolution pass maps two device buffers to a third. With x-space [B, cin, t], y-space
 * [B, cout, tout] and weights [cout, cin/g, k] (all contiguous):
 *   FORWARD          out (y-space)  = conv(in0 = x, in1 = w)
 *   BACKWARD_DATA    out (x-space)  = conv^T(in0 = w, in1 = gy)   (also conv_transpose1d's forward)
 *   BACKWARD_FILTER  out (weights)  = corr(in0 = x, in1 = gy)
 * Every implementation overwrites `out` (no accumulation), so callers allocate it uninitialised.
 *
 * Two implementations: im2col + cuBLAS GEMM (conv_im2col.c; every shape, deterministic) and cuDNN
 * (conv_cudnn.c, opened with dlopen; may be absent or refuse a shape). conv_select.c chooses per
 * shape: "auto" times both the first time a shape is met (like cudnn.benchmark) and keeps the
 * faster; "im2col" and "cudnn" force one (fsvc.cuda.set_conv_backend). */
#ifndef FSVC_GPU_CONV_H
#define FSVC_GPU_CONV_H

#include "fsvc/device.h"
#include "fsvc/tensor.h"

typedef struct {
  int64_t B, cin, cout, t, tout, k, s, p, d, g;
} fsvc_gpu_conv_geom;

typedef enum {
  FSVC_CONV_FORWARD = 0,
  FSVC_CONV_BACKWARD_DATA = 1,
  FSVC_CONV_BACKWARD_FILTER = 2,
} fsvc_gpu_conv_pass;

/* returned by an implementation that cannot run this pass (the chooser falls back) */
#define FSVC_CONV_UNSUPPORTED 1

/* the chooser: 0, or -1 with an error set */
int fsvc_gpu_conv(fsvc_gpu_conv_pass pass, const fsvc_gpu_conv_geom *c, fsvc_dtype dt, const void *in0,
                  const void *in1, void *out, fsvc_device dev);

/* im2col + cuBLAS: 0 or -1 */
int fsvc_gpu_conv_im2col(fsvc_gpu_conv_pass pass, const fsvc_gpu_conv_geom *c, fsvc_dtype dt,
                         const void *in0, const void *in1, void *out, fsvc_device dev);

/* cuDNN, with the algorithm `algo` (-1: the heuristic's first choice): 0, -1 (error set), or
 * FSVC_CONV_UNSUPPORTED (cuDNN missing or refusing this shape; the reason in
 * fsvc_gpu_cudnn_last_refusal()) */
int fsvc_gpu_conv_cudnn(fsvc_gpu_conv_pass pass, const fsvc_gpu_conv_geom *c, fsvc_dtype dt,
                        const void *in0, const void *in1, void *out, fsvc_device dev, int algo);
/* up to max cuDNN algorithms for this pass and shape, best first by cuDNN's heuristic, each with
 * its workspace within the limit; the count, or 0 when cuDNN cannot run it */
int fsvc_gpu_cudnn_algorithms(fsvc_gpu_conv_pass pass, const fsvc_gpu_conv_geom *c, fsvc_dtype dt,
                              int *algos, int max);
int fsvc_gpu_cudnn_available(void);                /* loads cuDNN on first call */
const char *fsvc_gpu_cudnn_unavailable_reason(void); /* "" when available */
int fsvc_gpu_cudnn_version(void);                  /* cudnnGetVersion(), 0 when unavailable */
const char *fsvc_gpu_cudnn_last_refusal(void);

/* ---- the chooser's settings and record (conv_select.c) ---- */
typedef enum { FSVC_CONV_AUTO = 0, FSVC_CONV_IM2COL = 1, FSVC_CONV_CUDNN = 2 } fsvc_gpu_conv_backend;
void fsvc_gpu_set_conv_backend(fsvc_gpu_conv_backend b); /* also clears the per-shape choices */
fsvc_gpu_conv_backend fsvc_gpu_get_conv_backend(void);
const char *fsvc_gpu_conv_backend_name(fsvc_gpu_conv_backend b);
const char *fsvc_gpu_conv_pass_name(fsvc_gpu_conv_pass p);

typedef struct {
  fsvc_gpu_conv_pass pass;
  fsvc_gpu_conv_geom geom;
  fsvc_dtype dtype;
  int tf32;
  int use_cudnn;       /* the choice */
  int cudnn_algo;      /* the cuDNN algorithm when use_cudnn (-1 otherwise) */
  double im2col_ms;    /* measured per call in auto mode; -1 when not timed */
  double cudnn_ms;     /* the best cuDNN algorithm's time; -1 when not timed or refused */
  char note[160];      /* why (cuDNN refused, chosen while capturing, forced) */
} fsvc_gpu_conv_choice;
/* the i-th recorded choice (0 <= i), or 0 when there is none */
int fsvc_gpu_conv_choice_get(int i, fsvc_gpu_conv_choice *out);

#endif
