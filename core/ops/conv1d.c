/* 1-D convolution (PyTorch's Conv1d): forward, and backward to data, weight and bias.
 *
 * Layouts: x [B, Cin, Tx], w [Cout, Cin/groups, K], y [B, Cout, Ty] with
 *   y[b, co, t] = bias[co] + sum_{ci, k} w[co, ci, k] * x[b, g*Cin_g + ci, t*stride + k*dil - pad].
 *
 * Algorithms, fastest first:
 *  - float32, stride 1, on a CPU with AVX-512: the direct kernels of conv1d_direct.c (forward,
 *    data gradient as a convolution with flipped, transposed weights, and weight gradient). They
 *    beat OpenBLAS and PyTorch's oneDNN on the FasterSVC shapes (spec/bench/bench_conv1d.lua).
 *  - stride 1 otherwise ("shifted GEMM", no im2col buffer): the weights are repacked to
 *    wp[co][k*Cin_g + ci] so that tap k is the matrix W_k [Cout_g, Cin_g] at column k*Cin_g with
 *    leading dimension K*Cin_g; for each tap, the output columns whose input index
 *    t + k*dil - pad lies inside [0, Tx) get Y[:, t] += W_k @ X[:, t + shift] -- one GEMM on a
 *    shifted view of x with ldb = Tx. Zero padding is never materialised.
 *  - other strides: im2col on time chunks (col [K*Cin_g, n]) and one GEMM per chunk.
 * Backward data is the same with W_k^T (a transposed convolution); backward weight is
 * gW_k += dY @ X_shift^T. conv_transpose1d.c reuses these kernels.
 */
#include <stdlib.h>
#include <string.h>

#include "fsvc/autocast.h"
#include "fsvc/device.h"
#include "fsvc/ops_nn.h"
#include "nn_internal.h"

/* ---- typed helpers (float and double) -------------------------------------------------------- */
#define DEFINE_CONV_HELPERS(T, SUF)                                                              \
  /* wp[co][k*Cin_g + ci] = w[co][ci][k] */                                                      \
  static void pack_weight_##SUF(const T *w, T *wp, int64_t Cout, int64_t Cin_g, int64_t K) {     \
    for (int64_t co = 0; co < Cout; co++)                                                        \
      for (int64_t ci = 0; ci < Cin_g; ci++)                                                     \
        for (int64_t k = 0; k < K; k++) wp[co * K * Cin_g + k * Cin_g + ci] = w[(co * Cin_g + ci) * K + k]; \
  }                                                                                              \
  static void unpack_weight_##SUF(const T *wp, T *w, int64_t Cout, int64_t Cin_g, int64_t K) {   \
    for (int64_t co = 0; co < Cout; co++)                                                        \
      for (int64_t ci = 0; ci < Cin_g; ci++)                                                     \
        for (int64_t k = 0; k < K; k++) w[(co * Cin_g + ci) * K + k] = wp[co * K * Cin_g + k * Cin_g + ci]; \
  }                                                                                              \
  /* output columns t0 .. t0+n: col[(k*Cin_g + ci), j] = x[ci, (t0+j)*s + k*d - p], 0 outside */ \
  static void im2col_##SUF(const T *x, T *col, int64_t Cin_g, int64_t Tx, int64_t K,             \
                           int64_t t0, int64_t n, int64_t s, int64_t d, int64_t p) {             \
    _Pragma("omp parallel for if (K * Cin_g * n > 262144)")                                      \
    for (int64_t kc = 0; kc < K * Cin_g; kc++) {                                                 \
      int64_t k = kc / Cin_g, ci = kc % Cin_g;                                                   \
      T *c = col + kc * n;                                                                       \
      const T *xr = x + ci * Tx;                                                                 \
      for (int64_t j = 0; j < n; j++) {                                                          \
        int64_t i = (t0 + j) * s + k * d - p;                                                    \
        c[j] = (i >= 0 && i < Tx) ? xr[i] : (T)0;                                                \
      }                                                                                          \
    }                                                                                            \
  }                                                                                              \
  /* the adjoint of im2col: x[ci, (t0+j)*s + k*d - p] += col[(k*Cin_g + ci), j] */               \
  static void col2im_##SUF(const T *col, T *x, int64_t Cin_g, int64_t Tx, int64_t K,             \
                           int64_t t0, int64_t n, int64_t s, int64_t d, int64_t p) {             \
    for (int64_t k = 0; k < K; k++)                                                              \
      for (int64_t ci = 0; ci < Cin_g; ci++) {                                                   \
        const T *c = col + (k * Cin_g + ci) * n;                                                 \
        T *xr = x + ci * Tx;                                                                     \
        for (int64_t j = 0; j < n; j++) {                                                        \
          int64_t i = (t0 + j) * s + k * d - p;                                                  \
          if (i >= 0 && i < Tx) xr[i] += c[j];                                                   \
        }                                                                                        \
      }                                                                                          \
  }                                                                                              \
  static void fill_rows_##SUF(T *y, const T *bias, int64_t C, int64_t T_) {                      \
    for (int64_t c = 0; c < C; c++) {                                                            \
      T v = bias ? bias[c] : (T)0;                                                               \
      for (int64_t t = 0; t < T_; t++) y[c * T_ + t] = v;                                        \
    }                                                                                            \
  }                                                                                              \
  static void sum_bias_##SUF(int64_t B, int64_t C, int64_t T_, const T *gy, T *gb) {             \
    for (int64_t c = 0; c < C; c++) {                                                            \
      double acc = 0;                                                                            \
      for (int64_t b = 0; b < B; b++) {                                                          \
        const T *r = gy + (b * C + c) * T_;                                                      \
        for (int64_t t = 0; t < T_; t++) acc += r[t];                                            \
      }                                                                                          \
      gb[c] = (T)acc;                                                                            \
    }                                                                                            \
  }
DEFINE_CONV_HELPERS(float, f32)
DEFINE_CONV_HELPERS(double, f64)

#define DISPATCH(dt, fn, ...) ((dt) == FSVC_FLOAT32 ? fn##_f32(__VA_ARGS__) : fn##_f64(__VA_ARGS__))

void nn_sum_bias_grad(fsvc_dtype dt, int64_t B, int64_t C, int64_t T, const void *gy, void *gb) {
  if (dt == FSVC_FLOAT32) sum_bias_f32(B, C, T, gy, gb);
  else sum_bias_f64(B, C, T, gy, gb);
}

/* Per-thread scratch buffers that grow and are kept between calls: large malloc/free pairs become
 * mmap/munmap and page faults on every call, which cost as much as a small convolution. Buffers
 * above 64 MB are not kept. Each slot holds one live buffer; release with nn_scratch_done. */
#define SCRATCH_SLOTS 4
#define SCRATCH_KEEP ((size_t)64 << 20)
static _Thread_local void *scratch_buf[SCRATCH_SLOTS];
static _Thread_local size_t scratch_cap[SCRATCH_SLOTS];

void *nn_scratch(int slot, size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes > SCRATCH_KEEP) return malloc(bytes);
  if (scratch_cap[slot] < bytes) {
    free(scratch_buf[slot]);
    scratch_buf[slot] = malloc(bytes);
    scratch_cap[slot] = scratch_buf[slot] ? bytes : 0;
  }
  return scratch_buf[slot];
}
void nn_scratch_done(int slot, void *p) {
  if (p && p != scratch_buf[slot]) free(p);
}

/* im2col works on time chunks so that its buffer stays near 16 MB (the discriminator's
 * kernel-41 stride-2 convs would otherwise need K*Cin*T floats). */
static int64_t col_chunk(int64_t KC, int64_t Ty) {
  int64_t n = ((int64_t)1 << 22) / (KC > 0 ? KC : 1);
  if (n < 16) n = 16;
  return n < Ty ? n : Ty;
}

/* Output columns [*lo, *hi) of tap k whose input t + shift lies in [0, Tx) (stride 1). */
static void tap_range(const nn_conv_geom *g, int64_t k, int64_t *shift, int64_t *lo, int64_t *hi) {
  *shift = k * g->dilation - g->padding;
  *lo = *shift < 0 ? -*shift : 0;
  *hi = g->Tx - *shift < g->Ty ? g->Tx - *shift : g->Ty;
}

/* Repacked weights, or w itself when K == 1 (the layouts coincide). */
static void *packed_weight(const nn_conv_geom *g, const void *w, int *owned) {
  int64_t Cin_g = g->Cin / g->groups;
  *owned = 0;
  if (g->K == 1) return (void *)w;
  size_t es = fsvc_dtype_size(g->dtype);
  void *wp = nn_scratch(NN_SCRATCH_WEIGHT, (size_t)(g->Cout * Cin_g * g->K) * es);
  if (!wp) return NULL;
  *owned = 1;
  if (g->dtype == FSVC_FLOAT32) pack_weight_f32(w, wp, g->Cout, Cin_g, g->K);
  else pack_weight_f64(w, wp, g->Cout, Cin_g, g->K);
  return wp;
}

/* The direct kernel wins on float32 stride-1 convs with enough output channels to fill its
 * 12-row tiles; tiny ones (a 24 -> 1 output layer) stay on BLAS. */
static int use_direct(const nn_conv_geom *g, int64_t Cout_g) {
  return g->dtype == FSVC_FLOAT32 && g->stride == 1 && Cout_g >= 8 && nn_conv1d_direct_available();
}

int nn_conv1d_forward_kernel(const nn_conv_geom *g, const void *x, const void *w,
                             const void *bias, void *y) {
  int64_t Cin_g = g->Cin / g->groups, Cout_g = g->Cout / g->groups, KC = g->K * Cin_g;
  if (use_direct(g, Cout_g))
    return nn_conv1d_direct_f32(g->B, g->groups, Cin_g, g->Tx, Cout_g, g->Ty, g->K, g->dilation,
                                g->padding, x, w, 0, bias, y);
  size_t es = fsvc_dtype_size(g->dtype);
  int owned;
  char *wp = packed_weight(g, w, &owned);
  if (!wp) { fsvc_set_error("conv1d: out of memory"); return -1; }
  char *col = NULL;
  int64_t chunk = col_chunk(KC, g->Ty);
  if (g->stride != 1) {
    col = nn_scratch(NN_SCRATCH_COL, (size_t)(KC * chunk) * es);
    if (!col) { if (owned) nn_scratch_done(NN_SCRATCH_WEIGHT, wp); fsvc_set_error("conv1d: out of memory"); return -1; }
  }
  for (int64_t b = 0; b < g->B; b++)
    for (int64_t gr = 0; gr < g->groups; gr++) {
      const char *X = (const char *)x + (b * g->Cin + gr * Cin_g) * g->Tx * es;
      char *Y = (char *)y + (b * g->Cout + gr * Cout_g) * g->Ty * es;
      const char *Wg = wp + gr * Cout_g * KC * es;
      const char *bg = bias ? (const char *)bias + gr * Cout_g * es : NULL;
      DISPATCH(g->dtype, fill_rows, (void *)Y, (const void *)bg, Cout_g, g->Ty);
      if (g->stride == 1) {
        for (int64_t k = 0; k < g->K; k++) {
          int64_t shift, lo, hi;
          tap_range(g, k, &shift, &lo, &hi);
          if (hi > lo)
            nn_gemm(g->dtype, 0, 0, Cout_g, hi - lo, Cin_g, 1.0, Wg + k * Cin_g * es, KC,
                    X + (lo + shift) * es, g->Tx, 1.0, Y + lo * es, g->Ty);
        }
      } else {
        for (int64_t t0 = 0; t0 < g->Ty; t0 += chunk) {
          int64_t n = g->Ty - t0 < chunk ? g->Ty - t0 : chunk;
          DISPATCH(g->dtype, im2col, (const void *)X, (void *)col, Cin_g, g->Tx, g->K, t0, n,
                   g->stride, g->dilation, g->padding);
          nn_gemm(g->dtype, 0, 0, Cout_g, n, KC, 1.0, Wg, KC, col, n, 1.0, Y + t0 * es, g->Ty);
        }
      }
    }
  nn_scratch_done(NN_SCRATCH_COL, col);
  if (owned) nn_scratch_done(NN_SCRATCH_WEIGHT, wp);
  return 0;
}

int nn_conv1d_backward_data_kernel(const nn_conv_geom *g, const void *gy, const void *w,
                                   void *gx) {
  int64_t Cin_g = g->Cin / g->groups, Cout_g = g->Cout / g->groups, KC = g->K * Cin_g;
  /* the data gradient is a stride-1 convolution of gy with the flipped, transposed weight */
  if (use_direct(g, Cin_g))
    return nn_conv1d_direct_f32(g->B, g->groups, Cout_g, g->Ty, Cin_g, g->Tx, g->K, g->dilation,
                                g->dilation * (g->K - 1) - g->padding, gy, w, 1, NULL, gx);
  size_t es = fsvc_dtype_size(g->dtype);
  int owned;
  char *wp = packed_weight(g, w, &owned);
  if (!wp) { fsvc_set_error("conv1d backward: out of memory"); return -1; }
  char *col = NULL;
  int64_t chunk = col_chunk(KC, g->Ty);
  if (g->stride != 1) {
    col = nn_scratch(NN_SCRATCH_COL, (size_t)(KC * chunk) * es);
    if (!col) {
      if (owned) nn_scratch_done(NN_SCRATCH_WEIGHT, wp);
      fsvc_set_error("conv1d backward: out of memory");
      return -1;
    }
  }
  memset(gx, 0, (size_t)(g->B * g->Cin * g->Tx) * es);
  for (int64_t b = 0; b < g->B; b++)
    for (int64_t gr = 0; gr < g->groups; gr++) {
      char *GX = (char *)gx + (b * g->Cin + gr * Cin_g) * g->Tx * es;
      const char *GY = (const char *)gy + (b * g->Cout + gr * Cout_g) * g->Ty * es;
      const char *Wg = wp + gr * Cout_g * KC * es;
      if (g->stride == 1) {
        for (int64_t k = 0; k < g->K; k++) {
          int64_t shift, lo, hi;
          tap_range(g, k, &shift, &lo, &hi);
          if (hi > lo) /* GX[:, lo+shift .. hi+shift) += W_k^T @ GY[:, lo .. hi) */
            nn_gemm(g->dtype, 1, 0, Cin_g, hi - lo, Cout_g, 1.0, Wg + k * Cin_g * es, KC,
                    GY + lo * es, g->Ty, 1.0, GX + (lo + shift) * es, g->Tx);
        }
      } else {
        for (int64_t t0 = 0; t0 < g->Ty; t0 += chunk) {
          int64_t n = g->Ty - t0 < chunk ? g->Ty - t0 : chunk;
          nn_gemm(g->dtype, 1, 0, KC, n, Cout_g, 1.0, Wg, KC, GY + t0 * es, g->Ty, 0.0, col, n);
          DISPATCH(g->dtype, col2im, (const void *)col, (void *)GX, Cin_g, g->Tx, g->K, t0, n,
                   g->stride, g->dilation, g->padding);
        }
      }
    }
  nn_scratch_done(NN_SCRATCH_COL, col);
  if (owned) nn_scratch_done(NN_SCRATCH_WEIGHT, wp);
  return 0;
}

int nn_conv1d_backward_weight_kernel(const nn_conv_geom *g, const void *x, const void *gy,
                                     void *gw) {
  int64_t Cin_g = g->Cin / g->groups, Cout_g = g->Cout / g->groups, KC = g->K * Cin_g;
  /* long sequences: reduction along time in vectors; short ones: time as the tile's reduction */
  if (use_direct(g, Cout_g) && Cin_g >= 16 && g->Ty * g->B < 1024)
    return nn_conv1d_direct_wgrad_short_f32(g->B, g->groups, Cin_g, g->Tx, Cout_g, g->Ty, g->K,
                                            g->dilation, g->padding, x, gy, gw);
  if (use_direct(g, Cout_g) && Cin_g >= 4 && g->Ty >= 96)
    return nn_conv1d_direct_wgrad_f32(g->B, g->groups, Cin_g, g->Tx, Cout_g, g->Ty, g->K,
                                      g->dilation, g->padding, x, gy, gw);
  size_t es = fsvc_dtype_size(g->dtype);
  size_t wbytes = (size_t)(g->Cout * KC) * es;
  /* accumulate in the packed layout; for K == 1 it is gw's own layout */
  int64_t chunk = col_chunk(KC, g->Ty);
  char *gwp = g->K == 1 ? gw : nn_scratch(NN_SCRATCH_WEIGHT, wbytes);
  char *col = g->stride != 1 ? nn_scratch(NN_SCRATCH_COL, (size_t)(KC * chunk) * es) : NULL;
  if (!gwp || (g->stride != 1 && !col)) {
    if (gwp != gw) nn_scratch_done(NN_SCRATCH_WEIGHT, gwp);
    nn_scratch_done(NN_SCRATCH_COL, col);
    fsvc_set_error("conv1d backward: out of memory");
    return -1;
  }
  memset(gwp, 0, wbytes);
  for (int64_t b = 0; b < g->B; b++)
    for (int64_t gr = 0; gr < g->groups; gr++) {
      const char *X = (const char *)x + (b * g->Cin + gr * Cin_g) * g->Tx * es;
      const char *GY = (const char *)gy + (b * g->Cout + gr * Cout_g) * g->Ty * es;
      char *GW = gwp + gr * Cout_g * KC * es;
      if (g->stride == 1) {
        for (int64_t k = 0; k < g->K; k++) {
          int64_t shift, lo, hi;
          tap_range(g, k, &shift, &lo, &hi);
          if (hi > lo) /* gW_k += GY[:, lo..hi) @ X[:, lo+shift .. hi+shift)^T */
            nn_gemm(g->dtype, 0, 1, Cout_g, Cin_g, hi - lo, 1.0, GY + lo * es, g->Ty,
                    X + (lo + shift) * es, g->Tx, 1.0, GW + k * Cin_g * es, KC);
        }
      } else {
        for (int64_t t0 = 0; t0 < g->Ty; t0 += chunk) {
          int64_t n = g->Ty - t0 < chunk ? g->Ty - t0 : chunk;
          DISPATCH(g->dtype, im2col, (const void *)X, (void *)col, Cin_g, g->Tx, g->K, t0, n,
                   g->stride, g->dilation, g->padding);
          nn_gemm(g->dtype, 0, 1, Cout_g, KC, n, 1.0, GY + t0 * es, g->Ty, col, n, 1.0, GW, KC);
        }
      }
    }
  if (gwp != gw) {
    if (g->dtype == FSVC_FLOAT32) unpack_weight_f32((const float *)gwp, gw, g->Cout, Cin_g, g->K);
    else unpack_weight_f64((const double *)gwp, gw, g->Cout, Cin_g, g->K);
    nn_scratch_done(NN_SCRATCH_WEIGHT, gwp);
  }
  nn_scratch_done(NN_SCRATCH_COL, col);
  return 0;
}

/* ---- the op --------------------------------------------------------------------------------- */
static void params_or_default(const fsvc_conv1d_params *p, int64_t *s, int64_t *pad, int64_t *d,
                              int64_t *gr) {
  *s = p && p->stride ? p->stride : 1;
  *pad = p ? p->padding : 0;
  *d = p && p->dilation ? p->dilation : 1;
  *gr = p && p->groups ? p->groups : 1;
}

/* A [B, C, T] view of a 2-D or 3-D tensor (unbatched [C, T] gets B = 1), contiguous. */
static fsvc_tensor *as_batched_contiguous(const fsvc_tensor *t) {
  fsvc_tensor *c = fsvc_contiguous_raw(t);
  if (!c || t->ndim == 3) return c;
  int64_t shape[3] = {1, t->shape[0], t->shape[1]}, stride[3];
  fsvc_contiguous_strides(3, shape, stride);
  fsvc_tensor *v = fsvc_view_raw(c, 3, shape, stride, c->offset);
  fsvc_tensor_release(c);
  return v;
}

static int conv1d_backward(fsvc_node *node, const fsvc_tensor *grad, fsvc_tensor **grad_in) {
  nn_conv_geom g;
  const fsvc_tensor *x0 = node->saved[0], *w0 = node->saved[1];
  g.stride = node->iarg[0]; g.padding = node->iarg[1]; g.dilation = node->iarg[2];
  g.groups = node->iarg[3];
  fsvc_tensor *x = as_batched_contiguous(x0), *w = fsvc_contiguous_raw(w0);
  fsvc_tensor *gy = as_batched_contiguous(grad);
  int rc = -1;
  if (!x || !w || !gy) goto done;
  g.B = x->shape[0]; g.Cin = x->shape[1]; g.Tx = x->shape[2];
  g.Cout = w->shape[0]; g.K = w->shape[2]; g.Ty = gy->shape[2]; g.dtype = x->dtype;
  if (node->edges[0].needs_grad) {
    fsvc_tensor *gx = fsvc_empty(x0->ndim, x0->shape, x0->dtype);
    if (!gx || nn_conv1d_backward_data_kernel(&g, fsvc_data(gy), fsvc_data(w), fsvc_data(gx))) {
      fsvc_tensor_release(gx);
      goto done;
    }
    grad_in[0] = gx;
  }
  if (node->edges[1].needs_grad) {
    fsvc_tensor *gw = fsvc_empty(3, w->shape, w->dtype);
    if (!gw || nn_conv1d_backward_weight_kernel(&g, fsvc_data(x), fsvc_data(gy), fsvc_data(gw))) {
      fsvc_tensor_release(gw);
      goto done;
    }
    grad_in[1] = gw;
  }
  if (node->n_inputs > 2 && node->edges[2].needs_grad) {
    fsvc_tensor *gb = fsvc_empty(1, &g.Cout, g.dtype);
    if (!gb) goto done;
    nn_sum_bias_grad(g.dtype, g.B, g.Cout, g.Ty, fsvc_data(gy), fsvc_data(gb));
    grad_in[2] = gb;
  }
  rc = 0;
done:
  fsvc_tensor_release(x);
  fsvc_tensor_release(w);
  fsvc_tensor_release(gy);
  return rc;
}

/* conv1d's checks, the same on every device (made before the dispatch); fills g (dtype: x's) */
static int check_conv1d(const fsvc_tensor *x, const fsvc_tensor *w, const fsvc_tensor *bias,
                        const fsvc_conv1d_params *p, nn_conv_geom *out_g) {
  char sx[128], sw[128], sb[128];
  if (nn_check_float(x, "conv1d", "input") || nn_check_float(w, "conv1d", "weight")) return -1;
  if (bias && nn_check_float(bias, "conv1d", "bias")) return -1;
  if (nn_check_same_dtype("conv1d", x, w, bias)) return -1;
  int64_t s, pad, d, gr;
  params_or_default(p, &s, &pad, &d, &gr);
  if (s < 1 || pad < 0 || d < 1 || gr < 1) {
    fsvc_set_error("conv1d: need stride >= 1, padding >= 0, dilation >= 1, groups >= 1 (got %lld, "
                   "%lld, %lld, %lld)", (long long)s, (long long)pad, (long long)d, (long long)gr);
    return -1;
  }
  if (s > NN_MAX_PARAM || pad > NN_MAX_PARAM || d > NN_MAX_PARAM || gr > NN_MAX_PARAM) {
    fsvc_set_error("conv1d: stride, padding, dilation and groups must be < 2^31");
    return -1;
  }
  if ((x->ndim != 2 && x->ndim != 3) || w->ndim != 3) {
    fsvc_set_error("conv1d: expected input [B, Cin, T] or [Cin, T] and weight [Cout, Cin/groups, "
                   "K], got %s and %s", fsvc_shape_str(x, sx, 128), fsvc_shape_str(w, sw, 128));
    return -1;
  }
  int64_t B = x->ndim == 3 ? x->shape[0] : 1, Cin = x->shape[x->ndim - 2];
  int64_t Tx = x->shape[x->ndim - 1], Cout = w->shape[0], K = w->shape[2];
  if (Cin % gr || Cout % gr || w->shape[1] * gr != Cin || K < 1 || Cout < 1) {
    fsvc_set_error("conv1d: input %s and weight %s do not match with groups=%lld",
                   fsvc_shape_str(x, sx, 128), fsvc_shape_str(w, sw, 128), (long long)gr);
    return -1;
  }
  if (bias && (bias->ndim != 1 || bias->shape[0] != Cout)) {
    fsvc_set_error("conv1d: bias must be [%lld], got %s", (long long)Cout,
                   fsvc_shape_str(bias, sb, 128));
    return -1;
  }
  int64_t span = d * (K - 1) + 1;
  if (Tx + 2 * pad < span || B == 0 || Cin == 0) {
    fsvc_set_error("conv1d: input %s (padded length %lld) is shorter than the kernel span %lld or "
                   "empty", fsvc_shape_str(x, sx, 128), (long long)(Tx + 2 * pad), (long long)span);
    return -1;
  }
  *out_g = (nn_conv_geom){B, Cin, Cout, K, Tx, (Tx + 2 * pad - span) / s + 1, s, pad, d, gr, x->dtype};
  return 0;
}

fsvc_tensor *fsvc_conv1d(const fsvc_tensor *x, const fsvc_tensor *w, const fsvc_tensor *bias,
                         const fsvc_conv1d_params *p) {
  FSVC_AUTOCAST("conv1d",
                fsvc_conv1d(FSVC_RECAST_ARG(0), FSVC_RECAST_ARG(1), FSVC_RECAST_ARG(2), p), x, w, bias);
  nn_conv_geom g;
  if (check_conv1d(x, w, bias, p, &g) != 0) return NULL;
  FSVC_DISPATCH_CUDA(conv1d, x, w, bias, p);
  FSVC_CPU_LOWP("conv1d", FSVC_RECAST_SAME_DTYPE,
                fsvc_conv1d(FSVC_RECAST_ARG(0), FSVC_RECAST_ARG(1), FSVC_RECAST_ARG(2), p), x, w, bias);
  const int64_t B = g.B, Cout = g.Cout;
  int64_t oshape[3] = {B, Cout, g.Ty};
  fsvc_tensor *out = x->ndim == 3 ? fsvc_empty(3, oshape, x->dtype)
                                  : fsvc_empty(2, oshape + 1, x->dtype);
  fsvc_tensor *xc = fsvc_contiguous_raw(x), *wc = fsvc_contiguous_raw(w);
  fsvc_tensor *bc = bias ? fsvc_contiguous_raw(bias) : NULL;
  int rc = (!out || !xc || !wc || (bias && !bc))
               ? -1
               : nn_conv1d_forward_kernel(&g, fsvc_data(xc), fsvc_data(wc),
                                          bc ? fsvc_data(bc) : NULL, fsvc_data(out));
  fsvc_tensor_release(xc);
  fsvc_tensor_release(wc);
  fsvc_tensor_release(bc);
  if (rc) { fsvc_tensor_release(out); return NULL; }
  fsvc_tensor *inputs[3] = {(fsvc_tensor *)x, (fsvc_tensor *)w, (fsvc_tensor *)bias};
  fsvc_node *n = fsvc_node_new("conv1d", bias ? 3 : 2, inputs, conv1d_backward);
  if (n) {
    fsvc_node_save(n, x);
    fsvc_node_save(n, w);
    n->iarg[0] = g.stride; n->iarg[1] = g.padding; n->iarg[2] = g.dilation; n->iarg[3] = g.groups;
    fsvc_node_attach(n, out);
  }
  return out;
}

__attribute__((constructor)) static void register_ops(void) {
  fsvc_register_differentiable("conv1d");
}
