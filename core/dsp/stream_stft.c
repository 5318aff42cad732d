/* Streaming STFT: chunks in, exactly the frames of the whole-signal fsvc_stft out.
 *
 * The stream keeps the not-yet-consumed part of the (padded) signal in a buffer; whenever it
 * holds n_fft samples from the next frame's start, it runs the non-centred fsvc_stft on them, so
 * every frame is computed by the same kernel on the same samples as in the whole-signal call
 * (bit-identical). Centred framing needs the left padding, which for reflect needs x[1..n_fft/2]:
 * the buffer starts once n_fft/2 + 1 samples have arrived. flush() appends the right padding,
 * built from the last n_fft/2 + 1 raw samples, and emits the remaining frames. Frames therefore
 * trail the input by n_fft/2 samples (the centred window's look-ahead) plus up to a hop. */
#include <stdlib.h>
#include <string.h>

#include "fsvc/device.h"
#include "fsvc/dsp.h"
#include "fsvc/error.h"
#include "fsvc/ops.h"

struct fsvc_stream_stft {
  fsvc_stft_options o; /* o.window points at `window` below */
  fsvc_tensor *window; /* own copy, or NULL (Hann) */
  int64_t n_fft, hop, pad;
  int64_t B;           /* 0 until the first chunk */
  int one_d;           /* chunks are [L] */
  fsvc_dtype dt;
  int started;         /* left padding placed (always true without centring) */
  int64_t raw_len;     /* raw samples received */
  double *buf;         /* [B][cap] pending padded samples */
  int64_t len, cap;
  int64_t skip;        /* padded samples still to discard (hop > n_fft jumps past the buffer) */
  double *tail;        /* [B][pad+1] last raw samples, most recent last */
  int64_t tail_len;
};

fsvc_stream_stft *fsvc_stream_stft_new(const fsvc_stft_options *o) {
  if (!o || o->n_fft < 1) {
    fsvc_set_error("StreamSTFT: n_fft must be >= 1");
    return NULL;
  }
  fsvc_stream_stft *s = calloc(1, sizeof *s);
  if (!s) {
    fsvc_set_error("StreamSTFT: out of memory");
    return NULL;
  }
  s->o = *o;
  if (o->window) {
    s->window = fsvc_clone_raw(o->window);
    if (!s->window) {
      free(s);
      return NULL;
    }
  }
  s->o.window = s->window;
  s->n_fft = o->n_fft;
  s->hop = o->hop_length > 0 ? o->hop_length : (o->n_fft / 4 > 0 ? o->n_fft / 4 : 1);
  s->pad = o->center ? o->n_fft / 2 : 0;
  /* validate the options once with a dry run on a long enough zero signal */
  int64_t n = s->n_fft + 2 * s->pad + 2;
  fsvc_tensor *z = fsvc_zeros(1, &n, FSVC_FLOAT32);
  fsvc_tensor *t = z ? fsvc_stft(z, &s->o) : NULL;
  fsvc_tensor_release(z);
  if (!t) {
    fsvc_stream_stft_free(s);
    return NULL;
  }
  fsvc_tensor_release(t);
  s->o.center = 0; /* the stream pads by itself */
  s->started = s->pad == 0;
  return s;
}

void fsvc_stream_stft_free(fsvc_stream_stft *s) {
  if (!s) return;
  fsvc_tensor_release(s->window);
  free(s->buf);
  free(s->tail);
  free(s);
}

void fsvc_stream_stft_reset(fsvc_stream_stft *s) {
  if (!s) return;
  free(s->buf);
  free(s->tail);
  s->buf = s->tail = NULL;
  s->B = 0;
  s->len = s->cap = s->raw_len = s->tail_len = s->skip = 0;
  s->started = s->pad == 0;
}

static int reserve(fsvc_stream_stft *s, int64_t need) {
  if (need <= s->cap) return 0;
  int64_t cap = s->cap ? s->cap : 1024;
  while (cap < need) cap *= 2;
  double *nb = malloc(sizeof(double) * (size_t)(s->B * cap));
  if (!nb) {
    fsvc_set_error("StreamSTFT: out of memory");
    return -1;
  }
  for (int64_t b = 0; b < s->B; b++)
    if (s->len) memcpy(nb + b * cap, s->buf + b * s->cap, sizeof(double) * (size_t)s->len);
  free(s->buf);
  s->buf = nb;
  s->cap = cap;
  return 0;
}

/* Appends n samples per row from src(b, i), after discarding any pending skip. */
static int append(fsvc_stream_stft *s, const double *src, int64_t src_stride, int64_t n) {
  int64_t drop = s->skip < n ? s->skip : n;
  s->skip -= drop;
  src += drop;
  n -= drop;
  if (n == 0) return 0;
  if (reserve(s, s->len + n)) return -1;
  for (int64_t b = 0; b < s->B; b++)
    memcpy(s->buf + b * s->cap + s->len, src + b * src_stride, sizeof(double) * (size_t)n);
  s->len += n;
  return 0;
}

/* Places the left padding in front of the raw samples already buffered. */
static int start(fsvc_stream_stft *s) {
  const int64_t p = s->pad, L = s->len;
  if (reserve(s, L + p)) return -1;
  for (int64_t b = 0; b < s->B; b++) {
    double *row = s->buf + b * s->cap;
    memmove(row + p, row, sizeof(double) * (size_t)L);
    for (int64_t j = 0; j < p; j++) {
      double v;
      switch (s->o.pad_mode) {
        case FSVC_STFT_PAD_REFLECT: v = row[p + (p - j)]; break;
        case FSVC_STFT_PAD_REPLICATE: v = row[p]; break;
        default: v = 0.0; break;
      }
      row[j] = v;
    }
  }
  s->len += p;
  s->started = 1;
  return 0;
}

/* Runs the STFT on every complete frame in the buffer and drops the consumed samples. */
static fsvc_tensor *emit(fsvc_stream_stft *s) {
  const int64_t n = s->n_fft, F = s->o.onesided ? n / 2 + 1 : n;
  int64_t k = (s->started && s->len >= n) ? 1 + (s->len - n) / s->hop : 0;
  fsvc_tensor *out;
  if (k == 0) {
    int64_t shape[4] = {s->B, F, 0, 2};
    out = s->one_d ? fsvc_empty(3, shape + 1, s->dt) : fsvc_empty(4, shape, s->dt);
    return out;
  }
  int64_t m = (k - 1) * s->hop + n;
  int64_t shape[2] = {s->B, m};
  fsvc_tensor *seg = fsvc_empty(2, shape, FSVC_FLOAT64);
  if (!seg) return NULL;
  for (int64_t b = 0; b < s->B; b++)
    memcpy((double *)fsvc_data(seg) + b * m, s->buf + b * s->cap, sizeof(double) * (size_t)m);
  fsvc_tensor *segd = fsvc_to_dtype_raw(seg, s->dt);
  fsvc_tensor_release(seg);
  if (!segd) return NULL;
  fsvc_tensor *in = segd;
  if (s->one_d) {
    in = fsvc_view_raw(segd, 1, shape + 1, segd->stride + 1, segd->offset);
    fsvc_tensor_release(segd);
    if (!in) return NULL;
  }
  out = fsvc_stft(in, &s->o);
  fsvc_tensor_release(in);
  if (!out) return NULL;
  int64_t drop = k * s->hop;
  if (drop > s->len) { /* hop > n_fft: the next frame starts beyond what has arrived */
    s->skip = drop - s->len;
    drop = s->len;
  }
  for (int64_t b = 0; b < s->B; b++) {
    double *row = s->buf + b * s->cap;
    memmove(row, row + drop, sizeof(double) * (size_t)(s->len - drop));
  }
  s->len -= drop;
  return out;
}

fsvc_tensor *fsvc_stream_stft_process(fsvc_stream_stft *s, const fsvc_tensor *chunk) {
  FSVC_REFUSE_CUDA(stream_stft_process, chunk);
  char sb[64];
  if (!s) {
    fsvc_set_error("StreamSTFT:process: stream is NULL");
    return NULL;
  }
  if (!chunk || !chunk->storage) {
    fsvc_set_error("StreamSTFT:process: chunk is NULL or freed");
    return NULL;
  }
  if (chunk->dtype != FSVC_FLOAT32 && chunk->dtype != FSVC_FLOAT64) {
    fsvc_set_error("StreamSTFT:process: chunk must be float32 or float64, got %s",
                   fsvc_dtype_name(chunk->dtype));
    return NULL;
  }
  if (chunk->ndim != 1 && chunk->ndim != 2) {
    fsvc_set_error("StreamSTFT:process: chunk must be [L] or [B, L], got %s",
                   fsvc_shape_str(chunk, sb, sizeof sb));
    return NULL;
  }
  int64_t B = chunk->ndim == 2 ? chunk->shape[0] : 1, L = chunk->shape[chunk->ndim - 1];
  if (s->B == 0) {
    if (B < 1) {
      fsvc_set_error("StreamSTFT:process: empty batch in %s", fsvc_shape_str(chunk, sb, sizeof sb));
      return NULL;
    }
    s->B = B;
    s->one_d = chunk->ndim == 1;
    s->dt = chunk->dtype;
    s->tail = calloc((size_t)(B * (s->pad + 1)), sizeof(double));
    if (!s->tail) {
      fsvc_set_error("StreamSTFT:process: out of memory");
      return NULL;
    }
  } else if (B != s->B || (chunk->ndim == 1) != s->one_d || chunk->dtype != s->dt) {
    fsvc_set_error("StreamSTFT:process: chunk %s (%s) does not match the stream's first chunk "
                   "(batch %lld, %s, %s)", fsvc_shape_str(chunk, sb, sizeof sb),
                   fsvc_dtype_name(chunk->dtype), (long long)s->B, s->one_d ? "1-D" : "2-D",
                   fsvc_dtype_name(s->dt));
    return NULL;
  }
  if (fsvc_has_nonfinite(chunk)) {
    fsvc_set_error("StreamSTFT:process: chunk has a NaN or Inf sample");
    return NULL;
  }
  fsvc_tensor *cd = fsvc_to_dtype_raw(chunk, FSVC_FLOAT64); /* contiguous [B, L] copy */
  if (!cd) return NULL;
  const double *raw = fsvc_data(cd);
  /* keep the last pad+1 raw samples for the right reflect padding */
  const int64_t tcap = s->pad + 1;
  const int64_t take = L < tcap ? L : tcap;
  const int64_t keep = s->tail_len < tcap - take ? s->tail_len : tcap - take;
  for (int64_t b = 0; b < B; b++) {
    double *t = s->tail + b * tcap;
    memmove(t, t + (s->tail_len - keep), sizeof(double) * (size_t)keep);
    if (take > 0) memcpy(t + keep, raw + b * L + (L - take), sizeof(double) * (size_t)take);
  }
  s->tail_len = keep + take;
  s->raw_len += L;
  int rc = L > 0 ? append(s, raw, L, L) : 0;
  fsvc_tensor_release(cd);
  if (rc) return NULL;
  if (!s->started && s->raw_len >= s->pad + 1 && start(s)) return NULL;
  return emit(s);
}

fsvc_tensor *fsvc_stream_stft_flush(fsvc_stream_stft *s) {
  if (!s) {
    fsvc_set_error("StreamSTFT:flush: stream is NULL");
    return NULL;
  }
  if (s->B == 0) {
    fsvc_set_error("StreamSTFT:flush: no samples were given");
    return NULL;
  }
  if (s->pad > 0) {
    if (!s->started) {
      if (s->o.pad_mode == FSVC_STFT_PAD_REFLECT) {
        fsvc_set_error("StreamSTFT:flush: reflect padding of %lld needs more than %lld samples, "
                       "got %lld", (long long)s->pad, (long long)s->pad, (long long)s->raw_len);
        return NULL;
      }
      if (start(s)) return NULL;
    }
    /* right padding: padded position L + j reflects to L - 2 - j, i.e. tail[tl - 2 - j] */
    const int64_t p = s->pad, tl = s->tail_len, tcap = p + 1;
    double *pads = malloc(sizeof(double) * (size_t)(s->B * p));
    if (!pads) {
      fsvc_set_error("StreamSTFT:flush: out of memory");
      return NULL;
    }
    for (int64_t b = 0; b < s->B; b++)
      for (int64_t j = 0; j < p; j++) {
        const double *t = s->tail + b * tcap;
        double v;
        switch (s->o.pad_mode) {
          case FSVC_STFT_PAD_REFLECT: v = t[tl - 2 - j]; break;
          case FSVC_STFT_PAD_REPLICATE: v = t[tl - 1]; break;
          default: v = 0.0; break;
        }
        pads[b * p + j] = v;
      }
    int rc = append(s, pads, p, p);
    free(pads);
    if (rc) return NULL;
  }
  fsvc_tensor *out = emit(s);
  if (out) fsvc_stream_stft_reset(s);
  return out;
}
