/* Selection: where(cond, a, b) and masked_fill(a, mask, value).
 *
 * Shapes: cond [..C], a [..A], b [..B] -> out [broadcast(C, A, B)], dtype fsvc_ew_result_dtype(a, b).
 * cond may be any dtype; nonzero (NaN included) selects a. Gradients flow to a where cond is
 * true and to b where it is false (masked_fill: to a where the mask is false).
 */
#include "fsvc/device.h"
#include "fsvc/autograd.h"
#include "fsvc/error.h"
#include "fsvc/ops_elementwise.h"
#include "ops/broadcast.h"
#include "ops/elementwise_common.h"

/* out[i] = cond[i] != 0 ? a[i] : b[i], one kernel per (cond dtype, value dtype) */
#define WHERE_ROW(name, CTYPE, TYPE)                                                               \
  static void name(char **p, const int64_t *s, int64_t n, void *ctx) {                             \
    (void)ctx;                                                                                     \
    TYPE *o = (TYPE *)p[0];                                                                        \
    const CTYPE *C = (const CTYPE *)p[1];                                                          \
    const TYPE *A = (const TYPE *)p[2], *B = (const TYPE *)p[3];                                   \
    if (s[0] == 1 && s[1] == 1 && s[2] == 1 && s[3] == 1) {                                        \
      FSVC_SIMD for (int64_t i = 0; i < n; i++) o[i] = C[i] != 0 ? A[i] : B[i];                    \
    } else {                                                                                       \
      for (int64_t i = 0; i < n; i++) o[i * s[0]] = C[i * s[1]] != 0 ? A[i * s[2]] : B[i * s[3]];  \
    }                                                                                              \
  }
#define WHERE_ROWS(cname, CTYPE)                                                                   \
  WHERE_ROW(where_##cname##_f32, CTYPE, float)                                                     \
  WHERE_ROW(where_##cname##_f64, CTYPE, double)                                                    \
  WHERE_ROW(where_##cname##_i64, CTYPE, int64_t)
WHERE_ROWS(cf32, float)
WHERE_ROWS(cf64, double)
WHERE_ROWS(ci64, int64_t)

/* [cond dtype][value dtype], both indexed by fsvc_dtype (float32, float64, int64) */
static const fsvc_bcast_row_fn where_kernels[3][3] = {
    {where_cf32_f32, where_cf32_f64, where_cf32_i64},
    {where_cf64_f32, where_cf64_f64, where_cf64_i64},
    {where_ci64_f32, where_ci64_f64, where_ci64_i64},
};

fsvc_tensor *fsvc_ew_where_raw(const fsvc_tensor *cond, const fsvc_tensor *a,
                               const fsvc_tensor *b, const char *op) {
  if (fsvc_ew_check(op, cond, "condition") != 0 || fsvc_ew_check(op, a, "input") != 0 ||
      fsvc_ew_check(op, b, "other") != 0)
    return NULL;
  fsvc_dtype dt = fsvc_ew_result_dtype(a, b);
  int nd;
  int64_t shape[FSVC_MAX_DIMS];
  const fsvc_tensor *all[3] = {cond, a, b};
  if (fsvc_broadcast_shape(3, all, &nd, shape, op) != 0) return NULL;
  fsvc_tensor *ac = fsvc_ew_cast(a, dt), *bc = fsvc_ew_cast(b, dt);
  fsvc_tensor *out = ac && bc ? fsvc_empty(nd, shape, dt) : NULL;
  fsvc_bcast_iter it;
  const fsvc_tensor *ops[4] = {out, cond, ac, bc};
  if (out && fsvc_bcast_iter_init(&it, 4, ops, nd, shape, op) == 0) {
    fsvc_bcast_run(&it, where_kernels[cond->dtype][dt], NULL, FSVC_BCAST_PARALLEL_MIN);
  } else {
    fsvc_tensor_release(out);
    out = NULL;
  }
  fsvc_tensor_release(ac);
  fsvc_tensor_release(bc);
  return out;
}

/* saved[0] = cond */
static int where_backward(fsvc_node *node, const fsvc_tensor *g, fsvc_tensor **grad_in) {
  fsvc_tensor *zero = fsvc_scalar(0, g->dtype);
  if (!zero) return -1;
  if (node->edges[1].needs_grad)
    grad_in[1] = fsvc_ew_reduce_grad(fsvc_ew_where_raw(node->saved[0], g, zero, "where"),
                                     &node->edges[1]);
  if (node->edges[2].needs_grad)
    grad_in[2] = fsvc_ew_reduce_grad(fsvc_ew_where_raw(node->saved[0], zero, g, "where"),
                                     &node->edges[2]);
  fsvc_tensor_release(zero);
  return (node->edges[1].needs_grad && !grad_in[1]) || (node->edges[2].needs_grad && !grad_in[2])
             ? -1
             : 0;
}

fsvc_tensor *fsvc_where(const fsvc_tensor *cond, const fsvc_tensor *a, const fsvc_tensor *b) {
  FSVC_DISPATCH_CUDA(where, cond, a, b);
  FSVC_CPU_LOWP("where", a && b ? fsvc_ew_result_dtype(a, b) : FSVC_RECAST_SAME_DTYPE,
                fsvc_where(FSVC_RECAST_ARG(0), FSVC_RECAST_ARG(1), FSVC_RECAST_ARG(2)), cond, a, b);
  fsvc_tensor *out = fsvc_ew_where_raw(cond, a, b, "where");
  if (!out) return NULL;
  fsvc_tensor *inputs[3] = {(fsvc_tensor *)cond, (fsvc_tensor *)a, (fsvc_tensor *)b};
  fsvc_node *n = fsvc_node_new("where", 3, inputs, where_backward);
  if (n) {
    fsvc_node_save(n, cond);
    fsvc_node_attach(n, out);
  }
  return out;
}

/* saved[0] = mask */
static int masked_fill_backward(fsvc_node *node, const fsvc_tensor *g, fsvc_tensor **grad_in) {
  if (!node->edges[0].needs_grad) return 0;
  fsvc_tensor *zero = fsvc_scalar(0, g->dtype);
  if (!zero) return -1;
  grad_in[0] = fsvc_ew_reduce_grad(fsvc_ew_where_raw(node->saved[0], zero, g, "masked_fill"),
                                   &node->edges[0]);
  fsvc_tensor_release(zero);
  return grad_in[0] ? 0 : -1;
}

fsvc_tensor *fsvc_masked_fill(const fsvc_tensor *a, const fsvc_tensor *mask, double value) {
  FSVC_DISPATCH_CUDA(masked_fill, a, mask, value);
  FSVC_CPU_LOWP("masked_fill", a ? a->dtype : FSVC_RECAST_SAME_DTYPE,
                fsvc_masked_fill(FSVC_RECAST_ARG(0), FSVC_RECAST_ARG(1), value), a, mask);
  if (fsvc_ew_check("masked_fill", a, "self") != 0 || fsvc_ew_check("masked_fill", mask, "mask") != 0)
    return NULL;
  fsvc_tensor *v = fsvc_scalar(value, a->dtype); /* 0-d: the result keeps a's dtype */
  if (!v) return NULL;
  fsvc_tensor *out = fsvc_ew_where_raw(mask, v, a, "masked_fill");
  fsvc_tensor_release(v);
  if (!out) return NULL;
  fsvc_tensor *inputs[2] = {(fsvc_tensor *)a, (fsvc_tensor *)mask};
  fsvc_node *n = fsvc_node_new("masked_fill", 2, inputs, masked_fill_backward);
  if (n) {
    fsvc_node_save(n, mask);
    fsvc_node_attach(n, out);
  }
  return out;
}

__attribute__((constructor)) static void register_ops(void) {
  fsvc_register_differentiable("where");
  fsvc_register_differentiable("masked_fill");
}
