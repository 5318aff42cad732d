/* fsvc F0 extraction: Harvest, and DIO followed by StoneMask.
 *
 * Clean-room C11 implementations of the estimators of the WORLD vocoder
 * (M. Morise, "Harvest: A high-performance fundamental frequency estimator from speech
 * signals", Interspeech 2017; M. Morise, H. Kawahara, H. Katayose, "Fast and reliable F0
 * estimation method based on the period extraction of vocal fold vibration of singing voice and
 * speech", AES 35th Conf., 2009 (DIO); StoneMask: instantaneous-frequency refinement). They aim
 * at numeric agreement with WORLD's own output.
 *
 * All functions are single-threaded, re-entrant, allocate their own scratch memory, never abort
 * and report errors through a return value of -1 plus a one-line message in errbuf (errbuf may
 * be NULL, errlen may be 0). Samples are doubles in the usual [-1, 1) range (for 16-bit PCM,
 * int16 / 32768).
 */
#ifndef FSVC_F0_H
#define FSVC_F0_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  double f0_floor;           /* Hz, lowest F0 searched (default 71; must be >= 1) */
  double f0_ceil;            /* Hz, highest F0 searched (default 800; > f0_floor, <= fs/2) */
  double frame_period_ms;    /* frame hop in milliseconds (default 5) */
  double allowed_range;      /* DIO only: allowed relative F0 jump between frames (default 0.1) */
  double channels_in_octave; /* DIO only: filter bands per octave (default 2) */
  int speed;                 /* DIO only: decimation ratio 1..12 (default 1 = best quality) */
} fsvc_f0_options;

/* Fills o with the WORLD defaults: 71, 800, 5 ms, 0.1, 2, 1. */
void fsvc_f0_default_options(fsvc_f0_options *o);

/* Number of frames produced for n_samples at sample_rate: floor(1000*N/fs/period) + 1.
 * Frame i lies at time i * frame_period_ms / 1000 s. Returns -1 on bad arguments. */
int64_t fsvc_f0_frame_count(int64_t n_samples, int sample_rate, double frame_period_ms);

/* Harvest. out_f0 receives fsvc_f0_frame_count(n, sample_rate, o->frame_period_ms) values in Hz;
 * 0 means unvoiced. o may be NULL (defaults). Returns 0, or -1 with a message in errbuf. */
int fsvc_harvest(const double *x, int64_t n, int sample_rate, const fsvc_f0_options *o,
                 double *out_f0, char *errbuf, size_t errlen);

/* DIO followed by StoneMask. Same conventions as fsvc_harvest. */
int fsvc_dio(const double *x, int64_t n, int sample_rate, const fsvc_f0_options *o,
             double *out_f0, char *errbuf, size_t errlen);

/* StoneMask alone: refines f0_in (n_frames values at times[] in seconds; 0 = unvoiced) by
 * instantaneous frequency analysis of x. out_f0 may alias f0_in. */
int fsvc_stonemask(const double *x, int64_t n, int sample_rate, const double *times,
                   const double *f0_in, int64_t n_frames, double *out_f0,
                   char *errbuf, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
