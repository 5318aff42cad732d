/* Mel filterbanks (torchaudio.functional.melscale_fbanks) and the mel spectrogram
 * (torchaudio.transforms.MelSpectrogram): |STFT|^power projected on the filterbank. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dsp_internal.h"
#include "fsvc/device.h"
#include "fsvc/dsp.h"
#include "fsvc/error.h"
#include "fsvc/ops.h"

/* HTK: 2595 log10(1 + f/700). Slaney: linear below 1 kHz (f / (200/3)), logarithmic above
 * (15 + log(f/1000) / (log(6.4)/27)). Same formulas as torchaudio's _hz_to_mel / _mel_to_hz. */
static double hz_to_mel(double f, fsvc_mel_scale s) {
  if (s == FSVC_MEL_HTK) return 2595.0 * log10(1.0 + f / 700.0);
  const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = 15.0;
  const double logstep = log(6.4) / 27.0;
  return f >= min_log_hz ? min_log_mel + log(f / min_log_hz) / logstep : f / f_sp;
}

static double mel_to_hz(double m, fsvc_mel_scale s) {
  if (s == FSVC_MEL_HTK) return 700.0 * (pow(10.0, m / 2595.0) - 1.0);
  const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = 15.0;
  const double logstep = log(6.4) / 27.0;
  return m >= min_log_mel ? min_log_hz * exp(logstep * (m - min_log_mel)) : f_sp * m;
}

fsvc_tensor *fsvc_mel_filterbank(int64_t n_freqs, double f_min, double f_max, int64_t n_mels,
                                 double sample_rate, int slaney_norm, fsvc_mel_scale scale,
                                 fsvc_dtype dt) {
  if (n_freqs < 2 || n_mels < 1 || n_freqs > (1 << 24) || n_mels > (1 << 16)) {
    fsvc_set_error("mel_filterbank: need n_freqs >= 2 and n_mels >= 1, got %lld and %lld",
                   (long long)n_freqs, (long long)n_mels);
    return NULL;
  }
  if (!(sample_rate > 0) || !isfinite(sample_rate)) {
    fsvc_set_error("mel_filterbank: sample_rate must be a positive number, got %g", sample_rate);
    return NULL;
  }
  if (!isfinite(f_min) || !isfinite(f_max) || f_min < 0 || f_max <= f_min) {
    fsvc_set_error("mel_filterbank: need 0 <= f_min < f_max, got f_min %g f_max %g", f_min, f_max);
    return NULL;
  }
  if (dt != FSVC_FLOAT32 && dt != FSVC_FLOAT64) {
    fsvc_set_error("mel_filterbank: dtype must be float32 or float64");
    return NULL;
  }
  if (scale != FSVC_MEL_HTK && scale != FSVC_MEL_SLANEY) {
    fsvc_set_error("mel_filterbank: unknown mel scale");
    return NULL;
  }
  int64_t shape[2] = {n_freqs, n_mels};
  fsvc_tensor *fb = fsvc_empty(2, shape, FSVC_FLOAT64);
  double *f_pts = malloc(sizeof(double) * (size_t)(n_mels + 2));
  if (!fb || !f_pts) {
    fsvc_tensor_release(fb);
    free(f_pts);
    fsvc_set_error("mel_filterbank: out of memory");
    return NULL;
  }
  /* torchaudio: all_freqs = linspace(0, sample_rate // 2, n_freqs) (integer division) */
  const double top = floor(sample_rate / 2.0);
  const double m_min = hz_to_mel(f_min, scale), m_max = hz_to_mel(f_max, scale);
  for (int64_t i = 0; i < n_mels + 2; i++)
    f_pts[i] = mel_to_hz(m_min + (m_max - m_min) * (double)i / (double)(n_mels + 1), scale);
  double *d = fsvc_data(fb);
  for (int64_t k = 0; k < n_freqs; k++) {
    double f = top * (double)k / (double)(n_freqs - 1);
    for (int64_t m = 0; m < n_mels; m++) {
      /* triangle: rises from f_pts[m] to f_pts[m+1], falls to f_pts[m+2] */
      double down = (f - f_pts[m]) / (f_pts[m + 1] - f_pts[m]);
      double up = (f_pts[m + 2] - f) / (f_pts[m + 2] - f_pts[m + 1]);
      double v = fmax(0.0, fmin(down, up));
      if (slaney_norm) v *= 2.0 / (f_pts[m + 2] - f_pts[m]);
      d[k * n_mels + m] = v;
    }
  }
  free(f_pts);
  if (dt == FSVC_FLOAT64) return fb;
  fsvc_tensor *out = fsvc_to_dtype_raw(fb, dt);
  fsvc_tensor_release(fb);
  return out;
}

void fsvc_mel_default_options(fsvc_mel_options *o) {
  memset(o, 0, sizeof *o);
  o->sample_rate = 16000;
  o->n_fft = 400;
  o->hop_length = 0; /* n_fft / 2 */
  o->win_length = 0;
  o->n_mels = 128;
  o->f_min = 0;
  o->f_max = 0;
  o->power = 2.0;
  o->center = 1;
  o->pad_mode = FSVC_STFT_PAD_REFLECT;
  o->slaney_norm = 0;
  o->mel_scale = FSVC_MEL_HTK;
}

fsvc_tensor *fsvc_mel_spectrogram(const fsvc_tensor *x, const fsvc_mel_options *o) {
  if (!o) {
    fsvc_set_error("mel_spectrogram: options are NULL");
    return NULL;
  }
  if (!x || !x->storage) {
    fsvc_set_error("mel_spectrogram: input is NULL or freed");
    return NULL;
  }
  if (o->n_fft < 2) {
    fsvc_set_error("mel_spectrogram: n_fft must be >= 2, got %lld", (long long)o->n_fft);
    return NULL;
  }
  fsvc_stft_options so;
  fsvc_stft_default_options(&so, o->n_fft);
  so.hop_length = o->hop_length > 0 ? o->hop_length : o->n_fft / 2;
  so.win_length = o->win_length > 0 ? o->win_length : o->n_fft;
  so.center = o->center;
  so.pad_mode = o->pad_mode;
  double f_max = o->f_max > 0 ? o->f_max : o->sample_rate / 2.0;
  fsvc_tensor *fb = fsvc_mel_filterbank(o->n_fft / 2 + 1, o->f_min, f_max, o->n_mels,
                                        o->sample_rate, o->slaney_norm, o->mel_scale,
                                        x->dtype == FSVC_FLOAT64 ? FSVC_FLOAT64 : FSVC_FLOAT32);
  if (!fb) return NULL;
  fsvc_tensor *s = fsvc_stft(x, &so);
  fsvc_tensor *m = s ? fsvc_magnitude(s, o->power) : NULL; /* [B, F, T] */
  fsvc_tensor_release(s);
  if (fb && fsvc_tensor_is_cuda(x)) { /* built on the host; its device copy is kept by content */
    fsvc_tensor *on_dev = dsp_device_constant(fb, fsvc_tensor_device(x));
    fsvc_tensor_release(fb);
    fb = on_dev;
  }
  fsvc_tensor *fbt = fb ? fsvc_transpose(fb, 0, 1) : NULL; /* [n_mels, F] */
  fsvc_tensor_release(fb);
  fsvc_tensor *out = m && fbt ? fsvc_matmul(fbt, m) : NULL; /* [B, n_mels, T] */
  fsvc_tensor_release(m);
  fsvc_tensor_release(fbt);
  return out;
}
