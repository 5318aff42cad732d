/* Shared helpers for the F0 estimators: windows, decimation, zero-crossing events,
 * interpolation, instantaneous-frequency analysis and argument checks. */
/* Keep the reference's rounding: no fusion of a*b+c into FMA instructions. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "dsp/f0_common.h"
#include "fsvc/f0.h"

#include <complex.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fsvc_f0i_fft_size_above(int n) {
  int lg = (int)(log((double)n) / FSVC_F0I_LOG2);
  return (int)pow(2.0, lg + 1.0);
}

void fsvc_f0i_nuttall(int n, double *w) {
  for (int i = 0; i < n; i++) {
    double t = n > 1 ? i / (n - 1.0) : 0.0;
    w[i] = 0.355768 - 0.487396 * cos(2.0 * FSVC_F0I_PI * t) +
           0.144232 * cos(4.0 * FSVC_F0I_PI * t) - 0.012604 * cos(6.0 * FSVC_F0I_PI * t);
  }
}

/* ---- decimation -------------------------------------------------------------------------------- */

/* 3rd-order Chebyshev type I low-pass, 0.05 dB ripple, cutoff wn (fraction of Nyquist), by the
 * bilinear transform with pre-warping. Written for the recursion
 *   w_t = x + a[0] w1 + a[1] w2 + a[2] w3,  y = b0 w_t + b1 w1 + b1 w2 + b0 w3. */
static void cheby3_design(double wn, double a[3], double b[2]) {
  const int order = 3;
  const double ripple_db = 0.05;
  double eps = sqrt(pow(10.0, ripple_db / 10.0) - 1.0);
  double mu = asinh(1.0 / eps) / order;
  double k = tan(FSVC_F0I_PI * wn / 2.0);
  double complex poly[4] = {1.0, 0.0, 0.0, 0.0}; /* prod (1 - z_k q), q = z^-1 */
  for (int i = 0; i < order; i++) {
    double th = FSVC_F0I_PI * (2.0 * i + 1.0) / (2.0 * order);
    double complex p = -sinh(mu) * sin(th) + I * cosh(mu) * cos(th);
    double complex zp = (1.0 + p * k) / (1.0 - p * k);
    for (int j = i + 1; j >= 1; j--) poly[j] -= zp * poly[j - 1];
  }
  double den[4];
  for (int j = 0; j < 4; j++) den[j] = creal(poly[j]);
  /* numerator g (1 + q)^3, unit gain at DC (odd order: no ripple offset at DC) */
  double g = (den[0] + den[1] + den[2] + den[3]) / 8.0;
  a[0] = -den[1];
  a[1] = -den[2];
  a[2] = -den[3];
  b[0] = g;
  b[1] = 3.0 * g;
}

static void iir3(const double *x, int n, const double a[3], const double b[2], double *y) {
  double w0 = 0.0, w1 = 0.0, w2 = 0.0;
  for (int i = 0; i < n; i++) {
    double wt = x[i] + a[0] * w0 + a[1] * w1 + a[2] * w2;
    y[i] = b[0] * wt + b[1] * w0 + b[1] * w1 + b[0] * w2;
    w2 = w1;
    w1 = w0;
    w0 = wt;
  }
}

int fsvc_f0i_decimate(const double *x, int n, int r, double *y) {
  const int pad = 9;
  int m = n + 2 * pad;
  double *t1 = (double *)malloc(sizeof(double) * (size_t)m);
  double *t2 = (double *)malloc(sizeof(double) * (size_t)m);
  if (!t1 || !t2) {
    free(t1);
    free(t2);
    return -1;
  }
  double a[3], b[2];
  cheby3_design(0.8 / r, a, b);
  /* odd reflection about the end samples (indices clamped for very short inputs) */
  for (int i = 0; i < pad; i++) {
    int j = fsvc_f0i_imin(pad - i, n - 1);
    t1[i] = 2.0 * x[0] - x[j];
  }
  for (int i = 0; i < n; i++) t1[pad + i] = x[i];
  for (int i = 0; i < pad; i++) {
    int j = fsvc_f0i_imax(n - 2 - i, 0);
    t1[pad + n + i] = 2.0 * x[n - 1] - x[j];
  }
  iir3(t1, m, a, b, t2);
  for (int i = 0; i < m; i++) t1[i] = t2[m - 1 - i];
  iir3(t1, m, a, b, t2);
  for (int i = 0; i < m; i++) t1[i] = t2[m - 1 - i];
  int nout = (n - 1) / r + 1;
  for (int k = 0; k < nout; k++) y[k] = t1[pad + n - 1 - (nout - 1 - k) * r];
  free(t1);
  free(t2);
  return 0;
}

/* ---- zero-crossing events ---------------------------------------------------------------------- */

int fsvc_f0i_events_alloc(fsvc_f0i_events *e, int hint) {
  memset(e, 0, sizeof(*e));
  int cap = hint > 16 ? hint : 16;
  for (int i = 0; i < 4; i++) {
    e->loc[i] = (double *)malloc(sizeof(double) * (size_t)cap);
    e->val[i] = (double *)malloc(sizeof(double) * (size_t)cap);
    e->cap[i] = cap;
    if (!e->loc[i] || !e->val[i]) {
      fsvc_f0i_events_free(e);
      return -1;
    }
  }
  return 0;
}

void fsvc_f0i_events_free(fsvc_f0i_events *e) {
  for (int i = 0; i < 4; i++) {
    free(e->loc[i]);
    free(e->val[i]);
    e->loc[i] = e->val[i] = NULL;
    e->cap[i] = 0;
  }
}

static int events_grow(fsvc_f0i_events *e, int k) {
  int cap = e->cap[k] * 2;
  double *l = (double *)realloc(e->loc[k], sizeof(double) * (size_t)cap);
  if (!l) return -1;
  e->loc[k] = l;
  double *v = (double *)realloc(e->val[k], sizeof(double) * (size_t)cap);
  if (!v) return -1;
  e->val[k] = v;
  e->cap[k] = cap;
  return 0;
}

/* Negative-going zero crossings (s[i] > 0 >= s[i+1]) located to sub-sample precision by linear
 * interpolation; each pair of consecutive crossings gives one frequency estimate (fs / period)
 * at the midpoint. Positions use the 1-based sample convention (crossing between samples i and
 * i+1 lies in [i+1, i+2)), which the callers' delay compensation accounts for. Fills events of
 * kind k; returns 0, or -1 when out of memory. */
static int zero_crossing_engine(const double *s, int len, double fs, fsvc_f0i_events *e, int k) {
  int count = 0;
  double prev = 0.0;
  for (int i = 0; i + 1 < len; i++) {
    if (0.0 < s[i] && s[i + 1] <= 0.0) {
      int ed = i + 1;
      double fine = ed - s[ed - 1] / (s[ed] - s[ed - 1]);
      if (count > 0) {
        if (count - 1 == e->cap[k] && events_grow(e, k) != 0) return -1;
        e->val[k][count - 1] = fs / (fine - prev);
        e->loc[k][count - 1] = (prev + fine) / 2.0 / fs;
      }
      prev = fine;
      count++;
    }
  }
  e->count[k] = count > 0 ? count - 1 : 0;
  return 0;
}

int fsvc_f0i_four_events(double *sig, int len, double fs, fsvc_f0i_events *e) {
  if (zero_crossing_engine(sig, len, fs, e, 0) != 0) return -1;
  for (int i = 0; i < len; i++) sig[i] = -sig[i];
  if (zero_crossing_engine(sig, len, fs, e, 1) != 0) return -1;
  for (int i = 0; i < len - 1; i++) sig[i] = sig[i] - sig[i + 1];
  if (zero_crossing_engine(sig, len - 1, fs, e, 2) != 0) return -1;
  for (int i = 0; i < len - 1; i++) sig[i] = -sig[i];
  return zero_crossing_engine(sig, len - 1, fs, e, 3);
}

void fsvc_f0i_interp1(const double *x, const double *y, int n, const double *xi, int ni,
                      double *yi) {
  int k = 1;
  for (int i = 0; i < ni; i++) {
    while (k < n - 1 && xi[i] >= x[k]) k++;
    double s = (xi[i] - x[k - 1]) / (x[k] - x[k - 1]);
    yi[i] = y[k - 1] + s * (y[k] - y[k - 1]);
  }
}

/* ---- instantaneous-frequency analysis ---------------------------------------------------------- */

void fsvc_f0i_ifa_init(fsvc_f0i_ifa *a) { memset(a, 0, sizeof(*a)); }

void fsvc_f0i_ifa_free(fsvc_f0i_ifa *a) {
  for (int i = 0; i < 31; i++) free(a->tab[i]);
  for (int i = 0; i < FSVC_F0I_IFA_SEGS; i++) {
    free(a->seg[i].sw);
    free(a->seg[i].sd);
  }
  memset(a, 0, sizeof(*a));
}

/* Cuts the segment for window half length `half` around t and windows it. */
static int seg_prepare(fsvc_f0i_ifa *a, fsvc_f0i_seg *g, int half) {
  const double fs = a->fs, t = a->t;
  const double *x = a->x;
  const int xlen = a->xlen;
  int len = 2 * half + 1;
  double wlen = (2.0 * half + 1.0) / fs;
  int lg = 2 + (int)(log(half * 2.0 + 1.0) / FSVC_F0I_LOG2);
  if (lg > 30) return -1;
  int nfft = 1 << lg;
  g->half = 0;
  if (len > g->cap) {
    free(g->sw);
    free(g->sd);
    g->sw = (double *)malloc(sizeof(double) * (size_t)len);
    g->sd = (double *)malloc(sizeof(double) * (size_t)len);
    if (!g->sw || !g->sd) {
      free(g->sw);
      free(g->sd);
      g->sw = g->sd = NULL;
      g->cap = 0;
      return -1;
    }
    g->cap = len;
  }
  if (!a->tab[lg]) {
    double *tab = (double *)malloc(sizeof(double) * 2 * (size_t)nfft);
    if (!tab) return -1;
    for (int m = 0; m < nfft; m++) {
      double ang = 2.0 * FSVC_F0I_PI * (double)m / (double)nfft;
      tab[2 * m] = cos(ang);
      tab[2 * m + 1] = sin(ang);
    }
    a->tab[lg] = tab;
  }
  /* Blackman window over 3 periods, sampled at the actual sample times relative to t, and its
   * central-difference derivative (negated). First pass: window -> sd, samples -> sw.
   * Sample indices are 1-based. Harvest's variant takes consecutive indices from the first one,
   * rounded with a small bias so that exact half-sample ties resolve upwards; StoneMask's
   * rounds each sample time on its own. */
  double *w = g->sd, *seg = g->sw;
  if (a->consecutive) {
    const int first = fsvc_f0i_round((t + (double)(-half) / fs) * fs + 0.001);
    /* Window phase advances by a constant step: rotate a phasor, re-anchored every 16
     * samples with exact cos/sin (keeps the error at a few ulps). */
    const double step = 2.0 * FSVC_F0I_PI / fs / wlen;
    const double cs = cos(step), sn = sin(step);
    double c = 1.0, s = 0.0;
    for (int i = 0; i < len; i++) {
      if ((i & 15) == 0) {
        double tmp = (double)(first + i - 1.0) / fs - t;
        double ang = 2.0 * FSVC_F0I_PI * tmp / wlen;
        c = cos(ang);
        s = sin(ang);
      } else {
        double c2 = c * cs - s * sn;
        s = s * cs + c * sn;
        c = c2;
      }
      w[i] = 0.42 + 0.5 * c + 0.08 * (2.0 * c * c - 1.0);
      seg[i] = x[fsvc_f0i_imax(0, fsvc_f0i_imin(xlen - 1, first + i - 1))];
    }
  } else {
    for (int i = 0; i < len; i++) {
      int bi = fsvc_f0i_round((t + (double)(-half + i) / fs) * fs);
      double tmp = (double)(bi - 1.0) / fs - t;
      w[i] = 0.42 + 0.5 * cos(2.0 * FSVC_F0I_PI * tmp / wlen) +
             0.08 * cos(4.0 * FSVC_F0I_PI * tmp / wlen);
      seg[i] = x[fsvc_f0i_imax(0, fsvc_f0i_imin(xlen - 1, bi - 1))];
    }
  }
  /* Second pass, in place: sw = segment * window, sd = segment * derivative window. */
  double wprev = 0.0;
  for (int i = 0; i < len; i++) {
    double wi = w[i];
    double wnext = i + 1 < len ? w[i + 1] : 0.0;
    double dwi;
    if (i == 0) dwi = -wnext / 2.0;
    else if (i == len - 1) dwi = wprev / 2.0;
    else dwi = -(wnext - wprev) / 2.0;
    double v = seg[i];
    g->sw[i] = v * wi;
    g->sd[i] = v * dwi;
    wprev = wi;
  }
  g->half = half;
  g->len = len;
  g->lg = lg;
  g->nbins = 0;
  return 0;
}

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

/* Spectrum of the windowed segments at bin k of the 2^lg-point DFT (forward, exp(-i)):
 * power |X_w|^2 and Im(X_dw * conj(X_w)). */
static void seg_bin(const fsvc_f0i_ifa *a, const fsvc_f0i_seg *g, int k, double *power,
                    double *numer) {
  const unsigned mask = (1u << g->lg) - 1u;
  const double *tab = a->tab[g->lg];
  const double *sw = g->sw, *sd = g->sd;
  const unsigned step = (unsigned)k & mask;
  const int len = g->len;
  double mr = 0.0, mi = 0.0, dr = 0.0, di = 0.0;
  int i = 0;
#if defined(__AVX2__) && defined(__FMA__)
  /* Four lanes (samples n..n+3); the phasors advance by 4 samples per step by rotation and are
   * reloaded from the exact table every 8 steps. */
  {
    const unsigned s4 = (4u * step) & mask;
    const __m256d c4 = _mm256_set1_pd(tab[2 * s4]), n4 = _mm256_set1_pd(tab[2 * s4 + 1]);
    __m256d amr = _mm256_setzero_pd(), ami = _mm256_setzero_pd();
    __m256d adr = _mm256_setzero_pd(), adi = _mm256_setzero_pd();
    __m256d c = _mm256_setzero_pd(), s = _mm256_setzero_pd();
    for (; i + 4 <= len; i += 4) {
      if ((i & 31) == 0) {
        unsigned m0 = ((unsigned)i * step) & mask;
        unsigned m1 = (m0 + step) & mask, m2 = (m1 + step) & mask, m3 = (m2 + step) & mask;
        c = _mm256_set_pd(tab[2 * m3], tab[2 * m2], tab[2 * m1], tab[2 * m0]);
        s = _mm256_set_pd(tab[2 * m3 + 1], tab[2 * m2 + 1], tab[2 * m1 + 1], tab[2 * m0 + 1]);
      } else {
        __m256d c2 = _mm256_fmsub_pd(c, c4, _mm256_mul_pd(s, n4));
        s = _mm256_fmadd_pd(s, c4, _mm256_mul_pd(c, n4));
        c = c2;
      }
      __m256d vw = _mm256_loadu_pd(sw + i), vd = _mm256_loadu_pd(sd + i);
      amr = _mm256_fmadd_pd(vw, c, amr);
      ami = _mm256_fmadd_pd(vw, s, ami);
      adr = _mm256_fmadd_pd(vd, c, adr);
      adi = _mm256_fmadd_pd(vd, s, adi);
    }
    double t0[4], t1[4], t2[4], t3[4];
    _mm256_storeu_pd(t0, amr);
    _mm256_storeu_pd(t1, ami);
    _mm256_storeu_pd(t2, adr);
    _mm256_storeu_pd(t3, adi);
    mr = (t0[0] + t0[1]) + (t0[2] + t0[3]);
    mi = -((t1[0] + t1[1]) + (t1[2] + t1[3]));
    dr = (t2[0] + t2[1]) + (t2[2] + t2[3]);
    di = -((t3[0] + t3[1]) + (t3[2] + t3[3]));
  }
#endif
  unsigned m = ((unsigned)i * step) & mask;
  for (; i < len; i++) {
    double c = tab[2 * m], s = tab[2 * m + 1];
    mr += sw[i] * c;
    mi -= sw[i] * s;
    dr += sd[i] * c;
    di -= sd[i] * s;
    m = (m + step) & mask;
  }
  *power = mr * mr + mi * mi;
  *numer = mr * di - mi * dr;
}

int fsvc_f0i_ifa_fix(fsvc_f0i_ifa *a, const double *x, int xlen, double fs, double t, double wf0,
                     double f0, int nh, int consecutive, double *out, double *score) {
  if (a->x != x || a->xlen != xlen || a->fs != fs || a->t != t || a->consecutive != consecutive) {
    for (int i = 0; i < FSVC_F0I_IFA_SEGS; i++) a->seg[i].half = 0;
    a->x = x;
    a->xlen = xlen;
    a->fs = fs;
    a->t = t;
    a->consecutive = consecutive;
  }
  const int half = (int)(1.5 * fs / wf0 + 1.0);
  fsvc_f0i_seg *g = NULL;
  for (int i = 0; i < FSVC_F0I_IFA_SEGS; i++)
    if (a->seg[i].half == half) {
      g = &a->seg[i];
      break;
    }
  if (!g) {
    g = &a->seg[a->next];
    a->next = (a->next + 1) % FSVC_F0I_IFA_SEGS;
    if (seg_prepare(a, g, half) != 0) return -1;
  }
  const int nfft = 1 << g->lg;
  double num = 0.0, den = 0.0, sc = 0.0;
  for (int i = 0; i < nh; i++) {
    int index = fsvc_f0i_round(f0 * nfft / fs * (i + 1));
    double power = 0.0, numer = 0.0;
    int j = 0;
    while (j < g->nbins && g->bin[j] != index) j++;
    if (j < g->nbins) {
      power = g->pw[j];
      numer = g->nu[j];
    } else {
      seg_bin(a, g, index, &power, &numer);
      if (g->nbins == FSVC_F0I_IFA_BINS) g->nbins = 0;
      g->bin[g->nbins] = index;
      g->pw[g->nbins] = power;
      g->nu[g->nbins] = numer;
      g->nbins++;
    }
    double inst = power == 0.0 ? 0.0
                               : (double)index * fs / nfft +
                                     numer / power * fs / 2.0 / FSVC_F0I_PI;
    double amp = sqrt(power);
    num += amp * inst;
    den += amp * (i + 1.0);
    sc += fabs((inst / (i + 1.0) - f0) / f0);
  }
  if (score) *score = 1.0 / (sc / nh + FSVC_F0I_EPS);
  *out = num / (den + FSVC_F0I_EPS);
  return 0;
}

/* ---- argument checks --------------------------------------------------------------------------- */

void fsvc_f0i_error(char *errbuf, size_t errlen, const char *fmt, ...) {
  if (!errbuf || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errbuf, errlen, fmt, ap);
  va_end(ap);
}

int fsvc_f0i_check_signal(const char *who, const double *x, int64_t n, int sample_rate,
                          char *errbuf, size_t errlen) {
  if (!x) {
    fsvc_f0i_error(errbuf, errlen, "%s: x must not be NULL", who);
    return -1;
  }
  if (n <= 0) {
    fsvc_f0i_error(errbuf, errlen, "%s: n must be > 0 (got %lld)", who, (long long)n);
    return -1;
  }
  if (n > INT_MAX / 4) {
    fsvc_f0i_error(errbuf, errlen, "%s: n too large (got %lld, max %d)", who, (long long)n,
                   INT_MAX / 4);
    return -1;
  }
  if (sample_rate <= 0) {
    fsvc_f0i_error(errbuf, errlen, "%s: sample_rate must be > 0 (got %d)", who, sample_rate);
    return -1;
  }
  for (int64_t i = 0; i < n; i++) {
    if (!isfinite(x[i])) {
      fsvc_f0i_error(errbuf, errlen, "%s: x[%lld] is not finite (%g)", who, (long long)i, x[i]);
      return -1;
    }
  }
  return 0;
}

int fsvc_f0i_check_options(const char *who, const void *opts, int sample_rate, char *errbuf,
                           size_t errlen) {
  const fsvc_f0_options *o = (const fsvc_f0_options *)opts;
  if (!(isfinite(o->f0_floor) && o->f0_floor >= 1.0)) {
    fsvc_f0i_error(errbuf, errlen, "%s: f0_floor must be >= 1 Hz (got %g)", who, o->f0_floor);
    return -1;
  }
  if (!(isfinite(o->f0_ceil) && o->f0_ceil > o->f0_floor)) {
    fsvc_f0i_error(errbuf, errlen, "%s: f0_ceil must be > f0_floor (got f0_floor %g, f0_ceil %g)",
                   who, o->f0_floor, o->f0_ceil);
    return -1;
  }
  if (o->f0_ceil > sample_rate / 2.0) {
    fsvc_f0i_error(errbuf, errlen, "%s: f0_ceil must be <= sample_rate / 2 (got %g at %d Hz)",
                   who, o->f0_ceil, sample_rate);
    return -1;
  }
  if (!(isfinite(o->frame_period_ms) && o->frame_period_ms > 0.0)) {
    fsvc_f0i_error(errbuf, errlen, "%s: frame_period_ms must be > 0 (got %g)", who,
                   o->frame_period_ms);
    return -1;
  }
  return 0;
}

/* ---- public helpers ------------------------------------------------------------------------------ */

void fsvc_f0_default_options(fsvc_f0_options *o) {
  if (!o) return;
  o->f0_floor = 71.0;
  o->f0_ceil = 800.0;
  o->frame_period_ms = 5.0;
  o->allowed_range = 0.1;
  o->channels_in_octave = 2.0;
  o->speed = 1;
}

int64_t fsvc_f0_frame_count(int64_t n_samples, int sample_rate, double frame_period_ms) {
  if (n_samples <= 0 || sample_rate <= 0 || !(frame_period_ms > 0.0) || !isfinite(frame_period_ms))
    return -1;
  return (int64_t)(1000.0 * (double)n_samples / sample_rate / frame_period_ms) + 1;
}
