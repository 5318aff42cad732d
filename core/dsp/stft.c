/* STFT family: hann_window, stft, istft, magnitude, spectrogram (with autograd).
 *
 * Frames are transformed with real FFTs (dsp_fft.c), one plan per OpenMP thread (KissFFT plans
 * hold scratch memory, so they cannot be shared). Layout of a spectrum: [B, F, T, 2] as
 * torch.view_as_real(torch.stft(...)); the kernels work on [B, L] signals in double per frame
 * and store in the tensor's dtype.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "dsp_internal.h"
#include "fsvc/autograd.h"
#include "fsvc/device.h"
#include "fsvc/dsp.h"
#include "fsvc/error.h"
#include "fsvc/ops.h"

__attribute__((constructor)) static void register_ops(void) {
  fsvc_register_differentiable("stft");
  fsvc_register_differentiable("istft");
  fsvc_register_differentiable("magnitude");
}

/* ---- small helpers ------------------------------------------------------------------------ */
static int check_live(const fsvc_tensor *t, const char *op, const char *name) {
  if (!t) {
    fsvc_set_error("%s: %s is NULL", op, name);
    return -1;
  }
  if (!t->storage) {
    fsvc_set_error("%s: %s: tensor was freed", op, name);
    return -1;
  }
  if (t->dtype != FSVC_FLOAT32 && t->dtype != FSVC_FLOAT64) {
    fsvc_set_error("%s: %s must be float32 or float64, got %s", op, name,
                   fsvc_dtype_name(t->dtype));
    return -1;
  }
  return 0;
}

static inline double load(const void *p, fsvc_dtype dt, int64_t i) {
  return dt == FSVC_FLOAT32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}
static inline void store(void *p, fsvc_dtype dt, int64_t i, double v) {
  if (dt == FSVC_FLOAT32) ((float *)p)[i] = (float)v;
  else ((double *)p)[i] = v;
}

fsvc_tensor *fsvc_hann_window(int64_t n, int periodic, fsvc_dtype dt) {
  if (n < 0) {
    fsvc_set_error("hann_window: length must be >= 0, got %lld", (long long)n);
    return NULL;
  }
  if (dt != FSVC_FLOAT32 && dt != FSVC_FLOAT64) {
    fsvc_set_error("hann_window: dtype must be float32 or float64, got %s", fsvc_dtype_name(dt));
    return NULL;
  }
  fsvc_tensor *w = fsvc_empty(1, &n, dt);
  if (!w) return NULL;
  void *d = fsvc_data(w);
  if (n == 1) {
    store(d, dt, 0, 1.0);
    return w;
  }
  double N = periodic ? (double)n : (double)(n - 1);
  for (int64_t k = 0; k < n; k++) store(d, dt, k, 0.5 - 0.5 * cos(2.0 * M_PI * (double)k / N));
  return w;
}

void fsvc_stft_default_options(fsvc_stft_options *o, int64_t n_fft) {
  memset(o, 0, sizeof *o);
  o->n_fft = n_fft;
  o->hop_length = n_fft / 4;
  o->win_length = n_fft;
  o->window = NULL;
  o->center = 1;
  o->pad_mode = FSVC_STFT_PAD_REFLECT;
  o->onesided = 1;
}

/* Resolved geometry of one STFT call (dsp_internal.h). */
typedef dsp_stft_geometry stft_geom;

/* Index into the unpadded signal of padded position j, or -1 for a zero (constant padding). */
static inline int64_t pad_src(const stft_geom *g, int64_t j) {
  int64_t s = j - g->pad;
  if (s >= 0 && s < g->L) return s;
  switch (g->mode) {
    case FSVC_STFT_PAD_REFLECT: return s < 0 ? -s : 2 * (g->L - 1) - s;
    case FSVC_STFT_PAD_REPLICATE: return s < 0 ? 0 : g->L - 1;
    default: return -1;
  }
}

/* Validates options and fills g (except B, L, T for istft). The window is copied to double. */
static int resolve(const char *op, const fsvc_stft_options *o, stft_geom *g) {
  memset(g, 0, sizeof *g);
  if (!o) {
    fsvc_set_error("%s: options are NULL", op);
    return -1;
  }
  int64_t n = o->n_fft;
  if (n < 1 || n > ((int64_t)1 << 24)) {
    fsvc_set_error("%s: n_fft must be in 1..2^24, got %lld", op, (long long)n);
    return -1;
  }
  int64_t hop = o->hop_length > 0 ? o->hop_length : n / 4;
  if (hop < 1) hop = 1;
  int64_t wl = o->win_length > 0 ? o->win_length : n;
  if (o->hop_length < 0 || o->win_length < 0) {
    fsvc_set_error("%s: hop_length and win_length must be positive", op);
    return -1;
  }
  if (wl > n) {
    fsvc_set_error("%s: win_length %lld must be <= n_fft %lld", op, (long long)wl, (long long)n);
    return -1;
  }
  if ((int)o->pad_mode < 0 || o->pad_mode > FSVC_STFT_PAD_REPLICATE) {
    fsvc_set_error("%s: unknown pad_mode %d", op, (int)o->pad_mode);
    return -1;
  }
  g->window = calloc((size_t)n, sizeof(double));
  if (!g->window) {
    fsvc_set_error("%s: out of memory", op);
    return -1;
  }
  int64_t left = (n - wl) / 2;
  if (o->window) {
    const fsvc_tensor *w = o->window;
    if (check_live(w, op, "window")) goto fail;
    if (w->ndim != 1 || w->shape[0] != wl) {
      char b[64];
      fsvc_set_error("%s: window must be [%lld] (win_length), got %s", op, (long long)wl,
                     fsvc_shape_str(w, b, sizeof b));
      goto fail;
    }
    for (int64_t k = 0; k < wl; k++) {
      double v = fsvc_get_flat(w, k);
      if (!isfinite(v)) {
        fsvc_set_error("%s: window has a NaN or Inf value", op);
        goto fail;
      }
      g->window[left + k] = v;
    }
  } else {
    for (int64_t k = 0; k < wl; k++)
      g->window[left + k] = wl == 1 ? 1.0 : 0.5 - 0.5 * cos(2.0 * M_PI * (double)k / (double)wl);
  }
  g->n_fft = n;
  g->hop = hop;
  g->pad = o->center ? n / 2 : 0;
  g->mode = o->center ? o->pad_mode : FSVC_STFT_PAD_CONSTANT;
  g->onesided = o->onesided;
  g->F = o->onesided ? n / 2 + 1 : n;
  return 0;
fail:
  free(g->window);
  g->window = NULL;
  return -1;
}

/* One plan per thread; plans[i] for omp thread i. */
static dsp_rfft **plans_new(int64_t n, int use_float, int count) {
  dsp_rfft **p = calloc((size_t)count, sizeof *p);
  if (!p) return NULL;
  for (int i = 0; i < count; i++) {
    p[i] = dsp_rfft_new(n, use_float);
    if (!p[i]) {
      for (int j = 0; j < i; j++) dsp_rfft_free(p[j]);
      free(p);
      return NULL;
    }
  }
  return p;
}
static void plans_free(dsp_rfft **p, int count) {
  if (!p) return;
  for (int i = 0; i < count; i++) dsp_rfft_free(p[i]);
  free(p);
}

/* work per frame ~ n log n; parallelise when there are enough frames */
#define PAR_FRAMES 4

/* ---- stft ----------------------------------------------------------------------------------- */
/* x: contiguous [B, L]; out: contiguous [B, F, T, 2] */
/* Frames are processed in blocks of TBLK consecutive frames so that the transposed stores into
 * [B, F, T, 2] write TBLK contiguous values per bin instead of one value per cache line. */
#define TBLK 16

static int stft_kernel(const stft_geom *g, const fsvc_tensor *x, fsvc_tensor *out) {
  const int64_t n = g->n_fft, nb = n / 2 + 1, B = g->B, T = g->T, F = g->F;
  const int64_t nblk = (T + TBLK - 1) / TBLK;
  const fsvc_dtype dt = x->dtype;
  const void *xd = fsvc_data(x);
  void *od = fsvc_data(out);
  int nthreads = (B * T >= PAR_FRAMES) ? omp_get_max_threads() : 1;
  if (nthreads > B * nblk) nthreads = (int)(B * nblk);
  dsp_rfft **plans = plans_new(n, dt == FSVC_FLOAT32, nthreads);
  const size_t per = (size_t)n + (size_t)TBLK * 2 * (size_t)nb;
  double *bufs = malloc(sizeof(double) * (size_t)nthreads * per);
  if (!plans || !bufs) {
    plans_free(plans, nthreads);
    free(bufs);
    fsvc_set_error("stft: out of memory");
    return -1;
  }
#pragma omp parallel for num_threads(nthreads) schedule(static) if (nthreads > 1)
  for (int64_t bk = 0; bk < B * nblk; bk++) {
    int tid = omp_get_thread_num();
    double *frame = bufs + (size_t)tid * per, *specs = frame + n; /* specs [TBLK][2 nb] */
    const int64_t b = bk / nblk, t0 = (bk % nblk) * TBLK;
    const int64_t nt = T - t0 < TBLK ? T - t0 : TBLK;
    const int64_t xoff = b * g->L;
    for (int64_t j = 0; j < nt; j++) {
      const int64_t start = (t0 + j) * g->hop;
      if (start >= g->pad && start + n <= g->pad + g->L) { /* interior frame: no padding */
        const int64_t s0 = xoff + start - g->pad;
        if (dt == FSVC_FLOAT32)
          for (int64_t k = 0; k < n; k++) frame[k] = g->window[k] * ((const float *)xd)[s0 + k];
        else
          for (int64_t k = 0; k < n; k++) frame[k] = g->window[k] * ((const double *)xd)[s0 + k];
      } else {
        for (int64_t k = 0; k < n; k++) {
          int64_t s = pad_src(g, start + k);
          frame[k] = s < 0 ? 0.0 : g->window[k] * load(xd, dt, xoff + s);
        }
      }
      dsp_rfft_forward(plans[tid], frame, specs + j * 2 * nb);
    }
    for (int64_t f = 0; f < F; f++) {
      /* two-sided bins: X_f = conj(X_{n-f}) for a real signal */
      const int64_t src = f < nb ? f : n - f;
      const double sign = f < nb ? 1.0 : -1.0;
      const int64_t obase = ((b * F + f) * T + t0) * 2;
      if (dt == FSVC_FLOAT32) {
        float *o = (float *)od + obase;
        for (int64_t j = 0; j < nt; j++) {
          o[2 * j] = (float)specs[j * 2 * nb + 2 * src];
          o[2 * j + 1] = (float)(sign * specs[j * 2 * nb + 2 * src + 1]);
        }
      } else {
        double *o = (double *)od + obase;
        for (int64_t j = 0; j < nt; j++) {
          o[2 * j] = specs[j * 2 * nb + 2 * src];
          o[2 * j + 1] = sign * specs[j * 2 * nb + 2 * src + 1];
        }
      }
    }
  }
  plans_free(plans, nthreads);
  free(bufs);
  return 0;
}

/* Adjoint of stft_kernel: grad [B, F, T, 2] contiguous -> gx [B, L] contiguous (zeroed here). */
static int stft_adjoint(const stft_geom *g, const fsvc_tensor *grad, fsvc_tensor *gx) {
  const int64_t n = g->n_fft, nb = n / 2 + 1, B = g->B, T = g->T, F = g->F;
  const fsvc_dtype dt = grad->dtype;
  const void *gd = fsvc_data(grad);
  void *xd = fsvc_data(gx);
  const int64_t nblk = (T + TBLK - 1) / TBLK;
  int nthreads = (B * T >= PAR_FRAMES) ? omp_get_max_threads() : 1;
  if (nthreads > B * nblk) nthreads = (int)(B * nblk);
  dsp_rfft **plans = plans_new(n, dt == FSVC_FLOAT32, nthreads);
  const size_t per = (size_t)TBLK * 2 * (size_t)nb;
  double *bufs = malloc(sizeof(double) * (size_t)nthreads * per);
  double *frames = malloc(sizeof(double) * (size_t)(B * T) * (size_t)n);
  if (!plans || !bufs || !frames) {
    plans_free(plans, nthreads);
    free(bufs);
    free(frames);
    fsvc_set_error("stft backward: out of memory");
    return -1;
  }
  /* d loss / d frame[k] = Re(sum_f G_f e^{+2 pi i f k / n}) over the output bins. Two-sided bins
   * f > n/2 fold onto n - f as conj(G_f). The half-spectrum sum is an inverse real FFT of H with
   * H_f = G_f / 2 for 0 < f < n/2 (the Hermitian extension counts those twice). Blocks of TBLK
   * frames read the [B, F, T, 2] gradient TBLK values at a time. */
#pragma omp parallel for num_threads(nthreads) schedule(static) if (nthreads > 1)
  for (int64_t bk = 0; bk < B * nblk; bk++) {
    double *hs = bufs + (size_t)omp_get_thread_num() * per; /* [TBLK][2 nb] */
    const int64_t b = bk / nblk, t0 = (bk % nblk) * TBLK;
    const int64_t nt = T - t0 < TBLK ? T - t0 : TBLK;
    memset(hs, 0, sizeof(double) * per);
    for (int64_t f = 0; f < F; f++) {
      const int64_t dst = f < nb ? f : n - f;
      const double sign = f < nb ? 1.0 : -1.0;
      const int64_t gbase = ((b * F + f) * T + t0) * 2;
      for (int64_t j = 0; j < nt; j++) {
        hs[j * 2 * nb + 2 * dst] += load(gd, dt, gbase + 2 * j);
        hs[j * 2 * nb + 2 * dst + 1] += sign * load(gd, dt, gbase + 2 * j + 1);
      }
    }
    for (int64_t j = 0; j < nt; j++) {
      double *h = hs + j * 2 * nb;
      for (int64_t f = 1; f < nb; f++) {
        if (n % 2 == 0 && f == n / 2) break;
        h[2 * f] *= 0.5;
        h[2 * f + 1] *= 0.5;
      }
      double *fr = frames + (size_t)(b * T + t0 + j) * (size_t)n;
      dsp_rfft_inverse(plans[omp_get_thread_num()], h, fr);
      for (int64_t k = 0; k < n; k++) fr[k] *= g->window[k];
    }
  }
  /* overlap-add into the padded signal and fold the padding back (each row independently) */
  int bthreads = B > 1 ? nthreads : 1;
  double *rows = malloc(sizeof(double) * (size_t)bthreads * (size_t)g->Lp);
  if (!rows) {
    plans_free(plans, nthreads);
    free(bufs);
    free(frames);
    fsvc_set_error("stft backward: out of memory");
    return -1;
  }
#pragma omp parallel for num_threads(bthreads) schedule(static) if (bthreads > 1)
  for (int64_t b = 0; b < B; b++) {
    double *row = rows + (size_t)omp_get_thread_num() * (size_t)g->Lp;
    memset(row, 0, sizeof(double) * (size_t)g->Lp);
    for (int64_t t = 0; t < T; t++) {
      const double *fr = frames + (size_t)(b * T + t) * (size_t)n;
      double *dst = row + t * g->hop;
      for (int64_t k = 0; k < n; k++) dst[k] += fr[k];
    }
    for (int64_t i = 0; i < g->L; i++) store(xd, dt, b * g->L + i, 0.0);
    for (int64_t j = 0; j < g->Lp; j++) {
      int64_t s = pad_src(g, j);
      if (s >= 0) store(xd, dt, b * g->L + s, load(xd, dt, b * g->L + s) + row[j]);
    }
  }
  free(rows);
  plans_free(plans, nthreads);
  free(bufs);
  free(frames);
  return 0;
}

/* node ctx: the geometry (owns the window copy) */
static void geom_free(void *p) {
  stft_geom *g = p;
  if (g) free(g->window);
  free(g);
}

static int stft_backward(fsvc_node *node, const fsvc_tensor *grad_out, fsvc_tensor **grad_in) {
  if (!node->edges[0].needs_grad) return 0;
  const stft_geom *g = node->ctx;
  fsvc_dtype dt = node->edges[0].dtype;
  fsvc_tensor *gc = fsvc_to_dtype_raw(grad_out, dt); /* contiguous copy in the input's dtype */
  if (!gc) return -1;
  int64_t shp[2] = {g->B, g->L};
  fsvc_tensor *gx = fsvc_empty(2, shp, dt);
  if (!gx || stft_adjoint(g, gc, gx)) {
    fsvc_tensor_release(gc);
    fsvc_tensor_release(gx);
    return -1;
  }
  fsvc_tensor_release(gc);
  int64_t st[FSVC_MAX_DIMS];
  fsvc_contiguous_strides(node->edges[0].ndim, node->edges[0].shape, st);
  grad_in[0] = fsvc_view_raw(gx, node->edges[0].ndim, node->edges[0].shape, st, 0);
  fsvc_tensor_release(gx);
  return grad_in[0] ? 0 : -1;
}

/* fsvc_stft's checks, shared with the device path: fills g (the caller frees g->window). */
int dsp_stft_prepare(const fsvc_tensor *x, const fsvc_stft_options *o, stft_geom *g) {
  if (check_live(x, "stft", "input")) return -1;
  char sb[64];
  if (x->ndim != 1 && x->ndim != 2) {
    fsvc_set_error("stft: input must be [L] or [B, L], got %s", fsvc_shape_str(x, sb, sizeof sb));
    return -1;
  }
  fsvc_stft_options host = o ? *o : (fsvc_stft_options){0};
  fsvc_tensor *host_window = NULL; /* resolve reads the window on the host */
  if (o && o->window && fsvc_tensor_is_cuda(o->window)) {
    host_window = fsvc_to_device_raw(o->window, fsvc_cpu());
    if (!host_window) return -1;
    host.window = host_window;
  }
  int rc = resolve("stft", o ? &host : NULL, g);
  fsvc_tensor_release(host_window);
  if (rc) return -1;
  g->B = x->ndim == 2 ? x->shape[0] : 1;
  g->L = x->shape[x->ndim - 1];
  g->Lp = g->L + 2 * g->pad;
  if (g->B < 1 || g->L < 1) {
    fsvc_set_error("stft: input is empty, shape %s", fsvc_shape_str(x, sb, sizeof sb));
    goto fail;
  }
  if (g->pad > 0 && g->mode == FSVC_STFT_PAD_REFLECT && g->pad >= g->L) {
    fsvc_set_error("stft: reflect padding of %lld needs more than %lld samples (input %s); use a "
                   "longer signal or pad_mode='constant'",
                   (long long)g->pad, (long long)g->pad, fsvc_shape_str(x, sb, sizeof sb));
    goto fail;
  }
  if (g->Lp < g->n_fft) {
    fsvc_set_error("stft: input %s is shorter than n_fft %lld", fsvc_shape_str(x, sb, sizeof sb),
                   (long long)g->n_fft);
    goto fail;
  }
  g->T = 1 + (g->Lp - g->n_fft) / g->hop;
  return 0;
fail:
  free(g->window);
  g->window = NULL;
  return -1;
}

fsvc_tensor *fsvc_stft(const fsvc_tensor *x, const fsvc_stft_options *o) {
  stft_geom g0, *g = &g0;
  if (dsp_stft_prepare(x, o, g)) return NULL;
  if (fsvc_tensor_is_cuda(x)) { /* composed of device ops and cuFFT (dsp_device.c) */
    fsvc_tensor *out = dsp_stft_device(x, g);
    free(g->window);
    return out;
  }
  fsvc_tensor *xc = fsvc_contiguous_raw(x);
  if (!xc) goto fail;
  int64_t oshape[4] = {g->B, g->F, g->T, 2};
  fsvc_tensor *out = fsvc_empty(4, oshape, x->dtype);
  if (!out || stft_kernel(g, xc, out)) {
    fsvc_tensor_release(xc);
    fsvc_tensor_release(out);
    goto fail;
  }
  fsvc_tensor_release(xc);
  if (x->ndim == 1) { /* drop the batch dim: [F, T, 2] */
    fsvc_tensor *v = fsvc_view_raw(out, 3, oshape + 1, out->stride + 1, out->offset);
    fsvc_tensor_release(out);
    out = v;
    if (!out) goto fail;
  }
  fsvc_node *node = fsvc_node_new("stft", 1, (fsvc_tensor *const[]){(fsvc_tensor *)x},
                                  stft_backward);
  if (node) {
    stft_geom *keep = malloc(sizeof *keep);
    if (!keep) {
      fsvc_node_release(node);
      fsvc_tensor_release(out);
      fsvc_set_error("stft: out of memory");
      goto fail;
    }
    *keep = *g;
    node->ctx = keep;
    node->ctx_free = geom_free;
    fsvc_node_attach(node, out);
    return out;
  }
  free(g->window);
  return out;
fail:
  free(g->window);
  return NULL;
}

/* ---- istft ---------------------------------------------------------------------------------- */
/* Envelope sum_t w^2[j - t hop] over the padded signal, and the [start, start+len) crop. */
typedef struct {
  stft_geom g;
  int64_t start, length, avail; /* crop in the padded OLA signal; avail = samples in it */
  double *env;                  /* [avail] */
} istft_geom;

static void istft_geom_free(void *p) {
  istft_geom *ig = p;
  if (ig) {
    free(ig->g.window);
    free(ig->env);
  }
  free(ig);
}

/* spec contiguous [B, F, T, 2] -> y contiguous [B, length] */
static int istft_kernel(const istft_geom *ig, const fsvc_tensor *spec, fsvc_tensor *y) {
  const stft_geom *g = &ig->g;
  const int64_t n = g->n_fft, nb = n / 2 + 1, B = g->B, T = g->T, F = g->F;
  const fsvc_dtype dt = spec->dtype;
  const void *sd = fsvc_data(spec);
  void *yd = fsvc_data(y);
  int nthreads = (B * T >= PAR_FRAMES) ? omp_get_max_threads() : 1;
  dsp_rfft **plans = plans_new(n, dt == FSVC_FLOAT32, nthreads);
  double *bufs = malloc(sizeof(double) * (size_t)nthreads * (size_t)(2 * nb));
  double *frames = malloc(sizeof(double) * (size_t)(B * T) * (size_t)n);
  double *row = malloc(sizeof(double) * (size_t)(ig->avail > 0 ? ig->avail : 1));
  if (!plans || !bufs || !frames || !row) {
    plans_free(plans, nthreads);
    free(bufs);
    free(frames);
    free(row);
    fsvc_set_error("istft: out of memory");
    return -1;
  }
#pragma omp parallel for num_threads(nthreads) schedule(static) if (nthreads > 1)
  for (int64_t bt = 0; bt < B * T; bt++) {
    int tid = omp_get_thread_num();
    double *h = bufs + (size_t)tid * (size_t)(2 * nb);
    int64_t b = bt / T, t = bt % T;
    const int64_t base = b * F * T * 2 + t * 2;
    for (int64_t f = 0; f < nb; f++) {
      h[2 * f] = load(sd, dt, base + f * T * 2);
      h[2 * f + 1] = load(sd, dt, base + f * T * 2 + 1);
    }
    double *fr = frames + (size_t)bt * (size_t)n;
    dsp_rfft_inverse(plans[tid], h, fr);
    for (int64_t k = 0; k < n; k++) fr[k] *= g->window[k] / (double)n;
  }
  for (int64_t b = 0; b < B; b++) {
    memset(row, 0, sizeof(double) * (size_t)ig->avail);
    for (int64_t t = 0; t < T; t++) {
      const double *fr = frames + (size_t)(b * T + t) * (size_t)n;
      for (int64_t k = 0; k < n; k++) row[t * g->hop + k] += fr[k];
    }
    for (int64_t i = 0; i < ig->length; i++) {
      int64_t j = ig->start + i;
      store(yd, dt, b * ig->length + i, j < ig->avail ? row[j] / ig->env[j] : 0.0);
    }
  }
  plans_free(plans, nthreads);
  free(bufs);
  free(frames);
  free(row);
  return 0;
}

/* Adjoint: gy [B, length] -> gs [B, F, T, 2]. y = crop(OLA(w . irfft(X) / n)) / env, and the
 * adjoint of the unnormalised Hermitian irfft is c_f * rfft(g) with c = 1 at bins 0 and n/2
 * (whose imaginary parts irfft ignores: gradient 0) and 2 elsewhere. */
static int istft_adjoint(const istft_geom *ig, const fsvc_tensor *gy, fsvc_tensor *gs) {
  const stft_geom *g = &ig->g;
  const int64_t n = g->n_fft, nb = n / 2 + 1, B = g->B, T = g->T, F = g->F;
  const fsvc_dtype dt = gy->dtype;
  const void *yd = fsvc_data(gy);
  void *sd = fsvc_data(gs);
  int nthreads = (B * T >= PAR_FRAMES) ? omp_get_max_threads() : 1;
  dsp_rfft **plans = plans_new(n, dt == FSVC_FLOAT32, nthreads);
  double *bufs = malloc(sizeof(double) * (size_t)nthreads * (size_t)(n + 2 * nb));
  double *rows = malloc(sizeof(double) * (size_t)B * (size_t)(ig->avail > 0 ? ig->avail : 1));
  if (!plans || !bufs || !rows) {
    plans_free(plans, nthreads);
    free(bufs);
    free(rows);
    fsvc_set_error("istft backward: out of memory");
    return -1;
  }
  for (int64_t b = 0; b < B; b++) {
    double *row = rows + (size_t)b * (size_t)ig->avail;
    memset(row, 0, sizeof(double) * (size_t)ig->avail);
    for (int64_t i = 0; i < ig->length; i++) {
      int64_t j = ig->start + i;
      if (j < ig->avail) row[j] = load(yd, dt, b * ig->length + i) / ig->env[j];
    }
  }
#pragma omp parallel for num_threads(nthreads) schedule(static) if (nthreads > 1)
  for (int64_t bt = 0; bt < B * T; bt++) {
    int tid = omp_get_thread_num();
    double *fr = bufs + (size_t)tid * (size_t)(n + 2 * nb), *spec = fr + n;
    int64_t b = bt / T, t = bt % T;
    const double *row = rows + (size_t)b * (size_t)ig->avail + t * g->hop;
    for (int64_t k = 0; k < n; k++) fr[k] = row[k] * g->window[k] / (double)n;
    dsp_rfft_forward(plans[tid], fr, spec);
    const int64_t base = b * F * T * 2 + t * 2;
    for (int64_t f = 0; f < F; f++) {
      int edge = f == 0 || (n % 2 == 0 && f == n / 2);
      double c = edge ? 1.0 : 2.0;
      store(sd, dt, base + f * T * 2, c * spec[2 * f]);
      store(sd, dt, base + f * T * 2 + 1, edge ? 0.0 : c * spec[2 * f + 1]);
    }
  }
  plans_free(plans, nthreads);
  free(bufs);
  free(rows);
  return 0;
}

static int istft_backward(fsvc_node *node, const fsvc_tensor *grad_out, fsvc_tensor **grad_in) {
  if (!node->edges[0].needs_grad) return 0;
  const istft_geom *ig = node->ctx;
  fsvc_dtype dt = node->edges[0].dtype;
  fsvc_tensor *gc = fsvc_to_dtype_raw(grad_out, dt);
  if (!gc) return -1;
  int64_t shp[4] = {ig->g.B, ig->g.F, ig->g.T, 2};
  fsvc_tensor *gs = fsvc_empty(4, shp, dt);
  if (!gs || istft_adjoint(ig, gc, gs)) {
    fsvc_tensor_release(gc);
    fsvc_tensor_release(gs);
    return -1;
  }
  fsvc_tensor_release(gc);
  int64_t st[FSVC_MAX_DIMS];
  fsvc_contiguous_strides(node->edges[0].ndim, node->edges[0].shape, st);
  grad_in[0] = fsvc_view_raw(gs, node->edges[0].ndim, node->edges[0].shape, st, 0);
  fsvc_tensor_release(gs);
  return grad_in[0] ? 0 : -1;
}

fsvc_tensor *fsvc_istft(const fsvc_tensor *spec, const fsvc_stft_options *o, int64_t length) {
  if (check_live(spec, "istft", "input")) return NULL;
  char sb[64];
  if ((spec->ndim != 3 && spec->ndim != 4) || spec->shape[spec->ndim - 1] != 2) {
    fsvc_set_error("istft: input must be [F, T, 2] or [B, F, T, 2] (real, imag), got %s",
                   fsvc_shape_str(spec, sb, sizeof sb));
    return NULL;
  }
  istft_geom *ig = calloc(1, sizeof *ig);
  if (!ig) {
    fsvc_set_error("istft: out of memory");
    return NULL;
  }
  stft_geom *g = &ig->g;
  fsvc_stft_options host = o ? *o : (fsvc_stft_options){0};
  fsvc_tensor *host_window = NULL; /* resolve reads the window on the host */
  if (o && o->window && fsvc_tensor_is_cuda(o->window)) {
    host_window = fsvc_to_device_raw(o->window, fsvc_cpu());
    if (!host_window) {
      free(ig);
      return NULL;
    }
    host.window = host_window;
  }
  int rc = resolve("istft", o ? &host : NULL, g);
  fsvc_tensor_release(host_window);
  if (rc) {
    free(ig);
    return NULL;
  }
  if (!g->onesided) {
    fsvc_set_error("istft: only onesided spectra are supported");
    goto fail;
  }
  g->B = spec->ndim == 4 ? spec->shape[0] : 1;
  g->T = spec->shape[spec->ndim - 2];
  int64_t F = spec->shape[spec->ndim - 3];
  if (F != g->F) {
    fsvc_set_error("istft: input has %lld frequency bins, n_fft %lld needs %lld (shape %s)",
                   (long long)F, (long long)g->n_fft, (long long)g->F,
                   fsvc_shape_str(spec, sb, sizeof sb));
    goto fail;
  }
  if (g->B < 1 || g->T < 1) {
    fsvc_set_error("istft: input is empty, shape %s", fsvc_shape_str(spec, sb, sizeof sb));
    goto fail;
  }
  if (length < 0) length = 0;
  ig->avail = g->n_fft + g->hop * (g->T - 1);
  ig->start = g->pad;
  ig->length = length > 0 ? length : ig->avail - 2 * g->pad;
  if (ig->length < 1) {
    fsvc_set_error("istft: %lld frames of hop %lld give no samples after removing the centre "
                   "padding", (long long)g->T, (long long)g->hop);
    goto fail;
  }
  ig->env = calloc((size_t)ig->avail, sizeof(double));
  if (!ig->env) {
    fsvc_set_error("istft: out of memory");
    goto fail;
  }
  for (int64_t t = 0; t < g->T; t++)
    for (int64_t k = 0; k < g->n_fft; k++)
      ig->env[t * g->hop + k] += g->window[k] * g->window[k];
  for (int64_t i = 0; i < ig->length && ig->start + i < ig->avail; i++)
    if (fabs(ig->env[ig->start + i]) < 1e-11) {
      fsvc_set_error("istft: window overlap-add is zero at sample %lld (NOLA condition fails: "
                     "use a smaller hop or another window)", (long long)i);
      goto fail;
    }
  if (fsvc_tensor_is_cuda(spec)) { /* one transposed convolution on the device (dsp_device.c) */
    fsvc_tensor *out = dsp_istft_device(spec, g, ig->start, ig->length, ig->avail, ig->env);
    istft_geom_free(ig);
    return out;
  }
  fsvc_tensor *sc = fsvc_contiguous_raw(spec);
  if (!sc) goto fail;
  int64_t yshape[2] = {g->B, ig->length};
  fsvc_tensor *y = fsvc_empty(2, yshape, spec->dtype);
  if (!y || istft_kernel(ig, sc, y)) {
    fsvc_tensor_release(sc);
    fsvc_tensor_release(y);
    goto fail;
  }
  fsvc_tensor_release(sc);
  if (spec->ndim == 3) {
    fsvc_tensor *v = fsvc_view_raw(y, 1, yshape + 1, y->stride + 1, y->offset);
    fsvc_tensor_release(y);
    y = v;
    if (!y) goto fail;
  }
  fsvc_node *node = fsvc_node_new("istft", 1, (fsvc_tensor *const[]){(fsvc_tensor *)spec},
                                  istft_backward);
  if (node) {
    node->ctx = ig;
    node->ctx_free = istft_geom_free;
    fsvc_node_attach(node, y);
    return y;
  }
  istft_geom_free(ig);
  return y;
fail:
  istft_geom_free(ig);
  return NULL;
}

/* ---- magnitude ------------------------------------------------------------------------------ */
static int magnitude_backward(fsvc_node *node, const fsvc_tensor *grad_out,
                              fsvc_tensor **grad_in) {
  if (!node->edges[0].needs_grad) return 0;
  const fsvc_tensor *s = node->saved[0]; /* contiguous [..., 2] */
  const double p = node->farg[0];
  fsvc_tensor *gc = fsvc_to_dtype_raw(grad_out, s->dtype);
  if (!gc) return -1;
  fsvc_tensor *gs = fsvc_empty(s->ndim, s->shape, s->dtype);
  if (!gs) {
    fsvc_tensor_release(gc);
    return -1;
  }
  const fsvc_dtype dt = s->dtype;
  const void *sd = fsvc_data(s), *gd = fsvc_data(gc);
  void *od = fsvc_data(gs);
  const int64_t n = fsvc_numel(gc);
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; i++) {
    double re = load(sd, dt, 2 * i), im = load(sd, dt, 2 * i + 1), r2 = re * re + im * im;
    /* d r^p / d re = p r^(p-2) re; 0 where r = 0 (as torch's abs of a complex 0) */
    double c = r2 > 0 ? p * pow(r2, 0.5 * p - 1.0) * load(gd, dt, i) : 0.0;
    if (p == 2.0) c = 2.0 * load(gd, dt, i);
    store(od, dt, 2 * i, c * re);
    store(od, dt, 2 * i + 1, c * im);
  }
  fsvc_tensor_release(gc);
  grad_in[0] = gs;
  return 0;
}

fsvc_tensor *fsvc_magnitude(const fsvc_tensor *spec, double power) {
  if (check_live(spec, "magnitude", "input")) return NULL;
  char sb[64];
  if (spec->ndim < 1 || spec->shape[spec->ndim - 1] != 2) {
    fsvc_set_error("magnitude: input must have a last dim of 2 (real, imag), got %s",
                   fsvc_shape_str(spec, sb, sizeof sb));
    return NULL;
  }
  if (!isfinite(power) || power <= 0) {
    fsvc_set_error("magnitude: power must be a positive number, got %g", power);
    return NULL;
  }
  if (fsvc_tensor_is_cuda(spec)) return dsp_magnitude_device(spec, power);
  fsvc_tensor *sc = fsvc_contiguous_raw(spec);
  if (!sc) return NULL;
  fsvc_tensor *out = fsvc_empty(spec->ndim - 1, spec->shape, spec->dtype);
  if (!out) {
    fsvc_tensor_release(sc);
    return NULL;
  }
  const fsvc_dtype dt = spec->dtype;
  const void *sd = fsvc_data(sc);
  void *od = fsvc_data(out);
  const int64_t n = fsvc_numel(out);
  if (dt == FSVC_FLOAT32 && (power == 1.0 || power == 2.0)) { /* the losses' fast path */
    const float *sf = sd;
    float *of = od;
    const int sq = power == 1.0;
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
      float r2 = sf[2 * i] * sf[2 * i] + sf[2 * i + 1] * sf[2 * i + 1];
      of[i] = sq ? sqrtf(r2) : r2;
    }
  } else {
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
      double re = load(sd, dt, 2 * i), im = load(sd, dt, 2 * i + 1), r2 = re * re + im * im;
      store(od, dt, i, power == 2.0 ? r2 : power == 1.0 ? sqrt(r2) : pow(r2, 0.5 * power));
    }
  }
  fsvc_node *node = fsvc_node_new("magnitude", 1, (fsvc_tensor *const[]){(fsvc_tensor *)spec},
                                  magnitude_backward);
  if (node) {
    fsvc_node_save(node, sc);
    node->farg[0] = power;
    fsvc_node_attach(node, out);
  }
  fsvc_tensor_release(sc);
  return out;
}

/* ---- the reference's spectrogram ------------------------------------------------------------ */
fsvc_tensor *fsvc_spectrogram(const fsvc_tensor *x, int64_t n_fft, int64_t hop) {
  if (n_fft < 2 || hop < 1) {
    fsvc_set_error("spectrogram: n_fft must be >= 2 and hop >= 1, got %lld and %lld",
                   (long long)n_fft, (long long)hop);
    return NULL;
  }
  fsvc_stft_options o;
  fsvc_stft_default_options(&o, n_fft);
  o.hop_length = hop;
  fsvc_tensor *s = fsvc_stft(x, &o);
  if (!s) return NULL;
  fsvc_tensor *m = fsvc_magnitude(s, 1.0);
  fsvc_tensor_release(s);
  if (!m) return NULL;
  int64_t T = m->shape[m->ndim - 1];
  if (T < 2) {
    fsvc_tensor_release(m);
    fsvc_set_error("spectrogram: signal too short: 1 frame, none left after dropping the first");
    return NULL;
  }
  fsvc_tensor *out = fsvc_narrow(m, -1, 1, T - 1);
  fsvc_tensor_release(m);
  return out;
}
