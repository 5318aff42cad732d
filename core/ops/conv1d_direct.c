/* A direct float32 convolution kernel for stride 1 on AVX-512 (chosen at run time; the BLAS path
 * in conv1d.c is the fallback).
 *
 * Why: OpenBLAS reaches ~90 GFLOP/s per Zen 4 core on our shapes, and the per-tap GEMMs of a
 * kernel-3 conv re-read the output three times and re-pack W_k each call; PyTorch's oneDNN
 * convolution runs ~1.5x faster. Here the time axis is contiguous, so no im2col is needed at all:
 * a 12 x 32 register tile of the output (12 output channels x 32 time steps, 24 zmm accumulators)
 * is updated, for every input channel and tap, by two unaligned loads of the input row and 12
 * broadcasts of weights (read in place from [Cout, Cin, K]). Zero padding comes from masked loads (masked-off lanes read
 * nothing), so any padding (also larger than the kernel) and any output length work, which lets
 * the data gradient reuse the kernel with flipped, transposed weights.
 *
 * y[co, t] = bias[co] + sum_{ci, k} w[co, ci, k] * x[ci, t + k*dil - pad]   (0 outside [0, Tx))
 */
#include <stdlib.h>
#include <string.h>

#include "nn_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define DIRECT_MR 12
#define DIRECT_NR 32

int nn_conv1d_direct_available(void) {
  static int cached = -1;
  if (cached < 0) {
    __builtin_cpu_init();
    cached = __builtin_cpu_supports("avx512f") ? 1 : 0;
    const char *env = getenv("FSVC_NO_DIRECT_CONV"); /* for benchmarking the BLAS path */
    if (env && *env && *env != '0') cached = 0;
  }
  return cached;
}

/* lanes j of [0, 16) with 0 <= base + j < Tx and j < n */
__attribute__((target("avx512f"))) static inline __mmask16 lane_mask(int64_t base, int64_t Tx,
                                                                     int64_t n) {
  int64_t lo = base < 0 ? -base : 0, hi = Tx - base < n ? Tx - base : n;
  if (hi > 16) hi = 16;
  if (hi <= lo) return 0;
  uint32_t m = (hi >= 32 ? 0xffffffffu : ((1u << hi) - 1u)) & ~((1u << lo) - 1u);
  return (__mmask16)m;
}

/* One 12 x n (n <= 32) output tile at y (row stride ldy), columns t0 .. t0+n, over Cin input
 * channels starting at x. The weight of (row r, channel ci, tap k) is w[r*rs + ci*cs + k*ks],
 * read in place: packing the weights first cost as much as the convolution itself for the
 * short, wide layers (512 channels x 50 frames). Rows >= `rows` reuse the last row and are not
 * stored. accumulate: add to y instead of starting from the bias (the reduction over channels
 * is split into L1-sized chunks). */
__attribute__((target("avx512f"))) static void tile_12x32(const float *x, int64_t Cin,
                                                          int64_t Tx, const float *w, int64_t rs,
                                                          int64_t cs, int64_t ks, int64_t K,
                                                          int64_t dil, int64_t pad, int64_t t0,
                                                          int64_t n, const float *bias,
                                                          int accumulate, int64_t rows, float *y,
                                                          int64_t ldy) {
  __m512 a0[DIRECT_MR], a1[DIRECT_MR];
  int64_t roff[DIRECT_MR];
  for (int r = 0; r < DIRECT_MR; r++) roff[r] = (r < rows ? r : rows - 1) * rs;
  __mmask16 s0 = lane_mask(0, n, 16), s1 = lane_mask(16, n, 16);
#pragma GCC unroll 12
  for (int r = 0; r < DIRECT_MR; r++) {
    if (accumulate && r < rows) {
      a0[r] = _mm512_maskz_loadu_ps(s0, y + r * ldy + t0);
      a1[r] = _mm512_maskz_loadu_ps(s1, y + r * ldy + t0 + 16);
    } else {
      a0[r] = _mm512_set1_ps(bias && r < rows ? bias[r] : 0.f);
      a1[r] = a0[r];
    }
  }
  for (int64_t k = 0; k < K; k++) {
    int64_t base = t0 + k * dil - pad;
    const float *wk = w + k * ks;
    const float *xr = x + base;
    if (n == DIRECT_NR && base >= 0 && base + DIRECT_NR <= Tx) {
      for (int64_t ci = 0; ci < Cin; ci++, xr += Tx, wk += cs) {
        __m512 x0 = _mm512_loadu_ps(xr), x1 = _mm512_loadu_ps(xr + 16);
#pragma GCC unroll 12
        for (int r = 0; r < DIRECT_MR; r++) {
          __m512 wv = _mm512_set1_ps(wk[roff[r]]);
          a0[r] = _mm512_fmadd_ps(wv, x0, a0[r]);
          a1[r] = _mm512_fmadd_ps(wv, x1, a1[r]);
        }
      }
    } else {
      __mmask16 m0 = lane_mask(base, Tx, n), m1 = lane_mask(base + 16, Tx, n - 16);
      if (!m0 && !m1) continue;
      /* masked lanes are never accessed, so the (possibly out-of-row) addresses are safe.
       * A half whose lanes all fall in the padding is skipped: at large dilation (the data
       * gradient of a dilated conv over a short sequence) many taps reach only one half. */
      if (!m0) {
        for (int64_t ci = 0; ci < Cin; ci++, xr += Tx, wk += cs) {
          __m512 x1 = _mm512_maskz_loadu_ps(m1, xr + 16);
#pragma GCC unroll 12
          for (int r = 0; r < DIRECT_MR; r++)
            a1[r] = _mm512_fmadd_ps(_mm512_set1_ps(wk[roff[r]]), x1, a1[r]);
        }
        continue;
      }
      if (!m1) {
        for (int64_t ci = 0; ci < Cin; ci++, xr += Tx, wk += cs) {
          __m512 x0 = _mm512_maskz_loadu_ps(m0, xr);
#pragma GCC unroll 12
          for (int r = 0; r < DIRECT_MR; r++)
            a0[r] = _mm512_fmadd_ps(_mm512_set1_ps(wk[roff[r]]), x0, a0[r]);
        }
        continue;
      }
      for (int64_t ci = 0; ci < Cin; ci++, xr += Tx, wk += cs) {
        __m512 x0 = _mm512_maskz_loadu_ps(m0, xr), x1 = _mm512_maskz_loadu_ps(m1, xr + 16);
#pragma GCC unroll 12
        for (int r = 0; r < DIRECT_MR; r++) {
          __m512 wv = _mm512_set1_ps(wk[roff[r]]);
          a0[r] = _mm512_fmadd_ps(wv, x0, a0[r]);
          a1[r] = _mm512_fmadd_ps(wv, x1, a1[r]);
        }
      }
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < DIRECT_MR; r++) {
    if (r >= rows) continue;
    float *yr = y + r * ldy + t0;
    if (n == DIRECT_NR) {
      _mm512_storeu_ps(yr, a0[r]);
      _mm512_storeu_ps(yr + 16, a1[r]);
    } else {
      _mm512_mask_storeu_ps(yr, s0, a0[r]);
      _mm512_mask_storeu_ps(yr + 16, s1, a1[r]);
    }
  }
}

/* x [B, groups*Cin_g, Tx] -> y [B, groups*Cout_g, Ty]. w is this conv's weight
 * [groups*Cout_g, Cin_g, K] (flip_transpose = 0) or, for a data gradient, the forward weight
 * [groups*Cin_g, Cout_g, K] read flipped and transposed per group (flip_transpose = 1). */
int nn_conv1d_direct_f32(int64_t B, int64_t groups, int64_t Cin_g, int64_t Tx, int64_t Cout_g,
                         int64_t Ty, int64_t K, int64_t dil, int64_t pad, const float *x,
                         const float *w, int flip_transpose, const float *bias, float *y) {
  int64_t nblk = (Cout_g + DIRECT_MR - 1) / DIRECT_MR;
  /* weight strides of (output row, input channel, tap) and the offset of tap 0 */
  int64_t rs, cs, ks, k0;
  if (!flip_transpose) { rs = Cin_g * K; cs = K; ks = 1; k0 = 0; }
  else { rs = K; cs = Cout_g * K; ks = -1; k0 = K - 1; }
  int64_t gstride = Cout_g * Cin_g * K; /* weights per group, in either layout */
  /* time tiles sized so that the input panel (Cin x tile) stays in L2 */
  int64_t tile = 65536 / (Cin_g > 0 ? Cin_g : 1);
  tile = tile / DIRECT_NR * DIRECT_NR;
  if (tile < DIRECT_NR) tile = DIRECT_NR;
  if (tile > 4096) tile = 4096;
  int64_t ntile = (Ty + tile - 1) / tile;
  /* input channels per pass: the 12 x K x chunk weights (8 KB) and the input rows of one 32-step
   * tile (~10 KB) stay in L1 */
  int64_t cchunk = 2048 / (DIRECT_MR * K);
  if (cchunk < 8) cchunk = 8;
  int64_t items = B * groups * ntile * nblk;
  double work = (double)items * tile * DIRECT_MR * Cin_g * K;
#pragma omp parallel for schedule(static) if (work > 2e5)
  for (int64_t it = 0; it < items; it++) {
    int64_t blk = it % nblk, rest = it / nblk;
    int64_t ti = rest % ntile, bg = rest / ntile;
    int64_t g = bg % groups, b = bg / groups;
    const float *xg = x + (b * groups + g) * Cin_g * Tx;
    float *yg = y + ((b * groups + g) * Cout_g + blk * DIRECT_MR) * Ty;
    const float *bg_bias = bias ? bias + g * Cout_g + blk * DIRECT_MR : NULL;
    int64_t rows = Cout_g - blk * DIRECT_MR;
    const float *wb = w + g * gstride + blk * DIRECT_MR * rs + k0;
    int64_t te = (ti + 1) * tile < Ty ? (ti + 1) * tile : Ty;
    for (int64_t c0 = 0; c0 < Cin_g; c0 += cchunk) {
      int64_t cn = Cin_g - c0 < cchunk ? Cin_g - c0 : cchunk;
      for (int64_t t0 = ti * tile; t0 < te; t0 += DIRECT_NR) {
        int64_t n = te - t0 < DIRECT_NR ? te - t0 : DIRECT_NR;
        tile_12x32(xg + c0 * Tx, cn, Tx, wb + c0 * cs, rs, cs, ks, K, dil, pad, t0, n, bg_bias,
                   c0 > 0, rows, yg, Ty);
      }
    }
  }
  return 0;
}
/* ---- weight gradient: gw[co, ci, k] = sum_t gy[co, t] * x[ci, t + k*dil - pad] --------------
 * A reduction over time, contiguous in both operands: a 4 x 6 tile of (co, ci) pairs keeps 24
 * zmm partial sums, fed per 16 time steps by 4 + 6 unaligned loads; the partial sums are
 * reduced horizontally once per time block. */
#define WG_MR 4
#define WG_NC 6

__attribute__((target("avx512f"))) static void wgrad_tile(const float *gy, int64_t ldg,
                                                          int64_t rows, const float *x,
                                                          int64_t ldx, int64_t cols, int64_t lo,
                                                          int64_t hi, float *gw, int64_t rs,
                                                          int64_t cs) {
  __m512 acc[WG_MR][WG_NC];
  const float *gr[WG_MR], *xr[WG_NC];
#pragma GCC unroll 4
  for (int r = 0; r < WG_MR; r++) gr[r] = gy + (r < rows ? r : rows - 1) * ldg;
#pragma GCC unroll 6
  for (int c = 0; c < WG_NC; c++) xr[c] = x + (c < cols ? c : cols - 1) * ldx;
#pragma GCC unroll 4
  for (int r = 0; r < WG_MR; r++)
#pragma GCC unroll 6
    for (int c = 0; c < WG_NC; c++) acc[r][c] = _mm512_setzero_ps();
  for (int64_t t = lo; t < hi; t += 16) {
    __mmask16 m = hi - t >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (hi - t)) - 1u);
    __m512 g[WG_MR];
#pragma GCC unroll 4
    for (int r = 0; r < WG_MR; r++) g[r] = _mm512_maskz_loadu_ps(m, gr[r] + t);
#pragma GCC unroll 6
    for (int c = 0; c < WG_NC; c++) {
      __m512 xv = _mm512_maskz_loadu_ps(m, xr[c] + t);
#pragma GCC unroll 4
      for (int r = 0; r < WG_MR; r++) acc[r][c] = _mm512_fmadd_ps(g[r], xv, acc[r][c]);
    }
  }
  /* constant indices only, so that acc stays in registers */
#pragma GCC unroll 4
  for (int r = 0; r < WG_MR; r++)
#pragma GCC unroll 6
    for (int c = 0; c < WG_NC; c++)
      if (r < rows && c < cols) gw[r * rs + c * cs] += _mm512_reduce_add_ps(acc[r][c]);
}

/* gw [groups*Cout_g, Cin_g, K] (written) from x [B, groups*Cin_g, Tx], gy [B, groups*Cout_g, Ty],
 * stride 1. */
int nn_conv1d_direct_wgrad_f32(int64_t B, int64_t groups, int64_t Cin_g, int64_t Tx,
                               int64_t Cout_g, int64_t Ty, int64_t K, int64_t dil, int64_t pad,
                               const float *x, const float *gy, float *gw) {
  memset(gw, 0, sizeof(float) * (size_t)(groups * Cout_g * Cin_g * K));
  int64_t nblk = (Cout_g + WG_MR - 1) / WG_MR;
  /* time blocks: the x rows of one block (Cin_g x tb) stay in L2 across the co blocks */
  int64_t tb = 262144 / (Cin_g > 0 ? Cin_g : 1);
  tb = tb / 16 * 16;
  if (tb < 64) tb = 64;
  if (tb > 2048) tb = 2048;
  int64_t items = groups * nblk;
  double work = (double)B * groups * Cout_g * Cin_g * K * Ty;
#pragma omp parallel for schedule(dynamic, 1) if (work > 2e5)
  for (int64_t it = 0; it < items; it++) {
    int64_t g = it / nblk, blk = it % nblk, co0 = blk * WG_MR;
    int64_t rows = Cout_g - co0 < WG_MR ? Cout_g - co0 : WG_MR;
    float *gwb = gw + (g * Cout_g + co0) * Cin_g * K;
    for (int64_t b = 0; b < B; b++) {
      const float *xg = x + (b * groups + g) * Cin_g * Tx;
      const float *gyb = gy + ((b * groups + g) * Cout_g + co0) * Ty;
      for (int64_t t0 = 0; t0 < Ty; t0 += tb) {
        int64_t t1 = t0 + tb < Ty ? t0 + tb : Ty;
        for (int64_t k = 0; k < K; k++) {
          int64_t shift = k * dil - pad; /* x index = t + shift must lie in [0, Tx) */
          int64_t lo = t0 > -shift ? t0 : -shift, hi = t1 < Tx - shift ? t1 : Tx - shift;
          if (hi <= lo) continue;
          for (int64_t c0 = 0; c0 < Cin_g; c0 += WG_NC) {
            int64_t cols = Cin_g - c0 < WG_NC ? Cin_g - c0 : WG_NC;
            wgrad_tile(gyb, Ty, rows, xg + c0 * Tx + shift, Tx, cols, lo, hi,
                       gwb + c0 * K + k, Cin_g * K, K);
          }
        }
      }
    }
  }
  return 0;
}
/* The short-sequence weight gradient when the sequence is long next to the channel count (96
 * channels x 800 frames): unfolding the input would cost more than reordering the weights, so
 * per tap, gW_k[co, ci] = sum_t gy[co, t] xT[t + shift, ci] with x transposed to xT [Tx, Cin]
 * (32 input channels per vector) and gy read as the "weights"; the result goes through a
 * [K, Cout, Cin] scratch and is interleaved into gw. */
static int wgrad_short_taps(int64_t B, int64_t groups, int64_t Cin_g, int64_t Tx,
                                     int64_t Cout_g, int64_t Ty, int64_t K, int64_t dil,
                                     int64_t pad, const float *x, const float *gy, float *gw) {
  size_t nxt = (size_t)(B * Tx * Cin_g), ns = (size_t)(K * Cout_g * Cin_g);
  float *xt = nn_scratch(NN_SCRATCH_DIRECT, sizeof(float) * (nxt + ns));
  if (!xt) { fsvc_set_error("conv1d backward: out of memory"); return -1; }
  float *sk = xt + nxt;
  int64_t nblk = (Cout_g + DIRECT_MR - 1) / DIRECT_MR, nct = (Cin_g + DIRECT_NR - 1) / DIRECT_NR;
  for (int64_t g = 0; g < groups; g++) {
    /* xt[b][t][ci] = x[b, g*Cin_g + ci, t] */
#pragma omp parallel for if (nxt > 16384)
    for (int64_t bt = 0; bt < B * Tx; bt++) {
      int64_t b = bt / Tx, t = bt % Tx;
      const float *xs = x + (b * groups + g) * Cin_g * Tx + t;
      float *d = xt + bt * Cin_g;
      for (int64_t ci = 0; ci < Cin_g; ci++) d[ci] = xs[ci * Tx];
    }
    int64_t items = K * nblk * nct;
    double work = (double)B * Cout_g * Cin_g * K * Ty;
#pragma omp parallel for schedule(static) if (work > 2e5)
    for (int64_t it = 0; it < items; it++) {
      int64_t ct = it % nct, blk = (it / nct) % nblk, k = it / (nct * nblk);
      int64_t shift = k * dil - pad;
      int64_t lo = shift < 0 ? -shift : 0, hi = Tx - shift < Ty ? Tx - shift : Ty;
      int64_t co0 = blk * DIRECT_MR, rows = Cout_g - co0 < DIRECT_MR ? Cout_g - co0 : DIRECT_MR;
      int64_t c0 = ct * DIRECT_NR, n = Cin_g - c0 < DIRECT_NR ? Cin_g - c0 : DIRECT_NR;
      /* with one tap, [K, Cout, Cin] is gw's own layout: write it in place */
      float *out = (K == 1 ? gw + g * Cout_g * Cin_g : sk) + (k * Cout_g + co0) * Cin_g;
      if (hi <= lo) { /* this tap never sees the input: zero gradient */
        for (int64_t r = 0; r < rows; r++) memset(out + r * Cin_g + c0, 0, sizeof(float) * n);
        continue;
      }
      for (int64_t b = 0; b < B; b++) {
        const float *gyb = gy + ((b * groups + g) * Cout_g + co0) * Ty + lo;
        const float *xtb = xt + (b * Tx + lo + shift) * Cin_g;
        /* rows of "x" = time steps (stride Cin_g), lanes = input channels c0 .. c0+n */
        tile_12x32(xtb, hi - lo, Cin_g, gyb, Ty, 1, 0, 1, 0, 0, c0, n, NULL, b > 0, rows, out,
                   Cin_g);
      }
    }
    /* gw[g*Cout_g + co][ci][k] = sk[k][co][ci] */
    if (K == 1) continue;
    float *gwg = gw + g * Cout_g * Cin_g * K;
#pragma omp parallel for if (ns > 65536)
    for (int64_t co = 0; co < Cout_g; co++)
      for (int64_t ci = 0; ci < Cin_g; ci++)
        for (int64_t k = 0; k < K; k++)
          gwg[(co * Cin_g + ci) * K + k] = sk[(k * Cout_g + co) * Cin_g + ci];
  }
  nn_scratch_done(NN_SCRATCH_DIRECT, xt);
  return 0;
}
/* Weight gradient for short sequences (the 50-200 frame layers): with few time steps the
 * horizontal sums above cost as much as the products, so the time axis becomes the reduction
 * of the 12 x 32 forward tile instead: gw[co, j] = sum_t gy[co, t] xp[t, j] over the columns
 * j = ci*K + k of gw's own [Cout, Cin*K] layout, with the input unfolded and transposed to
 * xp [Ty, Cin*K], xp[t, ci*K + k] = x[ci, t + k*dil - pad] (0 outside [0, Tx)), and gy read as
 * the "weights". Writing gw's layout directly avoids reordering a [K, Cout, Cin] result, which
 * cost a fifth of the gradient on the 512-channel kernel-5 encoder layers; the unfolded input is
 * Cout/K times smaller than the weights. */
int nn_conv1d_direct_wgrad_short_f32(int64_t B, int64_t groups, int64_t Cin_g, int64_t Tx,
                                     int64_t Cout_g, int64_t Ty, int64_t K, int64_t dil,
                                     int64_t pad, const float *x, const float *gy, float *gw) {
  int64_t CK = Cin_g * K;
  /* element copies: unfolding B*Ty*CK against transposing B*Tx*Cin plus reordering Cout*CK
   * (with one tap there is nothing to reorder, and the plain transpose is the faster copy) */
  if (K == 1 || B * Ty * CK > B * Tx * Cin_g + Cout_g * CK)
    return wgrad_short_taps(B, groups, Cin_g, Tx, Cout_g, Ty, K, dil, pad, x, gy, gw);
  float *xp = nn_scratch(NN_SCRATCH_DIRECT, sizeof(float) * (size_t)(B * Ty * CK));
  if (!xp) { fsvc_set_error("conv1d backward: out of memory"); return -1; }
  int64_t nblk = (Cout_g + DIRECT_MR - 1) / DIRECT_MR, nct = (CK + DIRECT_NR - 1) / DIRECT_NR;
  /* unfolding in blocks of 16 time steps: contiguous reads of x, and the 16 rows of xp being
   * written stay in L1 */
  int64_t ntb = (Ty + 15) / 16, items = nblk * nct;
  double work = (double)B * Cout_g * CK * Ty;
  for (int64_t g = 0; g < groups; g++) {
    float *gwg = gw + g * Cout_g * CK;
#pragma omp parallel if (work > 2e5)
    {
#pragma omp for schedule(static)
      for (int64_t bt = 0; bt < B * ntb; bt++) {
        int64_t b = bt / ntb, t0 = bt % ntb * 16, t1 = t0 + 16 < Ty ? t0 + 16 : Ty;
        const float *xb = x + (b * groups + g) * Cin_g * Tx;
        float *xpb = xp + b * Ty * CK;
        for (int64_t ci = 0; ci < Cin_g; ci++)
          for (int64_t k = 0; k < K; k++) {
            const float *xr = xb + ci * Tx + k * dil - pad; /* xr[t] = x[ci, t + k*dil - pad] */
            float *d = xpb + ci * K + k;
            int64_t lo = pad - k * dil, hi = Tx + pad - k * dil; /* valid t: [lo, hi) */
            if (lo < t0) lo = t0;
            if (hi > t1) hi = t1;
            if (hi < lo) hi = lo;
            int64_t t = t0;
            for (; t < lo; t++) d[t * CK] = 0.f;
            for (; t < hi; t++) d[t * CK] = xr[t];
            for (; t < t1; t++) d[t * CK] = 0.f;
          }
      }
#pragma omp for schedule(static)
      for (int64_t it = 0; it < items; it++) {
        int64_t blk = it / nct, ct = it % nct;
        int64_t co0 = blk * DIRECT_MR, rows = Cout_g - co0 < DIRECT_MR ? Cout_g - co0 : DIRECT_MR;
        int64_t c0 = ct * DIRECT_NR, n = CK - c0 < DIRECT_NR ? CK - c0 : DIRECT_NR;
        for (int64_t b = 0; b < B; b++)
          /* rows of "x" = time steps (stride CK), lanes = columns c0 .. c0+n of gw */
          tile_12x32(xp + b * Ty * CK, Ty, CK, gy + ((b * groups + g) * Cout_g + co0) * Ty, Ty, 1,
                     0, 1, 0, 0, c0, n, NULL, b > 0, rows, gwg + co0 * CK, CK);
      }
    }
  }
  nn_scratch_done(NN_SCRATCH_DIRECT, xp);
  return 0;
}
#else
int nn_conv1d_direct_available(void) { return 0; }
int nn_conv1d_direct_f32(int64_t B, int64_t groups, int64_t Cin_g, int64_t Tx, int64_t Cout_g,
                         int64_t Ty, int64_t K, int64_t dil, int64_t pad, const float *x,
                         const float *w, int flip_transpose, const float *bias, float *y) {
  fsvc_set_error("conv1d: direct kernel not built");
  return -1;
}
int nn_conv1d_direct_wgrad_f32(int64_t B, int64_t groups, int64_t Cin_g, int64_t Tx,
                               int64_t Cout_g, int64_t Ty, int64_t K, int64_t dil, int64_t pad,
                               const float *x, const float *gy, float *gw) {
  fsvc_set_error("conv1d: direct kernel not built");
  return -1;
}
int nn_conv1d_direct_wgrad_short_f32(int64_t B, int64_t groups, int64_t Cin_g, int64_t Tx,
                                     int64_t Cout_g, int64_t Ty, int64_t K, int64_t dil,
                                     int64_t pad, const float *x, const float *gy, float *gw) {
  fsvc_set_error("conv1d: direct kernel not built");
  return -1;
}
#endif
