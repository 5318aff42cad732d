/* Pitch helpers: semitone shift, the pitch estimator's classes (48 per octave from 10 Hz,
 * 512 classes, class 0 = unvoiced) and the preprocessing's resize of an F0 track. CUDA tensors
 * take the device compositions of dsp_device_pitch.c after the same argument checks. */
#include <math.h>
#include <stdlib.h>

#include "dsp_internal.h"
#include "fsvc/device.h"
#include "fsvc/dsp.h"
#include "fsvc/error.h"
#include "fsvc/ops.h"

static int check_in(const fsvc_tensor *t, const char *op, int allow_int) {
  if (!t || !t->storage) {
    fsvc_set_error("%s: input is NULL or freed", op);
    return -1;
  }
  if (t->dtype != FSVC_FLOAT32 && t->dtype != FSVC_FLOAT64 && !(allow_int && t->dtype == FSVC_INT64)) {
    fsvc_set_error("%s: input must be float32 or float64%s, got %s", op,
                   allow_int ? " or int64" : "", fsvc_dtype_name(t->dtype));
    return -1;
  }
  return 0;
}

fsvc_tensor *fsvc_pitch_shift(const fsvc_tensor *f0, double semitones) {
  if (check_in(f0, "pitch_shift", 0)) return NULL;
  if (!isfinite(semitones)) {
    fsvc_set_error("pitch_shift: semitones must be a finite number, got %g", semitones);
    return NULL;
  }
  fsvc_tensor *k = fsvc_scalar(pow(2.0, semitones / 12.0), f0->dtype);
  if (!k) return NULL;
  fsvc_tensor *out = fsvc_mul(f0, k);
  fsvc_tensor_release(k);
  return out;
}

fsvc_tensor *fsvc_freq2id(const fsvc_tensor *f0) {
  if (check_in(f0, "freq2id", 0)) return NULL;
  if (fsvc_tensor_is_cuda(f0)) return dsp_freq2id_device(f0); /* dsp_device_pitch.c */
  const int64_t n = fsvc_numel(f0);
  fsvc_tensor *out = fsvc_empty(f0->ndim, f0->shape, FSVC_INT64);
  if (!out) return NULL;
  int64_t *d = fsvc_data(out);
  for (int64_t i = 0; i < n; i++) {
    double f = fsvc_get_flat(f0, i);
    if (isnan(f)) {
      fsvc_tensor_release(out);
      fsvc_set_error("freq2id: f0 has a NaN at element %lld", (long long)i);
      return NULL;
    }
    /* log2(0) = -inf clamps to class 0; +inf to 511. Round half to even as torch.round. */
    double c = f > 0 ? 48.0 * log2(f / 10.0) : 0.0;
    c = c < 0 ? 0 : c > 511 ? 511 : c;
    d[i] = (int64_t)nearbyint(c);
  }
  return out;
}

fsvc_tensor *fsvc_id2freq(const fsvc_tensor *ids, fsvc_dtype dt) {
  if (check_in(ids, "id2freq", 1)) return NULL;
  if (dt != FSVC_FLOAT32 && dt != FSVC_FLOAT64) {
    fsvc_set_error("id2freq: dtype must be float32 or float64");
    return NULL;
  }
  if (fsvc_tensor_is_cuda(ids)) return dsp_id2freq_device(ids, dt);
  const int64_t n = fsvc_numel(ids);
  fsvc_tensor *out = fsvc_empty(ids->ndim, ids->shape, dt);
  if (!out) return NULL;
  for (int64_t i = 0; i < n; i++) {
    double c = fsvc_get_flat(ids, i);
    if (!isfinite(c) || c < 0 || c > 511) {
      fsvc_tensor_release(out);
      fsvc_set_error("id2freq: class %g at element %lld is outside 0..511", c, (long long)i);
      return NULL;
    }
    fsvc_set_flat(out, i, c == 0 ? 0.0 : 10.0 * pow(2.0, c / 48.0));
  }
  return out;
}

fsvc_tensor *fsvc_interpolate_f0(const fsvc_tensor *f0, int64_t n_out) {
  char sb[64];
  if (check_in(f0, "interpolate_f0", 0)) return NULL;
  if (f0->ndim < 1 || f0->ndim > 3 || f0->shape[f0->ndim - 1] < 1 || fsvc_numel(f0) < 1) {
    fsvc_set_error("interpolate_f0: f0 must be a non-empty [N], [B, N] or [B, C, N], got %s",
                   fsvc_shape_str(f0, sb, sizeof sb));
    return NULL;
  }
  if (n_out < 1) {
    fsvc_set_error("interpolate_f0: n_out must be >= 1, got %lld", (long long)n_out);
    return NULL;
  }
  if (fsvc_tensor_is_cuda(f0)) return dsp_interpolate_f0_device(f0, n_out);
  const int64_t N = f0->shape[f0->ndim - 1], rows = fsvc_numel(f0) / N;
  int64_t shape[3];
  for (int i = 0; i < f0->ndim; i++) shape[i] = f0->shape[i];
  shape[f0->ndim - 1] = n_out;
  fsvc_tensor *out = fsvc_empty(f0->ndim, shape, f0->dtype);
  if (!out) return NULL;
  const double scale = (double)N / (double)n_out; /* F.interpolate(size=n_out) */
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < n_out; j++) {
      double src = scale * ((double)j + 0.5) - 0.5;
      if (src < 0) src = 0;
      int64_t i0 = (int64_t)src;
      if (i0 > N - 1) i0 = N - 1;
      int64_t i1 = i0 < N - 1 ? i0 + 1 : i0;
      double l1 = src - (double)i0;
      double v = (1.0 - l1) * fsvc_get_flat(f0, r * N + i0) + l1 * fsvc_get_flat(f0, r * N + i1);
      fsvc_set_flat(out, r * n_out + j, v);
    }
  return out;
}
