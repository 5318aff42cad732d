/* Harmonic source of the decoder (FASTERSVC.md "Source signal"), whole-signal and streaming.
 *
 * One implementation serves both: fsvc_oscillate_harmonics is an oscillator fed the whole f0
 * track and flushed. Sample i (of the whole signal) interpolates frames floor(src) and the next,
 * src = (i + 0.5)/F - 0.5 clamped at 0 (F.interpolate, linear, align_corners=False, size T*F,
 * which has scale exactly 1/F), so it is known once that next frame has arrived; the oscillator
 * keeps the last frame of the previous chunk as look-behind and holds back the samples after the
 * centre of the last frame until the next chunk (or flush, which extrapolates flat as the
 * whole-signal call does at its end).
 *
 * The fundamental's phase (cycles) is carried in float64 and wrapped to [0, 1) every sample;
 * harmonic k has phase frac(k * phase), equal to the reference's per-harmonic cumsum. The
 * reference (fixture) accumulates in float32, so it drifts from this by ~1e-5 cycles over 480
 * samples; the float64 phase does not drift over long streams.
 *
 * A CUDA f0 takes the whole-signal path of dsp_device_pitch.c (device ops, the same float64
 * arithmetic); the streaming oscillator stays on the host.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dsp_internal.h"
#include "fsvc/device.h"
#include "fsvc/dsp.h"
#include "fsvc/error.h"
#include "fsvc/tensor.h"

struct fsvc_oscillator {
  int64_t B, F;
  double sr, min_freq;
  int H; /* harmonics beyond the fundamental */
  int64_t frames_seen; /* frames received so far */
  int64_t emitted;     /* samples emitted so far */
  double *last;        /* [B] last frame received (look-behind) */
  double *phase;       /* [B] phase of the fundamental at sample emitted-1, cycles */
};

fsvc_oscillator *fsvc_oscillator_new(int64_t batch, int64_t frame_size, double sample_rate,
                                     int num_harmonics, double min_frequency) {
  if (batch < 0 || frame_size < 1 || !(sample_rate > 0) || !isfinite(sample_rate) ||
      num_harmonics < 0 || num_harmonics > 4096 || !isfinite(min_frequency)) {
    fsvc_set_error("Oscillator: need batch >= 0, frame_size >= 1, sample_rate > 0, "
                   "num_harmonics >= 0 (got %lld, %lld, %g, %d)",
                   (long long)batch, (long long)frame_size, sample_rate, num_harmonics);
    return NULL;
  }
  fsvc_oscillator *o = calloc(1, sizeof *o);
  if (!o) {
    fsvc_set_error("Oscillator: out of memory");
    return NULL;
  }
  o->B = batch;
  o->F = frame_size;
  o->sr = sample_rate;
  o->H = num_harmonics;
  o->min_freq = min_frequency;
  return o;
}

void fsvc_oscillator_free(fsvc_oscillator *o) {
  if (!o) return;
  free(o->last);
  free(o->phase);
  free(o);
}

void fsvc_oscillator_reset(fsvc_oscillator *o) {
  if (!o) return;
  o->frames_seen = 0;
  o->emitted = 0;
}

/* Samples [o->emitted, end) from frames: frame g (global index) is fr[b * nf + g - g0] for
 * g0 <= g < g0 + nf; indices past the last known frame clamp to it (only at flush, or with
 * weight 0). out: [B, C, n_out] contiguous of dtype dt; phase_out likewise or NULL. */
static void generate(fsvc_oscillator *o, const double *fr, int64_t g0, int64_t nf, int64_t end,
                     fsvc_tensor *out, fsvc_tensor *phase_out) {
  const int64_t B = o->B, C = o->H + 1, n = end - o->emitted;
  const fsvc_dtype dt = out->dtype;
  void *od = fsvc_data(out), *pd = phase_out ? fsvc_data(phase_out) : NULL;
  for (int64_t b = 0; b < B; b++) {
    double ph = o->phase[b];
    for (int64_t j = 0; j < n; j++) {
      const int64_t i = o->emitted + j;
      double src = ((double)i + 0.5) / (double)o->F - 0.5;
      if (src < 0) src = 0;
      int64_t i0 = (int64_t)src;
      double l1 = src - (double)i0;
      int64_t a = i0 - g0, c = i0 + 1 - g0;
      if (a > nf - 1) a = nf - 1;
      if (c > nf - 1) c = nf - 1;
      if (a < 0) a = 0; /* cannot happen: the look-behind frame covers it */
      if (c < 0) c = 0;
      const double f = (1.0 - l1) * fr[b * nf + a] + l1 * fr[b * nf + c];
      /* phase[i] = sum_{m=1..i} f[m]/sr: sample 0 starts at phase 0 */
      if (i > 0) {
        ph += f / o->sr;
        ph -= floor(ph);
      }
      for (int64_t k = 1; k <= C; k++) {
        double pk = (double)k * ph;
        pk -= floor(pk);
        double v = (double)k * f >= o->min_freq ? sin(2.0 * M_PI * pk) : 0.0;
        int64_t idx = (b * C + (k - 1)) * n + j;
        if (dt == FSVC_FLOAT32) {
          ((float *)od)[idx] = (float)v;
          if (pd) ((float *)pd)[idx] = (float)pk;
        } else {
          ((double *)od)[idx] = v;
          if (pd) ((double *)pd)[idx] = pk;
        }
      }
    }
    o->phase[b] = ph;
  }
}

static fsvc_tensor *run(fsvc_oscillator *o, const fsvc_tensor *f0, int flush, fsvc_dtype dt,
                        fsvc_tensor **phase_out) {
  const char *op = flush ? "Oscillator:flush" : "Oscillator:process";
  int64_t Tc = 0;
  if (!flush) {
    char sb[64];
    if (!f0 || !f0->storage) {
      fsvc_set_error("%s: f0 is NULL or freed", op);
      return NULL;
    }
    if (f0->dtype != FSVC_FLOAT32 && f0->dtype != FSVC_FLOAT64) {
      fsvc_set_error("%s: f0 must be float32 or float64, got %s", op, fsvc_dtype_name(f0->dtype));
      return NULL;
    }
    if (f0->ndim != 3 || f0->shape[1] != 1 || (o->B > 0 && f0->shape[0] != o->B) ||
        f0->shape[0] < 1) {
      fsvc_set_error("%s: f0 must be [B, 1, T]%s, got %s", op,
                     o->B > 0 ? " with the oscillator's batch size" : "",
                     fsvc_shape_str(f0, sb, sizeof sb));
      return NULL;
    }
    if (fsvc_has_nonfinite(f0)) {
      fsvc_set_error("%s: f0 has a NaN or Inf value", op);
      return NULL;
    }
    dt = f0->dtype;
    Tc = f0->shape[2];
    if (o->B == 0) o->B = f0->shape[0];
  }
  if (o->B == 0) o->B = 1;
  if (!o->last) {
    o->last = calloc((size_t)o->B, sizeof(double));
    o->phase = calloc((size_t)o->B, sizeof(double));
    if (!o->last || !o->phase) {
      fsvc_set_error("%s: out of memory", op);
      return NULL;
    }
  }
  if (o->emitted == 0 && o->frames_seen == 0)
    for (int64_t b = 0; b < o->B; b++) o->phase[b] = 0;
  /* frames available: the look-behind frame (if any) then the chunk */
  const int64_t have_prev = o->frames_seen > 0;
  const int64_t nf = have_prev + Tc;
  const int64_t total = o->frames_seen + Tc;
  int64_t end;
  if (flush) end = total * o->F;
  else end = total > 0 ? ((2 * total - 1) * o->F - 1) / 2 + 1 : 0; /* through the centre of the last frame */
  if (end < o->emitted) end = o->emitted;
  const int64_t C = o->H + 1, n = end - o->emitted;
  int64_t shape[3] = {o->B, C, n};
  fsvc_tensor *out = fsvc_empty(3, shape, dt);
  fsvc_tensor *ph = phase_out ? fsvc_empty(3, shape, dt) : NULL;
  double *fr = malloc(sizeof(double) * (size_t)(o->B * (nf > 0 ? nf : 1)));
  if (!out || (phase_out && !ph) || !fr) {
    fsvc_tensor_release(out);
    fsvc_tensor_release(ph);
    free(fr);
    if (!fsvc_last_error()[0]) fsvc_set_error("%s: out of memory", op);
    return NULL;
  }
  for (int64_t b = 0; b < o->B; b++) {
    if (have_prev) fr[b * nf] = o->last[b];
    for (int64_t t = 0; t < Tc; t++)
      fr[b * nf + have_prev + t] = fsvc_get_flat(f0, b * Tc + t);
  }
  if (n > 0 && nf > 0) generate(o, fr, o->frames_seen - have_prev, nf, end, out, ph);
  for (int64_t b = 0; b < o->B && nf > 0; b++) o->last[b] = fr[b * nf + nf - 1];
  free(fr);
  o->frames_seen = total;
  o->emitted = end;
  if (flush) fsvc_oscillator_reset(o);
  if (phase_out) *phase_out = ph;
  return out;
}

fsvc_tensor *fsvc_oscillator_process(fsvc_oscillator *o, const fsvc_tensor *f0_chunk) {
  FSVC_REFUSE_CUDA(oscillator_process, f0_chunk);
  if (!o) {
    fsvc_set_error("Oscillator:process: oscillator is NULL");
    return NULL;
  }
  return run(o, f0_chunk, 0, FSVC_FLOAT32, NULL);
}

fsvc_tensor *fsvc_oscillator_flush(fsvc_oscillator *o, fsvc_dtype dt) {
  if (!o) {
    fsvc_set_error("Oscillator:flush: oscillator is NULL");
    return NULL;
  }
  if (dt != FSVC_FLOAT32 && dt != FSVC_FLOAT64) dt = FSVC_FLOAT32;
  return run(o, NULL, 1, dt, NULL);
}

/* Concatenates a [B, C, n1] and b [B, C, n2] along the last dim (both contiguous, same dtype). */
static fsvc_tensor *cat_last(const fsvc_tensor *a, const fsvc_tensor *b) {
  const int64_t B = a->shape[0], C = a->shape[1], n1 = a->shape[2], n2 = b->shape[2];
  int64_t shape[3] = {B, C, n1 + n2};
  fsvc_tensor *o = fsvc_empty(3, shape, a->dtype);
  if (!o) return NULL;
  const size_t es = fsvc_dtype_size(a->dtype);
  char *od = fsvc_data(o);
  const char *ad = fsvc_data(a), *bd = fsvc_data(b);
  for (int64_t r = 0; r < B * C; r++) {
    memcpy(od + (size_t)(r * (n1 + n2)) * es, ad + (size_t)(r * n1) * es, (size_t)n1 * es);
    memcpy(od + (size_t)(r * (n1 + n2) + n1) * es, bd + (size_t)(r * n2) * es, (size_t)n2 * es);
  }
  return o;
}

fsvc_tensor *fsvc_oscillate_harmonics(const fsvc_tensor *f0, int64_t frame_size,
                                      double sample_rate, int num_harmonics,
                                      double min_frequency, fsvc_tensor **phase_out) {
  char sb[64];
  if (!f0 || !f0->storage) {
    fsvc_set_error("oscillate_harmonics: f0 is NULL or freed");
    return NULL;
  }
  if (f0->ndim != 3 || f0->shape[1] != 1 || f0->shape[0] < 1 || f0->shape[2] < 1) {
    fsvc_set_error("oscillate_harmonics: f0 must be [B, 1, T] with B, T >= 1, got %s",
                   fsvc_shape_str(f0, sb, sizeof sb));
    return NULL;
  }
  fsvc_oscillator *o = fsvc_oscillator_new(f0->shape[0], frame_size, sample_rate, num_harmonics,
                                           min_frequency);
  if (!o) return NULL;
  fsvc_clear_error();
  if (fsvc_tensor_is_cuda(f0)) { /* dsp_device_pitch.c; the checks run() makes on the host */
    fsvc_oscillator_free(o);
    if (f0->dtype != FSVC_FLOAT32 && f0->dtype != FSVC_FLOAT64) {
      fsvc_set_error("Oscillator:process: f0 must be float32 or float64, got %s",
                     fsvc_dtype_name(f0->dtype));
      return NULL;
    }
    return dsp_oscillate_harmonics_device(f0, frame_size, sample_rate, num_harmonics,
                                          min_frequency, phase_out);
  }
  fsvc_tensor *p1 = NULL, *p2 = NULL;
  fsvc_tensor *a = run(o, f0, 0, f0->dtype, phase_out ? &p1 : NULL);
  fsvc_tensor *b = a ? run(o, NULL, 1, f0->dtype, phase_out ? &p2 : NULL) : NULL;
  fsvc_oscillator_free(o);
  fsvc_tensor *out = a && b ? cat_last(a, b) : NULL;
  if (out && phase_out) {
    *phase_out = cat_last(p1, p2);
    if (!*phase_out) {
      fsvc_tensor_release(out);
      out = NULL;
    }
  }
  fsvc_tensor_release(a);
  fsvc_tensor_release(b);
  fsvc_tensor_release(p1);
  fsvc_tensor_release(p2);
  return out;
}
