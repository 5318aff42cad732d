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

/* ---- the STFT family on devices (dsp_device.c) ------------------------------------------------ */
#include "fsvc/dsp.h"

/* Resolved geometry of one STFT call (stft.c): sizes, the padding, and the window zero-padded to
 * n_fft, centred, as doubles on the host (owned: free(window)). */
typedef struct {
  int64_t B, L, n_fft, hop, pad, Lp, T, F;
  int onesided;
  fsvc_stft_pad mode;
  double *window;
} dsp_stft_geometry;

/* Validates x and o as fsvc_stft does (same messages) and fills g; the window may be a CUDA
 * tensor (it is read through a host copy). 0, or -1 with an error and nothing to free. */
int dsp_stft_prepare(const fsvc_tensor *x, const fsvc_stft_options *o, dsp_stft_geometry *g);

/* The STFT family on a CUDA tensor, composed of device-generic public ops (pad, index_select,
 * mul, fsvc_rfft, cat, transpose, where, ...), so autograd needs nothing of its own. Arguments
 * are already validated by the public functions. */
fsvc_tensor *dsp_stft_device(const fsvc_tensor *x, const dsp_stft_geometry *g);
/* istft of a validated [F, T, 2] or [B, F, T, 2] spectrum: the overlap-add signal of `avail`
 * samples cropped to [start, start + length) and divided by env[start..] (zeros past avail). */
fsvc_tensor *dsp_istft_device(const fsvc_tensor *spec, const dsp_stft_geometry *g, int64_t start,
                              int64_t length, int64_t avail, const double *env);
fsvc_tensor *dsp_magnitude_device(const fsvc_tensor *spec, double power);
/* a with NaN/Inf replaced by 0 (those elements carry no gradient); takes over a */
fsvc_tensor *dsp_zero_nonfinite_device(fsvc_tensor *a);


/* host float64 values -> a [n] tensor of dtype dt on dev (one upload, no synchronisation) */
fsvc_tensor *dsp_host_vector_on(const double *v, int64_t n, fsvc_dtype dt, fsvc_device dev);
/* An int64 [n] index tensor on the host for the caller to fill (*fill): index_select moves CPU
 * indices to the data's device (they are checked there on the host copy). */
fsvc_tensor *dsp_host_index(int64_t n, int64_t **fill);
/* a device copy of a contiguous CPU tensor, shared by content (dsp_device.c): no copy per call */
fsvc_tensor *dsp_device_constant(const fsvc_tensor *host, fsvc_device dev);
/* releases a filled host index, returns its device copy (shared by content, see dsp_device.c) */
fsvc_tensor *dsp_index_on(fsvc_tensor *host_index, fsvc_device dev);
/* col [T] and row [n] (int64, same device) -> the flat [T*n] index col[t] + row[k], added on their
 * device: index grids from two small constants instead of one of T*n */
fsvc_tensor *dsp_index_grid(const fsvc_tensor *col, const fsvc_tensor *row);

/* ---- harmonic source and pitch helpers on devices (dsp_device_pitch.c) ------------------------
 * Composed of device-generic public ops; arguments are validated by the public functions (the
 * device checks for NaN / out-of-range values and then reports with the CPU's message). The
 * results carry no autograd history, as on the CPU. */
fsvc_tensor *dsp_oscillate_harmonics_device(const fsvc_tensor *f0, int64_t frame_size,
                                            double sample_rate, int num_harmonics,
                                            double min_frequency, fsvc_tensor **phase_out);
fsvc_tensor *dsp_freq2id_device(const fsvc_tensor *f0);
fsvc_tensor *dsp_id2freq_device(const fsvc_tensor *ids, fsvc_dtype dt);
fsvc_tensor *dsp_interpolate_f0_device(const fsvc_tensor *f0, int64_t n_out);

#endif
