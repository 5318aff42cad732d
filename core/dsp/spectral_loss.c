/* The reference's spectral losses (FASTERSVC.md "Losses") and frame energy, composed of
 * differentiable ops (stft, magnitude, matmul, clamp, log, abs, mean), so autograd needs nothing
 * of their own. Checked against fixtures loss_logmel, loss_multiscale_stft and energy. */
#include <math.h>
#include <stdlib.h>

#include "dsp_internal.h"
#include "fsvc/device.h"
#include "fsvc/dsp.h"
#include "fsvc/error.h"
#include "fsvc/ops.h"

/* Takes over a (releases it); returns a with NaN/Inf replaced by 0 (the reference assigns
 * x[x.isnan()] = 0 in place: those elements then carry no gradient). */
static fsvc_tensor *zero_nonfinite(fsvc_tensor *a) {
  if (a && fsvc_tensor_is_cuda(a)) return dsp_zero_nonfinite_device(a);
  if (!a || !fsvc_has_nonfinite(a)) return a;
  fsvc_tensor *mask = fsvc_empty(a->ndim, a->shape, FSVC_FLOAT32);
  if (!mask) {
    fsvc_tensor_release(a);
    return NULL;
  }
  const int64_t n = fsvc_numel(a);
  for (int64_t i = 0; i < n; i++) ((float *)fsvc_data(mask))[i] = isfinite(fsvc_get_flat(a, i));
  fsvc_tensor *zero = fsvc_scalar(0.0, a->dtype);
  fsvc_tensor *out = zero ? fsvc_where(mask, a, zero) : NULL;
  fsvc_tensor_release(zero);
  fsvc_tensor_release(mask);
  fsvc_tensor_release(a);
  return out;
}

/* log(clamp(a, 1e-6)); takes over a. */
static fsvc_tensor *safe_log(fsvc_tensor *a) {
  if (!a) return NULL;
  fsvc_tensor *c = fsvc_clamp(a, 1e-6, INFINITY);
  fsvc_tensor_release(a);
  if (!c) return NULL;
  fsvc_tensor *l = fsvc_log(c);
  fsvc_tensor_release(c);
  return l;
}

/* mean |a - b| (p = 1) or mean (a - b)^2 (p = 2); borrows a and b. */
static fsvc_tensor *mean_err(const fsvc_tensor *a, const fsvc_tensor *b, int p) {
  fsvc_tensor *d = fsvc_sub(a, b);
  if (!d) return NULL;
  fsvc_tensor *e = p == 1 ? fsvc_abs(d) : fsvc_mul(d, d);
  fsvc_tensor_release(d);
  if (!e) return NULL;
  fsvc_tensor *m = fsvc_mean(e, 0, NULL, 0);
  fsvc_tensor_release(e);
  return m;
}

/* Takes over acc and term; returns acc + term (or term when acc is NULL). */
static fsvc_tensor *accumulate(fsvc_tensor *acc, fsvc_tensor *term) {
  if (!term) {
    fsvc_tensor_release(acc);
    return NULL;
  }
  if (!acc) return term;
  fsvc_tensor *s = fsvc_add(acc, term);
  fsvc_tensor_release(acc);
  fsvc_tensor_release(term);
  return s;
}

static int check_pair(const char *op, const fsvc_tensor *a, const fsvc_tensor *b) {
  char sa[64], sb[64];
  if (!a || !b || !a->storage || !b->storage) {
    fsvc_set_error("%s: an input is NULL or freed", op);
    return -1;
  }
  if (!fsvc_same_shape(a, b) || (a->ndim != 1 && a->ndim != 2)) {
    fsvc_set_error("%s: fake and real must both be [L] or [B, L] of the same shape, got %s and %s",
                   op, fsvc_shape_str(a, sa, sizeof sa), fsvc_shape_str(b, sb, sizeof sb));
    return -1;
  }
  if (!fsvc_device_equal(fsvc_tensor_device(a), fsvc_tensor_device(b))) {
    char da[32], db[32];
    fsvc_set_error("%s: fake and real are on different devices (%s, %s)", op,
                   fsvc_device_str(fsvc_tensor_device(a), da, sizeof da),
                   fsvc_device_str(fsvc_tensor_device(b), db, sizeof db));
    return -1;
  }
  if (a->dtype != b->dtype) {
    fsvc_set_error("%s: fake and real have different dtypes (%s, %s)", op,
                   fsvc_dtype_name(a->dtype), fsvc_dtype_name(b->dtype));
    return -1;
  }
  return 0;
}

fsvc_tensor *fsvc_log_mel_loss(const fsvc_tensor *fake, const fsvc_tensor *real) {
  if (check_pair("log_mel_loss", fake, real)) return NULL;
  fsvc_mel_options o;
  fsvc_mel_default_options(&o);
  o.sample_rate = 24000;
  o.n_fft = 1024;
  o.hop_length = 256;
  o.n_mels = 128;
  fsvc_tensor *a = zero_nonfinite(safe_log(fsvc_mel_spectrogram(fake, &o)));
  fsvc_tensor *b = a ? zero_nonfinite(safe_log(fsvc_mel_spectrogram(real, &o))) : NULL;
  fsvc_tensor *loss = a && b ? mean_err(a, b, 1) : NULL;
  fsvc_tensor_release(a);
  fsvc_tensor_release(b);
  return loss;
}

static fsvc_tensor *stft_mag(const fsvc_tensor *x, int64_t hop) {
  fsvc_stft_options o;
  fsvc_stft_default_options(&o, 4 * hop);
  o.hop_length = hop;
  fsvc_tensor *s = fsvc_stft(x, &o);
  if (!s) return NULL;
  fsvc_tensor *m = fsvc_magnitude(s, 1.0);
  fsvc_tensor_release(s);
  return zero_nonfinite(m);
}

fsvc_tensor *fsvc_multiscale_stft_loss(const fsvc_tensor *fake, const fsvc_tensor *real) {
  if (check_pair("multiscale_stft_loss", fake, real)) return NULL;
  static const int64_t hops[] = {16, 32, 64, 128, 256, 512};
  const int n_scales = 6;
  fsvc_tensor *acc = NULL;
  for (int i = 0; i < n_scales; i++) {
    fsvc_tensor *X = stft_mag(fake, hops[i]);
    fsvc_tensor *Y = X ? stft_mag(real, hops[i]) : NULL;
    fsvc_tensor *lin = X && Y ? mean_err(X, Y, 2) : NULL;
    fsvc_tensor *lx = lin ? safe_log(fsvc_tensor_retain(X)) : NULL;
    fsvc_tensor *ly = lx ? safe_log(fsvc_tensor_retain(Y)) : NULL;
    fsvc_tensor *lg = ly ? mean_err(lx, ly, 1) : NULL;
    fsvc_tensor_release(X);
    fsvc_tensor_release(Y);
    fsvc_tensor_release(lx);
    fsvc_tensor_release(ly);
    if (!lg) {
      fsvc_tensor_release(lin);
      fsvc_tensor_release(acc);
      return NULL;
    }
    acc = accumulate(acc, accumulate(lin, lg));
    if (!acc) return NULL;
  }
  fsvc_tensor *k = fsvc_scalar(1.0 / n_scales, acc->dtype);
  fsvc_tensor *out = k ? fsvc_mul(acc, k) : NULL;
  fsvc_tensor_release(k);
  fsvc_tensor_release(acc);
  return out;
}

fsvc_tensor *fsvc_energy(const fsvc_tensor *x, int64_t frame_size) {
  char sb[64];
  if (!x || !x->storage) {
    fsvc_set_error("energy: input is NULL or freed");
    return NULL;
  }
  if (x->dtype != FSVC_FLOAT32 && x->dtype != FSVC_FLOAT64) {
    fsvc_set_error("energy: input must be float32 or float64, got %s", fsvc_dtype_name(x->dtype));
    return NULL;
  }
  if (x->ndim != 2) {
    fsvc_set_error("energy: input must be [B, L], got %s", fsvc_shape_str(x, sb, sizeof sb));
    return NULL;
  }
  if (frame_size < 1) {
    fsvc_set_error("energy: frame_size must be >= 1, got %lld", (long long)frame_size);
    return NULL;
  }
  const int64_t B = x->shape[0], T = x->shape[1] / frame_size;
  if (B < 1 || T < 1) {
    fsvc_set_error("energy: input %s holds no full frame of %lld samples",
                   fsvc_shape_str(x, sb, sizeof sb), (long long)frame_size);
    return NULL;
  }
  fsvc_tensor *a = fsvc_narrow(x, 1, 0, T * frame_size);
  fsvc_tensor *ab = a ? fsvc_abs(a) : NULL;
  fsvc_tensor_release(a);
  int64_t shp[3] = {B, T, frame_size};
  fsvc_tensor *r = ab ? fsvc_reshape(ab, 3, shp) : NULL;
  fsvc_tensor_release(ab);
  fsvc_tensor *m = r ? fsvc_max_dim(r, 2, 0, NULL) : NULL; /* [B, T] */
  fsvc_tensor_release(r);
  fsvc_tensor *out = m ? fsvc_unsqueeze(m, 1) : NULL; /* [B, 1, T] */
  fsvc_tensor_release(m);
  return out;
}
