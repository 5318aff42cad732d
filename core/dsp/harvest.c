/* Harvest F0 estimator (M. Morise, "Harvest: A high-performance fundamental frequency estimator
 * from speech signals", Interspeech 2017), written from the published algorithm.
 *
 * Outline (all on a 1 ms frame grid, resampled to the requested period at the end):
 *  1. The signal is decimated to about 8 kHz (after extending it with its end values) and its
 *     mean removed.
 *  2. A bank of band-pass filters (Nuttall-windowed cosines, 40 per octave from 0.9*floor to
 *     1.1*ceil) is applied through the FFT. In each band, intervals between negative/positive
 *     zero crossings, peaks and dips give four F0 estimates, linearly interpolated to the frame
 *     times and averaged; values more than 10% away from the band centre are dropped.
 *  3. Per frame, each run of at least 10 adjacent bands that agree gives one candidate (their
 *     mean). Candidates of the 3 previous and 3 next frames are added.
 *  4. Each candidate is refined by instantaneous-frequency analysis of its first harmonics and
 *     scored by how harmonic they are; weak candidates (score < 2.5) and ones without support in
 *     a neighbouring frame (5%) are dropped.
 *  5. The contour is built from the best-scoring candidates, then cleaned: sudden jumps removed,
 *     short voiced runs removed, voiced runs extended through candidates that continue them (and
 *     overlapping runs merged by score), short unvoiced gaps bridged, and each voiced run smoothed
 *     with a zero-phase 2nd-order Butterworth low-pass (30 Hz at the 1 kHz frame rate). */
/* Keep the reference's rounding: no fusion of a*b+c into FMA instructions. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "fsvc/f0.h"
#include "dsp/f0_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HV_CHANNELS_IN_OCTAVE 40.0
#define HV_TARGET_FS 8000.0
#define HV_OVERLAP 7

/* ---- step 2: raw candidates per band ------------------------------------------------------------ */

static void candidate_contour(const fsvc_f0i_events *e, double boundary_f0, double f0_floor,
                              double f0_ceil, const double *times, int f0_length,
                              double *tmp4, double *out) {
  if (e->count[0] < 3 || e->count[1] < 3 || e->count[2] < 3 || e->count[3] < 3) {
    for (int i = 0; i < f0_length; i++) out[i] = 0.0;
    return;
  }
  for (int k = 0; k < 4; k++)
    fsvc_f0i_interp1(e->loc[k], e->val[k], e->count[k], times, f0_length,
                     tmp4 + (size_t)k * f0_length);
  const double upper = boundary_f0 * 1.1, lower = boundary_f0 * 0.9;
  const double *a = tmp4, *b = tmp4 + f0_length, *c = tmp4 + 2 * (size_t)f0_length,
               *d = tmp4 + 3 * (size_t)f0_length;
  for (int i = 0; i < f0_length; i++) {
    double v = (a[i] + b[i] + c[i] + d[i]) / 4.0;
    if (v > upper || v < lower || v > f0_ceil || v < f0_floor) v = 0.0;
    out[i] = v;
  }
}

/* Per-frame official candidates, built band by band (in increasing order) without keeping
 * the bands x frames matrix: in each frame, every run of at least 10 adjacent bands with a
 * candidate gives one official candidate, their mean. The first and the last band count as
 * empty. */
typedef struct {
  int cap;        /* candidates per frame that fit in list */
  int *count;     /* [frame] candidates found */
  int *run_start; /* [frame] first band of the open run, -1 when none */
  double *run_sum;
  double *list;   /* [frame * cap + k] */
} official_t;

static void official_add_band(official_t *o, int band, int nch, const double *v, int f0_length) {
  for (int i = 0; i < f0_length; i++) {
    int voiced = band > 0 && band < nch - 1 && v[i] > 0;
    if (voiced) {
      if (o->run_start[i] < 0) {
        o->run_start[i] = band;
        o->run_sum[i] = 0.0;
      }
      o->run_sum[i] += v[i];
    } else if (o->run_start[i] >= 0) {
      int st = o->run_start[i];
      if (band - st >= 10 && o->count[i] < o->cap)
        o->list[(size_t)i * o->cap + o->count[i]++] = o->run_sum[i] / (band - st);
      o->run_start[i] = -1;
    }
  }
}

static int band_candidates(const double *boundary, int nch, double afs, int ylen,
                           const double *yspec, int fft_size, const fsvc_f0i_fft *plan,
                           const double *times, int f0_length, double f0_floor, double f0_ceil,
                           official_t *off) {
  int rc = -1;
  double *z = (double *)malloc(sizeof(double) * 2 * (size_t)fft_size);
  double *sig = (double *)malloc(sizeof(double) * (size_t)ylen);
  double *win = (double *)malloc(sizeof(double) * (2 * (size_t)fsvc_f0i_round(afs / boundary[0] * 2.0) + 1));
  double *tmp4 = (double *)malloc(sizeof(double) * 4 * (size_t)f0_length);
  double *v = (double *)malloc(sizeof(double) * (size_t)f0_length);
  fsvc_f0i_events ev;
  /* room for about twice the expected number of events of the highest band */
  int ev_ok = fsvc_f0i_events_alloc(&ev, (int)(2.4 * ylen / afs * boundary[nch - 1]) + 64) == 0;
  if (!z || !sig || !win || !tmp4 || !v || !ev_ok) goto done;

  for (int c = 0; c < nch; c += 2) {
    /* Two real filters at once: channel c in the real part, c+1 in the imaginary part. */
    int npair = c + 1 < nch ? 2 : 1;
    int half[2] = {0, 0};
    memset(z, 0, sizeof(double) * 2 * (size_t)fft_size);
    for (int p = 0; p < npair; p++) {
      double b = boundary[c + p];
      int h = fsvc_f0i_round(afs / b * 2.0);
      half[p] = h;
      fsvc_f0i_nuttall(2 * h + 1, win);
      for (int i = -h; i <= h; i++)
        z[2 * (size_t)(i + h) + p] = win[i + h] * cos(2.0 * FSVC_F0I_PI * b * i / afs);
    }
    fsvc_f0i_fft_forward_br(plan, z);
    for (int k = 0; k < fft_size; k++) {
      double zr = z[2 * k], zi = z[2 * k + 1], yr = yspec[2 * k], yi = yspec[2 * k + 1];
      z[2 * k] = zr * yr - zi * yi;
      z[2 * k + 1] = zr * yi + zi * yr;
    }
    fsvc_f0i_fft_inverse_br(plan, z);
    for (int p = 0; p < npair; p++) {
      /* delay compensation: output sample i is taken at i + half + 1 */
      int bias = half[p] + 1;
      for (int i = 0; i < ylen; i++) sig[i] = z[2 * (size_t)(i + bias) + p];
      if (fsvc_f0i_four_events(sig, ylen, afs, &ev) != 0) goto done;
      candidate_contour(&ev, boundary[c + p], f0_floor, f0_ceil, times, f0_length, tmp4, v);
      official_add_band(off, c + p, nch, v, f0_length);
    }
  }
  rc = 0;
done:
  free(z);
  free(sig);
  free(win);
  free(tmp4);
  free(v);
  if (ev_ok) fsvc_f0i_events_free(&ev);
  return rc;
}

/* ---- step 5 helpers ------------------------------------------------------------------------------ */

/* Closest candidate within allowed relative error (ties go to the later one); 0 if none. */
static double select_best(double ref, const double *cand, int n, double allowed, double *err) {
  double best = 0.0;
  double best_err = allowed;
  for (int i = 0; i < n; i++) {
    double e = fabs(ref - cand[i]) / ref;
    if (e > best_err) continue;
    best = cand[i];
    best_err = e;
  }
  *err = best_err;
  return best;
}

/* Voiced runs as [start, end] pairs (inclusive); the first and last frames count as unvoiced. */
static int boundary_list(const double *f0, int n, int *list) {
  int nb = 0;
  int prev = 0;
  for (int i = 1; i < n; i++) {
    int v = (i == n - 1) ? 0 : (f0[i] > 0 ? 1 : 0);
    if (v != prev) {
      list[nb] = i - nb % 2;
      nb++;
    }
    prev = v;
  }
  return nb;
}

static void fix_step1(const double *base, int n, double allowed, double *out) {
  for (int i = 0; i < n; i++) out[i] = 0.0;
  for (int i = 2; i < n; i++) {
    if (base[i] == 0.0) continue;
    double ref = base[i - 1] * 2 - base[i - 2];
    out[i] = fabs((base[i] - ref) / (ref + FSVC_F0I_EPS)) > allowed &&
                     fabs((base[i] - base[i - 1]) / (base[i - 1] + FSVC_F0I_EPS)) > allowed
                 ? 0.0
                 : base[i];
  }
}

static void fix_step2(const double *in, int n, int min_len, int *blist, double *out) {
  for (int i = 0; i < n; i++) out[i] = in[i];
  int nb = boundary_list(in, n, blist);
  for (int i = 0; i < nb / 2; i++) {
    if (blist[2 * i + 1] - blist[2 * i] >= min_len) continue;
    for (int j = blist[2 * i]; j <= blist[2 * i + 1]; j++) out[j] = 0.0;
  }
}

/* One voiced run's own F0 track during step 3. Extension moves a run's ends by at most 101
 * frames, so each track only stores the frames [lo, hi] it can touch; it is 0 elsewhere
 * (a full-length track per run would cost O(runs x frames) memory). */
typedef struct {
  int lo, hi;
  double *v;
} run_track;

static double rt_get(const run_track *r, int i) {
  return i >= r->lo && i <= r->hi ? r->v[i - r->lo] : 0.0;
}

/* Extends a voiced run from origin towards last_point (direction shift) through candidates
 * within `allowed` of the previous value; stops after 4 misses. Returns the new boundary (the
 * last frame that received a value). */
static int extend_f0(int origin, int last_point, int shift, const double *cand, int nc,
                     double allowed, run_track *f0) {
  const int threshold = 4;
  double tmp = rt_get(f0, origin);
  int shifted = origin;
  int distance = abs(last_point - origin);
  int count = 0;
  double dummy;
  for (int i = 0; i <= distance; i++) {
    int idx = origin + shift * i;
    double v = select_best(tmp, cand + (size_t)(idx + shift) * nc, nc, allowed, &dummy);
    f0->v[idx + shift - f0->lo] = v; /* within [lo, hi] by construction */
    if (v == 0.0) {
      count++;
    } else {
      tmp = v;
      count = 0;
      shifted = idx + shift;
    }
    if (count == threshold) break;
  }
  return shifted;
}

static double search_score(double f0, const double *cand, const double *score, int nc) {
  double s = 0.0;
  for (int i = 0; i < nc; i++)
    if (f0 == cand[i] && s < score[i]) s = score[i];
  return s;
}

static int merge_sub(double *merged, int st1, int ed1, const run_track *f0_2, int st2, int ed2,
                     const double *cand, const double *score, int nc) {
  if (st1 <= st2 && ed1 >= ed2) return ed1;
  double s1 = 0.0, s2 = 0.0;
  for (int i = st2; i <= ed1; i++) {
    s1 += search_score(merged[i], cand + (size_t)i * nc, score + (size_t)i * nc, nc);
    s2 += search_score(rt_get(f0_2, i), cand + (size_t)i * nc, score + (size_t)i * nc, nc);
  }
  if (s1 > s2)
    for (int i = ed1; i <= ed2; i++) merged[i] = rt_get(f0_2, i);
  else
    for (int i = st2; i <= ed2; i++) merged[i] = rt_get(f0_2, i);
  return ed2;
}

/* Step 3 of the contour fixing: extend voiced runs, keep long enough ones, merge. */
static int fix_step3(const double *in, int n, const double *cand, const double *score, int nc,
                     double allowed, int *blist, double *out) {
  for (int i = 0; i < n; i++) out[i] = in[i];
  int nb = boundary_list(in, n, blist);
  int ns = nb / 2;
  if (ns == 0) return 0;
  run_track *mc = (run_track *)calloc((size_t)ns, sizeof(run_track));
  int *order = (int *)malloc(sizeof(int) * (size_t)ns);
  int rc = -1;
  if (!mc || !order) goto done;
  for (int i = 0; i < ns; i++) {
    run_track *r = &mc[i];
    r->lo = fsvc_f0i_imax(0, blist[2 * i] - 101);
    r->hi = fsvc_f0i_imin(n - 1, blist[2 * i + 1] + 101);
    r->v = (double *)calloc((size_t)(r->hi - r->lo + 1), sizeof(double));
    if (!r->v) goto done;
    for (int j = blist[2 * i]; j <= blist[2 * i + 1]; j++) r->v[j - r->lo] = in[j];
  }
  /* extension forward from each end, then backward from each start (at most 100 frames) */
  for (int i = 0; i < ns; i++) {
    blist[2 * i + 1] = extend_f0(blist[2 * i + 1],
                                 fsvc_f0i_imin(n - 2, blist[2 * i + 1] + 100), 1, cand, nc,
                                 allowed, &mc[i]);
    blist[2 * i] = extend_f0(blist[2 * i], fsvc_f0i_imax(1, blist[2 * i] - 100), -1, cand, nc,
                             allowed, &mc[i]);
  }
  /* keep runs longer than 2.2 periods (the running mean is deliberately not reset) */
  int count = 0;
  double mean_f0 = 0.0;
  for (int i = 0; i < ns; i++) {
    int st = blist[2 * i], ed = blist[2 * i + 1];
    for (int j = st; j < ed; j++) mean_f0 += rt_get(&mc[i], j);
    mean_f0 /= ed - st;
    if (2200.0 / mean_f0 < ed - st) {
      run_track tp = mc[count];
      mc[count] = mc[i];
      mc[i] = tp;
      int t0 = blist[2 * count], t1 = blist[2 * count + 1];
      blist[2 * count] = blist[2 * i];
      blist[2 * count + 1] = blist[2 * i + 1];
      blist[2 * i] = t0;
      blist[2 * i + 1] = t1;
      count++;
    }
  }
  if (count > 0) {
    for (int i = 0; i < count; i++) order[i] = i;
    for (int i = 1; i < count; i++)
      for (int j = i - 1; j >= 0; j--) {
        if (blist[2 * order[j]] > blist[2 * order[i]]) {
          int t = order[i];
          order[i] = order[j];
          order[j] = t;
        } else {
          break;
        }
      }
    for (int i = 0; i < n; i++) out[i] = 0.0;
    for (int i = mc[0].lo; i <= mc[0].hi; i++) out[i] = mc[0].v[i - mc[0].lo];
    for (int i = 1; i < count; i++) {
      int oi = order[i];
      if (blist[2 * oi] - blist[1] > 0) {
        for (int j = blist[2 * oi]; j <= blist[2 * oi + 1]; j++) out[j] = rt_get(&mc[oi], j);
        blist[0] = blist[2 * oi];
        blist[1] = blist[2 * oi + 1];
      } else {
        blist[1] = merge_sub(out, blist[0], blist[1], &mc[oi], blist[2 * oi], blist[2 * oi + 1],
                             cand, score, nc);
      }
    }
  }
  rc = 0;
done:
  if (mc)
    for (int i = 0; i < ns; i++) free(mc[i].v);
  free(mc);
  free(order);
  return rc;
}

/* Step 4: unvoiced gaps shorter than `threshold` frames are bridged linearly. */
static void fix_step4(const double *in, int n, int threshold, int *blist, double *out) {
  for (int i = 0; i < n; i++) out[i] = in[i];
  int nb = boundary_list(in, n, blist);
  for (int i = 0; i < nb / 2 - 1; i++) {
    int distance = blist[(i + 1) * 2] - blist[i * 2 + 1] - 1;
    if (distance >= threshold) continue;
    double t0 = in[blist[i * 2 + 1]] + 1;
    double t1 = in[blist[(i + 1) * 2]] - 1;
    double coef = (t1 - t0) / (distance + 1.0);
    int count = 1;
    for (int j = blist[i * 2 + 1] + 1; j <= blist[(i + 1) * 2] - 1; j++)
      out[j] = t0 + coef * count++;
  }
}

/* Zero-phase 2nd-order Butterworth (cutoff 0.06 of Nyquist) of one voiced run [st, ed] of a
 * track of n frames, the samples outside the run held at its end values; the filtered run is
 * written back into x[st..ed]. Filtering the whole track from zero state costs O(n) per run
 * (quadratic in the track length overall), so only a margin of HV_SMOOTH_MARGIN frames around
 * the run is processed: the filter's poles have radius 0.875, so after the margin the start-up
 * transient has decayed far below double precision (0.875^1000 ~ 1e-58) and the result is the
 * same as with the full track. */
#define HV_SMOOTH_MARGIN 1000
static void filter_f0(const double a[2], const double b[2], double *x, int n, int st, int ed,
                      double *tmp) {
  const int lo = fsvc_f0i_imax(0, st - HV_SMOOTH_MARGIN);
  const int hi = fsvc_f0i_imin(n - 1, ed + HV_SMOOTH_MARGIN);
  const int m = hi - lo + 1;
  double *xs = x + lo;
  for (int i = lo; i < st; i++) x[i] = x[st];
  for (int i = ed + 1; i <= hi; i++) x[i] = x[ed];
  double w0 = 0.0, w1 = 0.0;
  for (int i = 0; i < m; i++) {
    double wt = xs[i] + a[0] * w0 + a[1] * w1;
    tmp[m - i - 1] = b[0] * wt + b[1] * w0 + b[0] * w1;
    w1 = w0;
    w0 = wt;
  }
  w0 = w1 = 0.0;
  for (int i = 0; i < m; i++) {
    double wt = tmp[i] + a[0] * w0 + a[1] * w1;
    xs[m - i - 1] = b[0] * wt + b[1] * w0 + b[0] * w1;
    w1 = w0;
    w0 = wt;
  }
}

static void butter2_design(double wn, double a[2], double b[2]) {
  /* bilinear transform of the 2nd-order Butterworth prototype, pre-warped */
  double k = tan(FSVC_F0I_PI * wn / 2.0);
  double k2 = k * k, r2 = sqrt(2.0) * k;
  double d = 1.0 + r2 + k2;
  double a1 = 2.0 * (k2 - 1.0) / d;
  double a2 = (1.0 - r2 + k2) / d;
  a[0] = -a1;
  a[1] = -a2;
  b[0] = k2 / d;
  b[1] = 2.0 * k2 / d;
}

static int smooth_f0(const double *f0, int n, double *out) {
  const int lag = 300;
  int m = n + 2 * lag;
  double *padded = (double *)calloc((size_t)m, sizeof(double));
  double *x = (double *)malloc(sizeof(double) * (size_t)m);
  double *tmp = (double *)malloc(sizeof(double) * (size_t)m);
  int *blist = (int *)malloc(sizeof(int) * (size_t)m);
  if (!padded || !x || !tmp || !blist) {
    free(padded);
    free(x);
    free(tmp);
    free(blist);
    return -1;
  }
  double a[2], b[2];
  butter2_design(0.06, a, b);
  memcpy(padded + lag, f0, sizeof(double) * (size_t)n);
  int nb = boundary_list(padded, m, blist);
  for (int i = 0; i < nb / 2; i++) {
    int st = blist[2 * i], ed = blist[2 * i + 1];
    for (int j = st; j <= ed; j++) x[j] = padded[j];
    filter_f0(a, b, x, m, st, ed, tmp);
    for (int j = st; j <= ed; j++) out[j - lag] = x[j];
  }
  free(padded);
  free(x);
  free(tmp);
  free(blist);
  return 0;
}

/* ---- the whole estimator on the 1 ms grid ---------------------------------------------------- */

static int harvest_body(const double *x, int xlen, int fs, double f0_floor, double f0_ceil,
                        int f0_length, double *f0) {
  int rc = -1;
  const double adj_floor = f0_floor * 0.9, adj_ceil = f0_ceil * 1.1;
  const int nch = 1 + (int)(log(adj_ceil / adj_floor) / FSVC_F0I_LOG2 * HV_CHANNELS_IN_OCTAVE);
  const int dr = fsvc_f0i_imax(fsvc_f0i_imin(fsvc_f0i_round(fs / HV_TARGET_FS), 12), 1);
  const int ylen = (int)ceil((double)xlen / dr);
  const double afs = (double)fs / dr;

  double *boundary = NULL, *y = NULL, *yspec = NULL, *times = NULL;
  official_t off = {0, NULL, NULL, NULL, NULL};
  double *cand = NULL, *score = NULL, *tmp_cand = NULL, *c1 = NULL, *c2 = NULL;
  int *blist = NULL;
  fsvc_f0i_fft plan = {0, NULL, NULL};
  fsvc_f0i_ifa ifa;
  fsvc_f0i_ifa_init(&ifa);

  boundary = (double *)malloc(sizeof(double) * (size_t)nch);
  if (!boundary) goto done;
  for (int i = 0; i < nch; i++)
    boundary[i] = adj_floor * pow(2.0, (i + 1) / HV_CHANNELS_IN_OCTAVE);
  const int fft_size =
      fsvc_f0i_fft_size_above(ylen + 5 + 2 * (int)(2.0 * afs / boundary[0]));

  /* 1. decimated, mean-removed waveform and its spectrum */
  y = (double *)calloc((size_t)fft_size, sizeof(double));
  yspec = (double *)calloc(2 * (size_t)fft_size, sizeof(double));
  times = (double *)malloc(sizeof(double) * (size_t)f0_length);
  if (!y || !yspec || !times) goto done;
  if (dr != 1) {
    /* The signal is extended by about 140 samples of its end values on each side before
     * decimation (as the reference does), so the decimator's edge transients fall outside. */
    const int lag = (int)(ceil(140.0 / dr) * dr);
    const int nlen = xlen + 2 * lag;
    double *nx = (double *)malloc(sizeof(double) * (size_t)nlen);
    double *ny = (double *)calloc((size_t)nlen, sizeof(double));
    int ok = nx && ny;
    if (ok) {
      for (int i = 0; i < lag; i++) nx[i] = x[0];
      memcpy(nx + lag, x, sizeof(double) * (size_t)xlen);
      for (int i = lag + xlen; i < nlen; i++) nx[i] = x[xlen - 1];
      ok = fsvc_f0i_decimate(nx, nlen, dr, ny) == 0;
      if (ok) memcpy(y, ny + lag / dr, sizeof(double) * (size_t)ylen);
    }
    free(nx);
    free(ny);
    if (!ok) goto done;
  } else {
    memcpy(y, x, sizeof(double) * (size_t)xlen);
  }
  double mean = 0.0;
  for (int i = 0; i < ylen; i++) mean += y[i];
  mean /= ylen;
  for (int i = 0; i < ylen; i++) y[i] -= mean;
  if (fsvc_f0i_fft_init(&plan, fft_size) != 0) goto done;
  for (int i = 0; i < ylen; i++) yspec[2 * i] = y[i];
  fsvc_f0i_fft_forward_br(&plan, yspec);
  for (int i = 0; i < f0_length; i++) {
    times[i] = i / 1000.0;
    f0[i] = 0.0;
  }

  /* 2-3. band candidates folded into per-frame official candidates */
  off.cap = (nch + 10) / 11 + 1;
  off.count = (int *)calloc((size_t)f0_length, sizeof(int));
  off.run_start = (int *)malloc(sizeof(int) * (size_t)f0_length);
  off.run_sum = (double *)malloc(sizeof(double) * (size_t)f0_length);
  off.list = (double *)malloc(sizeof(double) * (size_t)f0_length * (size_t)off.cap);
  if (!off.count || !off.run_start || !off.run_sum || !off.list) goto done;
  for (int i = 0; i < f0_length; i++) off.run_start[i] = -1;
  if (band_candidates(boundary, nch, afs, ylen, yspec, fft_size, &plan, times, f0_length,
                      f0_floor, f0_ceil, &off) != 0)
    goto done;
  fsvc_f0i_fft_free(&plan);
  free(yspec);
  yspec = NULL;

  /* official candidates, then the neighbours' ones (previous 1..3, next 1..3 frames) */
  int nc0 = 0;
  for (int i = 0; i < f0_length; i++) nc0 = fsvc_f0i_imax(nc0, off.count[i]);
  const int nc = nc0 * HV_OVERLAP;
  if (nc > 0) {
    cand = (double *)calloc((size_t)f0_length * nc, sizeof(double));
    score = (double *)calloc((size_t)f0_length * nc, sizeof(double));
    tmp_cand = (double *)malloc(sizeof(double) * 2 * (size_t)nc);
    if (!cand || !score || !tmp_cand) goto done;
    for (int i = 0; i < f0_length; i++)
      for (int k = 0; k < off.count[i]; k++)
        cand[(size_t)i * nc + k] = off.list[(size_t)i * off.cap + k];
    for (int s = 1; s <= 3; s++)
      for (int j = 0; j < nc0; j++) {
        for (int k = s; k < f0_length; k++)
          cand[(size_t)k * nc + j + nc0 * s] = cand[(size_t)(k - s) * nc + j];
        for (int k = 0; k < f0_length - s; k++)
          cand[(size_t)k * nc + j + nc0 * (s + 3)] = cand[(size_t)(k + s) * nc + j];
      }
  }
  free(off.list);
  off.list = NULL;

  /* 4. refinement and scoring */
  for (int i = 0; i < f0_length; i++) {
    for (int j = 0; j < nc; j++) {
      double *c = cand + (size_t)i * nc + j, *sc = score + (size_t)i * nc + j;
      double cur = *c;
      if (cur <= 0.0) {
        *c = 0.0;
        *sc = 0.0;
        continue;
      }
      int nh = fsvc_f0i_imin((int)(afs / 2.0 / cur), 6);
      double s, r;
      if (fsvc_f0i_ifa_fix(&ifa, y, ylen, afs, times[i], cur, cur, nh, 1, &r, &s) != 0)
        goto done;
      if (r < f0_floor || r > f0_ceil || s < 2.5) {
        r = 0.0;
        s = 0.0;
      }
      *c = r;
      *sc = s;
    }
  }
  /* candidates without a close (5%) candidate in either neighbouring frame are dropped (the
   * neighbours as they were before this pass: row i-1 is kept in prev_row) */
  if (nc > 0 && f0_length > 2) {
    double *prev_row = tmp_cand, *cur_row = tmp_cand + nc;
    memcpy(prev_row, cand, sizeof(double) * (size_t)nc);
    for (int i = 1; i < f0_length - 1; i++) {
      memcpy(cur_row, cand + (size_t)i * nc, sizeof(double) * (size_t)nc);
      for (int j = 0; j < nc; j++) {
        double ref = cand[(size_t)i * nc + j];
        if (ref == 0) continue;
        double e1, e2;
        select_best(ref, cand + (size_t)(i + 1) * nc, nc, 1.0, &e1);
        select_best(ref, prev_row, nc, 1.0, &e2);
        double emin = e1 < e2 ? e1 : e2;
        if (emin <= 0.05) continue;
        cand[(size_t)i * nc + j] = 0;
        score[(size_t)i * nc + j] = 0;
      }
      double *t = prev_row;
      prev_row = cur_row;
      cur_row = t;
    }
  }

  /* 5. contour */
  c1 = (double *)malloc(sizeof(double) * (size_t)f0_length);
  c2 = (double *)malloc(sizeof(double) * (size_t)f0_length);
  blist = (int *)malloc(sizeof(int) * (size_t)f0_length);
  if (!c1 || !c2 || !blist) goto done;
  for (int i = 0; i < f0_length; i++) {
    double best = 0.0, bs = 0.0;
    for (int j = 0; j < nc; j++)
      if (score[(size_t)i * nc + j] > bs) {
        best = cand[(size_t)i * nc + j];
        bs = score[(size_t)i * nc + j];
      }
    c1[i] = best;
  }
  fix_step1(c1, f0_length, 0.008, c2);
  fix_step2(c2, f0_length, 6, blist, c1);
  if (fix_step3(c1, f0_length, cand, score, nc, 0.18, blist, c2) != 0) goto done;
  fix_step4(c2, f0_length, 9, blist, c1);
  if (smooth_f0(c1, f0_length, f0) != 0) goto done;
  rc = 0;
done:
  fsvc_f0i_fft_free(&plan);
  fsvc_f0i_ifa_free(&ifa);
  free(boundary);
  free(y);
  free(yspec);
  free(times);
  free(off.count);
  free(off.run_start);
  free(off.run_sum);
  free(off.list);
  free(cand);
  free(score);
  free(tmp_cand);
  free(c1);
  free(c2);
  free(blist);
  return rc;
}

int fsvc_harvest(const double *x, int64_t n, int sample_rate, const fsvc_f0_options *o,
                 double *out_f0, char *errbuf, size_t errlen) {
  fsvc_f0_options def;
  if (!o) {
    fsvc_f0_default_options(&def);
    o = &def;
  }
  if (fsvc_f0i_check_signal("harvest", x, n, sample_rate, errbuf, errlen) != 0) return -1;
  if (fsvc_f0i_check_options("harvest", o, sample_rate, errbuf, errlen) != 0) return -1;
  if (!out_f0) {
    fsvc_f0i_error(errbuf, errlen, "harvest: out_f0 must not be NULL");
    return -1;
  }
  const int xlen = (int)n;
  if (1000.0 * xlen / sample_rate > 2e8) {
    fsvc_f0i_error(errbuf, errlen, "harvest: signal too long (%lld samples at %d Hz)",
                   (long long)n, sample_rate);
    return -1;
  }
  const int basic_len = (int)(1000.0 * xlen / sample_rate / 1.0) + 1;
  double *basic = (double *)malloc(sizeof(double) * (size_t)basic_len);
  if (!basic) {
    fsvc_f0i_error(errbuf, errlen, "harvest: out of memory");
    return -1;
  }
  if (harvest_body(x, xlen, sample_rate, o->f0_floor, o->f0_ceil, basic_len, basic) != 0) {
    free(basic);
    fsvc_f0i_error(errbuf, errlen, "harvest: out of memory");
    return -1;
  }
  const int64_t frames = fsvc_f0_frame_count(n, sample_rate, o->frame_period_ms);
  for (int64_t i = 0; i < frames; i++) {
    double t = i * o->frame_period_ms / 1000.0;
    int k = fsvc_f0i_imin(basic_len - 1, fsvc_f0i_round(t * 1000.0));
    out_f0[i] = basic[k];
  }
  free(basic);
  return 0;
}
