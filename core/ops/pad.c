/* pad: torch.nn.functional.pad on any number of dims, modes constant / reflect / replicate.
 *
 * pads = (left, right) of the last dim, then of the dim before, ... Every padded dim gets an
 * index map out position -> source position (-1 = the constant value); because padding is
 * separable, out[i0, i1, ..] = in[map0(i0), map1(i1), ..]. The output is walked row by row
 * (a row = the last dim): a row's source offset comes from the maps of the outer dims, and the
 * interior of the row, where the map is the identity shifted by `left`, is one memcpy. That makes
 * the networks' hot cases fast: left replicate padding of [B, C, T] for causal convs (decoder,
 * [16, 24, 24000+]) and the STFT's reflect padding of [B, L].
 *
 * The backward adds each output gradient back to its source position (a scatter-add); it runs
 * rows in parallel whenever no two output rows share a source row (constant mode, or only the
 * last dim padded). */
#include <stdlib.h>
#include <string.h>

#include "fsvc/autocast.h"
#include "fsvc/device.h"
#include "fsvc/autograd.h"
#include "fsvc/error.h"
#include "fsvc/ops_shape.h"

__attribute__((constructor)) static void register_ops(void) { fsvc_register_differentiable("pad"); }

#define PAD_PARALLEL_MIN 32768 /* elements; below this threads cost more than they save */

typedef struct {
  int nd;
  int64_t in_shape[FSVC_MAX_DIMS];
  int64_t out_shape[FSVC_MAX_DIMS];
  int64_t left[FSVC_MAX_DIMS];
  int64_t *map[FSVC_MAX_DIMS]; /* NULL for dims that are not padded (identity) */
  int64_t lo, hi;              /* last dim: out positions [lo, hi) map to o - left (interior) */
  int rows_shared;             /* two out rows may share a source row (reflect/replicate outer dims) */
} pad_plan;

static void plan_free(pad_plan *p) {
  for (int d = 0; d < p->nd; d++) free(p->map[d]);
}

static const char *mode_name(fsvc_pad_mode m) {
  return m == FSVC_PAD_REFLECT ? "reflect" : m == FSVC_PAD_REPLICATE ? "replicate" : "constant";
}

/* The checks of fsvc_pad, the same for every device (made before the dispatch): the tensor,
 * the mode, the pad count and each dim's pads against its size. */
static int check_pads(const fsvc_tensor *a, int n_pads, const int64_t *pads, fsvc_pad_mode mode) {
  char sa[128];
  if (!a) { fsvc_set_error("pad: tensor is nil"); return -1; }
  if (!a->storage) { fsvc_set_error("pad: tensor was freed"); return -1; }
  if (mode != FSVC_PAD_CONSTANT && mode != FSVC_PAD_REFLECT && mode != FSVC_PAD_REPLICATE) {
    fsvc_set_error("pad: invalid mode %d", (int)mode);
    return -1;
  }
  if (n_pads < 0 || n_pads % 2 != 0 || n_pads > 2 * a->ndim || (n_pads > 0 && !pads)) {
    fsvc_set_error("pad: %d pads for input %s: need an even number, at most 2 per dim (%d)", n_pads,
                   fsvc_shape_str(a, sa, sizeof sa), 2 * a->ndim);
    return -1;
  }
  for (int k = 0; k < n_pads / 2; k++) {
    int d = a->ndim - 1 - k;
    int64_t l = pads[2 * k], r = pads[2 * k + 1], n = a->shape[d];
    const char *why = NULL;
    if (mode != FSVC_PAD_CONSTANT && (l < 0 || r < 0)) why = "negative pads need constant mode";
    else if (mode == FSVC_PAD_REFLECT && (l >= n || r >= n)) why = "reflect needs each pad < the dim's size";
    else if (mode == FSVC_PAD_REPLICATE && n == 0 && (l || r)) why = "replicate cannot pad an empty dim";
    else if (n + l + r < 0) why = "the pads crop more than the dim holds";
    if (why) {
      fsvc_set_error("pad: %s: pads (%lld, %lld) for dim %d of size %lld (input %s, mode %s)", why,
                     (long long)l, (long long)r, d, (long long)n, fsvc_shape_str(a, sa, sizeof sa),
                     mode_name(mode));
      return -1;
    }
  }
  return 0;
}

/* Builds the index maps of checked pads (check_pads). */
static int plan_build(pad_plan *p, int nd, const int64_t *shape, int n_pads, const int64_t *pads,
                      fsvc_pad_mode mode) {
  memset(p, 0, sizeof *p);
  p->nd = nd;
  for (int d = 0; d < nd; d++) p->in_shape[d] = p->out_shape[d] = shape[d];
  for (int k = 0; k < n_pads / 2; k++) {
    int d = nd - 1 - k;
    int64_t l = pads[2 * k], r = pads[2 * k + 1], n = shape[d];
    p->left[d] = l;
    p->out_shape[d] = n + l + r;
    if (l == 0 && r == 0) continue;
    if (d != nd - 1 && mode != FSVC_PAD_CONSTANT) p->rows_shared = 1;
    int64_t m = p->out_shape[d];
    p->map[d] = malloc((size_t)(m > 0 ? m : 1) * sizeof(int64_t));
    if (!p->map[d]) { plan_free(p); fsvc_set_error("pad: out of memory"); return -1; }
    for (int64_t o = 0; o < m; o++) {
      int64_t i = o - l;
      if (i < 0 || i >= n) {
        if (mode == FSVC_PAD_CONSTANT) i = -1;
        else if (mode == FSVC_PAD_REPLICATE) i = i < 0 ? 0 : n - 1;
        else i = i < 0 ? -i : 2 * (n - 1) - i; /* reflect, edge not repeated */
      }
      p->map[d][o] = i;
    }
  }
  if (nd > 0) {
    int64_t l = p->left[nd - 1], n = shape[nd - 1];
    p->lo = l > 0 ? l : 0;
    p->hi = l + n < p->out_shape[nd - 1] ? l + n : p->out_shape[nd - 1];
    if (p->hi < p->lo) p->hi = p->lo;
  }
  return 0;
}

/* Source offset (in elements, relative to the start of the view with strides `stride`) of out
 * row r (rows enumerate all dims but the last), or -1 when the row is all padding. */
static inline int64_t row_source(const pad_plan *p, int64_t r, const int64_t *stride) {
  int64_t off = 0;
  for (int d = p->nd - 2; d >= 0; d--) {
    int64_t n = p->out_shape[d];
    int64_t i = r % n;
    r /= n;
    int64_t m = p->map[d] ? p->map[d][i] : i;
    if (m < 0) return -1;
    off += m * stride[d];
  }
  return off;
}

#define DEFINE_PAD_FORWARD(NAME, T)                                                                \
  static void NAME(const pad_plan *p, const fsvc_tensor *a, fsvc_tensor *out, double value) {      \
    const T *src = (const T *)fsvc_data(a);                                                         \
    T *dst = (T *)fsvc_data(out);                                                                   \
    const T v = (T)value;                                                                           \
    int nd = p->nd;                                                                                 \
    int64_t W = p->out_shape[nd - 1], ss = a->stride[nd - 1];                                       \
    int64_t rows = W ? fsvc_numel(out) / W : 0;                                                     \
    const int64_t *mlast = p->map[nd - 1];                                                          \
    int64_t lo = p->lo, hi = p->hi, shift = p->left[nd - 1];                                        \
    int parallel = rows * W > PAD_PARALLEL_MIN;                                                     \
    _Pragma("omp parallel for schedule(static) if (parallel)")                                      \
    for (int64_t r = 0; r < rows; r++) {                                                            \
      T *o = dst + r * W;                                                                           \
      int64_t off = row_source(p, r, a->stride);                                                    \
      if (off < 0) {                                                                                \
        for (int64_t j = 0; j < W; j++) o[j] = v;                                                   \
        continue;                                                                                   \
      }                                                                                             \
      const T *s = src + off;                                                                       \
      for (int64_t j = 0; j < lo; j++) o[j] = mlast[j] < 0 ? v : s[mlast[j] * ss];                  \
      if (ss == 1) memcpy(o + lo, s + (lo - shift), (size_t)(hi - lo) * sizeof(T));                 \
      else for (int64_t j = lo; j < hi; j++) o[j] = s[(j - shift) * ss];                            \
      for (int64_t j = hi; j < W; j++) o[j] = mlast[j] < 0 ? v : s[mlast[j] * ss];                  \
    }                                                                                               \
  }
DEFINE_PAD_FORWARD(pad_forward_f32, float)
DEFINE_PAD_FORWARD(pad_forward_f64, double)
DEFINE_PAD_FORWARD(pad_forward_i64, int64_t)

/* gin (contiguous, input shape) += scatter of g (contiguous, output shape). With `assign`, the
 * interior of each row is written instead of added: valid when every input element is the
 * interior source of exactly one output element (only the last dim padded, pads >= 0), which
 * saves zeroing gin first. */
#define DEFINE_PAD_BACKWARD(NAME, T)                                                               \
  static void NAME(const pad_plan *p, const fsvc_tensor *g, fsvc_tensor *gin, int assign) {        \
    const T *src = (const T *)fsvc_data(g);                                                         \
    T *dst = (T *)fsvc_data(gin);                                                                   \
    int nd = p->nd;                                                                                 \
    int64_t W = p->out_shape[nd - 1];                                                               \
    int64_t rows = W ? fsvc_numel(g) / W : 0;                                                       \
    const int64_t *mlast = p->map[nd - 1];                                                          \
    int64_t lo = p->lo, hi = p->hi, shift = p->left[nd - 1];                                        \
    int parallel = !p->rows_shared && rows * W > PAD_PARALLEL_MIN;                                 \
    _Pragma("omp parallel for schedule(static) if (parallel)")                                      \
    for (int64_t r = 0; r < rows; r++) {                                                            \
      int64_t off = row_source(p, r, gin->stride);                                                  \
      if (off < 0) continue;                                                                        \
      const T *gr = src + r * W;                                                                    \
      T *d = dst + off;                                                                             \
      if (assign) memcpy(d + (lo - shift), gr + lo, (size_t)(hi - lo) * sizeof(T));                 \
      else for (int64_t j = lo; j < hi; j++) d[j - shift] += gr[j];                                 \
      for (int64_t j = 0; j < lo; j++)                                                              \
        if (mlast[j] >= 0) d[mlast[j]] += gr[j];                                                    \
      for (int64_t j = hi; j < W; j++)                                                              \
        if (mlast[j] >= 0) d[mlast[j]] += gr[j];                                                    \
    }                                                                                               \
  }
DEFINE_PAD_BACKWARD(pad_backward_f32, float)
DEFINE_PAD_BACKWARD(pad_backward_f64, double)

typedef struct {
  int n_pads;
  int64_t pads[2 * FSVC_MAX_DIMS];
  fsvc_pad_mode mode;
} pad_ctx;

static int pad_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  const pad_ctx *c = n->ctx;
  const fsvc_edge *e = &n->edges[0];
  pad_plan p;
  if (plan_build(&p, e->ndim, e->shape, c->n_pads, c->pads, c->mode) != 0) return -1;
  int assign = e->ndim > 0 && p.lo == p.left[e->ndim - 1] && p.hi == p.lo + e->shape[e->ndim - 1];
  for (int i = 2; i < c->n_pads; i++) assign = assign && c->pads[i] == 0;
  fsvc_tensor *gc = fsvc_contiguous_raw(g);
  fsvc_tensor *z = !gc ? NULL
                   : assign ? fsvc_empty(e->ndim, e->shape, g->dtype)
                            : fsvc_zeros(e->ndim, e->shape, g->dtype);
  if (!z) { fsvc_tensor_release(gc); plan_free(&p); return -1; }
  if (fsvc_numel(z) > 0 && fsvc_numel(gc) > 0) {
    if (g->dtype == FSVC_FLOAT32) pad_backward_f32(&p, gc, z, assign);
    else pad_backward_f64(&p, gc, z, assign);
  }
  fsvc_tensor_release(gc);
  plan_free(&p);
  gin[0] = z;
  return 0;
}

fsvc_tensor *fsvc_pad(const fsvc_tensor *a, int n_pads, const int64_t *pads, fsvc_pad_mode mode,
                      double value) {
  if (check_pads(a, n_pads, pads, mode) != 0) return NULL;
  FSVC_DISPATCH_CUDA(pad, a, n_pads, pads, mode, value);
  FSVC_CPU_LOWP("pad", FSVC_RECAST_SAME_DTYPE,
                fsvc_pad(FSVC_RECAST_ARG(0), n_pads, pads, mode, value), a);
  if (a->dtype != FSVC_FLOAT32 && a->dtype != FSVC_FLOAT64 && a->dtype != FSVC_INT64) {
    fsvc_set_error("pad: dtype %s is not supported (float32, float64, int64)", fsvc_dtype_name(a->dtype));
    return NULL;
  }
  pad_plan p;
  if (plan_build(&p, a->ndim, a->shape, n_pads, pads, mode) != 0) return NULL;
  fsvc_tensor *out = fsvc_empty(a->ndim, p.out_shape, a->dtype);
  if (!out) { plan_free(&p); return NULL; }
  if (a->ndim > 0 && fsvc_numel(out) > 0) {
    if (a->dtype == FSVC_FLOAT32) pad_forward_f32(&p, a, out, value);
    else if (a->dtype == FSVC_FLOAT64) pad_forward_f64(&p, a, out, value);
    else pad_forward_i64(&p, a, out, value);
  }
  plan_free(&p);

  fsvc_node *n = fsvc_node_new("pad", 1, (fsvc_tensor *[]){(fsvc_tensor *)a}, pad_backward);
  if (n) {
    pad_ctx *c = calloc(1, sizeof *c);
    if (!c) {
      fsvc_node_release(n);
      fsvc_tensor_release(out);
      fsvc_set_error("pad: out of memory");
      return NULL;
    }
    c->n_pads = n_pads;
    for (int i = 0; i < n_pads; i++) c->pads[i] = pads[i];
    c->mode = mode;
    n->ctx = c;
    n->ctx_free = free;
    fsvc_node_attach(n, out);
  }
  return out;
}
