/* fsvc_rfft on CUDA tensors: cuFFT's batched 1-D real FFTs (R2C / D2Z forward, C2R / Z2D for the
 * gradient). The STFT family on CUDA (core/dsp/dsp_device.c) is composed of public ops and this one.
 *
 * cuFFT is opened with dlopen on first use, as cuBLAS is (gpu/ops_nn.c): linking it would load
 * ~300 MB at every start-up. Plans are cached by (n, batch, type, stream) in a small LRU list:
 * an STFT loop calls the same few shapes again and again, and planning costs far more than a
 * transform. A plan is bound to the stream it was made for (cufftSetStream), so work stays on
 * fsvc_gpu_stream() and a captured stream gets its own plans. */
#include <cuda_runtime.h>
#include <cufft.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "gpu_ops.h"
#include "dsp/dsp_internal.h"
#include "fsvc/dsp.h"

/* The CPU emulation (gpu/emu, FSVC_CUDA=EMULATE) defines this and serves its own cuFFT; in a real
 * build the weak reference stays NULL and the library is opened. */
void *fsvc_gpu_emulated_cufft(const char *name) __attribute__((weak));

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static char lib_error[1024] = "";
static struct {
  __typeof__(&cufftPlanMany) plan_many;
  __typeof__(&cufftSetStream) set_stream;
  __typeof__(&cufftDestroy) destroy;
  __typeof__(&cufftExecR2C) r2c;
  __typeof__(&cufftExecC2R) c2r;
  __typeof__(&cufftExecD2Z) d2z;
  __typeof__(&cufftExecZ2D) z2d;
} fft;

static void open_cufft(void) {
  void *lib = NULL;
  if (!fsvc_gpu_emulated_cufft) {
    static const char *const names[] = {"libcufft.so.12", "libcufft.so", NULL};
    char why[768];
    lib = fsvc_gpu_dlopen(names, why, sizeof why);
    if (!lib) {
      snprintf(lib_error, sizeof lib_error, "cannot load cuFFT: %s", why);
      return;
    }
  }
#define FFT_SYMBOL(name) (fsvc_gpu_emulated_cufft ? fsvc_gpu_emulated_cufft(name) : dlsym(lib, name))
  *(void **)&fft.plan_many = FFT_SYMBOL("cufftPlanMany");
  *(void **)&fft.set_stream = FFT_SYMBOL("cufftSetStream");
  *(void **)&fft.destroy = FFT_SYMBOL("cufftDestroy");
  *(void **)&fft.r2c = FFT_SYMBOL("cufftExecR2C");
  *(void **)&fft.c2r = FFT_SYMBOL("cufftExecC2R");
  *(void **)&fft.d2z = FFT_SYMBOL("cufftExecD2Z");
  *(void **)&fft.z2d = FFT_SYMBOL("cufftExecZ2D");
#undef FFT_SYMBOL
  if (!fft.plan_many || !fft.set_stream || !fft.destroy || !fft.r2c || !fft.c2r || !fft.d2z || !fft.z2d)
    snprintf(lib_error, sizeof lib_error, "cuFFT lacks a needed function");
}

static int fft_check(cufftResult r, const char *what) {
  if (r == CUFFT_SUCCESS) return 0;
  fsvc_set_error("%s: cuFFT error %d", what, (int)r);
  return -1;
}

/* ---- plan cache ----------------------------------------------------------------------------- */
#define PLAN_CACHE 8
typedef struct {
  int used;
  int pinned; /* used inside a CUDA graph capture: the graph's nodes use its workspace */
  int64_t n, batch;
  cufftType type;
  void *stream;
  cufftHandle plan;
  uint64_t last_use;
} plan_entry;
static plan_entry plans[PLAN_CACHE];
static uint64_t plan_clock = 0;
static pthread_mutex_t plan_mutex = PTHREAD_MUTEX_INITIALIZER;

/* A plan for `batch` contiguous transforms of length n (rows of n reals <-> rows of n/2+1
 * complex values), on the current stream. */
static int get_plan(int64_t n, int64_t batch, cufftType type, const char *op, cufftHandle *out) {
  void *stream = fsvc_gpu_stream();
  const int capturing = fsvc_gpu_is_capturing();
  pthread_mutex_lock(&plan_mutex);
  plan_entry *victim = NULL;
  for (int i = 0; i < PLAN_CACHE; i++) {
    plan_entry *e = &plans[i];
    if (e->used && e->n == n && e->batch == batch && e->type == type && e->stream == stream) {
      e->last_use = ++plan_clock;
      if (capturing) e->pinned = 1; /* kept until its graph's stream is destroyed */
      *out = e->plan;
      pthread_mutex_unlock(&plan_mutex);
      return 0;
    }
    if (e->pinned) continue;
    if (!victim || !e->used || (victim->used && e->last_use < victim->last_use)) victim = e;
  }
  if (!victim) {
    pthread_mutex_unlock(&plan_mutex);
    fsvc_set_error("%s: every cached cuFFT plan belongs to a live CUDA graph (free some graphs)", op);
    return -1;
  }
  if (victim->used) {
    /* work queued with the old plan must finish before its workspace goes */
    cudaStreamSynchronize((cudaStream_t)victim->stream);
    fft.destroy(victim->plan);
    victim->used = 0;
  }
  int nn = (int)n, nb = (int)(n / 2 + 1);
  /* forward plans read rows of n reals and write rows of n/2+1 complex values; C2R the reverse */
  int real_input = type == CUFFT_R2C || type == CUFFT_D2Z;
  cufftHandle p;
  cufftResult r = fft.plan_many(&p, 1, &nn, real_input ? &nn : &nb, 1, real_input ? nn : nb,
                                real_input ? &nb : &nn, 1, real_input ? nb : nn, type, (int)batch);
  if (r == CUFFT_SUCCESS) r = fft.set_stream(p, (cudaStream_t)stream);
  if (r != CUFFT_SUCCESS) {
    pthread_mutex_unlock(&plan_mutex);
    return fft_check(r, op);
  }
  *victim = (plan_entry){1, capturing, n, batch, type, stream, p, ++plan_clock};
  *out = p;
  pthread_mutex_unlock(&plan_mutex);
  return 0;
}

/* The stream is about to be destroyed (a CUDA graph's, or one from fsvc.cuda.stream()): its plans
 * go with it, so that no later stream created at the same address inherits them. */
void fsvc_gpu_fft_forget_stream(void *stream) {
  if (!stream) return;
  pthread_mutex_lock(&plan_mutex);
  for (int i = 0; i < PLAN_CACHE; i++) {
    plan_entry *e = &plans[i];
    if (e->used && e->stream == stream) {
      cudaStreamSynchronize((cudaStream_t)stream);
      fft.destroy(e->plan);
      e->used = 0;
      e->pinned = 0;
    }
  }
  pthread_mutex_unlock(&plan_mutex);
}

/* rows x n reals (src) -> rows x (n/2+1) complex (dst), or back (inverse; src is overwritten, as
 * cuFFT's C2R may). Both buffers contiguous device memory of dtype dt. */
static int run_fft(const char *op, int inverse, fsvc_dtype dt, int64_t n, int64_t rows, void *src, void *dst) {
  pthread_once(&lib_once, open_cufft);
  if (lib_error[0]) {
    fsvc_set_error("%s: %s", op, lib_error);
    return -1;
  }
  if (rows == 0) return 0;
  if (n > INT32_MAX / 2 || rows > INT32_MAX || (n + 2) * rows > INT32_MAX) {
    fsvc_set_error("%s: %lld transforms of %lld samples exceed cuFFT's 32-bit plan sizes", op,
                   (long long)rows, (long long)n);
    return -1;
  }
  cufftType type = dt == FSVC_FLOAT64 ? (inverse ? CUFFT_Z2D : CUFFT_D2Z) : (inverse ? CUFFT_C2R : CUFFT_R2C);
  cufftHandle p;
  if (get_plan(n, rows, type, op, &p) != 0) return -1;
  cufftResult r;
  fsvc_gpu_count_library_call();
  switch (type) {
    case CUFFT_R2C: r = fft.r2c(p, (cufftReal *)src, (cufftComplex *)dst); break;
    case CUFFT_C2R: r = fft.c2r(p, (cufftComplex *)src, (cufftReal *)dst); break;
    case CUFFT_D2Z: r = fft.d2z(p, (cufftDoubleReal *)src, (cufftDoubleComplex *)dst); break;
    default: r = fft.z2d(p, (cufftDoubleComplex *)src, (cufftDoubleReal *)dst); break;
  }
  return fft_check(r, op);
}

/* ---- rfft with autograd --------------------------------------------------------------------- */
/* H = G * c with c = 1/2 on bins 1..ceil(n/2)-1 and, on the edge bins, 1 for the real part and 0
 * for the imaginary part (which the transform cannot see; cuFFT's C2R leaves it undefined).
 * c is a shared device constant (core/dsp's cache by content): uploaded once per size and dtype,
 * so the backward waits for no copy and can be captured in a CUDA graph (a training step's
 * log-mel loss), which refuses a copy from host memory. */
static fsvc_tensor *adjoint_weights(int64_t n, fsvc_dtype dt, fsvc_device dev) {
  const int64_t nb = n / 2 + 1;
  int64_t shape[2] = {nb, 2};
  fsvc_tensor *w = fsvc_empty(2, shape, FSVC_FLOAT64);
  if (!w) return NULL;
  double *d = fsvc_data(w);
  for (int64_t f = 0; f < nb; f++) {
    int edge = f == 0 || 2 * f == n;
    d[2 * f] = edge ? 1.0 : 0.5;
    d[2 * f + 1] = edge ? 0.0 : 0.5;
  }
  fsvc_tensor *wt = fsvc_to_dtype_raw(w, dt);
  fsvc_tensor_release(w);
  fsvc_tensor *out = wt ? dsp_device_constant(wt, dev) : NULL;
  fsvc_tensor_release(wt);
  return out;
}

static int rfft_backward(fsvc_node *node, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!node->edges[0].needs_grad) return 0;
  const int ndim = node->edges[0].ndim;
  const int64_t *shape = node->edges[0].shape;
  const fsvc_dtype dt = node->edges[0].dtype;
  const int64_t n = shape[ndim - 1];
  fsvc_device dev = fsvc_tensor_device(g);
  fsvc_tensor *gc = fsvc_gpu_contig_as(g, dt);
  fsvc_tensor *w = gc ? adjoint_weights(n, dt, dev) : NULL;
  fsvc_tensor *h = w ? fsvc_mul(gc, w) : NULL; /* a fresh buffer: C2R may overwrite it */
  fsvc_tensor *gx = h ? fsvc_empty_on(ndim, shape, dt, dev) : NULL;
  int rc = gx ? run_fft("rfft backward", 1, dt, n, fsvc_numel(gx) / n, fsvc_data(h), fsvc_data(gx)) : -1;
  fsvc_tensor_release(gc);
  fsvc_tensor_release(w);
  fsvc_tensor_release(h);
  if (rc != 0) {
    fsvc_tensor_release(gx);
    return -1;
  }
  gin[0] = gx;
  return 0;
}

/* x's dtype and shape were checked by fsvc_rfft before it dispatched here */
static fsvc_tensor *gpu_rfft(const fsvc_tensor *x) {
  if (fsvc_gpu_check_tensor("rfft", x, "input") != 0) return NULL;
  const int64_t n = x->shape[x->ndim - 1];
  int64_t oshape[FSVC_MAX_DIMS];
  for (int d = 0; d < x->ndim - 1; d++) oshape[d] = x->shape[d];
  oshape[x->ndim - 1] = n / 2 + 1;
  oshape[x->ndim] = 2;
  fsvc_tensor *xc = fsvc_gpu_contig_as(x, x->dtype);
  /* cuFFT wants its buffers aligned to the complex type: views at odd offsets are copied */
  if (xc && ((uintptr_t)fsvc_data(xc) % 16) != 0) {
    fsvc_tensor *c = fsvc_clone_raw(xc);
    fsvc_tensor_release(xc);
    xc = c;
  }
  fsvc_tensor *out = xc ? fsvc_empty_on(x->ndim + 1, oshape, x->dtype, x->storage->device) : NULL;
  if (!out || run_fft("rfft", 0, x->dtype, n, fsvc_numel(xc) / n, fsvc_data(xc), fsvc_data(out)) != 0) {
    fsvc_tensor_release(xc);
    fsvc_tensor_release(out);
    return NULL;
  }
  fsvc_tensor_release(xc);
  fsvc_node *node = fsvc_node_new("rfft", 1, (fsvc_tensor *[]){(fsvc_tensor *)x}, rfft_backward);
  if (node) fsvc_node_attach(node, out);
  return out;
}

void fsvc_gpu_fill_fft(fsvc_cuda_op_table *t) { t->rfft = gpu_rfft; }
