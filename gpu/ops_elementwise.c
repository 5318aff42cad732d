/* Elementwise ops on CUDA tensors: same names, dtype rules, broadcasting and autograd node kinds
 * as core/ops/elementwise_*.c and where.c. Forward and the derivative products are fused kernels
 * (elementwise.cu); gradients are summed back over broadcast dims by fsvc_ew_reduce_grad, which
 * dispatches to the device sum. */
#include <math.h>
#include <string.h>

#include "gpu_ops.h"
#include "ops/broadcast.h"
#include "ops/elementwise_common.h"

/* ---- binary ------------------------------------------------------------------------------------ */
typedef struct {
  const char *name;
  fsvc_gpu_binary_op op;
  int float_only;     /* div, pow: int64 operands compute in float32 */
  int differentiable; /* comparisons are not */
  fsvc_backward_fn backward;
} binary_def;

/* out = op(a, b) on the broadcast shape; g (optional) is the gradient operand of *_GRAD ops */
static fsvc_tensor *launch_binary(fsvc_gpu_binary_op op, const fsvc_tensor *a, const fsvc_tensor *b,
                                  const fsvc_tensor *g, int ndim, const int64_t *shape, fsvc_dtype dt,
                                  fsvc_device dev) {
  fsvc_tensor *out = fsvc_empty_on(ndim, shape, dt, dev);
  if (!out) return NULL;
  fsvc_gpu_geom og = fsvc_gpu_geom_of(out), ag = fsvc_gpu_geom_bcast(a, ndim, shape),
                bg = fsvc_gpu_geom_bcast(b, ndim, shape), gg = og;
  if (g) gg = fsvc_gpu_geom_bcast(g, ndim, shape);
  if (fsvc_gpu_binary_launch(op, dt, fsvc_data(out), &og, fsvc_data(a), &ag, fsvc_data(b), &bg,
                             g ? fsvc_data(g) : NULL, &gg) != 0) {
    fsvc_tensor_release(out);
    return NULL;
  }
  return out;
}

/* saved[0] = a, saved[1] = b (cast to the result dtype) */
static int grad_kernel_pair(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin,
                            fsvc_gpu_binary_op ga_op, fsvc_gpu_binary_op gb_op) {
  const fsvc_tensor *a = n->saved[0], *b = n->saved[1];
  fsvc_tensor *gc = fsvc_gpu_contig_as(g, a->dtype);
  if (!gc) return -1;
  fsvc_device dev = fsvc_tensor_device(g);
  for (int i = 0; i < 2; i++) {
    if (!n->edges[i].needs_grad) continue;
    fsvc_tensor *full = launch_binary(i == 0 ? ga_op : gb_op, a, b, gc, gc->ndim, gc->shape, a->dtype, dev);
    gin[i] = fsvc_ew_reduce_grad(full, &n->edges[i]);
    if (!gin[i]) { fsvc_tensor_release(gc); return -1; }
  }
  fsvc_tensor_release(gc);
  return 0;
}

static int add_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  for (int i = 0; i < 2; i++) {
    if (!n->edges[i].needs_grad) continue;
    fsvc_tensor *gi = (i == 1 && n->iarg[0]) ? fsvc_neg(g) : fsvc_clone_raw(g);
    gin[i] = fsvc_ew_reduce_grad(gi, &n->edges[i]);
    if (!gin[i]) return -1;
  }
  return 0;
}
static int mul_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  for (int i = 0; i < 2; i++) {
    if (!n->edges[i].needs_grad) continue;
    gin[i] = fsvc_ew_reduce_grad(fsvc_mul(g, n->saved[1 - i]), &n->edges[i]);
    if (!gin[i]) return -1;
  }
  return 0;
}
static int div_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (n->edges[0].needs_grad) {
    gin[0] = fsvc_ew_reduce_grad(fsvc_div(g, n->saved[1]), &n->edges[0]);
    if (!gin[0]) return -1;
  }
  if (n->edges[1].needs_grad) {
    int keep = n->edges[0].needs_grad;
    n->edges[0].needs_grad = 0; /* only b's kernel */
    int rc = grad_kernel_pair(n, g, gin, FSVC_GPU_DIV_GRAD_B, FSVC_GPU_DIV_GRAD_B);
    n->edges[0].needs_grad = keep;
    return rc;
  }
  return 0;
}
static int pow_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  return grad_kernel_pair(n, g, gin, FSVC_GPU_POW_GRAD_A, FSVC_GPU_POW_GRAD_B);
}
static int maximum_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  return grad_kernel_pair(n, g, gin, FSVC_GPU_MAXIMUM_GRAD_A, FSVC_GPU_MAXIMUM_GRAD_B);
}
static int minimum_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  return grad_kernel_pair(n, g, gin, FSVC_GPU_MINIMUM_GRAD_A, FSVC_GPU_MINIMUM_GRAD_B);
}

static fsvc_tensor *binary_forward(const binary_def *def, const fsvc_tensor *a, const fsvc_tensor *b) {
  if (!a || !b || !a->storage || !b->storage) {
    fsvc_set_error("%s: argument is missing or freed", def->name);
    return NULL;
  }
  fsvc_dtype dt = fsvc_ew_result_dtype(a, b);
  if (def->float_only && dt == FSVC_INT64) dt = FSVC_FLOAT32;
  const fsvc_tensor *pair[2] = {a, b};
  fsvc_device dev = fsvc_gpu_device_of(2, pair);
  int ndim;
  int64_t shape[FSVC_MAX_DIMS];
  if (fsvc_broadcast_shape(2, pair, &ndim, shape, def->name) != 0) return NULL;
  fsvc_tensor *ac = fsvc_gpu_operand(def->name, a, "a", dt, dev);
  fsvc_tensor *bc = ac ? fsvc_gpu_operand(def->name, b, "b", dt, dev) : NULL;
  fsvc_tensor *out = bc ? launch_binary(def->op, ac, bc, NULL, ndim, shape, dt, dev) : NULL;
  if (out && def->differentiable && fsvc_dtype_is_float(dt)) {
    fsvc_node *n = fsvc_node_new(def->name, 2, (fsvc_tensor *[]){(fsvc_tensor *)a, (fsvc_tensor *)b},
                                 def->backward);
    if (n) {
      fsvc_node_save(n, ac);
      fsvc_node_save(n, bc);
      n->iarg[0] = def->op == FSVC_GPU_SUB;
      fsvc_node_attach(n, out);
    }
  }
  fsvc_tensor_release(ac);
  fsvc_tensor_release(bc);
  return out;
}

#define BINARY(fname, OP, FLOAT_ONLY, DIFF, BW)                                                   \
  static fsvc_tensor *gpu_##fname(const fsvc_tensor *a, const fsvc_tensor *b) {                   \
    static const binary_def def = {#fname, OP, FLOAT_ONLY, DIFF, BW};                             \
    return binary_forward(&def, a, b);                                                            \
  }
BINARY(add, FSVC_GPU_ADD, 0, 1, add_backward)
BINARY(sub, FSVC_GPU_SUB, 0, 1, add_backward)
BINARY(mul, FSVC_GPU_MUL, 0, 1, mul_backward)
BINARY(div, FSVC_GPU_DIV, 1, 1, div_backward)
BINARY(pow, FSVC_GPU_POW, 1, 1, pow_backward)
BINARY(maximum, FSVC_GPU_MAXIMUM, 0, 1, maximum_backward)
BINARY(minimum, FSVC_GPU_MINIMUM, 0, 1, minimum_backward)
BINARY(eq, FSVC_GPU_EQ, 0, 0, NULL)
BINARY(ne, FSVC_GPU_NE, 0, 0, NULL)
BINARY(lt, FSVC_GPU_LT, 0, 0, NULL)
BINARY(le, FSVC_GPU_LE, 0, 0, NULL)
BINARY(gt, FSVC_GPU_GT, 0, 0, NULL)
BINARY(ge, FSVC_GPU_GE, 0, 0, NULL)

/* ---- unary ------------------------------------------------------------------------------------- */
/* saved[0] = x (contiguous), saved[1] = y; iarg[0] = op; farg = parameters */
static int unary_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  const fsvc_tensor *x = n->saved[0], *y = n->saved[1];
  fsvc_tensor *gc = fsvc_gpu_contig_as(g, x->dtype);
  fsvc_tensor *gx = gc ? fsvc_empty_like(x) : NULL;
  int rc = gx ? fsvc_gpu_unary_backward_launch((fsvc_gpu_unary_op)n->iarg[0], x->dtype, fsvc_data(gx),
                                               fsvc_data(gc), fsvc_data(x), fsvc_data(y),
                                               fsvc_numel(x), n->farg[0], n->farg[1])
              : -1;
  fsvc_tensor_release(gc);
  if (rc != 0) { fsvc_tensor_release(gx); return -1; }
  gin[0] = gx;
  return 0;
}

static fsvc_tensor *unary_forward(const char *name, fsvc_gpu_unary_op op, const fsvc_tensor *a,
                                  double p0, double p1, int int_ok) {
  if (fsvc_gpu_check_tensor(name, a, "input") != 0) return NULL;
  fsvc_dtype dt = a->dtype;
  if (dt == FSVC_INT64 && !int_ok) dt = FSVC_FLOAT32; /* exp/log/... of int64 promote, as the CPU */
  fsvc_tensor *x = fsvc_gpu_contig_as(a, dt);
  fsvc_tensor *y = x ? fsvc_empty_like(x) : NULL;
  if (!y || fsvc_gpu_unary_launch(op, dt, fsvc_data(y), fsvc_data(x), fsvc_numel(x), p0, p1) != 0) {
    fsvc_tensor_release(x);
    fsvc_tensor_release(y);
    return NULL;
  }
  if (fsvc_dtype_is_float(dt)) {
    fsvc_node *n = fsvc_node_new(name, 1, (fsvc_tensor *[]){(fsvc_tensor *)a}, unary_backward);
    if (n) {
      fsvc_node_save(n, x);
      fsvc_node_save(n, y);
      n->iarg[0] = op;
      n->farg[0] = p0;
      n->farg[1] = p1;
      fsvc_node_attach(n, y);
    }
  }
  fsvc_tensor_release(x);
  return y;
}

#define UNARY(fname, OP, INT_OK)                                                                  \
  static fsvc_tensor *gpu_##fname(const fsvc_tensor *a) { return unary_forward(#fname, OP, a, 0, 0, INT_OK); }
UNARY(neg, FSVC_GPU_NEG, 1)
UNARY(abs, FSVC_GPU_ABS, 1)
UNARY(exp, FSVC_GPU_EXP, 0)
UNARY(log, FSVC_GPU_LOG, 0)
UNARY(sqrt, FSVC_GPU_SQRT, 0)
UNARY(sin, FSVC_GPU_SIN, 0)
UNARY(cos, FSVC_GPU_COS, 0)
UNARY(tanh, FSVC_GPU_TANH, 0)
UNARY(sigmoid, FSVC_GPU_SIGMOID, 0)
UNARY(relu, FSVC_GPU_RELU, 1)
UNARY(gelu, FSVC_GPU_GELU, 0)

static fsvc_tensor *gpu_leaky_relu(const fsvc_tensor *a, double slope) {
  return unary_forward("leaky_relu", FSVC_GPU_LEAKY_RELU, a, slope, 0, 0);
}
static fsvc_tensor *gpu_clamp(const fsvc_tensor *a, double lo, double hi) {
  return unary_forward("clamp", FSVC_GPU_CLAMP, a, lo, hi, 1);
}

/* ---- where / masked_fill ------------------------------------------------------------------------- */
static fsvc_tensor *where_raw(const fsvc_tensor *cond, const fsvc_tensor *a, const fsvc_tensor *b,
                              fsvc_dtype dt, fsvc_device dev, const char *op) {
  const fsvc_tensor *three[3] = {cond, a, b};
  int ndim;
  int64_t shape[FSVC_MAX_DIMS];
  if (fsvc_broadcast_shape(3, three, &ndim, shape, op) != 0) return NULL;
  fsvc_tensor *cc = fsvc_gpu_selector(op, cond, "condition", dev);
  fsvc_tensor *ac = cc ? fsvc_gpu_operand(op, a, "a", dt, dev) : NULL;
  fsvc_tensor *bc = ac ? fsvc_gpu_operand(op, b, "b", dt, dev) : NULL;
  fsvc_tensor *out = bc ? fsvc_empty_on(ndim, shape, dt, dev) : NULL;
  if (out) {
    fsvc_gpu_geom og = fsvc_gpu_geom_of(out), cg = fsvc_gpu_geom_bcast(cc, ndim, shape),
                  ag = fsvc_gpu_geom_bcast(ac, ndim, shape), bg = fsvc_gpu_geom_bcast(bc, ndim, shape);
    if (fsvc_gpu_where_launch(dt, fsvc_data(out), &og, fsvc_data(cc), cc->dtype, &cg, fsvc_data(ac),
                              &ag, fsvc_data(bc), &bg) != 0) {
      fsvc_tensor_release(out);
      out = NULL;
    }
  }
  fsvc_tensor_release(cc);
  fsvc_tensor_release(ac);
  fsvc_tensor_release(bc);
  return out;
}

/* saved[0] = cond (or mask); iarg[0] = 1 for masked_fill, whose edges are (a, mask) and whose
 * input is taken where the mask is false */
static int where_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  fsvc_device dev = fsvc_tensor_device(g);
  fsvc_tensor *zero = fsvc_zeros_on(0, NULL, g->dtype, dev);
  if (!zero) return -1;
  int rc = 0;
  if (n->iarg[0]) {
    if (n->edges[0].needs_grad) {
      gin[0] = fsvc_ew_reduce_grad(where_raw(n->saved[0], zero, g, g->dtype, dev, "masked_fill"), &n->edges[0]);
      if (!gin[0]) rc = -1;
    }
  } else {
    for (int i = 1; i <= 2 && rc == 0; i++) {
      if (!n->edges[i].needs_grad) continue;
      fsvc_tensor *full = i == 1 ? where_raw(n->saved[0], g, zero, g->dtype, dev, "where")
                                 : where_raw(n->saved[0], zero, g, g->dtype, dev, "where");
      gin[i] = fsvc_ew_reduce_grad(full, &n->edges[i]);
      if (!gin[i]) rc = -1;
    }
  }
  fsvc_tensor_release(zero);
  return rc;
}

/* where's and masked_fill's node: the selector saved on the device; iarg[0] = 1 for masked_fill */
static void attach_where_node(const char *op, int n_in, fsvc_tensor **inputs, const fsvc_tensor *selector,
                              const char *selector_name, int is_masked_fill, fsvc_tensor *out, fsvc_device dev) {
  fsvc_node *n = fsvc_node_new(op, n_in, inputs, where_backward);
  if (!n) return;
  fsvc_tensor *sel = fsvc_gpu_selector(op, selector, selector_name, dev);
  fsvc_node_save(n, sel);
  fsvc_tensor_release(sel);
  n->iarg[0] = is_masked_fill;
  fsvc_node_attach(n, out);
}

static fsvc_tensor *gpu_where(const fsvc_tensor *cond, const fsvc_tensor *a, const fsvc_tensor *b) {
  if (!cond || !a || !b || !cond->storage || !a->storage || !b->storage) {
    fsvc_set_error("where: argument is missing or freed");
    return NULL;
  }
  const fsvc_tensor *three[3] = {cond, a, b};
  fsvc_device dev = fsvc_gpu_device_of(3, three);
  fsvc_dtype dt = fsvc_ew_result_dtype(a, b);
  fsvc_tensor *out = where_raw(cond, a, b, dt, dev, "where");
  if (out && fsvc_dtype_is_float(dt))
    attach_where_node("where", 3, (fsvc_tensor *[]){(fsvc_tensor *)cond, (fsvc_tensor *)a, (fsvc_tensor *)b},
                      cond, "condition", 0, out, dev);
  return out;
}

static fsvc_tensor *gpu_masked_fill(const fsvc_tensor *a, const fsvc_tensor *mask, double value) {
  if (fsvc_gpu_check_tensor("masked_fill", a, "input") != 0) return NULL;
  if (!mask || !mask->storage) { fsvc_set_error("masked_fill: mask is missing or freed"); return NULL; }
  fsvc_device dev = a->storage->device;
  fsvc_tensor *v = fsvc_full_on(0, NULL, value, a->dtype, dev);
  fsvc_tensor *out = v ? where_raw(mask, v, a, a->dtype, dev, "masked_fill") : NULL;
  fsvc_tensor_release(v);
  /* the mask may broadcast the input, as on the CPU; the gradient is summed back to its shape */
  if (out && fsvc_dtype_is_float(a->dtype))
    attach_where_node("masked_fill", 2, (fsvc_tensor *[]){(fsvc_tensor *)a, (fsvc_tensor *)mask}, mask, "mask", 1,
                      out, dev);
  return out;
}

/* ---- in place ------------------------------------------------------------------------------------ */
/* dst writable and src broadcastable: checked by core/ops before the dispatch, the same on both
 * devices (fsvc_ew_check_inplace, check_add_) */
static int gpu_add_(fsvc_tensor *dst, const fsvc_tensor *src, double alpha) {
  if (fsvc_gpu_check_tensor("add_", dst, "self") != 0) return -1;
  fsvc_tensor *sc = fsvc_gpu_operand("add_", src, "other", dst->dtype, dst->storage->device);
  if (!sc) return -1;
  fsvc_gpu_geom dg = fsvc_gpu_geom_of(dst), sg = fsvc_gpu_geom_bcast(sc, dst->ndim, dst->shape);
  int rc = fsvc_gpu_axpy_launch(dst->dtype, fsvc_data(dst), &dg, fsvc_data(sc), &sg, alpha);
  fsvc_tensor_release(sc);
  return rc;
}

static int gpu_mul_scalar_(fsvc_tensor *dst, double s) {
  if (!fsvc_is_contiguous(dst)) { /* through a contiguous copy */
    fsvc_tensor *c = fsvc_clone_raw(dst);
    int rc = c ? fsvc_gpu_unary_launch(FSVC_GPU_MUL_SCALAR, c->dtype, fsvc_data(c), fsvc_data(c),
                                       fsvc_numel(c), s, 0) : -1;
    if (rc == 0) rc = fsvc_copy_(dst, c);
    fsvc_tensor_release(c);
    return rc;
  }
  return fsvc_gpu_unary_launch(FSVC_GPU_MUL_SCALAR, dst->dtype, fsvc_data(dst), fsvc_data(dst),
                               fsvc_numel(dst), s, 0);
}

void fsvc_gpu_fill_elementwise(fsvc_cuda_op_table *t) {
  t->add = gpu_add; t->sub = gpu_sub; t->mul = gpu_mul; t->div = gpu_div; t->pow = gpu_pow;
  t->maximum = gpu_maximum; t->minimum = gpu_minimum;
  t->eq = gpu_eq; t->ne = gpu_ne; t->lt = gpu_lt; t->le = gpu_le; t->gt = gpu_gt; t->ge = gpu_ge;
  t->neg = gpu_neg; t->abs = gpu_abs; t->exp = gpu_exp; t->log = gpu_log; t->sqrt = gpu_sqrt;
  t->sin = gpu_sin; t->cos = gpu_cos; t->tanh = gpu_tanh; t->sigmoid = gpu_sigmoid;
  t->relu = gpu_relu; t->gelu = gpu_gelu; t->leaky_relu = gpu_leaky_relu; t->clamp = gpu_clamp;
  t->where = gpu_where; t->masked_fill = gpu_masked_fill;
  t->add_ = gpu_add_; t->mul_scalar_ = gpu_mul_scalar_;
}
