/* Internals shared by the DSP files (stft.c, stream_stft.c, ...): one real-FFT "plan" per thread.
 *
 * float32 frames go through KissFFT's real FFT (float only, n even); float64 frames (and odd
 * n) through an own double-precision mixed-radix complex FFT, so that float64 gradient checks
 * see float64 rounding and not KissFFT's float32. */
#ifndef FSVC_DSP_INTERNAL_H
#define FSVC_DSP_INTERNAL_H

#include <stdint.h>

typedef struct dsp_rfft dsp_rfft;

/* use_float: use KissFFT (float32) when n is even. Returns NULL on allocation failure. */
dsp_rfft *dsp_rfft_new(int64_t n, int use_float);
void dsp_rfft_free(dsp_rfft *p);
/* in[n] real -> out[2*(n/2+1)] interleaved (re, im), unnormalised, e^{-2 pi i f k / n}. */
void dsp_rfft_forward(dsp_rfft *p, const double *in, double *out);
/* in[2*(n/2+1)] interleaved half spectrum -> out[n] = sum over the Hermitian extension of
 * Z_f e^{+2 pi i f k / n} (unnormalised; imaginary parts of bin 0 and of bin n/2 for even n are
 * ignored, as irfft does). */
void dsp_rfft_inverse(dsp_rfft *p, const double *in, double *out);

#endif
