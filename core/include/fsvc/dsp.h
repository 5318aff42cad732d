/* Signal processing on tensors: STFT family, mel filterbanks, the reference's spectral losses,
 * frame energy, the harmonic source oscillator, pitch helpers and two streaming objects.
 *
 * Conventions (see also tensor.h): every function returns a NEW reference or NULL with a one-line
 * message in fsvc_last_error() naming the function and the argument. Waveforms are [L] or [B, L]
 * (float32 or float64; strided views are fine); frame-rate tensors are [B, C, T]. Complex spectra
 * use a trailing dim of 2 (real, imag), as torch.view_as_real(torch.stft(...)).
 *
 * Differentiable (autograd nodes): "rfft", "stft" (w.r.t. the signal), "istft" (w.r.t. the spectrum),
 * "magnitude". Everything built from them (spectrogram, mel_spectrogram, the losses, energy) is a
 * composition of differentiable ops. Not differentiable: windows, filterbanks, oscillators, pitch
 * helpers (they take no gradient-carrying inputs in FasterSVC).
 *
 * CUDA tensors: the STFT family (rfft, stft, istft, magnitude, spectrogram, mel_spectrogram, the
 * losses, energy), fsvc_oscillate_harmonics and the pitch helpers run on the device as
 * compositions of device ops (dsp_device.c, dsp_device_pitch.c). The others (the streaming
 * objects' process, Harvest, DIO) start with FSVC_REFUSE_CUDA (fsvc/device.h), so a CUDA tensor
 * fails with "stream_stft_process: CUDA tensors are not supported yet (move them with :cpu())"
 * instead of having its device pointer read as host memory.
 */
#ifndef FSVC_DSP_H
#define FSVC_DSP_H

#include "fsvc/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- windows -------------------------------------------------------------------------------- */
/* torch.hann_window(n, periodic): 0.5 - 0.5 cos(2 pi k / N), N = n (periodic) or n - 1. */
fsvc_tensor *fsvc_hann_window(int64_t n, int periodic, fsvc_dtype dt);

/* ---- real FFT -------------------------------------------------------------------------------- */
/* One-sided real FFT over the last dim, unnormalised (e^{-2 pi i f k / n}): x [..., n] ->
 * [..., n/2+1, 2] (real, imag), as torch.view_as_real(torch.fft.rfft(x)). float32 or float64.
 * Differentiable ("rfft"): the gradient is the adjoint, an unnormalised inverse real FFT of the
 * incoming gradient with bins 1..ceil(n/2)-1 halved (the imaginary parts of bin 0 and, for even
 * n, of bin n/2 do not reach x). CUDA tensors go through cuFFT. */
fsvc_tensor *fsvc_rfft(const fsvc_tensor *x);

/* ---- STFT ----------------------------------------------------------------------------------- */
typedef enum { FSVC_STFT_PAD_REFLECT, FSVC_STFT_PAD_CONSTANT, FSVC_STFT_PAD_REPLICATE } fsvc_stft_pad;

typedef struct {
  int64_t n_fft;
  int64_t hop_length;   /* <= 0: n_fft / 4 (torch's default) */
  int64_t win_length;   /* <= 0: n_fft; the window is zero-padded to n_fft, centred */
  const fsvc_tensor *window; /* [win_length] or NULL for a periodic Hann window */
  int center;           /* pad n_fft/2 on both sides with pad_mode */
  fsvc_stft_pad pad_mode;
  int onesided;         /* n_fft/2+1 bins instead of n_fft */
} fsvc_stft_options;

/* Fills the torch defaults for n_fft: hop n_fft/4, win n_fft, Hann, center, reflect, onesided. */
void fsvc_stft_default_options(fsvc_stft_options *o, int64_t n_fft);

/* x [L] or [B, L] -> [F, T, 2] or [B, F, T, 2], T = 1 + (L_padded - n_fft) / hop.
 * Equals torch.view_as_real(torch.stft(x, ..., return_complex=True)) (normalized=False).
 * Differentiable w.r.t. x. float32 uses KissFFT (real FFT, n_fft even) and float64 an own
 * double-precision mixed-radix FFT (any n_fft), so gradient checks see float64 accuracy. */
fsvc_tensor *fsvc_stft(const fsvc_tensor *x, const fsvc_stft_options *o);

/* Inverse of fsvc_stft by weighted overlap-add (torch.istft): spec [F, T, 2] or [B, F, T, 2]
 * (onesided) -> [L] or [B, L]. length <= 0: (T-1)*hop (+ n_fft - 2*(n_fft/2) trimmed when
 * center), as torch. Fails where the window envelope is ~0 (NOLA). Differentiable w.r.t. spec. */
fsvc_tensor *fsvc_istft(const fsvc_tensor *spec, const fsvc_stft_options *o, int64_t length);

/* |X|^power from the [..., 2] form; gradient defined as 0 where |X| = 0. */
fsvc_tensor *fsvc_magnitude(const fsvc_tensor *spec, double power);

/* The reference's spectrogram: periodic Hann, center reflect, magnitude, FIRST frame dropped.
 * x [B, L] (or [L]) -> [B, n_fft/2+1, L/hop] (or [F, T]). */
fsvc_tensor *fsvc_spectrogram(const fsvc_tensor *x, int64_t n_fft, int64_t hop);

/* ---- mel ------------------------------------------------------------------------------------ */
typedef enum { FSVC_MEL_HTK, FSVC_MEL_SLANEY } fsvc_mel_scale;

/* torchaudio.functional.melscale_fbanks(n_freqs, f_min, f_max, n_mels, sample_rate, norm,
 * mel_scale) -> [n_freqs, n_mels]. slaney_norm: norm="slaney" (area normalisation). */
fsvc_tensor *fsvc_mel_filterbank(int64_t n_freqs, double f_min, double f_max, int64_t n_mels,
                                 double sample_rate, int slaney_norm, fsvc_mel_scale scale,
                                 fsvc_dtype dt);

typedef struct {
  double sample_rate;
  int64_t n_fft, hop_length, win_length, n_mels;
  double f_min, f_max; /* f_max <= 0: sample_rate / 2 */
  double power;        /* 2 = power spectrogram */
  int center;
  fsvc_stft_pad pad_mode;
  int slaney_norm;
  fsvc_mel_scale mel_scale;
} fsvc_mel_options;

/* torchaudio.transforms.MelSpectrogram defaults: sr 16000, n_fft 400, hop n_fft/2, 128 mels,
 * power 2, center reflect, htk, no norm. */
void fsvc_mel_default_options(fsvc_mel_options *o);
/* x [L] or [B, L] -> [n_mels, T] or [B, n_mels, T]. Differentiable w.r.t. x. */
fsvc_tensor *fsvc_mel_spectrogram(const fsvc_tensor *x, const fsvc_mel_options *o);

/* ---- losses (FASTERSVC.md "Losses"); both return 0-d tensors, differentiable w.r.t. both ---- */
/* L1 of log(clamp(mel, 1e-6)) with mel = MelSpectrogram(24000, 1024, hop 256, 128 mels, power 2,
 * htk); non-finite log-mels are set to 0 (as the reference). */
fsvc_tensor *fsvc_log_mel_loss(const fsvc_tensor *fake, const fsvc_tensor *real);
/* Mean over hops {16, 32, ..., 512} (n_fft = 4 hop) of mean (|X|-|Y|)^2 + mean |log X - log Y|,
 * logs of clamp(., 1e-6). */
fsvc_tensor *fsvc_multiscale_stft_loss(const fsvc_tensor *fake, const fsvc_tensor *real);

/* max |x| over each frame_size-sample frame: x [B, L] -> [B, 1, L / frame_size] (a trailing
 * partial frame is dropped, as max_pool1d). Differentiable. */
fsvc_tensor *fsvc_energy(const fsvc_tensor *x, int64_t frame_size);

/* ---- harmonic source ------------------------------------------------------------------------ */
/* f0 [B, 1, T] (Hz) -> harmonics [B, H+1, T*frame_size]: fs_k = k * interp(f0) (linear,
 * align_corners=False), phase_k[n] = sum_{m=1..n} fs_k[m] / sr (mod 1; sample 0 has phase 0),
 * y = sin(2 pi phase_k) * (fs_k >= min_frequency). The phase is accumulated in float64.
 * If phase_out != NULL it receives the phases (cycles in [0, 1)), same shape. A CUDA f0 gives
 * CUDA results (float64 device ops; the phase summed per frame, then over frames, wrapped). */
fsvc_tensor *fsvc_oscillate_harmonics(const fsvc_tensor *f0, int64_t frame_size,
                                      double sample_rate, int num_harmonics,
                                      double min_frequency, fsvc_tensor **phase_out);

/* Streaming form of fsvc_oscillate_harmonics. Sample i of the whole signal interpolates frames
 * floor((i+0.5)/F - 0.5) and the next one, so it is only known once that next frame has arrived:
 * process() emits every sample determined by the frames received so far, i.e. up to the centre
 * of the last frame (the first call emits T*F - F/2 samples for even F), and flush() emits the
 * held-back half frame, extrapolated flat as the whole-signal call does at its end. The
 * concatenation of all outputs equals fsvc_oscillate_harmonics on the concatenated f0 (to
 * rounding: the phase is carried in float64). Latency: F/2 samples (10 ms at 480/24 kHz). */
typedef struct fsvc_oscillator fsvc_oscillator;
fsvc_oscillator *fsvc_oscillator_new(int64_t batch, int64_t frame_size, double sample_rate,
                                     int num_harmonics, double min_frequency);
void fsvc_oscillator_free(fsvc_oscillator *o);
void fsvc_oscillator_reset(fsvc_oscillator *o);
/* f0_chunk [B, 1, Tc] -> [B, H+1, n] (n may be 0 for Tc = 0). Output dtype = f0's. */
fsvc_tensor *fsvc_oscillator_process(fsvc_oscillator *o, const fsvc_tensor *f0_chunk);
fsvc_tensor *fsvc_oscillator_flush(fsvc_oscillator *o, fsvc_dtype dt);

/* ---- pitch helpers -------------------------------------------------------------------------- */
/* f0 * 2^(semitones/12) (differentiable, any shape). */
fsvc_tensor *fsvc_pitch_shift(const fsvc_tensor *f0, double semitones);
/* round(clamp(48 log2(f/10), 0, 511)) as int64; f <= 0 (unvoiced) -> 0. NaN is an error. */
fsvc_tensor *fsvc_freq2id(const fsvc_tensor *f0);
/* ids (int64 or float) -> 10 * 2^(i/48) Hz as float32 (or the float dtype given), class 0 -> 0. */
fsvc_tensor *fsvc_id2freq(const fsvc_tensor *ids, fsvc_dtype dt);
/* Linear resize of the last dim to n_out (F.interpolate linear, align_corners=False) for [N],
 * [B, N] or [B, C, N]; not differentiable, computed in float64. */
fsvc_tensor *fsvc_interpolate_f0(const fsvc_tensor *f0, int64_t n_out);

/* ---- streaming STFT --------------------------------------------------------------------------- */
/* Fed chunk by chunk, emits exactly the frames of fsvc_stft on the whole signal (same options).
 * Non-centred: a frame is emitted as soon as its n_fft samples have arrived. Centred (reflect or
 * constant/replicate padding): the left padding is built once n_fft/2 + 1 samples have arrived,
 * so frames lag the input by n_fft/2 samples of look-ahead; flush() adds the right padding and
 * emits the last frames. Chunks are [L] or [B, L] (B fixed by the first chunk). */
typedef struct fsvc_stream_stft fsvc_stream_stft;
fsvc_stream_stft *fsvc_stream_stft_new(const fsvc_stft_options *o);
void fsvc_stream_stft_free(fsvc_stream_stft *s);
void fsvc_stream_stft_reset(fsvc_stream_stft *s);
/* Returns the new frames [B, F, n, 2] (or [F, n, 2] for 1-D chunks); n may be 0. */
fsvc_tensor *fsvc_stream_stft_process(fsvc_stream_stft *s, const fsvc_tensor *chunk);
fsvc_tensor *fsvc_stream_stft_flush(fsvc_stream_stft *s);

#ifdef __cplusplus
}
#endif
#endif /* FSVC_DSP_H */
