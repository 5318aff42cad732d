/* Internal interface of the CUDA backend: the host side (the .c files of gpu/, compiled by the C compiler)
 * validates arguments, allocates outputs and records autograd nodes; the kernels (the .cu files)
 * are reached through the plain-C launchers declared here. Every launcher runs on the current
 * stream (fsvc_gpu_stream) and returns 0, or -1 with an error set ("op: CUDA error ...").
 *
 * Geometry: kernels see a tensor as a device pointer to element 0 of the view plus an
 * fsvc_gpu_geom (shape and strides in elements, up to 8 dims); a stride of 0 broadcasts. */
#ifndef FSVC_GPU_INTERNAL_H
#define FSVC_GPU_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* the core's headers are C: their functions have C linkage in the .cu files too */
#endif

#include "fsvc/ops_extra.h"
#include "fsvc/tensor.h"

typedef struct {
  int ndim;
  int64_t shape[FSVC_MAX_DIMS];
  int64_t stride[FSVC_MAX_DIMS];
} fsvc_gpu_geom;

/* ---- runtime (runtime.c) -------------------------------------------------------------------- */
int fsvc_gpu_device_count(void);
const char *fsvc_gpu_device_name(int i);
const char *fsvc_gpu_unavailable_reason(void);
/* dlopen of a CUDA library by its sonames, then in the usual install folders (dynlib.c):
 * FSVC_CUDA_LIBRARY_PATH, $CUDA_HOME/lib64, /usr/local/cuda/lib64, pip's nvidia-* wheels; NULL with
 * a message in err when none loads */
void *fsvc_gpu_dlopen(const char *const *sonames, char *err, size_t err_size);
/* the stream every launch uses (the legacy default stream unless set) */
void *fsvc_gpu_stream(void);
void fsvc_gpu_set_stream(void *stream);
int fsvc_gpu_synchronize(void);
int fsvc_gpu_profiler(int on); /* cudaProfilerStart (1) / cudaProfilerStop (0) */
/* Launch counting (runtime.c): every kernel launch passes its stream through fsvc_gpu_count_launch
 * (FSVC_LAUNCH does), every cuBLAS/cuFFT/cuDNN call calls fsvc_gpu_count_library_call, so a
 * benchmark can report launches per step; an eager step's host cost grows with them. Graph
 * replays launch nothing from the host and are not counted. */
void *fsvc_gpu_count_launch(void *stream);
void fsvc_gpu_count_library_call(void);
void fsvc_gpu_launch_counts(int64_t *kernels, int64_t *library_calls);
/* events on the current stream (runtime.c): elapsed_ms waits for `end`; -1 on failure */
void *fsvc_gpu_event_record(void);
double fsvc_gpu_event_elapsed_ms(void *start, void *end);
void fsvc_gpu_event_destroy(void *e);
/* sets "what: CUDA error <name>: <message>" and returns -1 when code != 0 */
int fsvc_gpu_check(int code, const char *what);
/* checks the last launch (cudaGetLastError) */
int fsvc_gpu_check_launch(const char *what);

/* Index errors found on the device (index_select, gather, scatter_add with CUDA indices): the
 * kernels skip an out-of-range index and write its op's code into this device word; the host
 * reads it at its next synchronisation (fsvc_gpu_synchronize, copies to the host), as CUDA's
 * device-side asserts are seen, instead of copying every index tensor to the host first. */
enum { FSVC_GPU_INDEX_ERR_INDEX_SELECT = 1, FSVC_GPU_INDEX_ERR_GATHER = 2, FSVC_GPU_INDEX_ERR_SCATTER_ADD = 3 };
/* the word (allocated on first use; NULL with an error set if that fails); marks a check pending */
int *fsvc_gpu_index_error_word(void);
/* 0, or -1 with "OP: index out of range ..." when a kernel recorded one since the last check
 * (synchronises the current stream when a check is pending) */
int fsvc_gpu_check_index_errors(void);
/* a graph replay may run index kernels: the next synchronisation checks the word */
void fsvc_gpu_index_check_pending(void);

/* ---- allocator (allocator.c) ---------------------------------------------------------------- */
void *fsvc_gpu_alloc(int device, size_t nbytes);
void fsvc_gpu_release(void *owner, void *p, size_t nbytes);
typedef struct {
  int64_t allocated;      /* bytes handed out to tensors now */
  int64_t reserved;       /* bytes obtained from cudaMalloc and not returned (in use + cached) */
  int64_t peak_allocated; /* highest `allocated` since start or the last reset */
  int64_t n_cuda_malloc;  /* cudaMalloc calls (flat in steady state) */
  int64_t n_alloc;        /* allocations served (from the cache or fresh) */
  int64_t n_cache_hits;
} fsvc_gpu_memory_stats;
void fsvc_gpu_memory_stats_get(fsvc_gpu_memory_stats *s);
void fsvc_gpu_memory_reset_peak(void);
/* returns every cached (free) block to the driver (except CUDA graphs' blocks) */
void fsvc_gpu_empty_cache(void);
/* while pool != 0, allocations come only from the cache and join that graph's pool (gpu/graph.c) */
void fsvc_gpu_pool_capture(int pool);
void fsvc_gpu_pool_release(int pool);

/* ---- CUDA graphs (graph.c) -------------------------------------------------------------------- */
typedef struct fsvc_gpu_graph fsvc_gpu_graph;
fsvc_gpu_graph *fsvc_gpu_graph_new(void);
/* makes the graph's stream current, for the warm-up runs (end restores the previous stream) */
int fsvc_gpu_graph_warmup_begin(fsvc_gpu_graph *g);
int fsvc_gpu_graph_warmup_end(fsvc_gpu_graph *g);
/* capture on the graph's stream: every launch until end is recorded, not run */
int fsvc_gpu_graph_capture_begin(fsvc_gpu_graph *g);
int fsvc_gpu_graph_capture_end(fsvc_gpu_graph *g);
/* runs the captured work again, on the current stream */
int fsvc_gpu_graph_replay(fsvc_gpu_graph *g);
int fsvc_gpu_graph_is_captured(const fsvc_gpu_graph *g);
/* 1 while the current stream is being captured */
int fsvc_gpu_is_capturing(void);
/* drops the cuFFT plans bound to a stream that is about to be destroyed (ops_fft.c) */
void fsvc_gpu_fft_forget_stream(void *stream);
void fsvc_gpu_graph_free(fsvc_gpu_graph *g);

/* ---- random (random.cu) --------------------------------------------------------------------- */
void fsvc_gpu_manual_seed(uint64_t seed);
uint64_t fsvc_gpu_initial_seed(void);
/* fills a contiguous float32/float64 buffer: uniform in [a, b) (normal=0) or N(a, b^2) */
int fsvc_gpu_random_launch(void *p, fsvc_dtype dt, int64_t n, int normal, double a, double b);

/* ---- copies and fills (elementwise.cu) -------------------------------------------------------- */
/* dst[i] = cast(src[i]) over the row-major positions of the (equal) shapes */
int fsvc_gpu_copy_launch(void *dst, fsvc_dtype ddt, const fsvc_gpu_geom *dg, const void *src,
                         fsvc_dtype sdt, const fsvc_gpu_geom *sg);
int fsvc_gpu_fill_launch(void *dst, fsvc_dtype dt, const fsvc_gpu_geom *g, double value);

/* ---- elementwise (elementwise.cu) ----------------------------------------------------------- */
typedef enum {
  FSVC_GPU_ADD, FSVC_GPU_SUB, FSVC_GPU_MUL, FSVC_GPU_DIV, FSVC_GPU_POW, FSVC_GPU_MAXIMUM,
  FSVC_GPU_MINIMUM, FSVC_GPU_EQ, FSVC_GPU_NE, FSVC_GPU_LT, FSVC_GPU_LE, FSVC_GPU_GT, FSVC_GPU_GE,
  /* gradient helpers: out = g * d(op)/d(a or b) evaluated at (a, b) */
  FSVC_GPU_DIV_GRAD_B, FSVC_GPU_POW_GRAD_A, FSVC_GPU_POW_GRAD_B, FSVC_GPU_MAXIMUM_GRAD_A,
  FSVC_GPU_MAXIMUM_GRAD_B, FSVC_GPU_MINIMUM_GRAD_A, FSVC_GPU_MINIMUM_GRAD_B
} fsvc_gpu_binary_op;
/* out (contiguous, shape of og) = a op b, a and b given with broadcast geometries over og's
 * shape; all three of dtype dt. For the *_GRAD ops, `g` is the incoming gradient (same
 * broadcast rules) and out = g * derivative. */
int fsvc_gpu_binary_launch(fsvc_gpu_binary_op op, fsvc_dtype dt, void *out, const fsvc_gpu_geom *og,
                           const void *a, const fsvc_gpu_geom *ag, const void *b,
                           const fsvc_gpu_geom *bg, const void *g, const fsvc_gpu_geom *gg);

typedef enum {
  FSVC_GPU_NEG, FSVC_GPU_ABS, FSVC_GPU_EXP, FSVC_GPU_LOG, FSVC_GPU_SQRT, FSVC_GPU_SIN,
  FSVC_GPU_COS, FSVC_GPU_TANH, FSVC_GPU_SIGMOID, FSVC_GPU_RELU, FSVC_GPU_GELU,
  FSVC_GPU_LEAKY_RELU, FSVC_GPU_CLAMP, FSVC_GPU_MUL_SCALAR
} fsvc_gpu_unary_op;
/* out = f(x; p0, p1) for contiguous x/out of n elements */
int fsvc_gpu_unary_launch(fsvc_gpu_unary_op op, fsvc_dtype dt, void *out, const void *x, int64_t n,
                          double p0, double p1);
/* grad_in = g * f'(x) (uses y = f(x) where cheaper: exp, sqrt, tanh, sigmoid) */
int fsvc_gpu_unary_backward_launch(fsvc_gpu_unary_op op, fsvc_dtype dt, void *grad_in,
                                   const void *g, const void *x, const void *y, int64_t n,
                                   double p0, double p1);
/* out = cond != 0 ? a : b with broadcast geometries (cond of dtype cdt) */
int fsvc_gpu_where_launch(fsvc_dtype dt, void *out, const fsvc_gpu_geom *og, const void *cond,
                          fsvc_dtype cdt, const fsvc_gpu_geom *cg, const void *a,
                          const fsvc_gpu_geom *ag, const void *b, const fsvc_gpu_geom *bg);
/* dst (any strides) += alpha * src (broadcast geometry over dst's shape) */
int fsvc_gpu_axpy_launch(fsvc_dtype dt, void *dst, const fsvc_gpu_geom *dg, const void *src,
                         const fsvc_gpu_geom *sg, double alpha);

/* ---- reductions over [outer, R, inner] of a contiguous input (reduce.cu) --------------------- */
typedef enum {
  FSVC_GPU_RED_SUM, FSVC_GPU_RED_MEAN, FSVC_GPU_RED_VAR, /* p = correction (0 or 1) */
  FSVC_GPU_RED_NORM,                                      /* p = order; INFINITY = max |x| */
  FSVC_GPU_RED_MAX, FSVC_GPU_RED_MIN,                     /* idx (int64) may be NULL */
  FSVC_GPU_RED_LOGSUMEXP
} fsvc_gpu_reduce_op;
int fsvc_gpu_reduce_launch(fsvc_gpu_reduce_op op, fsvc_dtype dt, void *out, int64_t *idx,
                           const void *x, int64_t outer, int64_t r, int64_t inner, double p);
/* softmax (log=0) or log_softmax (log=1) along R */
int fsvc_gpu_softmax_launch(fsvc_dtype dt, void *y, const void *x, int64_t outer, int64_t r,
                            int64_t inner, int log);
/* gx = y * (g - sum(g*y)) (softmax) or g - exp(y) * sum(g) (log_softmax) */
int fsvc_gpu_softmax_backward_launch(fsvc_dtype dt, void *gx, const void *g, const void *y,
                                     int64_t outer, int64_t r, int64_t inner, int log);
/* inclusive prefix sum along R (reverse=1: suffix sum, the gradient of cumsum) */
int fsvc_gpu_cumsum_launch(fsvc_dtype dt, void *y, const void *x, int64_t outer, int64_t r,
                           int64_t inner, int reverse);
/* k largest/smallest along R, sorted, in core/ops/topk.c's order (topk.cu); any 0 <= k <= r.
 * scratch: device memory of fsvc_gpu_topk_scratch_bytes (NULL when that is 0) */
size_t fsvc_gpu_topk_scratch_bytes(fsvc_dtype dt, int64_t outer, int64_t r, int64_t inner, int64_t k);
int fsvc_gpu_topk_launch(fsvc_dtype dt, void *vals, int64_t *idx, const void *x, int64_t outer,
                         int64_t r, int64_t inner, int64_t k, int largest, void *scratch);

/* ---- indexing and shape kernels (shape.cu) --------------------------------------------------- */
/* gather (mode 0): out[.., i, ..] = a[.., index[.., i, ..], ..] along dim, index same ndim as a
 * scatter_add (mode 1): out[.., index[..], ..] += src[..] (out already holds a) */
int fsvc_gpu_gather_scatter_launch(int mode, fsvc_dtype dt, void *out, const fsvc_gpu_geom *og,
                                   const void *src, const fsvc_gpu_geom *sg, const int64_t *index,
                                   const fsvc_gpu_geom *ig, int dim);
/* index_select (mode 0): out = a.index_select(dim, index); its backward (mode 1):
 * ga[.., index[j], ..] += g[.., j, ..]. a/out contiguous viewed as [outer, n, inner]. */
int fsvc_gpu_index_select_launch(int mode, fsvc_dtype dt, void *big, int64_t big_n,
                                 void *small, int64_t small_n, const int64_t *index,
                                 int64_t outer, int64_t inner);
/* pad of the last n_pads/2 dims; mode 0 constant, 1 reflect, 2 replicate. backward=1 scatters
 * (atomic adds) the output gradient back to the input gradient (zeroed by the caller). */
int fsvc_gpu_pad_launch(fsvc_dtype dt, void *out, const fsvc_gpu_geom *og, void *in,
                        const fsvc_gpu_geom *ig, const int64_t *pad_left, int mode, double value,
                        int backward);

/* ---- nn kernels (nn.cu) ---------------------------------------------------------------------- */
/* C[b] = alpha op(A[b]) op(B[b]) + beta C[b] for row-major matrices (cuBLAS, TF32 allowed for
 * float32 when fsvc_gpu_allow_tf32). k == 0 leaves C as it is: a caller with beta 0 zeroes it. */
int fsvc_gpu_gemm_batched(fsvc_dtype dt, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                          double alpha, const void *a, int64_t lda, int64_t stride_a,
                          const void *b, int64_t ldb, int64_t stride_b, double beta, void *c,
                          int64_t ldc, int64_t stride_c, int64_t batch);
extern int fsvc_gpu_allow_tf32;
/* FSVC_IM2COL: x [B, C, T] -> cols [B, C*K, Tout]; FSVC_IM2COL_BATCH_INNER: cols [C*K, B, Tout];
 * FSVC_COL2IM: x = the sum of cols [B, C*K, Tout] over the taps (overwritten) */
enum { FSVC_IM2COL = 0, FSVC_COL2IM = 1, FSVC_IM2COL_BATCH_INNER = 2 };
int fsvc_gpu_im2col_launch(fsvc_dtype dt, const void *x, void *cols, int64_t b, int64_t c,
                           int64_t t, int64_t k, int64_t tout, int64_t stride, int64_t padding,
                           int64_t dilation, int mode);
/* pooling over [N, T] rows: avg (kind 0, count_include_pad) or max (kind 1, argmax into idx) */
int fsvc_gpu_pool1d_launch(int kind, fsvc_dtype dt, void *y, int64_t *idx, const void *x,
                           int64_t rows, int64_t t, int64_t tout, int64_t kernel, int64_t stride,
                           int64_t padding);
int fsvc_gpu_pool1d_backward_launch(int kind, fsvc_dtype dt, void *gx, const int64_t *idx,
                                    const void *gy, int64_t rows, int64_t t, int64_t tout,
                                    int64_t kernel, int64_t stride, int64_t padding);
/* linear/nearest resize of [N, T] rows to Tout; backward adds into gx (zeroed by caller) */
int fsvc_gpu_interpolate_launch(fsvc_dtype dt, void *y, const void *x, int64_t rows, int64_t t,
                                int64_t tout, double scale, int linear, int align_corners,
                                int backward);

/* ---- optimisers (fused_optim.cu) ------------------------------------------------------------- */
typedef struct {
  void *param, *exp_avg, *exp_avg_sq, *max_exp_avg_sq; /* contiguous, dtype of param */
  const void *grad;                                    /* contiguous, dtype of param */
  int64_t n;
} fsvc_gpu_adam_tensor;
/* one launch over all tensors of a list (multi-tensor apply) */
int fsvc_gpu_adam_launch(fsvc_dtype dt, const fsvc_gpu_adam_tensor *list, int n_tensors,
                         double lr, double beta1, double beta2, double eps, double weight_decay,
                         int64_t step, int maximize, int decoupled);
/* The cached chunk table of a parameter list (an optimiser's fsvc_gpu_adam_plan): built on the
 * host and copied to a new device block (dev, bytes) only when the list changes. steps (NULL or
 * n_tensors device pointers to float64 counters) is recorded for capturable mode. Fails, without
 * copying, when the current stream is being captured. grad fields of list are ignored. */
int fsvc_gpu_adam_plan_upload(const fsvc_gpu_adam_tensor *list, double *const *steps, int n_tensors,
                              void **dev, size_t *bytes, int64_t *n_chunks);
/* One step over the table: writes the gradient pointers (kernel parameters, no host copy), then
 * with capturable increments the device step counters and takes the bias corrections from them
 * (else from `step`); lr_dev (NULL or a device float64) replaces lr. Everything it launches can be
 * captured in a CUDA graph. */
int fsvc_gpu_adam_plan_launch(fsvc_dtype dt, void *dev, int64_t n_chunks, int n_tensors,
                              const void *const *grads, int capturable, const double *lr_dev,
                              double lr, double beta1, double beta2, double eps, double weight_decay,
                              int64_t step, int maximize, int decoupled);
typedef struct fsvc_gpu_adam_plan fsvc_gpu_adam_plan;
fsvc_gpu_adam_plan *fsvc_gpu_adam_plan_new(void);
void fsvc_gpu_adam_plan_free(fsvc_gpu_adam_plan *plan);
/* how many times the table was (re)built and uploaded */
int64_t fsvc_gpu_adam_plan_uploads(const fsvc_gpu_adam_plan *plan);
/* Adam/AdamW over a list through the plan. steps: NULL (bias corrections from h->step) or one 0-d
 * float64 CUDA counter per parameter, incremented on the device (capturable); lr: NULL (h->lr) or
 * a 0-d float64 CUDA tensor read on the device. */
int fsvc_gpu_adam_plan_step(fsvc_gpu_adam_plan *plan, int n, fsvc_tensor **params, const fsvc_tensor **grads,
                            fsvc_tensor **exp_avg, fsvc_tensor **exp_avg_sq, fsvc_tensor **max_exp_avg_sq,
                            fsvc_tensor **steps, const fsvc_tensor *lr, const fsvc_adam_params *h);
int fsvc_gpu_sgd_launch(fsvc_dtype dt, void *param, const void *grad, void *buf, int64_t n,
                        double lr, double momentum, double dampening, double weight_decay,
                        int nesterov, int maximize, int first_step);
/* sum of squares of every buffer (float32/float64), accumulated in double on the device; then
 * each buffer is scaled by min(1, max_norm / (norm + 1e-6)). Returns the total norm in *norm. */
/* grads[i] (contiguous, n[i] elements of dtype dts[i], any float dtype) *= inv_scale; *found_inf
 * = 1 when any result is NaN or Inf (one flag read back, then the stream is synchronised). */
int fsvc_gpu_amp_unscale_launch(const fsvc_dtype *dts, void *const *bufs, const int64_t *ns, int n_bufs,
                                double inv_scale, int *found_inf);
/* scales the buffers so their joint 2-norm is <= max_norm; the norm before clipping goes to *norm
 * (read back: waits for the device), or, with sum_sq_out (device memory), its square stays there */
int fsvc_gpu_clip_grad_norm_launch(fsvc_dtype dt, void *const *bufs, const int64_t *ns, int n_bufs,
                                   double max_norm, double *norm, double *sum_sq_out);

#ifdef __cplusplus
}
#endif
#endif
