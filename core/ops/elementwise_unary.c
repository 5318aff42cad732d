/* Unary elementwise ops: neg abs exp log sqrt sin cos tanh sigmoid relu gelu leaky_relu clamp,
 * all differentiable, and in-place mul_scalar_.
 *
 * Shapes: x [..] -> out [..], same dtype; int64 input keeps int64 for neg, abs, relu and clamp
 * and is computed in float32 by the others. Each op is a row kernel for the forward and a fused
 * one for the backward (grad_in = grad_out * f'(v) in one pass, v the saved input or output), so
 * a leaky_relu over a [16, 24, 24000] activation costs one read and one write each way.
 */
#include <math.h>
#include <tgmath.h> /* exp/erf/... pick the float or double version from the argument type */

#include "fsvc/device.h"
#include "fsvc/autograd.h"
#include "fsvc/error.h"
#include "fsvc/ops_elementwise.h"
#include "ops/broadcast.h"
#include "ops/elementwise_common.h"

/* Lets GCC if-convert (and so vectorise) the selects inside fast_math.h's functions: under the
 * default -ftrapping-math it keeps them as branches. fsvc never reads floating-point exception
 * flags, so nothing observable changes. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include "ops/fast_math.h"

/* float32 uses the vectorisable approximations of fast_math.h, float64 keeps libm */
#define EXP(x) _Generic((x), float: fsvc_expf_fast, default: exp)(x)
#define TANH(x) _Generic((x), float: fsvc_tanhf_fast, default: tanh)(x)
#define ERF(x) _Generic((x), float: fsvc_erff_fast, default: erf)(x)

/* The op's scalar parameters in the kernel's type: p0, p1 (slope, clamp bounds). */
#define PARAM(T, k) ((T)_Generic((T)0, int64_t: prm->i[k], default: prm->d[k]))

/* ---- forward row kernels: out[i] = EXPR(x = in[i]) ------------------------------------------ */
#define UNARY_ROW(name, TYPE, EXPR)                                                                \
  static void name(char **p, const int64_t *s, int64_t n, void *ctx) {                             \
    typedef TYPE T;                                                                                \
    const fsvc_ew_params *prm = ctx;                                                               \
    const T p0 = PARAM(T, 0), p1 = PARAM(T, 1);                                                    \
    (void)p0;                                                                                      \
    (void)p1;                                                                                      \
    T *o = (T *)p[0];                                                                              \
    const T *X = (const T *)p[1];                                                                  \
    if (s[0] == 1 && s[1] == 1) {                                                                  \
      FSVC_SIMD for (int64_t i = 0; i < n; i++) {                                                  \
        const T x = X[i];                                                                          \
        o[i] = (EXPR);                                                                             \
      }                                                                                            \
    } else {                                                                                       \
      for (int64_t i = 0; i < n; i++) {                                                            \
        const T x = X[i * s[1]];                                                                   \
        o[i * s[0]] = (EXPR);                                                                      \
      }                                                                                            \
    }                                                                                              \
  }

/* ---- backward row kernels: out[i] = EXPR(g = grad[i], v = saved[i]) ------------------------ */
#define GRAD_ROW(name, TYPE, EXPR)                                                                 \
  static void name(char **p, const int64_t *s, int64_t n, void *ctx) {                             \
    typedef TYPE T;                                                                                \
    const fsvc_ew_params *prm = ctx;                                                               \
    const T p0 = PARAM(T, 0), p1 = PARAM(T, 1);                                                    \
    (void)p0;                                                                                      \
    (void)p1;                                                                                      \
    T *o = (T *)p[0];                                                                              \
    const T *G = (const T *)p[1], *V = (const T *)p[2];                                            \
    if (s[0] == 1 && s[1] == 1 && s[2] == 1) {                                                     \
      FSVC_SIMD for (int64_t i = 0; i < n; i++) {                                                  \
        const T g = G[i], v = V[i];                                                                \
        (void)v;                                                                                   \
        o[i] = (EXPR);                                                                             \
      }                                                                                            \
    } else {                                                                                       \
      for (int64_t i = 0; i < n; i++) {                                                            \
        const T g = G[i * s[1]], v = V[i * s[2]];                                                  \
        (void)v;                                                                                   \
        o[i * s[0]] = (EXPR);                                                                      \
      }                                                                                            \
    }                                                                                              \
  }

/* An op: forward in float32/float64 (and int64 when IEXPR is given), backward in float types.
 * SAVE_OUT says whether the backward's v is the output (1) or the input (0). */
#define UNARY_FLOAT(op, FEXPR, GEXPR, SAVE_OUT)                                                    \
  UNARY_ROW(op##_f32, float, FEXPR)                                                                \
  UNARY_ROW(op##_f64, double, FEXPR)                                                               \
  GRAD_ROW(op##_g32, float, GEXPR)                                                                 \
  GRAD_ROW(op##_g64, double, GEXPR)                                                                \
  static const unary_op op_##op = {#op, op##_f32, op##_f64, NULL, op##_g32, op##_g64, SAVE_OUT};
#define UNARY_INT(op, FEXPR, IEXPR, GEXPR, SAVE_OUT)                                               \
  UNARY_ROW(op##_f32, float, FEXPR)                                                                \
  UNARY_ROW(op##_f64, double, FEXPR)                                                               \
  UNARY_ROW(op##_i64, int64_t, IEXPR)                                                              \
  GRAD_ROW(op##_g32, float, GEXPR)                                                                 \
  GRAD_ROW(op##_g64, double, GEXPR)                                                                \
  static const unary_op op_##op = {#op, op##_f32, op##_f64, op##_i64, op##_g32, op##_g64, SAVE_OUT};

typedef struct {
  const char *name;
  fsvc_bcast_row_fn f32, f64, i64; /* i64 NULL: int64 input is computed in float32 */
  fsvc_bcast_row_fn g32, g64;
  int save_output;
} unary_op;

#define INV_SQRT_2PI 0.39894228040143267794 /* 1 / sqrt(2 pi) */
#define INV_SQRT_2 0.70710678118654752440   /* 1 / sqrt(2) */

/* int64 negation through uint64_t: -INT64_MIN is undefined in C, wraps in PyTorch */
#define INEG(x) ((int64_t)(0 - (uint64_t)(x)))
UNARY_INT(neg, -x, INEG(x), -g, 0)
UNARY_INT(abs, fabs(x), (x < 0 ? INEG(x) : x), v > 0 ? g : (v < 0 ? -g : (T)0), 0)
UNARY_FLOAT(exp, EXP(x), g * v, 1)
UNARY_FLOAT(log, log(x), g / v, 0)
UNARY_FLOAT(sqrt, sqrt(x), g / (2 * v), 1)
UNARY_FLOAT(sin, sin(x), g * cos(v), 0)
UNARY_FLOAT(cos, cos(x), -g * sin(v), 0)
UNARY_FLOAT(tanh, TANH(x), g * (1 - v * v), 1)
UNARY_FLOAT(sigmoid, 1 / (1 + EXP(-x)), g * v * (1 - v), 1)
/* relu keeps NaN (x < 0 is false for NaN); its gradient reads the output, as PyTorch's does */
UNARY_INT(relu, x < 0 ? (T)0 : x, x < 0 ? 0 : x, v > 0 ? g : (T)0, 1)
/* exact GELU: x * Phi(x); d/dx = Phi(x) + x * phi(x) */
UNARY_FLOAT(gelu, x * (T)0.5 * (1 + ERF(x * (T)INV_SQRT_2)),
            g * ((T)0.5 * (1 + ERF(v * (T)INV_SQRT_2)) + v * (T)INV_SQRT_2PI * EXP(-(T)0.5 * v * v)),
            0)
UNARY_FLOAT(leaky_relu, x > 0 ? x : x * p0, v > 0 ? g : g * p0, 0)
/* clamp = min(max(x, lo), hi): NaN stays NaN, and lo > hi gives hi everywhere, as in PyTorch;
 * the gradient passes where lo <= x <= hi */
#define CLAMP(x) ((x < p0 ? p0 : x) > p1 ? p1 : (x < p0 ? p0 : x))
UNARY_INT(clamp, CLAMP(x), CLAMP(x), (v >= p0 && v <= p1) ? g : (T)0, 0)

/* ---- backward and forward ------------------------------------------------------------------- */
static int unary_backward(fsvc_node *node, const fsvc_tensor *g, fsvc_tensor **grad_in) {
  const unary_op *op = node->ctx;
  const fsvc_tensor *v = node->saved[0];
  if (!node->edges[0].needs_grad) return 0;
  fsvc_tensor *gc = fsvc_ew_cast(g, v->dtype);
  fsvc_tensor *out = gc ? fsvc_empty(v->ndim, v->shape, v->dtype) : NULL;
  fsvc_bcast_iter it;
  const fsvc_tensor *ops[3] = {out, gc, v};
  if (!out || fsvc_bcast_iter_init(&it, 3, ops, v->ndim, v->shape, op->name) != 0) {
    fsvc_tensor_release(gc);
    fsvc_tensor_release(out);
    return -1;
  }
  fsvc_ew_params prm = {{node->farg[0], node->farg[1]}, {0, 0}};
  fsvc_bcast_run(&it, v->dtype == FSVC_FLOAT64 ? op->g64 : op->g32, &prm, FSVC_BCAST_PARALLEL_MIN);
  fsvc_tensor_release(gc);
  grad_in[0] = out;
  return 0;
}

/* int64 bounds for clamp on int64 tensors: inclusive integers inside [lo, hi], saturated. */
static int64_t to_int_bound(double v, int is_lo) {
  if (v != v) return 0;
  v = is_lo ? ceil(v) : floor(v);
  if (v <= -9.2233720368547758e18) return INT64_MIN;
  if (v >= 9.2233720368547758e18) return INT64_MAX;
  return (int64_t)v;
}

static fsvc_tensor *unary_forward(const unary_op *op, const fsvc_tensor *a, double p0, double p1) {
  FSVC_CPU_LOWP(op->name, FSVC_RECAST_SAME_DTYPE,
                unary_forward(op, FSVC_RECAST_ARG(0), p0, p1), a);
  if (fsvc_ew_check(op->name, a, "self") != 0) return NULL;
  fsvc_dtype dt = a->dtype == FSVC_INT64 && !op->i64 ? FSVC_FLOAT32 : a->dtype;
  fsvc_tensor *ac = fsvc_ew_cast(a, dt);
  fsvc_tensor *out = ac ? fsvc_empty(a->ndim, a->shape, dt) : NULL;
  fsvc_bcast_iter it;
  const fsvc_tensor *ops[2] = {out, ac};
  if (!out || fsvc_bcast_iter_init(&it, 2, ops, a->ndim, a->shape, op->name) != 0) {
    fsvc_tensor_release(ac);
    fsvc_tensor_release(out);
    return NULL;
  }
  fsvc_ew_params prm = {{p0, p1}, {to_int_bound(p0, 1), to_int_bound(p1, 0)}};
  fsvc_bcast_run(&it, dt == FSVC_FLOAT32 ? op->f32 : dt == FSVC_FLOAT64 ? op->f64 : op->i64, &prm,
                 FSVC_BCAST_PARALLEL_MIN);
  fsvc_tensor *inputs[1] = {(fsvc_tensor *)a};
  fsvc_node *n = fsvc_node_new(op->name, 1, inputs, unary_backward);
  if (n) {
    fsvc_node_save(n, op->save_output ? out : ac);
    n->ctx = (void *)op; /* static descriptor: no ctx_free */
    n->farg[0] = p0;
    n->farg[1] = p1;
    fsvc_node_attach(n, out);
  }
  fsvc_tensor_release(ac);
  return out;
}

fsvc_tensor *fsvc_neg(const fsvc_tensor *a) {
  FSVC_DISPATCH_CUDA(neg, a);
  return unary_forward(&op_neg, a, 0, 0);
}
fsvc_tensor *fsvc_abs(const fsvc_tensor *a) {
  FSVC_DISPATCH_CUDA(abs, a);
  return unary_forward(&op_abs, a, 0, 0);
}
fsvc_tensor *fsvc_exp(const fsvc_tensor *a) {
  FSVC_DISPATCH_CUDA(exp, a);
  return unary_forward(&op_exp, a, 0, 0);
}
fsvc_tensor *fsvc_log(const fsvc_tensor *a) {
  FSVC_DISPATCH_CUDA(log, a);
  return unary_forward(&op_log, a, 0, 0);
}
fsvc_tensor *fsvc_sqrt(const fsvc_tensor *a) {
  FSVC_DISPATCH_CUDA(sqrt, a);
  return unary_forward(&op_sqrt, a, 0, 0);
}
fsvc_tensor *fsvc_sin(const fsvc_tensor *a) {
  FSVC_DISPATCH_CUDA(sin, a);
  return unary_forward(&op_sin, a, 0, 0);
}
fsvc_tensor *fsvc_cos(const fsvc_tensor *a) {
  FSVC_DISPATCH_CUDA(cos, a);
  return unary_forward(&op_cos, a, 0, 0);
}
fsvc_tensor *fsvc_tanh(const fsvc_tensor *a) {
  FSVC_DISPATCH_CUDA(tanh, a);
  return unary_forward(&op_tanh, a, 0, 0);
}
fsvc_tensor *fsvc_sigmoid(const fsvc_tensor *a) {
  FSVC_DISPATCH_CUDA(sigmoid, a);
  return unary_forward(&op_sigmoid, a, 0, 0);
}
fsvc_tensor *fsvc_relu(const fsvc_tensor *a) {
  FSVC_DISPATCH_CUDA(relu, a);
  return unary_forward(&op_relu, a, 0, 0);
}
fsvc_tensor *fsvc_gelu(const fsvc_tensor *a) {
  FSVC_DISPATCH_CUDA(gelu, a);
  return unary_forward(&op_gelu, a, 0, 0);
}

/* The value checks of leaky_relu, clamp and mul_ come before the dispatch: the same on every
 * device. */
fsvc_tensor *fsvc_leaky_relu(const fsvc_tensor *a, double negative_slope) {
  if (!isfinite(negative_slope)) {
    fsvc_set_error("leaky_relu: negative_slope must be a finite number (got %g)", negative_slope);
    return NULL;
  }
  FSVC_DISPATCH_CUDA(leaky_relu, a, negative_slope);
  return unary_forward(&op_leaky_relu, a, negative_slope, 0);
}

fsvc_tensor *fsvc_clamp(const fsvc_tensor *a, double min, double max) {
  if (min != min || max != max) {
    fsvc_set_error("clamp: bounds must not be NaN (min %g, max %g); use -inf/inf for no bound",
                   min, max);
    return NULL;
  }
  FSVC_DISPATCH_CUDA(clamp, a, min, max);
  return unary_forward(&op_clamp, a, min, max);
}

/* ---- in place: dst *= s --------------------------------------------------------------------- */
#define SCALE_ROW(name, TYPE, MUL)                                                                 \
  static void name(char **p, const int64_t *s, int64_t n, void *ctx) {                             \
    typedef TYPE T;                                                                                \
    const fsvc_ew_params *prm = ctx;                                                               \
    T *o = (T *)p[0];                                                                              \
    if (s[0] == 1) {                                                                               \
      FSVC_SIMD for (int64_t i = 0; i < n; i++) o[i] = MUL(o[i]);                                  \
    } else {                                                                                       \
      for (int64_t i = 0; i < n; i++) o[i * s[0]] = MUL(o[i * s[0]]);                              \
    }                                                                                              \
  }
#define MUL_F32(x) ((x) * (float)prm->d[0])
#define MUL_F64(x) ((x) * prm->d[0])
#define MUL_I64(x) ((int64_t)((double)(x) * prm->d[0]))
SCALE_ROW(scale_f32, float, MUL_F32)
SCALE_ROW(scale_f64, double, MUL_F64)
SCALE_ROW(scale_i64, int64_t, MUL_I64)

int fsvc_mul_scalar_(fsvc_tensor *dst, double s) {
  if (fsvc_ew_check_inplace("mul_", dst) != 0) return -1;
  FSVC_DISPATCH_CUDA_INT(mul_scalar_, dst, s);
  if (fsvc_dtype_is_16bit(dst->dtype)) { /* dst = round16(float32(dst) * s) */
    fsvc_tensor *wide = fsvc_to_dtype_raw(dst, FSVC_FLOAT32);
    int rc = wide ? fsvc_mul_scalar_(wide, s) : -1;
    if (rc == 0) rc = fsvc_copy_(dst, wide);
    fsvc_tensor_release(wide);
    return rc;
  }
  fsvc_bcast_iter it;
  const fsvc_tensor *ops[1] = {dst};
  if (fsvc_bcast_iter_init(&it, 1, ops, dst->ndim, dst->shape, "mul_") != 0) return -1;
  fsvc_ew_params prm = {{s, 0}, {0, 0}};
  fsvc_bcast_run(&it, dst->dtype == FSVC_FLOAT32 ? scale_f32 : dst->dtype == FSVC_FLOAT64 ? scale_f64 : scale_i64,
                 &prm, FSVC_BCAST_PARALLEL_MIN);
  return 0;
}

__attribute__((constructor)) static void register_ops(void) {
  const char *names[] = {"neg", "abs", "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid",
                         "relu", "gelu", "leaky_relu", "clamp"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) fsvc_register_differentiable(names[i]);
}
