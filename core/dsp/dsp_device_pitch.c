/* The harmonic source and the pitch helpers on CUDA tensors, composed of device-generic public ops
 * (index_select, mul, add, cumsum, sin, where, comparisons, casts), so they run wherever the
 * input lives without copying it to the host.
 *
 * Everything is computed in float64 on the device and cast to the caller's dtype at the end, so a
 * float32 result is the CPU's float64 arithmetic rounded once, as on the CPU.
 *
 * The library has no floor/round op; both come from the float64 "magic number" rounding:
 * (x + 1.5*2^52) - 1.5*2^52 is x rounded to the nearest integer, ties to even (IEEE
 * round-to-nearest on an add whose result has ulp 1), exact for |x| < 2^51. That is
 * nearbyint() (freq2id rounds as torch.round), and floor(x) = r - (r > x).
 *
 * Oscillator phase. The CPU carries the fundamental's phase in float64 and wraps it every sample.
 * A cumsum over the whole signal would not wrap: after 10 minutes at 24 kHz the sum reaches ~1e5
 * cycles, where one float64 ulp is 1.5e-11 and the rounding of 1.4e7 sequential additions could
 * reach 1e-4 cycles. So the sum is taken in two levels: within each frame of F samples ([B, T, F],
 * the sum stays below F/2 cycles), the frames' wrapped totals summed over T frames (below T),
 * each frame's start phase wrapped and added to its in-frame sums, then wrapped. Besides the
 * precision, this gives the device's one-thread-per-line cumsum B*T lines of F instead of B lines
 * of T*F. The result differs from the CPU's by rounding (~1e-12 cycles); a sample whose phase is
 * within that of a whole cycle may land on the other side of the wrap (phase ~0 vs ~1, the same
 * sin), which is why the specs compare phases on the circle.
 *
 * Checks that depend on values (f0 finite for the oscillator, no NaN for freq2id, classes in
 * 0..511 for id2freq) are one device reduction and a read of its scalar (one synchronisation);
 * when they fail the input is copied to the host and the CPU function reports, so the message is
 * the CPU's. While a CUDA graph is captured (fsvc_cuda_is_capturing) they are skipped, since
 * nothing may wait for the device there; the graph's warm-up run has made them. interpolate_f0
 * has no value check, as on the CPU. The index and weight vectors are device constants shared by
 * content (dsp_device.c), so a repeated call copies nothing to the device. */
#include <math.h>
#include <stdlib.h>

#include "dsp_internal.h"
#include "fsvc/autograd.h"
#include "fsvc/device.h"
#include "fsvc/error.h"
#include "fsvc/ops.h"

/* ---- a pool of temporaries: K(expr) keeps a new reference, or marks the pool failed; once
 * failed, later K(...) do not run their op, so the first error message stays ---------------- */
#define POOL_MAX 128
typedef struct {
  fsvc_tensor *t[POOL_MAX];
  int n, failed;
} tpool;

static fsvc_tensor *tp_keep(tpool *p, fsvc_tensor *t) {
  if (t && p->n == POOL_MAX) {
    fsvc_tensor_release(t);
    fsvc_set_error("dsp device path: too many temporaries (internal)");
    t = NULL;
  }
  if (!t) {
    p->failed = 1;
    return NULL;
  }
  p->t[p->n++] = t;
  return t;
}

/* releases every temporary; returns a new reference to `keep` (NULL when the pool failed) */
static fsvc_tensor *tp_finish(tpool *p, fsvc_tensor *keep) {
  fsvc_tensor *r = !p->failed && keep ? fsvc_tensor_retain(keep) : NULL;
  for (int i = 0; i < p->n; i++) fsvc_tensor_release(p->t[i]);
  p->n = 0;
  return r;
}

#define K(expr) (P.failed ? NULL : tp_keep(&P, (expr)))
#define S(v) K(fsvc_scalar((v), FSVC_FLOAT64)) /* a 0-d CPU float64 operand */

static const double MAGIC = 6755399441055744.0; /* 1.5 * 2^52 */

/* nearest integer, ties to even, of a float64 device tensor (|x| < 2^51) */
static fsvc_tensor *round_even(tpool *pp, const fsvc_tensor *x) {
#define P (*pp)
  fsvc_tensor *m = S(MAGIC);
  fsvc_tensor *up = m ? K(fsvc_add(x, m)) : NULL;
  return up ? K(fsvc_sub(up, m)) : NULL;
#undef P
}

/* x - floor(x), in [0, 1) */
static fsvc_tensor *frac(tpool *pp, const fsvc_tensor *x) {
#define P (*pp)
  fsvc_tensor *r = round_even(pp, x);
  fsvc_tensor *above = r ? K(fsvc_gt(r, x)) : NULL; /* r = floor(x) + 1 where r > x */
  fsvc_tensor *one = above ? S(1.0) : NULL;
  fsvc_tensor *rm1 = one ? K(fsvc_sub(r, one)) : NULL;
  fsvc_tensor *fl = rm1 ? K(fsvc_where(above, rm1, r)) : NULL;
  return fl ? K(fsvc_sub(x, fl)) : NULL;
#undef P
}

/* Reads a 0-d device tensor into *v (one synchronisation). 0, or -1 with an error. */
static int read_scalar(const fsvc_tensor *t, double *v) {
  fsvc_tensor *h = fsvc_to_device_raw(t, fsvc_cpu());
  if (!h) return -1;
  *v = fsvc_get_flat(h, 0);
  fsvc_tensor_release(h);
  return 0;
}

/* The CPU function's error for a device input that failed a value check. */
static fsvc_tensor *report_on_host(const fsvc_tensor *t, fsvc_tensor *(*cpu_fn)(const fsvc_tensor *),
                                   const char *fallback) {
  fsvc_tensor *h = fsvc_to_device_raw(t, fsvc_cpu());
  if (!h) return NULL;
  fsvc_clear_error();
  fsvc_tensor *r = cpu_fn(h);
  fsvc_tensor_release(h);
  if (r) { /* the device saw a bad value that the host does not: should not happen */
    fsvc_tensor_release(r);
    fsvc_set_error("%s", fallback);
  }
  return NULL;
}

/* F.interpolate(linear, align_corners=False) from n_in to n_out points, the source positions
 * computed as the CPU computes them: scale * (j + 0.5) - 0.5 (interpolate_f0, scale n_in/n_out)
 * or, with divisor > 0, (j + 0.5) / divisor - 0.5 (the oscillator: n_out = n_in * divisor).
 * Per output point: the two source points (clamped to the last) and their weights. */
typedef struct {
  fsvc_tensor *i0, *i1; /* int64 [n_out] on dev */
  fsvc_tensor *w0, *w1; /* float64 [n_out] on dev */
  int padded;           /* the indices address x with its ends repeated once (interp_apply pads) */
} interp_plan;

/* The oscillator's upsampling by an integer divisor F, built on the device from constants of T and
 * F entries (per-sample host constants would be hashed and compared on the host at every call:
 * 240 000 samples of 10 s made four 1.9 MB vectors). Output j = t F + f reads source t + off_f
 * and t + off_f + 1 with weights 1 - l_f and l_f, where (f + 0.5) / F - 0.5 = off_f + l_f,
 * off_f in {-1, 0}. x is padded with its first and last value repeated, so the indices (shifted
 * by one) never leave it: the clamping of the CPU's positions (src < 0 -> 0, indices past the end
 * -> the last) reads the same values. */
static int interp_plan_divisor(interp_plan *ip, int64_t T, int64_t F, fsvc_device dev) {
  int64_t *tp = NULL, *o0 = NULL, *o1 = NULL;
  double *l = malloc(sizeof(double) * 2 * (size_t)F);
  fsvc_tensor *tv = dsp_host_index(T, &tp);
  fsvc_tensor *a = tv ? dsp_host_index(F, &o0) : NULL;
  fsvc_tensor *b = a ? dsp_host_index(F, &o1) : NULL;
  if (!l || !b) {
    free(l);
    fsvc_tensor_release(tv);
    fsvc_tensor_release(a);
    fsvc_tensor_release(b);
    if (!fsvc_last_error()[0]) fsvc_set_error("dsp device path: out of memory");
    return -1;
  }
  for (int64_t t = 0; t < T; t++) tp[t] = t + 1; /* + 1: the repeated first value */
  for (int64_t f = 0; f < F; f++) {
    double src = ((double)f + 0.5) / (double)F - 0.5;
    int64_t off = src < 0 ? -1 : 0;
    o0[f] = off;
    o1[f] = off + 1;
    l[F + f] = src - (double)off;
    l[f] = 1.0 - l[F + f];
  }
  tv = dsp_index_on(tv, dev);
  a = dsp_index_on(a, dev);
  b = dsp_index_on(b, dev);
  fsvc_tensor *w0 = dsp_host_vector_on(l, F, FSVC_FLOAT64, dev);
  fsvc_tensor *w1 = dsp_host_vector_on(l + F, F, FSVC_FLOAT64, dev);
  free(l);
  /* the indices: [T] + [F] as a grid; the weights: [1, F] repeated over T */
  ip->i0 = tv && a ? dsp_index_grid(tv, a) : NULL;
  ip->i1 = tv && b ? dsp_index_grid(tv, b) : NULL;
  fsvc_tensor *ws[2] = {w0, w1}, **wout[2] = {&ip->w0, &ip->w1};
  const int64_t row[2] = {1, F}, grid[2] = {T, F}, flat = T * F;
  for (int i = 0; i < 2; i++) {
    fsvc_tensor *r = ws[i] ? fsvc_reshape(ws[i], 2, row) : NULL;
    fsvc_tensor *g = r ? fsvc_expand(r, 2, grid) : NULL;
    fsvc_tensor *c = g ? fsvc_contiguous(g) : NULL;
    *wout[i] = c ? fsvc_reshape(c, 1, &flat) : NULL;
    fsvc_tensor_release(r);
    fsvc_tensor_release(g);
    fsvc_tensor_release(c);
  }
  const int rc = ip->i0 && ip->i1 && ip->w0 && ip->w1 ? 0 : -1;
  fsvc_tensor_release(tv);
  fsvc_tensor_release(a);
  fsvc_tensor_release(b);
  fsvc_tensor_release(w0);
  fsvc_tensor_release(w1);
  ip->padded = 1;
  return rc;
}

static int interp_plan_make(interp_plan *ip, int64_t n_in, int64_t n_out, double scale,
                            int64_t divisor, fsvc_device dev) {
  if (divisor > 0 && n_in > 0 && dev.type != FSVC_CPU) return interp_plan_divisor(ip, n_in, divisor, dev);
  int64_t *a = NULL, *c = NULL;
  double *w = malloc(sizeof(double) * 2 * (size_t)n_out);
  ip->i0 = dsp_host_index(n_out, &a);
  ip->i1 = dsp_host_index(n_out, &c);
  ip->w0 = ip->w1 = NULL;
  if (!w || !ip->i0 || !ip->i1) {
    free(w);
    if (!fsvc_last_error()[0]) fsvc_set_error("dsp device path: out of memory");
    return -1;
  }
  for (int64_t j = 0; j < n_out; j++) {
    double src = divisor > 0 ? ((double)j + 0.5) / (double)divisor - 0.5 : scale * ((double)j + 0.5) - 0.5;
    if (src < 0) src = 0;
    int64_t i0 = (int64_t)src;
    double l1 = src - (double)i0;
    a[j] = i0 < n_in - 1 ? i0 : n_in - 1;
    c[j] = i0 + 1 < n_in - 1 ? i0 + 1 : n_in - 1;
    w[j] = 1.0 - l1;
    w[n_out + j] = l1;
  }
  ip->i0 = dsp_index_on(ip->i0, dev);
  ip->i1 = dsp_index_on(ip->i1, dev);
  ip->w0 = ip->i0 && ip->i1 ? dsp_host_vector_on(w, n_out, FSVC_FLOAT64, dev) : NULL;
  ip->w1 = ip->w0 ? dsp_host_vector_on(w + n_out, n_out, FSVC_FLOAT64, dev) : NULL;
  free(w);
  return ip->w1 ? 0 : -1;
}

static void interp_plan_free(interp_plan *ip) {
  fsvc_tensor_release(ip->i0);
  fsvc_tensor_release(ip->i1);
  fsvc_tensor_release(ip->w0);
  fsvc_tensor_release(ip->w1);
}

/* (1 - l1) x[i0] + l1 x[i1] along the last dim of a float64 device tensor */
static fsvc_tensor *interp_apply(tpool *pp, const fsvc_tensor *x, const interp_plan *ip) {
#define P (*pp)
  const int d = x->ndim - 1;
  if (ip->padded) {
    int64_t ends[2] = {1, 1};
    x = K(fsvc_pad(x, 2, ends, FSVC_PAD_REPLICATE, 0.0));
    if (!x) return NULL;
  }
  fsvc_tensor *a = K(fsvc_index_select(x, d, ip->i0));
  fsvc_tensor *b = a ? K(fsvc_index_select(x, d, ip->i1)) : NULL;
  fsvc_tensor *aw = b ? K(fsvc_mul(a, ip->w0)) : NULL;
  fsvc_tensor *bw = aw ? K(fsvc_mul(b, ip->w1)) : NULL;
  return bw ? K(fsvc_add(aw, bw)) : NULL;
#undef P
}

/* ---- oscillator ----------------------------------------------------------------------------- */
fsvc_tensor *dsp_oscillate_harmonics_device(const fsvc_tensor *f0, int64_t F, double sr, int H,
                                            double min_frequency, fsvc_tensor **phase_out) {
  const fsvc_device dev = fsvc_tensor_device(f0);
  const int64_t B = f0->shape[0], T = f0->shape[2], N = T * F, C = (int64_t)H + 1;
  const int grad = fsvc_set_grad_enabled(0);
  tpool P = {0};
  interp_plan ip = {0};
  fsvc_tensor *out = NULL, *phase = NULL;

  fsvc_tensor *x = K(fsvc_to_dtype_raw(f0, FSVC_FLOAT64)); /* [B, 1, T] */
  fsvc_tensor *xx = x ? K(fsvc_sub(x, x)) : NULL;             /* NaN where f0 is NaN or Inf */
  /* the finiteness check reads a scalar back (waits for the device): not while a CUDA graph is
   * captured, where nothing may wait; the warm-up run before the capture has checked */
  const int check = !fsvc_cuda_is_capturing();
  fsvc_tensor *chk = xx && check ? K(fsvc_sum(xx, 0, NULL, 0)) : NULL;
  double v = 0;
  if (chk && read_scalar(chk, &v) != 0) P.failed = 1;
  if (!P.failed && isnan(v)) { /* the CPU's message (run() in oscillator.c) */
    fsvc_set_error("Oscillator:process: f0 has a NaN or Inf value");
    P.failed = 1;
  }
  if (!P.failed && interp_plan_make(&ip, T, N, 0.0, F, dev) != 0) P.failed = 1;
  /* per-sample frequency f [B, 1, N] */
  fsvc_tensor *f = P.failed ? NULL : interp_apply(&P, x, &ip);
  /* increments f[i]/sr, sample 0 starting at phase 0 */
  fsvc_tensor *srs = f ? S(sr) : NULL;
  fsvc_tensor *g = srs ? K(fsvc_div(f, srs)) : NULL;
  int64_t s3[3] = {B, T, F};
  fsvc_tensor *g3 = g ? K(fsvc_reshape(g, 3, s3)) : NULL;
  fsvc_tensor *first = NULL;
  if (g3) { /* sample 0 adds nothing: g[:, 0, 0] is subtracted from frame 0's sums below */
    fsvc_tensor *f0s = K(fsvc_narrow(g3, 1, 0, 1));
    first = f0s ? K(fsvc_narrow(f0s, 2, 0, 1)) : NULL; /* [B, 1, 1] */
  }
  fsvc_tensor *within = first ? K(fsvc_cumsum(g3, 2)) : NULL; /* [B, T, F], < F/2 cycles */
  fsvc_tensor *tot = within ? K(fsvc_narrow(within, 2, F - 1, 1)) : NULL; /* [B, T, 1] */
  /* frame 0's total without sample 0: every frame's sums are from its own first sample, so
   * frame 0 is shifted by -g[0] as a whole */
  fsvc_tensor *zrow = NULL;
  if (tot) {
    double *zr = calloc((size_t)T, sizeof(double));
    if (zr) zr[0] = 1.0;
    fsvc_tensor *z = zr ? dsp_host_vector_on(zr, T, FSVC_FLOAT64, dev) : NULL;
    free(zr);
    if (!z && !fsvc_last_error()[0]) fsvc_set_error("oscillate_harmonics: out of memory");
    int64_t zs[3] = {1, T, 1};
    fsvc_tensor *zk = K(z);
    zrow = zk ? K(fsvc_reshape(zk, 3, zs)) : NULL; /* 1 at frame 0, else 0 */
  }
  fsvc_tensor *shift = zrow ? K(fsvc_mul(first, zrow)) : NULL;      /* [B, T, 1] */
  fsvc_tensor *within0 = shift ? K(fsvc_sub(within, shift)) : NULL; /* [B, T, F] */
  fsvc_tensor *tot0 = within0 ? K(fsvc_sub(tot, shift)) : NULL;     /* [B, T, 1] */
  fsvc_tensor *totw = tot0 ? frac(&P, tot0) : NULL;                 /* wrapped, < 1 */
  fsvc_tensor *ctot = totw ? K(fsvc_cumsum(totw, 1)) : NULL;        /* < T */
  fsvc_tensor *start = ctot ? K(fsvc_sub(ctot, totw)) : NULL;       /* before each frame */
  fsvc_tensor *startw = start ? frac(&P, start) : NULL;
  fsvc_tensor *cs = startw ? K(fsvc_add(within0, startw)) : NULL;
  fsvc_tensor *ph3 = cs ? frac(&P, cs) : NULL;
  int64_t s1[3] = {B, 1, N};
  fsvc_tensor *ph = ph3 ? K(fsvc_reshape(ph3, 3, s1)) : NULL; /* fundamental, [B, 1, N] */
  /* harmonic k: phase frac(k * phase), silent where k * f < min_frequency */
  fsvc_tensor *kv = NULL;
  if (ph) {
    double *k = malloc(sizeof(double) * (size_t)C);
    if (k)
      for (int64_t i = 0; i < C; i++) k[i] = (double)(i + 1);
    fsvc_tensor *kt = k ? dsp_host_vector_on(k, C, FSVC_FLOAT64, dev) : NULL;
    free(k);
    if (!kt && !fsvc_last_error()[0]) fsvc_set_error("oscillate_harmonics: out of memory");
    int64_t ks[3] = {1, C, 1};
    fsvc_tensor *kk = K(kt);
    kv = kk ? K(fsvc_reshape(kk, 3, ks)) : NULL;
  }
  fsvc_tensor *kph = kv ? (C == 1 ? ph : K(fsvc_mul(ph, kv))) : NULL; /* [B, C, N] */
  fsvc_tensor *pk = kph ? (C == 1 ? ph : frac(&P, kph)) : NULL;
  fsvc_tensor *two_pi = pk ? S(2.0 * M_PI) : NULL;
  fsvc_tensor *ang = two_pi ? K(fsvc_mul(pk, two_pi)) : NULL;
  fsvc_tensor *sn = ang ? K(fsvc_sin(ang)) : NULL;
  fsvc_tensor *kf = sn ? K(fsvc_mul(f, kv)) : NULL;
  fsvc_tensor *minf = kf ? S(min_frequency) : NULL;
  fsvc_tensor *voiced = minf ? K(fsvc_ge(kf, minf)) : NULL;
  fsvc_tensor *zero = voiced ? S(0.0) : NULL;
  fsvc_tensor *h = zero ? K(fsvc_where(voiced, sn, zero)) : NULL;
  if (h) out = fsvc_to_dtype_raw(h, f0->dtype);
  if (out && phase_out) {
    phase = fsvc_to_dtype_raw(pk, f0->dtype);
    if (!phase) {
      fsvc_tensor_release(out);
      out = NULL;
    }
  }
  if (!out) P.failed = 1;
  tp_finish(&P, NULL);
  interp_plan_free(&ip);
  fsvc_set_grad_enabled(grad);
  if (phase_out) *phase_out = phase;
  return out;
}

/* ---- pitch helpers -------------------------------------------------------------------------- */
fsvc_tensor *dsp_freq2id_device(const fsvc_tensor *f0) {
  const int grad = fsvc_set_grad_enabled(0);
  tpool P = {0};
  fsvc_tensor *x = K(fsvc_to_dtype_raw(f0, FSVC_FLOAT64));
  fsvc_tensor *isnan_ = x ? K(fsvc_ne(x, x)) : NULL;
  fsvc_tensor *nnan = isnan_ && !fsvc_cuda_is_capturing() ? K(fsvc_sum(isnan_, 0, NULL, 0)) : NULL;
  double v = 0;
  if (nnan && read_scalar(nnan, &v) != 0) P.failed = 1;
  if (!P.failed && v > 0) {
    report_on_host(f0, fsvc_freq2id, "freq2id: f0 has a NaN");
    P.failed = 1;
  }
  /* f > 0: 48 log2(f / 10), else 0 (log of the unvoiced entries taken at 1: no NaN) */
  fsvc_tensor *zero = S(0.0), *one = S(1.0);
  fsvc_tensor *voiced = one ? K(fsvc_gt(x, zero)) : NULL;
  fsvc_tensor *safe = voiced ? K(fsvc_where(voiced, x, one)) : NULL;
  fsvc_tensor *ten = safe ? S(10.0) : NULL;
  fsvc_tensor *r = ten ? K(fsvc_div(safe, ten)) : NULL;
  fsvc_tensor *lg = r ? K(fsvc_log(r)) : NULL;
  fsvc_tensor *k = lg ? S(48.0 / M_LN2) : NULL;
  fsvc_tensor *c = k ? K(fsvc_mul(lg, k)) : NULL;
  fsvc_tensor *cc = c ? K(fsvc_clamp(c, 0.0, 511.0)) : NULL;
  fsvc_tensor *cv = cc ? K(fsvc_where(voiced, cc, zero)) : NULL;
  fsvc_tensor *rounded = cv ? round_even(&P, cv) : NULL;
  fsvc_tensor *out = rounded ? fsvc_to_dtype_raw(rounded, FSVC_INT64) : NULL;
  if (!out) P.failed = 1;
  tp_finish(&P, NULL);
  fsvc_set_grad_enabled(grad);
  return out;
}

static fsvc_tensor *id2freq_cpu_f32(const fsvc_tensor *ids) { return fsvc_id2freq(ids, FSVC_FLOAT32); }

fsvc_tensor *dsp_id2freq_device(const fsvc_tensor *ids, fsvc_dtype dt) {
  const int grad = fsvc_set_grad_enabled(0);
  tpool P = {0};
  fsvc_tensor *c = K(fsvc_to_dtype_raw(ids, FSVC_FLOAT64));
  /* outside 0..511 or NaN: clamp moves it (or NaN != NaN) */
  fsvc_tensor *cl = c ? K(fsvc_clamp(c, 0.0, 511.0)) : NULL;
  fsvc_tensor *bad = cl ? K(fsvc_ne(cl, c)) : NULL;
  fsvc_tensor *nbad = bad && !fsvc_cuda_is_capturing() ? K(fsvc_sum(bad, 0, NULL, 0)) : NULL;
  double v = 0;
  if (nbad && read_scalar(nbad, &v) != 0) P.failed = 1;
  if (!P.failed && v > 0) {
    report_on_host(ids, id2freq_cpu_f32, "id2freq: a class is outside 0..511");
    P.failed = 1;
  }
  /* 10 * 2^(c/48), class 0 -> 0 Hz */
  fsvc_tensor *k48 = S(48.0), *two = S(2.0), *ten = S(10.0), *zero = S(0.0);
  fsvc_tensor *e = zero && c ? K(fsvc_div(c, k48)) : NULL;
  fsvc_tensor *p = e ? K(fsvc_pow(two, e)) : NULL;
  fsvc_tensor *hz = p ? K(fsvc_mul(p, ten)) : NULL;
  fsvc_tensor *unv = hz ? K(fsvc_eq(c, zero)) : NULL;
  fsvc_tensor *freq = unv ? K(fsvc_where(unv, zero, hz)) : NULL;
  fsvc_tensor *out = freq ? fsvc_to_dtype_raw(freq, dt) : NULL;
  if (!out) P.failed = 1;
  tp_finish(&P, NULL);
  fsvc_set_grad_enabled(grad);
  return out;
}

fsvc_tensor *dsp_interpolate_f0_device(const fsvc_tensor *f0, int64_t n_out) {
  const int64_t N = f0->shape[f0->ndim - 1];
  const int grad = fsvc_set_grad_enabled(0);
  tpool P = {0};
  interp_plan ip = {0};
  fsvc_tensor *x = K(fsvc_to_dtype_raw(f0, FSVC_FLOAT64));
  if (x && interp_plan_make(&ip, N, n_out, (double)N / (double)n_out, 0,
                                fsvc_tensor_device(f0)) != 0)
    P.failed = 1;
  fsvc_tensor *v = x && !P.failed ? interp_apply(&P, x, &ip) : NULL;
  fsvc_tensor *out = v ? fsvc_to_dtype_raw(v, f0->dtype) : NULL;
  if (!out) P.failed = 1;
  tp_finish(&P, NULL);
  interp_plan_free(&ip);
  fsvc_set_grad_enabled(grad);
  return out;
}
