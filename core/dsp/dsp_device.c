/* The STFT family on CUDA tensors, composed of device-generic public ops and fsvc_rfft (cuFFT on
 * CUDA), so every step dispatches to the device and autograd comes from the ops' own nodes.
 *
 * stft:      [B, L] -pad (reflect/constant/replicate, n_fft/2 each side when centred)-> [B, Lp]
 *            -index_select of the frame positions t*hop + k-> [B, T, n] -* window-> -rfft->
 *            [B, T, n/2+1, 2] (-two-sided: cat with conj of bins n-f-) -transpose-> [B, F, T, 2].
 *            The frames are gathered rather than taken as an overlapping strided view because the
 *            library has no differentiable as_strided: index_select's backward (an index add)
 *            is the overlap-add the STFT's adjoint needs.
 * magnitude: re^2 + im^2, then ^(p/2) through `where`, so the gradient is 0 where |X| = 0 (as on
 *            the CPU) instead of the NaN that sqrt'(0) * 0 would give.
 * The graph differs from the CPU's single "stft"/"magnitude" nodes; the values and gradients are
 * the same (spec/cuda_dsp_spec.lua). */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dsp_internal.h"
#include "fsvc/autocast.h"
#include "fsvc/device.h"
#include "fsvc/error.h"
#include "fsvc/ops.h"

/* ---- device constants ------------------------------------------------------------------------
 * The device paths need small host-built constants: frame positions, windows, interpolation
 * indices and weights, harmonic numbers. Copying them to the device at every call would make each
 * call wait for a host-to-device copy and keep it out of CUDA graphs (a capture cannot copy from
 * pageable host memory). So device copies are kept by content: a step that calls the same DSP
 * with the same sizes gets the copy it made before (a hash, then an exact comparison, of the host
 * bytes; the least recently used of CONST_CACHE_MAX entries is dropped). */
#define CONST_CACHE_MAX 32
typedef struct {
  uint64_t hash, last_use;
  size_t nbytes;
  fsvc_dtype dtype;
  fsvc_device device;
  int ndim;
  int64_t shape[FSVC_MAX_DIMS];
  void *host;      /* the bytes the device copy was made from */
  fsvc_tensor *t;  /* the device copy (contiguous) */
} const_entry;
static const_entry const_cache[CONST_CACHE_MAX];
static uint64_t const_tick = 0;
static pthread_mutex_t const_lock = PTHREAD_MUTEX_INITIALIZER;

/* FNV-1a over 8-byte words (then the tail bytes): a lookup hashes the whole host constant, and
 * byte by byte that cost about 1 ns per byte */
static uint64_t content_hash(const unsigned char *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ w) * 1099511628211ull;
  }
  for (; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

/* A new reference to a device copy of h (a contiguous CPU tensor), shared by content and shape. */
fsvc_tensor *dsp_device_constant(const fsvc_tensor *h, fsvc_device dev) {
  if (!fsvc_is_contiguous(h) || h->storage->device.type != FSVC_CPU) return fsvc_to_device_raw(h, dev);
  const unsigned char *bytes = fsvc_data(h);
  size_t nbytes = (size_t)fsvc_numel(h) * fsvc_dtype_size(h->dtype);
  uint64_t hash = content_hash(bytes, nbytes);
  pthread_mutex_lock(&const_lock);
  for (int i = 0; i < CONST_CACHE_MAX; i++) {
    const_entry *e = &const_cache[i];
    if (e->t && e->hash == hash && e->nbytes == nbytes && e->dtype == h->dtype &&
        fsvc_device_equal(e->device, dev) && e->ndim == h->ndim &&
        memcmp(e->shape, h->shape, sizeof(int64_t) * (size_t)h->ndim) == 0 &&
        memcmp(e->host, bytes, nbytes) == 0) {
      e->last_use = ++const_tick;
      fsvc_tensor *t = fsvc_tensor_retain(e->t);
      pthread_mutex_unlock(&const_lock);
      return t;
    }
  }
  pthread_mutex_unlock(&const_lock);
  fsvc_tensor *t = fsvc_to_device_raw(h, dev);
  void *copy = t ? malloc(nbytes ? nbytes : 1) : NULL;
  if (!copy) return t; /* no room to remember it: still a correct result */
  memcpy(copy, bytes, nbytes);
  pthread_mutex_lock(&const_lock);
  int slot = 0;
  for (int i = 0; i < CONST_CACHE_MAX; i++) {
    if (!const_cache[i].t) { slot = i; break; }
    if (const_cache[i].last_use < const_cache[slot].last_use) slot = i;
  }
  const_entry *e = &const_cache[slot];
  fsvc_tensor *old = e->t;
  free(e->host);
  e->hash = hash;
  e->nbytes = nbytes;
  e->dtype = h->dtype;
  e->device = dev;
  e->ndim = h->ndim;
  memcpy(e->shape, h->shape, sizeof(int64_t) * (size_t)h->ndim);
  e->host = copy;
  e->t = fsvc_tensor_retain(t);
  e->last_use = ++const_tick;
  pthread_mutex_unlock(&const_lock);
  fsvc_tensor_release(old);
  return t;
}

/* host float64 values -> a [n] tensor of dtype dt on dev (a shared device constant) */
fsvc_tensor *dsp_host_vector_on(const double *v, int64_t n, fsvc_dtype dt, fsvc_device dev) {
  fsvc_tensor *h = fsvc_empty(1, &n, FSVC_FLOAT64);
  if (!h) return NULL;
  double *d = fsvc_data(h);
  for (int64_t i = 0; i < n; i++) d[i] = v[i];
  fsvc_tensor *c = fsvc_to_dtype_raw(h, dt);
  fsvc_tensor_release(h);
  fsvc_tensor *out = c ? dsp_device_constant(c, dev) : NULL;
  fsvc_tensor_release(c);
  return out;
}

/* An int64 [n] index tensor on the host for the caller to fill, then to hand to dsp_index_on. */
fsvc_tensor *dsp_host_index(int64_t n, int64_t **fill) {
  fsvc_tensor *h = fsvc_empty(1, &n, FSVC_INT64);
  if (h) *fill = fsvc_data(h);
  return h;
}

/* Releases the filled host index and returns its device copy (a shared device constant; CUDA
 * indices are checked on the device, so index_select then waits for nothing). */
fsvc_tensor *dsp_index_on(fsvc_tensor *host_index, fsvc_device dev) {
  if (!host_index) return NULL;
  fsvc_tensor *t = dev.type == FSVC_CPU ? fsvc_tensor_retain(host_index) : dsp_device_constant(host_index, dev);
  fsvc_tensor_release(host_index);
  return t;
}

fsvc_tensor *dsp_index_grid(const fsvc_tensor *col, const fsvc_tensor *row) {
  const int64_t T = col->shape[0], n = row->shape[0];
  const int64_t cshape[2] = {T, 1}, rshape[2] = {1, n}, flat = T * n;
  fsvc_tensor *c = fsvc_reshape(col, 2, cshape), *r = fsvc_reshape(row, 2, rshape);
  fsvc_tensor *grid = c && r ? fsvc_add(c, r) : NULL;
  fsvc_tensor *out = grid ? fsvc_reshape(grid, 1, &flat) : NULL;
  fsvc_tensor_release(c);
  fsvc_tensor_release(r);
  fsvc_tensor_release(grid);
  return out;
}

/* Releases `old` and returns `new_ref` (chains of ops with one live temporary). */
static fsvc_tensor *step(fsvc_tensor *old, fsvc_tensor *new_ref) {
  fsvc_tensor_release(old);
  return new_ref;
}

fsvc_tensor *dsp_stft_device(const fsvc_tensor *x, const dsp_stft_geometry *g) {
  const fsvc_device dev = fsvc_tensor_device(x);
  const int64_t n = g->n_fft, nb = n / 2 + 1, T = g->T;
  fsvc_tensor *s = x->ndim == 1 ? fsvc_unsqueeze(x, 0) : fsvc_tensor_retain((fsvc_tensor *)x);
  if (s && g->pad > 0) {
    int64_t pads[2] = {g->pad, g->pad};
    fsvc_pad_mode mode = g->mode == FSVC_STFT_PAD_REFLECT     ? FSVC_PAD_REFLECT
                         : g->mode == FSVC_STFT_PAD_REPLICATE ? FSVC_PAD_REPLICATE
                                                              : FSVC_PAD_CONSTANT;
    s = step(s, fsvc_pad(s, 2, pads, mode, 0.0));
  }
  /* frames: [B, Lp] -> [B, T * n] -> [B, T, n]; the positions t*hop + k are [T, 1] + [1, n] added
   * on the device: two small constants instead of one of T*n (6 MB for 10 s of audio, which the
   * constant cache would hash and compare on the host at every call) */
  int64_t *pos = NULL, *starts = NULL;
  fsvc_tensor *kv = s ? dsp_host_index(n, &pos) : NULL;
  fsvc_tensor *tv = kv ? dsp_host_index(T, &starts) : NULL;
  if (tv) {
    for (int64_t k = 0; k < n; k++) pos[k] = k;
    for (int64_t t = 0; t < T; t++) starts[t] = t * g->hop;
  }
  kv = dsp_index_on(kv, dev);
  tv = dsp_index_on(tv, dev);
  fsvc_tensor *idx = kv && tv ? dsp_index_grid(tv, kv) : NULL;
  fsvc_tensor_release(kv);
  fsvc_tensor_release(tv);
  s = idx ? step(s, fsvc_index_select(s, 1, idx)) : step(s, NULL);
  fsvc_tensor_release(idx);
  int64_t fshape[3] = {g->B, T, n};
  if (s) s = step(s, fsvc_reshape(s, 3, fshape));
  fsvc_tensor *w = s ? dsp_host_vector_on(g->window, n, x->dtype, dev) : NULL;
  s = w ? step(s, fsvc_mul(s, w)) : step(s, NULL);
  fsvc_tensor_release(w);
  if (s) s = step(s, fsvc_rfft(s)); /* [B, T, nb, 2] */
  if (s && !g->onesided && n > nb) {
    /* bins f = nb..n-1 of a real signal's spectrum are conj(X_{n-f}) */
    fsvc_tensor *ridx = dsp_host_index(n - nb, &pos);
    if (ridx)
      for (int64_t f = nb; f < n; f++) pos[f - nb] = n - f;
    ridx = dsp_index_on(ridx, dev);
    fsvc_tensor *mirror = ridx ? fsvc_index_select(s, 2, ridx) : NULL;
    fsvc_tensor_release(ridx);
    const double conj_sign[2] = {1.0, -1.0};
    fsvc_tensor *sign = mirror ? dsp_host_vector_on(conj_sign, 2, x->dtype, dev) : NULL;
    fsvc_tensor *conj = sign ? fsvc_mul(mirror, sign) : NULL;
    fsvc_tensor_release(mirror);
    fsvc_tensor_release(sign);
    s = conj ? step(s, fsvc_cat(2, (fsvc_tensor *[]){s, conj}, 2)) : step(s, NULL);
    fsvc_tensor_release(conj);
  }
  if (s) s = step(s, fsvc_transpose(s, 1, 2)); /* [B, F, T, 2] */
  if (s) s = step(s, fsvc_contiguous(s));
  if (s && x->ndim == 1) s = step(s, fsvc_select(s, 0, 0));
  return s;
}

fsvc_tensor *dsp_magnitude_device(const fsvc_tensor *spec, double power) {
  fsvc_tensor *re = fsvc_select(spec, spec->ndim - 1, 0);
  fsvc_tensor *im = re ? fsvc_select(spec, spec->ndim - 1, 1) : NULL;
  fsvc_tensor *re2 = im ? fsvc_mul(re, re) : NULL;
  fsvc_tensor *im2 = re2 ? fsvc_mul(im, im) : NULL;
  fsvc_tensor *r2 = im2 ? fsvc_add(re2, im2) : NULL;
  fsvc_tensor_release(re);
  fsvc_tensor_release(im);
  fsvc_tensor_release(re2);
  fsvc_tensor_release(im2);
  if (!r2 || power == 2.0) return r2;
  /* r2^(p/2) where r2 > 0, else 0; the unused branch sees 1, so no 0 * inf in the gradient */
  fsvc_tensor *zero = fsvc_scalar(0.0, spec->dtype), *one = fsvc_scalar(1.0, spec->dtype);
  fsvc_tensor *half_p = fsvc_scalar(0.5 * power, spec->dtype);
  fsvc_tensor *pos = zero && one && half_p ? fsvc_gt(r2, zero) : NULL;
  fsvc_tensor *safe = pos ? fsvc_where(pos, r2, one) : NULL;
  fsvc_tensor *m = safe ? (power == 1.0 ? fsvc_sqrt(safe) : fsvc_pow(safe, half_p)) : NULL;
  fsvc_tensor *out = m ? fsvc_where(pos, m, zero) : NULL;
  fsvc_tensor_release(r2);
  fsvc_tensor_release(zero);
  fsvc_tensor_release(one);
  fsvc_tensor_release(half_p);
  fsvc_tensor_release(pos);
  fsvc_tensor_release(safe);
  fsvc_tensor_release(m);
  return out;
}

fsvc_tensor *dsp_zero_nonfinite_device(fsvc_tensor *a) {
  if (!a) return NULL;
  /* finite <=> a - a == 0 (NaN - NaN and Inf - Inf are NaN); taken on a detached alias */
  fsvc_tensor *ad = fsvc_detach(a);
  fsvc_tensor *d = ad ? fsvc_sub(ad, ad) : NULL;
  fsvc_tensor *zero = d ? fsvc_scalar(0.0, a->dtype) : NULL;
  fsvc_tensor *finite = zero ? fsvc_eq(d, zero) : NULL;
  fsvc_tensor *out = finite ? fsvc_where(finite, a, zero) : NULL;
  fsvc_tensor_release(ad);
  fsvc_tensor_release(d);
  fsvc_tensor_release(zero);
  fsvc_tensor_release(finite);
  fsvc_tensor_release(a);
  return out;
}

/* istft on a device: the inverse real DFT of every frame, the window and the overlap-add are one
 * transposed convolution. The spectrum [B, F, T, 2] becomes 2F input channels [B, 2F, T] (real
 * and imaginary part of each bin) and the kernel [2F, 1, n] holds
 *     W[2f, 0, k] = c_f w[k] / n cos(2 pi f k / n),   W[2f+1, 0, k] = -c_f w[k] / n sin(2 pi f k / n)
 * with c_f = 2 for the bins that stand for a conjugate pair and 1 for bin 0 (and bin n/2 for even
 * n), which is irfft's sum over the Hermitian extension; the sine of bins 0 and n/2 vanishes, so
 * their imaginary parts are ignored as irfft ignores them. Stride hop gives the overlap-add
 * [B, 1, avail]; then the crop [start, start + length) divided by the window envelope, zeros
 * past the signal's end. The kernel is built on the device from small cached vectors (no upload
 * per call, capturable); the gradient is conv_transpose1d's own. */
/* The kernel [2F, 1, n] above, in dtype dt on dev, built from four small cached vectors. */
static fsvc_tensor *istft_kernel_device(const dsp_stft_geometry *g, fsvc_dtype dt, fsvc_device dev) {
  const int64_t n = g->n_fft, nb = n / 2 + 1;
  double *host = calloc((size_t)(n + nb), sizeof(double)); /* bins [nb], then samples [n] */
  if (!host) {
    fsvc_set_error("istft: out of memory");
    return NULL;
  }
  double *bins = host, *samples = host + nb;
  /* angle[f, k] = f * (2 pi k / n); amplitude[f, k] = (c_f / n) * window[k] */
  for (int64_t f = 0; f < nb; f++) bins[f] = (double)f;
  for (int64_t k = 0; k < n; k++) samples[k] = 2.0 * M_PI * (double)k / (double)n;
  fsvc_tensor *fv = dsp_host_vector_on(bins, nb, FSVC_FLOAT64, dev);
  fsvc_tensor *kv = dsp_host_vector_on(samples, n, FSVC_FLOAT64, dev);
  for (int64_t f = 0; f < nb; f++)
    bins[f] = (f == 0 || (n % 2 == 0 && f == n / 2) ? 1.0 : 2.0) / (double)n;
  fsvc_tensor *cv = dsp_host_vector_on(bins, nb, FSVC_FLOAT64, dev);
  fsvc_tensor *wv = dsp_host_vector_on(g->window, n, FSVC_FLOAT64, dev);
  free(host);
  fsvc_tensor *fcol = fv ? fsvc_unsqueeze(fv, 1) : NULL, *ccol = cv ? fsvc_unsqueeze(cv, 1) : NULL;
  fsvc_tensor *angle = fcol && kv ? fsvc_mul(fcol, kv) : NULL; /* [nb, n] */
  fsvc_tensor *amp = ccol && wv ? fsvc_mul(ccol, wv) : NULL;   /* [nb, n] */
  fsvc_tensor *cosw = angle && amp ? fsvc_cos(angle) : NULL;
  fsvc_tensor *sinw = angle && amp ? fsvc_sin(angle) : NULL;
  cosw = cosw ? step(cosw, fsvc_mul(cosw, amp)) : NULL;
  sinw = sinw ? step(sinw, fsvc_mul(sinw, amp)) : NULL;
  sinw = sinw ? step(sinw, fsvc_neg(sinw)) : NULL;
  fsvc_tensor *w = cosw && sinw ? fsvc_stack(2, (fsvc_tensor *[]){cosw, sinw}, 1) : NULL; /* [nb, 2, n] */
  fsvc_tensor *temps[] = {fv, cv, kv, wv, fcol, ccol, angle, amp, cosw, sinw};
  for (size_t i = 0; i < sizeof temps / sizeof temps[0]; i++) fsvc_tensor_release(temps[i]);
  int64_t wshape[3] = {2 * nb, 1, n};
  if (w) w = step(w, fsvc_reshape(w, 3, wshape));
  if (w) w = step(w, fsvc_to_dtype(w, dt));
  return w;
}

fsvc_tensor *dsp_istft_device(const fsvc_tensor *spec, const dsp_stft_geometry *g, int64_t start,
                              int64_t length, int64_t avail, const double *env) {
  const fsvc_device dev = fsvc_tensor_device(spec);
  const fsvc_dtype dt = spec->dtype;
  const int64_t nb = g->n_fft / 2 + 1, B = g->B, T = g->T;
  fsvc_autocast_state prev; /* the transform is exact float32/float64, not a 16-bit matmul */
  fsvc_set_autocast(0, FSVC_FLOAT16, &prev);
  fsvc_tensor *w = istft_kernel_device(g, dt, dev);
  /* [B, F, T, 2] -> [B, F, 2, T] -> [B, 2F, T] */
  fsvc_tensor *s = !w                ? NULL
                   : spec->ndim == 3 ? fsvc_unsqueeze(spec, 0)
                                     : fsvc_tensor_retain((fsvc_tensor *)spec);
  if (s) s = step(s, fsvc_permute(s, (const int[]){0, 1, 3, 2}));
  int64_t xshape[3] = {B, 2 * nb, T};
  if (s) s = step(s, fsvc_reshape(s, 3, xshape));
  fsvc_conv1d_params cp = {.stride = g->hop};
  if (s) s = step(s, fsvc_conv_transpose1d(s, w, NULL, &cp, 0)); /* [B, 1, avail] */
  fsvc_tensor_release(w);
  if (s) s = step(s, fsvc_reshape(s, 2, (const int64_t[]){B, avail}));
  const int64_t inside = avail - start < length ? avail - start : length;
  if (s) s = step(s, fsvc_narrow(s, 1, start, inside));
  fsvc_tensor *ev = s ? dsp_host_vector_on(env + start, inside, dt, dev) : NULL;
  s = ev ? step(s, fsvc_div(s, ev)) : step(s, NULL);
  fsvc_tensor_release(ev);
  if (s && inside < length) { /* samples past the overlap-add's end are 0, as on the CPU */
    int64_t pads[2] = {0, length - inside};
    s = step(s, fsvc_pad(s, 2, pads, FSVC_PAD_CONSTANT, 0.0));
  }
  if (s && spec->ndim == 3) s = step(s, fsvc_select(s, 0, 0));
  if (s) s = step(s, fsvc_contiguous(s));
  fsvc_autocast_restore(prev);
  return s;
}
