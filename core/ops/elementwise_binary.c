/* Binary elementwise ops with broadcasting: add sub mul div pow maximum minimum (differentiable in
 * both operands), the comparisons eq ne lt le gt ge (no gradient), and in-place add_.
 *
 * Shapes: a [..A], b [..B] -> out [broadcast(A, B)], dtype fsvc_ew_result_dtype(a, b) (int64
 * operands of div/pow are computed in float32). Operands of another dtype are cast once, then
 * a row kernel runs over the broadcast iterator; its fast paths (contiguous, tensor op scalar,
 * scalar op tensor) are plain loops the compiler vectorises.
 */
#include <math.h>
#include <tgmath.h> /* exp/log/pow pick the float or double version from the argument type */

#include "fsvc/autocast.h"
#include "fsvc/device.h"
#include "fsvc/autograd.h"
#include "fsvc/error.h"
#include "fsvc/ops_elementwise.h"
#include "ops/broadcast.h"
#include "ops/elementwise_common.h"

/* ---- forward row kernels: out[i] = EXPR(x = a[i], y = b[i]) -------------------------------- */
#define BINARY_ROW(name, TYPE, EXPR)                                                               \
  static void name(char **p, const int64_t *s, int64_t n, void *ctx) {                             \
    typedef TYPE T;                                                                                \
    (void)ctx;                                                                                     \
    T *o = (T *)p[0];                                                                              \
    const T *A = (const T *)p[1], *B = (const T *)p[2];                                            \
    if (s[0] == 1 && s[1] == 1 && s[2] == 1) {                                                     \
      FSVC_SIMD for (int64_t i = 0; i < n; i++) {                                                  \
        const T x = A[i], y = B[i];                                                                \
        o[i] = (EXPR);                                                                             \
      }                                                                                            \
    } else if (s[0] == 1 && s[1] == 1 && s[2] == 0) {                                              \
      const T y = B[0];                                                                            \
      FSVC_SIMD for (int64_t i = 0; i < n; i++) {                                                  \
        const T x = A[i];                                                                          \
        o[i] = (EXPR);                                                                             \
      }                                                                                            \
    } else if (s[0] == 1 && s[1] == 0 && s[2] == 1) {                                              \
      const T x = A[0];                                                                            \
      FSVC_SIMD for (int64_t i = 0; i < n; i++) {                                                  \
        const T y = B[i];                                                                          \
        o[i] = (EXPR);                                                                             \
      }                                                                                            \
    } else {                                                                                       \
      for (int64_t i = 0; i < n; i++) {                                                            \
        const T x = A[i * s[1]], y = B[i * s[2]];                                                  \
        o[i * s[0]] = (EXPR);                                                                      \
      }                                                                                            \
    }                                                                                              \
  }

/* One op in float32, float64 and (where it has one) int64. */
#define BINARY_ROWS(op, FEXPR, IEXPR)                                                              \
  BINARY_ROW(op##_f32, float, FEXPR)                                                               \
  BINARY_ROW(op##_f64, double, FEXPR)                                                              \
  BINARY_ROW(op##_i64, int64_t, IEXPR)
#define BINARY_ROWS_FLOAT(op, FEXPR)                                                               \
  BINARY_ROW(op##_f32, float, FEXPR)                                                               \
  BINARY_ROW(op##_f64, double, FEXPR)

/* int64 arithmetic wraps around as in PyTorch (through uint64_t: signed overflow is undefined) */
#define WRAP(expr) ((int64_t)(expr))
BINARY_ROWS(add, x + y, WRAP((uint64_t)x + (uint64_t)y))
BINARY_ROWS(sub, x - y, WRAP((uint64_t)x - (uint64_t)y))
BINARY_ROWS(mul, x * y, WRAP((uint64_t)x * (uint64_t)y))
BINARY_ROWS_FLOAT(div, x / y)
BINARY_ROWS_FLOAT(pow, pow(x, y))
/* maximum/minimum propagate NaN from either side, as PyTorch does */
BINARY_ROWS(maximum, (x != x || x > y) ? x : y, x > y ? x : y)
BINARY_ROWS(minimum, (x != x || x < y) ? x : y, x < y ? x : y)
BINARY_ROWS(eq, (T)(x == y), (T)(x == y))
BINARY_ROWS(ne, (T)(x != y), (T)(x != y))
BINARY_ROWS(lt, (T)(x < y), (T)(x < y))
BINARY_ROWS(le, (T)(x <= y), (T)(x <= y))
BINARY_ROWS(gt, (T)(x > y), (T)(x > y))
BINARY_ROWS(ge, (T)(x >= y), (T)(x >= y))

/* ---- gradient row kernels: out[i] = EXPR(g = grad[i], x = a[i], y = b[i]) ------------------ */
#define GRAD_ROW(name, TYPE, EXPR)                                                                 \
  static void name(char **p, const int64_t *s, int64_t n, void *ctx) {                             \
    typedef TYPE T;                                                                                \
    (void)ctx;                                                                                     \
    T *o = (T *)p[0];                                                                              \
    const T *G = (const T *)p[1], *A = (const T *)p[2], *B = (const T *)p[3];                      \
    for (int64_t i = 0; i < n; i++) {                                                              \
      const T g = G[i * s[1]], x = A[i * s[2]], y = B[i * s[3]];                                   \
      o[i * s[0]] = (EXPR);                                                                        \
    }                                                                                              \
  }
#define GRAD_ROWS(name, EXPR)                                                                      \
  GRAD_ROW(name##_f32, float, EXPR)                                                                \
  GRAD_ROW(name##_f64, double, EXPR)

GRAD_ROWS(div_grad_b, -g * x / (y * y))
/* PyTorch: zero where the exponent is 0 (avoids 0 * inf at x == 0) */
GRAD_ROWS(pow_grad_a, y == 0 ? (T)0 : g * y * pow(x, y - 1))
/* d/dy x^y = x^y log x, taken as 0 at x == 0 for y >= 0 (the limit), as PyTorch does */
GRAD_ROWS(pow_grad_b, (x == 0 && y >= 0) ? (T)0 : g * pow(x, y) * log(x))
/* ties split the gradient evenly between the operands, as PyTorch does */
GRAD_ROWS(maximum_grad_a, x == y ? g / 2 : (x < y ? (T)0 : g))
GRAD_ROWS(maximum_grad_b, x == y ? g / 2 : (x > y ? (T)0 : g))
GRAD_ROWS(minimum_grad_a, x == y ? g / 2 : (x > y ? (T)0 : g))
GRAD_ROWS(minimum_grad_b, x == y ? g / 2 : (x < y ? (T)0 : g))

/* A gradient of g's shape (the broadcast shape) from g and the saved operands a, b (which have
 * g's dtype: forward saved them after casting). */
static fsvc_tensor *grad_full(fsvc_bcast_row_fn f32, fsvc_bcast_row_fn f64, const fsvc_tensor *g,
                              const fsvc_tensor *a, const fsvc_tensor *b, const char *op) {
  fsvc_tensor *gc = fsvc_ew_cast(g, a->dtype);
  if (!gc) return NULL;
  fsvc_tensor *out = fsvc_empty(gc->ndim, gc->shape, gc->dtype);
  fsvc_bcast_iter it;
  const fsvc_tensor *ops[4] = {out, gc, a, b};
  if (!out || fsvc_bcast_iter_init(&it, 4, ops, gc->ndim, gc->shape, op) != 0) {
    fsvc_tensor_release(out);
    fsvc_tensor_release(gc);
    return NULL;
  }
  fsvc_bcast_run(&it, gc->dtype == FSVC_FLOAT64 ? f64 : f32, NULL, FSVC_BCAST_PARALLEL_MIN / 4);
  fsvc_tensor_release(gc);
  return out;
}

/* ---- backward functions (saved[0] = a, saved[1] = b, both cast to the result dtype) --------- */
/* g itself summed to input i's shape, always as a fresh tensor: two leaves must never share one
 * gradient tensor (an in-place update of one would change the other). */
static fsvc_tensor *copy_reduced(const fsvc_tensor *g, const fsvc_edge *e) {
  int same = g->ndim == e->ndim;
  for (int d = 0; same && d < e->ndim; d++) same = g->shape[d] == e->shape[d];
  return same ? fsvc_clone_raw(g) : fsvc_sum_to_shape(g, e->ndim, e->shape);
}

#define NEEDS(i) (node->edges[i].needs_grad)
#define SAVED_A (node->saved[0])
#define SAVED_B (node->saved[1])
#define CHECK_GRADS() (((NEEDS(0) && !grad_in[0]) || (NEEDS(1) && !grad_in[1])) ? -1 : 0)

static int add_backward(fsvc_node *node, const fsvc_tensor *g, fsvc_tensor **grad_in) {
  if (NEEDS(0)) grad_in[0] = copy_reduced(g, &node->edges[0]);
  if (NEEDS(1)) grad_in[1] = copy_reduced(g, &node->edges[1]);
  return CHECK_GRADS();
}

static int sub_backward(fsvc_node *node, const fsvc_tensor *g, fsvc_tensor **grad_in) {
  if (NEEDS(0)) grad_in[0] = copy_reduced(g, &node->edges[0]);
  if (NEEDS(1)) grad_in[1] = fsvc_ew_reduce_grad(fsvc_neg(g), &node->edges[1]);
  return CHECK_GRADS();
}

static int mul_backward(fsvc_node *node, const fsvc_tensor *g, fsvc_tensor **grad_in) {
  if (NEEDS(0)) grad_in[0] = fsvc_ew_reduce_grad(fsvc_mul(g, SAVED_B), &node->edges[0]);
  if (NEEDS(1)) grad_in[1] = fsvc_ew_reduce_grad(fsvc_mul(g, SAVED_A), &node->edges[1]);
  return CHECK_GRADS();
}

static int div_backward(fsvc_node *node, const fsvc_tensor *g, fsvc_tensor **grad_in) {
  if (NEEDS(0)) grad_in[0] = fsvc_ew_reduce_grad(fsvc_div(g, SAVED_B), &node->edges[0]);
  if (NEEDS(1))
    grad_in[1] = fsvc_ew_reduce_grad(
        grad_full(div_grad_b_f32, div_grad_b_f64, g, SAVED_A, SAVED_B, "div"), &node->edges[1]);
  return CHECK_GRADS();
}

/* The exponent's gradient needs log(a): computed only when the exponent requires grad. */
static int pow_backward(fsvc_node *node, const fsvc_tensor *g, fsvc_tensor **grad_in) {
  if (NEEDS(0))
    grad_in[0] = fsvc_ew_reduce_grad(
        grad_full(pow_grad_a_f32, pow_grad_a_f64, g, SAVED_A, SAVED_B, "pow"), &node->edges[0]);
  if (NEEDS(1))
    grad_in[1] = fsvc_ew_reduce_grad(
        grad_full(pow_grad_b_f32, pow_grad_b_f64, g, SAVED_A, SAVED_B, "pow"), &node->edges[1]);
  return CHECK_GRADS();
}

static int maximum_backward(fsvc_node *node, const fsvc_tensor *g, fsvc_tensor **grad_in) {
  if (NEEDS(0))
    grad_in[0] = fsvc_ew_reduce_grad(
        grad_full(maximum_grad_a_f32, maximum_grad_a_f64, g, SAVED_A, SAVED_B, "maximum"),
        &node->edges[0]);
  if (NEEDS(1))
    grad_in[1] = fsvc_ew_reduce_grad(
        grad_full(maximum_grad_b_f32, maximum_grad_b_f64, g, SAVED_A, SAVED_B, "maximum"),
        &node->edges[1]);
  return CHECK_GRADS();
}

static int minimum_backward(fsvc_node *node, const fsvc_tensor *g, fsvc_tensor **grad_in) {
  if (NEEDS(0))
    grad_in[0] = fsvc_ew_reduce_grad(
        grad_full(minimum_grad_a_f32, minimum_grad_a_f64, g, SAVED_A, SAVED_B, "minimum"),
        &node->edges[0]);
  if (NEEDS(1))
    grad_in[1] = fsvc_ew_reduce_grad(
        grad_full(minimum_grad_b_f32, minimum_grad_b_f64, g, SAVED_A, SAVED_B, "minimum"),
        &node->edges[1]);
  return CHECK_GRADS();
}

/* ---- the op table and the shared forward ---------------------------------------------------- */
typedef struct {
  const char *name;
  fsvc_bcast_row_fn f32, f64, i64; /* i64 NULL: int64 operands are computed in float32 */
  fsvc_backward_fn backward;       /* NULL: no gradient (comparisons) */
  int save;                        /* the backward reads the operands */
} binary_op;

#define OP_INT(op, save) {#op, op##_f32, op##_f64, op##_i64, op##_backward, save}
#define OP_FLOAT(op, save) {#op, op##_f32, op##_f64, NULL, op##_backward, save}
#define OP_CMP(op) {#op, op##_f32, op##_f64, op##_i64, NULL, 0}
static const binary_op op_add = OP_INT(add, 0), op_sub = OP_INT(sub, 0), op_mul = OP_INT(mul, 1),
                       op_div = OP_FLOAT(div, 1), op_pow = OP_FLOAT(pow, 1),
                       op_maximum = OP_INT(maximum, 1), op_minimum = OP_INT(minimum, 1),
                       op_eq = OP_CMP(eq), op_ne = OP_CMP(ne), op_lt = OP_CMP(lt),
                       op_le = OP_CMP(le), op_gt = OP_CMP(gt), op_ge = OP_CMP(ge);

static fsvc_tensor *binary_forward(const binary_op *op, const fsvc_tensor *a,
                                   const fsvc_tensor *b) {
  /* float16/bfloat16 operands through float32; the result has the promoted dtype (float16 +
   * float32 is float32, float16 + float16 or + a number stays float16) */
  FSVC_CPU_LOWP(op->name, a && b ? fsvc_ew_result_dtype(a, b) : FSVC_RECAST_SAME_DTYPE,
                binary_forward(op, FSVC_RECAST_ARG(0), FSVC_RECAST_ARG(1)), a, b);
  if (fsvc_ew_check(op->name, a, "#1") != 0 || fsvc_ew_check(op->name, b, "#2") != 0) return NULL;
  fsvc_dtype dt = fsvc_ew_result_dtype(a, b);
  if (dt == FSVC_INT64 && !op->i64) dt = FSVC_FLOAT32;
  int nd;
  int64_t shape[FSVC_MAX_DIMS];
  const fsvc_tensor *ab[2] = {a, b};
  if (fsvc_broadcast_shape(2, ab, &nd, shape, op->name) != 0) return NULL;

  fsvc_tensor *ac = fsvc_ew_cast(a, dt), *bc = fsvc_ew_cast(b, dt);
  fsvc_tensor *out = ac && bc ? fsvc_empty(nd, shape, dt) : NULL;
  fsvc_bcast_iter it;
  const fsvc_tensor *ops[3] = {out, ac, bc};
  if (!out || fsvc_bcast_iter_init(&it, 3, ops, nd, shape, op->name) != 0) {
    fsvc_tensor_release(out);
    out = NULL;
    goto done;
  }
  fsvc_bcast_run(&it, dt == FSVC_FLOAT32 ? op->f32 : dt == FSVC_FLOAT64 ? op->f64 : op->i64, NULL,
                 FSVC_BCAST_PARALLEL_MIN);
  if (op->backward) {
    fsvc_tensor *inputs[2] = {(fsvc_tensor *)a, (fsvc_tensor *)b};
    fsvc_node *n = fsvc_node_new(op->name, 2, inputs, op->backward);
    if (n) {
      if (op->save) {
        fsvc_node_save(n, ac);
        fsvc_node_save(n, bc);
      }
      fsvc_node_attach(n, out);
    }
  }
done:
  fsvc_tensor_release(ac);
  fsvc_tensor_release(bc);
  return out;
}

fsvc_tensor *fsvc_add(const fsvc_tensor *a, const fsvc_tensor *b) {
  FSVC_DISPATCH_CUDA(add, a, b);
  return binary_forward(&op_add, a, b);
}
fsvc_tensor *fsvc_sub(const fsvc_tensor *a, const fsvc_tensor *b) {
  FSVC_DISPATCH_CUDA(sub, a, b);
  return binary_forward(&op_sub, a, b);
}
fsvc_tensor *fsvc_mul(const fsvc_tensor *a, const fsvc_tensor *b) {
  FSVC_DISPATCH_CUDA(mul, a, b);
  return binary_forward(&op_mul, a, b);
}
fsvc_tensor *fsvc_div(const fsvc_tensor *a, const fsvc_tensor *b) {
  FSVC_DISPATCH_CUDA(div, a, b);
  return binary_forward(&op_div, a, b);
}
fsvc_tensor *fsvc_pow(const fsvc_tensor *a, const fsvc_tensor *b) {
  FSVC_DISPATCH_CUDA(pow, a, b);
  return binary_forward(&op_pow, a, b);
}
fsvc_tensor *fsvc_maximum(const fsvc_tensor *a, const fsvc_tensor *b) {
  FSVC_DISPATCH_CUDA(maximum, a, b);
  return binary_forward(&op_maximum, a, b);
}
fsvc_tensor *fsvc_minimum(const fsvc_tensor *a, const fsvc_tensor *b) {
  FSVC_DISPATCH_CUDA(minimum, a, b);
  return binary_forward(&op_minimum, a, b);
}
fsvc_tensor *fsvc_eq(const fsvc_tensor *a, const fsvc_tensor *b) {
  FSVC_DISPATCH_CUDA(eq, a, b);
  return binary_forward(&op_eq, a, b);
}
fsvc_tensor *fsvc_ne(const fsvc_tensor *a, const fsvc_tensor *b) {
  FSVC_DISPATCH_CUDA(ne, a, b);
  return binary_forward(&op_ne, a, b);
}
fsvc_tensor *fsvc_lt(const fsvc_tensor *a, const fsvc_tensor *b) {
  FSVC_DISPATCH_CUDA(lt, a, b);
  return binary_forward(&op_lt, a, b);
}
fsvc_tensor *fsvc_le(const fsvc_tensor *a, const fsvc_tensor *b) {
  FSVC_DISPATCH_CUDA(le, a, b);
  return binary_forward(&op_le, a, b);
}
fsvc_tensor *fsvc_gt(const fsvc_tensor *a, const fsvc_tensor *b) {
  FSVC_DISPATCH_CUDA(gt, a, b);
  return binary_forward(&op_gt, a, b);
}
fsvc_tensor *fsvc_ge(const fsvc_tensor *a, const fsvc_tensor *b) {
  FSVC_DISPATCH_CUDA(ge, a, b);
  return binary_forward(&op_ge, a, b);
}

/* ---- in place: dst += alpha * src ----------------------------------------------------------- */
#define AXPY_ROW(name, TYPE, ALPHA)                                                                \
  static void name(char **p, const int64_t *s, int64_t n, void *ctx) {                             \
    typedef TYPE T;                                                                                \
    const fsvc_ew_params *prm = ctx;                                                               \
    const T alpha = (T)(ALPHA);                                                                    \
    T *o = (T *)p[0];                                                                              \
    const T *X = (const T *)p[1];                                                                  \
    if (s[0] == 1 && s[1] == 1) {                                                                  \
      FSVC_SIMD for (int64_t i = 0; i < n; i++) o[i] += alpha * X[i];                              \
    } else if (s[0] == 1 && s[1] == 0) {                                                           \
      const T v = alpha * X[0];                                                                    \
      FSVC_SIMD for (int64_t i = 0; i < n; i++) o[i] += v;                                         \
    } else {                                                                                       \
      for (int64_t i = 0; i < n; i++) o[i * s[0]] += alpha * X[i * s[1]];                          \
    }                                                                                              \
  }
AXPY_ROW(axpy_f32, float, prm->d[0])
AXPY_ROW(axpy_f64, double, prm->d[0])
static void axpy_i64(char **p, const int64_t *s, int64_t n, void *ctx) {
  const fsvc_ew_params *prm = ctx;
  int64_t *o = (int64_t *)p[0];
  const int64_t *X = (const int64_t *)p[1];
  for (int64_t i = 0; i < n; i++)
    o[i * s[0]] = (int64_t)((uint64_t)o[i * s[0]] + (uint64_t)(int64_t)(prm->d[0] * (double)X[i * s[1]]));
}

/* add_'s checks, the same on every device (made before the dispatch): dst writable, src alive
 * and broadcastable to dst's shape. */
static int check_add_(const fsvc_tensor *dst, const fsvc_tensor *src) {
  if (fsvc_ew_check_inplace("add_", dst) != 0) return -1;
  if (!src) {
    fsvc_set_error("add_: argument other is missing (NULL)");
    return -1;
  }
  if (!src->storage) {
    fsvc_set_error("add_: argument other: tensor was freed");
    return -1;
  }
  int ok = src->ndim <= dst->ndim;
  for (int d = 0; ok && d < src->ndim; d++) {
    int64_t s = src->shape[d], t = dst->shape[dst->ndim - src->ndim + d];
    if (s != t && s != 1) ok = 0;
  }
  if (!ok) {
    char a[128], b[128];
    fsvc_set_error("add_: other of shape %s cannot be broadcast to self's shape %s",
                   fsvc_shape_str(src, b, sizeof b), fsvc_shape_str(dst, a, sizeof a));
    return -1;
  }
  return 0;
}

int fsvc_add_(fsvc_tensor *dst, const fsvc_tensor *src, double alpha) {
  if (check_add_(dst, src) != 0) return -1;
  FSVC_DISPATCH_CUDA_INT(add_, dst, src, alpha);
  if (fsvc_ew_check_live("add_", src, "other") != 0) return -1;
  if (fsvc_dtype_is_16bit(src->dtype)) { /* through float32, as every 16-bit CPU op */
    fsvc_tensor *wide = fsvc_to_dtype_raw(src, FSVC_FLOAT32);
    int rc = wide ? fsvc_add_(dst, wide, alpha) : -1;
    fsvc_tensor_release(wide);
    return rc;
  }
  if (fsvc_dtype_is_16bit(dst->dtype)) { /* dst = round16(float32(dst) + alpha * src) */
    fsvc_tensor *wide = fsvc_to_dtype_raw(dst, FSVC_FLOAT32);
    int rc = wide ? fsvc_add_(wide, src, alpha) : -1;
    if (rc == 0) rc = fsvc_copy_(dst, wide);
    fsvc_tensor_release(wide);
    return rc;
  }
  if (fsvc_ew_check("add_", src, "other") != 0) return -1;
  fsvc_tensor *sc = fsvc_ew_cast(src, dst->dtype);
  if (!sc) return -1;
  fsvc_bcast_iter it;
  const fsvc_tensor *ops[2] = {dst, sc};
  int rc = fsvc_bcast_iter_init(&it, 2, ops, dst->ndim, dst->shape, "add_");
  if (rc == 0) {
    fsvc_ew_params prm = {{alpha, 0}, {0, 0}};
    fsvc_bcast_run(&it, dst->dtype == FSVC_FLOAT32 ? axpy_f32 : dst->dtype == FSVC_FLOAT64 ? axpy_f64 : axpy_i64,
                   &prm, FSVC_BCAST_PARALLEL_MIN);
  }
  fsvc_tensor_release(sc);
  return rc;
}

__attribute__((constructor)) static void register_ops(void) {
  const char *names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) fsvc_register_differentiable(names[i]);
}
