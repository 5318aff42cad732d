/* Internal helpers shared by Harvest, DIO and StoneMask (core/dsp/harvest.c, dio.c,
 * stonemask.c). Not a public API: names carry the fsvc_f0i_ prefix. */
#ifndef FSVC_F0_COMMON_H
#define FSVC_F0_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#define FSVC_F0I_PI 3.1415926535897932384
#define FSVC_F0I_LOG2 0.69314718055994529
#define FSVC_F0I_EPS 1e-12 /* safeguard against division by zero */

/* Round half away from zero, as MATLAB's round(). */
static inline int fsvc_f0i_round(double x) { return x > 0 ? (int)(x + 0.5) : (int)(x - 0.5); }
static inline int fsvc_f0i_imin(int a, int b) { return a < b ? a : b; }
static inline int fsvc_f0i_imax(int a, int b) { return a > b ? a : b; }

/* Smallest power of two strictly above n: 2^(floor(log2 n) + 1). */
int fsvc_f0i_fft_size_above(int n);

/* ---- FFT (core/dsp/f0_fft.c): double precision, complex, power-of-two sizes ---------------- */
typedef struct {
  int n;           /* transform size (power of two, >= 1) */
  int *rev;        /* bit-reversal permutation */
  double *tw;      /* per stage of half-size h, at 4(h-1): cos(pi j/h) twice each, then sin */
} fsvc_f0i_fft;

int fsvc_f0i_fft_init(fsvc_f0i_fft *p, int n); /* 0, or -1 when out of memory */
void fsvc_f0i_fft_free(fsvc_f0i_fft *p);
/* In place on n interleaved complex values (re, im). Forward uses exp(-i...), inverse
 * exp(+i...); neither is normalised. */
void fsvc_f0i_fft_forward(const fsvc_f0i_fft *p, double *z);
void fsvc_f0i_fft_inverse(const fsvc_f0i_fft *p, double *z);
/* The same without the bit-reversal permutation: forward_br leaves the spectrum in
 * bit-reversed order and inverse_br expects it so. Enough (and much faster) for convolution,
 * where spectra are only multiplied bin by bin. */
void fsvc_f0i_fft_forward_br(const fsvc_f0i_fft *p, double *z);
void fsvc_f0i_fft_inverse_br(const fsvc_f0i_fft *p, double *z);

/* ---- signal helpers --------------------------------------------------------------------------- */
/* Nuttall window (4-term, continuous first derivative), symmetric, of length n. */
void fsvc_f0i_nuttall(int n, double *w);

/* Decimation by r (1..12) like MATLAB's decimate() with a 3rd-order Chebyshev type I low-pass
 * (0.05 dB ripple, cutoff 0.8/r of Nyquist), zero-phase (forward-backward) with 9-sample
 * reflected padding. y receives (n - 1) / r + 1 samples. Returns 0, or -1 when out of memory. */
int fsvc_f0i_decimate(const double *x, int n, int r, double *y);

/* Zero-crossing events of a filtered signal: interval estimates (Hz) and their locations (s) for
 * negative-going zero crossings, positive-going ones, peaks and dips. The arrays grow as
 * needed. */
typedef struct {
  double *loc[4];
  double *val[4];
  int count[4];
  int cap[4];
} fsvc_f0i_events;

/* Starts with room for `hint` events of each kind. Returns 0, or -1 when out of memory. */
int fsvc_f0i_events_alloc(fsvc_f0i_events *e, int hint);
void fsvc_f0i_events_free(fsvc_f0i_events *e);
/* sig (len samples) is overwritten. Returns 0, or -1 when out of memory. */
int fsvc_f0i_four_events(double *sig, int len, double fs, fsvc_f0i_events *e);

/* Linear interpolation with linear extrapolation beyond both ends (x increasing, n >= 2,
 * xi increasing). */
void fsvc_f0i_interp1(const double *x, const double *y, int n, const double *xi, int ni,
                      double *yi);

/* ---- instantaneous-frequency analysis (Harvest refinement and StoneMask) --------------------- */
#define FSVC_F0I_IFA_SEGS 8  /* windowed segments cached per frame (one per window length) */
#define FSVC_F0I_IFA_BINS 24 /* DFT bins cached per segment */

typedef struct {
  int half;        /* window half length in samples; 0 = empty slot */
  int len, lg, cap;
  double *sw, *sd; /* segment times the window / times the derivative window */
  int nbins;
  int bin[FSVC_F0I_IFA_BINS];
  double pw[FSVC_F0I_IFA_BINS], nu[FSVC_F0I_IFA_BINS];
} fsvc_f0i_seg;

typedef struct {
  double *tab[31]; /* tab[k]: cos/sin table for size 2^k, interleaved, built on demand */
  fsvc_f0i_seg seg[FSVC_F0I_IFA_SEGS];
  int next;        /* round-robin slot to reuse */
  /* what the cached segments were cut from */
  const double *x;
  int xlen, consecutive;
  double fs, t;
} fsvc_f0i_ifa;

void fsvc_f0i_ifa_init(fsvc_f0i_ifa *a);
void fsvc_f0i_ifa_free(fsvc_f0i_ifa *a);
/* Weighted-mean instantaneous frequency of the first nh harmonics of f0 around time t (s),
 * measured with a Blackman window of 3 periods of wf0 (Hz). consecutive selects Harvest's
 * sample indexing (1) or StoneMask's (0). When score is not NULL it receives Harvest's
 * reliability score. Segments and bins are cached while x, t, fs stay the same. Returns 0, or
 * -1 when out of memory. */
int fsvc_f0i_ifa_fix(fsvc_f0i_ifa *a, const double *x, int xlen, double fs, double t, double wf0,
                     double f0, int nh, int consecutive, double *out, double *score);

/* ---- argument checks -------------------------------------------------------------------------- */
void fsvc_f0i_error(char *errbuf, size_t errlen, const char *fmt, ...);
/* Validates samples and common arguments; returns 0 or -1 (message written). */
int fsvc_f0i_check_signal(const char *who, const double *x, int64_t n, int sample_rate,
                          char *errbuf, size_t errlen);
/* Validates f0_floor, f0_ceil and frame_period_ms of o (a const fsvc_f0_options *). */
int fsvc_f0i_check_options(const char *who, const void *o, int sample_rate, char *errbuf,
                           size_t errlen);

#endif
