/* DIO F0 estimator (M. Morise, H. Kawahara, H. Katayose, "Fast and reliable F0 estimation method
 * based on the period extraction of vocal fold vibration of singing voice and speech", 2009),
 * written from the published algorithm, followed by StoneMask refinement.
 *
 * Outline:
 *  1. Optional decimation (speed), mean removal and a zero-phase low-cut filter (50 Hz: the
 *     signal minus its Hann-weighted moving average), all through the FFT.
 *  2. For each band (channels_in_octave per octave from f0_floor), a Nuttall low-pass whose
 *     length is two periods of the band's upper edge. Intervals between negative/positive zero
 *     crossings, peaks and dips of its output give four F0 estimates, interpolated to the frame
 *     times. Their mean is the band's candidate (kept when inside [edge/2, edge] and
 *     [floor, ceil]); their spread relative to the mean is its score (lower is better).
 *  3. Per frame the best-scoring band wins. The contour is then cleaned: frame-to-frame jumps
 *     over allowed_range removed, voiced frames need a fully voiced neighbourhood (erosion over
 *     about 1000/floor ms), and voiced runs are extended forwards then backwards through the
 *     candidate closest to a linear prediction.
 *  4. StoneMask refines every voiced frame (see stonemask.c). */
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

#define DIO_CUTOFF 50.0
#define DIO_MAX_SCORE 100000.0

int fsvc_f0i_stonemask(const double *x, int xlen, int fs, const double *times,
                       const double *f0_in, int n_frames, double *out);

static void candidate_contour(const fsvc_f0i_events *e, double boundary_f0, double f0_floor,
                              double f0_ceil, const double *times, int f0_length,
                              double *tmp4, double *cand, double *score) {
  if (e->count[0] < 3 || e->count[1] < 3 || e->count[2] < 3 || e->count[3] < 3) {
    for (int i = 0; i < f0_length; i++) {
      score[i] = DIO_MAX_SCORE;
      cand[i] = 0.0;
    }
    return;
  }
  for (int k = 0; k < 4; k++)
    fsvc_f0i_interp1(e->loc[k], e->val[k], e->count[k], times, f0_length,
                     tmp4 + (size_t)k * f0_length);
  const double *a = tmp4, *b = tmp4 + f0_length, *c = tmp4 + 2 * (size_t)f0_length,
               *d = tmp4 + 3 * (size_t)f0_length;
  for (int i = 0; i < f0_length; i++) {
    double m = (a[i] + b[i] + c[i] + d[i]) / 4.0;
    double s = sqrt(((a[i] - m) * (a[i] - m) + (b[i] - m) * (b[i] - m) + (c[i] - m) * (c[i] - m) +
                     (d[i] - m) * (d[i] - m)) /
                    3.0);
    if (m > boundary_f0 || m < boundary_f0 / 2.0 || m > f0_ceil || m < f0_floor) {
      m = 0.0;
      s = DIO_MAX_SCORE;
    }
    cand[i] = m;
    score[i] = s;
  }
}

/* Candidate among all bands closest to the linear prediction from the two previous frames. */
static double select_best(double cur, double past, const double *cand, int nb, int f0_length,
                          int target, double allowed) {
  double ref = (cur * 3.0 - past) / 2.0;
  double min_err = fabs(ref - cand[target]);
  double best = cand[target];
  for (int i = 1; i < nb; i++) {
    double e = fabs(ref - cand[(size_t)i * f0_length + target]);
    if (e < min_err) {
      min_err = e;
      best = cand[(size_t)i * f0_length + target];
    }
  }
  if (fabs(1.0 - best / ref) > allowed) return 0.0;
  return best;
}

static int fix_contour(double frame_period, int nb, const double *cand, const double *best,
                       int n, double f0_floor, double allowed, double *out) {
  const int vrm = (int)(0.5 + 1000.0 / frame_period / f0_floor) * 2 + 1;
  for (int i = 0; i < n; i++) out[i] = 0.0;
  if (n <= vrm) return 0;
  double *base = (double *)malloc(sizeof(double) * (size_t)n);
  double *s1 = (double *)malloc(sizeof(double) * (size_t)n);
  double *s2 = (double *)malloc(sizeof(double) * (size_t)n);
  int *pos = (int *)malloc(sizeof(int) * (size_t)n);
  int *neg = (int *)malloc(sizeof(int) * (size_t)n);
  int rc = -1;
  if (!base || !s1 || !s2 || !pos || !neg) goto done;
  /* step 1: edges cleared, frame-to-frame jumps over `allowed` removed */
  for (int i = 0; i < n; i++) base[i] = (i < vrm || i >= n - vrm) ? 0.0 : best[i];
  for (int i = 0; i < vrm; i++) s1[i] = 0.0;
  for (int i = vrm; i < n; i++)
    s1[i] = fabs((base[i] - base[i - 1]) / (FSVC_F0I_EPS + base[i])) < allowed ? base[i] : 0.0;
  /* step 2: a frame stays voiced only if its whole neighbourhood is */
  for (int i = 0; i < n; i++) s2[i] = s1[i];
  const int center = (vrm - 1) / 2;
  for (int i = center; i < n - center; i++)
    for (int j = -center; j <= center; j++)
      if (s1[i + j] == 0) {
        s2[i] = 0.0;
        break;
      }
  int np = 0, nn = 0;
  for (int i = 1; i < n; i++) {
    if (s2[i] == 0 && s2[i - 1] != 0)
      neg[nn++] = i - 1;
    else if (s2[i - 1] == 0 && s2[i] != 0)
      pos[np++] = i;
  }
  /* step 3: forward extension from each voiced run's end */
  for (int i = 0; i < n; i++) s1[i] = s2[i];
  for (int i = 0; i < nn; i++) {
    int limit = i == nn - 1 ? n - 1 : neg[i + 1];
    for (int j = neg[i]; j < limit; j++) {
      s1[j + 1] = select_best(s1[j], s1[j - 1], cand, nb, n, j + 1, allowed);
      if (s1[j + 1] == 0) break;
    }
  }
  /* step 4: backward extension from each voiced run's start */
  for (int i = 0; i < n; i++) out[i] = s1[i];
  for (int i = np - 1; i >= 0; i--) {
    int limit = i == 0 ? 1 : pos[i - 1];
    for (int j = pos[i]; j > limit; j--) {
      double next = j + 1 < n ? out[j + 1] : 0.0;
      out[j - 1] = select_best(out[j], next, cand, nb, n, j - 1, allowed);
      if (out[j - 1] == 0) break;
    }
  }
  rc = 0;
done:
  free(base);
  free(s1);
  free(s2);
  free(pos);
  free(neg);
  return rc;
}

static int dio_body(const double *x, int xlen, int fs, const fsvc_f0_options *o, int f0_length,
                    const double *times, double *f0) {
  int rc = -1;
  const double f0_floor = o->f0_floor, f0_ceil = o->f0_ceil;
  const int nb =
      1 + (int)(log(f0_ceil / f0_floor) / FSVC_F0I_LOG2 * o->channels_in_octave);
  const int dr = fsvc_f0i_imax(fsvc_f0i_imin(o->speed, 12), 1);
  const int ylen = 1 + xlen / dr;
  const double afs = (double)fs / dr;

  double *boundary = NULL, *y = NULL, *yspec = NULL, *z = NULL, *sig = NULL, *win = NULL;
  double *tmp4 = NULL, *cand = NULL, *score = NULL, *best = NULL;
  fsvc_f0i_fft plan = {0, NULL, NULL};
  fsvc_f0i_events ev;
  int ev_ok = 0;

  boundary = (double *)malloc(sizeof(double) * (size_t)nb);
  if (!boundary) goto done;
  for (int i = 0; i < nb; i++)
    boundary[i] = f0_floor * pow(2.0, (i + 1) / o->channels_in_octave);
  const int cutoff = fsvc_f0i_round(afs / DIO_CUTOFF);
  const int fft_size = fsvc_f0i_fft_size_above(
      ylen + cutoff * 2 + 1 + (4 * (int)(1.0 + afs / boundary[0] / 2.0)));

  /* 1. waveform: decimation, mean removal (over ylen, which has one extra zero sample) */
  y = (double *)calloc((size_t)fft_size, sizeof(double));
  yspec = (double *)calloc(2 * (size_t)fft_size, sizeof(double));
  z = (double *)malloc(sizeof(double) * 2 * (size_t)fft_size);
  if (!y || !yspec || !z) goto done;
  if (dr != 1) {
    if (fsvc_f0i_decimate(x, xlen, dr, y) != 0) goto done;
  } else {
    memcpy(y, x, sizeof(double) * (size_t)xlen);
  }
  double mean = 0.0;
  for (int i = 0; i < ylen; i++) mean += y[i];
  mean /= ylen;
  for (int i = 0; i < ylen; i++) y[i] -= mean;
  if (fsvc_f0i_fft_init(&plan, fft_size) != 0) goto done;
  for (int i = 0; i < fft_size; i++) yspec[2 * i] = y[i];
  fsvc_f0i_fft_forward_br(&plan, yspec);

  /* low-cut: delta minus a normalised Hann of length 2*cutoff+1, zero-phase (circular) */
  {
    const int len = cutoff * 2 + 1, h = (len - 1) / 2;
    double *lc = y; /* reuse y as scratch */
    for (int i = 1; i <= len; i++) lc[i - 1] = 0.5 - 0.5 * cos(i * 2.0 * FSVC_F0I_PI / (len + 1));
    double sum = 0.0;
    for (int i = 0; i < len; i++) sum += lc[i];
    for (int i = 0; i < len; i++) lc[i] = -lc[i] / sum;
    memset(z, 0, sizeof(double) * 2 * (size_t)fft_size);
    for (int k = -h; k <= h; k++) z[2 * (size_t)((k + fft_size) % fft_size)] = lc[k + h];
    z[0] += 1.0;
    fsvc_f0i_fft_forward_br(&plan, z);
    for (int k = 0; k < fft_size; k++) {
      double zr = z[2 * k], zi = z[2 * k + 1], yr = yspec[2 * k], yi = yspec[2 * k + 1];
      yspec[2 * k] = yr * zr - yi * zi;
      yspec[2 * k + 1] = yr * zi + yi * zr;
    }
  }
  free(y);
  y = NULL;

  /* 2. candidates and scores per band (two bands per complex transform) */
  cand = (double *)malloc(sizeof(double) * (size_t)nb * (size_t)f0_length);
  score = (double *)malloc(sizeof(double) * (size_t)nb * (size_t)f0_length);
  sig = (double *)malloc(sizeof(double) * (size_t)ylen);
  win = (double *)malloc(sizeof(double) * (4 * (size_t)fsvc_f0i_round(afs / boundary[0] / 2.0) + 4));
  tmp4 = (double *)malloc(sizeof(double) * 4 * (size_t)f0_length);
  best = (double *)malloc(sizeof(double) * (size_t)f0_length);
  if (!cand || !score || !sig || !win || !tmp4 || !best) goto done;
  /* room for about twice the expected number of events of the highest band */
  if (fsvc_f0i_events_alloc(&ev, (int)(2.0 * ylen / afs * boundary[nb - 1]) + 64) != 0)
    goto done;
  ev_ok = 1;
  for (int c = 0; c < nb; c += 2) {
    int npair = c + 1 < nb ? 2 : 1;
    int half[2] = {0, 0};
    memset(z, 0, sizeof(double) * 2 * (size_t)fft_size);
    for (int p = 0; p < npair; p++) {
      int h = fsvc_f0i_round(afs / boundary[c + p] / 2.0);
      half[p] = h;
      fsvc_f0i_nuttall(h * 4, win);
      for (int i = 0; i < h * 4; i++) z[2 * (size_t)i + p] = win[i];
    }
    fsvc_f0i_fft_forward_br(&plan, z);
    for (int k = 0; k < fft_size; k++) {
      double zr = z[2 * k], zi = z[2 * k + 1], yr = yspec[2 * k], yi = yspec[2 * k + 1];
      z[2 * k] = zr * yr - zi * yi;
      z[2 * k + 1] = zr * yi + zi * yr;
    }
    fsvc_f0i_fft_inverse_br(&plan, z);
    for (int p = 0; p < npair; p++) {
      int bias = half[p] * 2; /* delay compensation */
      for (int i = 0; i < ylen; i++) sig[i] = z[2 * (size_t)(i + bias) + p];
      if (fsvc_f0i_four_events(sig, ylen, afs, &ev) != 0) goto done;
      double *cb = cand + (size_t)(c + p) * f0_length, *sb = score + (size_t)(c + p) * f0_length;
      candidate_contour(&ev, boundary[c + p], f0_floor, f0_ceil, times, f0_length, tmp4, cb, sb);
      for (int j = 0; j < f0_length; j++) sb[j] = sb[j] / (cb[j] + FSVC_F0I_EPS);
    }
  }

  /* 3. best band per frame, then contour fixing */
  for (int i = 0; i < f0_length; i++) {
    double s = score[i];
    best[i] = cand[i];
    for (int j = 1; j < nb; j++)
      if (s > score[(size_t)j * f0_length + i]) {
        s = score[(size_t)j * f0_length + i];
        best[i] = cand[(size_t)j * f0_length + i];
      }
  }
  if (fix_contour(o->frame_period_ms, nb, cand, best, f0_length, f0_floor, o->allowed_range,
                  f0) != 0)
    goto done;
  rc = 0;
done:
  fsvc_f0i_fft_free(&plan);
  if (ev_ok) fsvc_f0i_events_free(&ev);
  free(boundary);
  free(y);
  free(yspec);
  free(z);
  free(sig);
  free(win);
  free(tmp4);
  free(cand);
  free(score);
  free(best);
  return rc;
}

int fsvc_dio(const double *x, int64_t n, int sample_rate, const fsvc_f0_options *o,
             double *out_f0, char *errbuf, size_t errlen) {
  fsvc_f0_options def;
  if (!o) {
    fsvc_f0_default_options(&def);
    o = &def;
  }
  if (fsvc_f0i_check_signal("dio", x, n, sample_rate, errbuf, errlen) != 0) return -1;
  if (fsvc_f0i_check_options("dio", o, sample_rate, errbuf, errlen) != 0) return -1;
  if (!(isfinite(o->allowed_range) && o->allowed_range > 0.0)) {
    fsvc_f0i_error(errbuf, errlen, "dio: allowed_range must be > 0 (got %g)", o->allowed_range);
    return -1;
  }
  if (!(isfinite(o->channels_in_octave) && o->channels_in_octave > 0.0 &&
        o->channels_in_octave <= 1000.0)) {
    fsvc_f0i_error(errbuf, errlen, "dio: channels_in_octave must be in (0, 1000] (got %g)",
                   o->channels_in_octave);
    return -1;
  }
  if (o->speed < 1 || o->speed > 12) {
    fsvc_f0i_error(errbuf, errlen, "dio: speed must be in 1..12 (got %d)", o->speed);
    return -1;
  }
  if (!out_f0) {
    fsvc_f0i_error(errbuf, errlen, "dio: out_f0 must not be NULL");
    return -1;
  }
  const int xlen = (int)n;
  const int64_t frames = fsvc_f0_frame_count(n, sample_rate, o->frame_period_ms);
  if (frames > (int64_t)0x7fffffff / 8) {
    fsvc_f0i_error(errbuf, errlen, "dio: too many frames (%lld)", (long long)frames);
    return -1;
  }
  const int f0_length = (int)frames;
  double *times = (double *)malloc(sizeof(double) * (size_t)f0_length);
  double *raw = (double *)malloc(sizeof(double) * (size_t)f0_length);
  int rc = -1;
  if (times && raw) {
    for (int i = 0; i < f0_length; i++) times[i] = i * o->frame_period_ms / 1000.0;
    if (dio_body(x, xlen, sample_rate, o, f0_length, times, raw) == 0 &&
        fsvc_f0i_stonemask(x, xlen, sample_rate, times, raw, f0_length, out_f0) == 0)
      rc = 0;
  }
  if (rc != 0) fsvc_f0i_error(errbuf, errlen, "dio: out of memory");
  free(times);
  free(raw);
  return rc;
}
