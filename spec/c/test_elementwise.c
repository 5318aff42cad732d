/* Elementwise ops: broadcasting, dtype promotion, values, gradients, in-place ops, errors and the
 * large-tensor (parallel) path. Expected values are computed by hand or with C's libm; gelu's
 * from PyTorch 1.13 (torch.nn.functional.gelu). */
#include <math.h>
#include <string.h>
#include <time.h>

#include "ctest.h"
#include "fsvc/fsvc.h"

static fsvc_tensor *T(int nd, const int64_t *shape, fsvc_dtype dt, const double *v) {
  return fsvc_from_buffer(nd, shape, dt, v, FSVC_FLOAT64);
}
#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define VALS(...) ((const double[]){__VA_ARGS__})

static int values_near(const fsvc_tensor *t, const double *want, int64_t n, double tol) {
  if (!t || fsvc_numel(t) != n) return 0;
  for (int64_t i = 0; i < n; i++) {
    double g = fsvc_get_flat(t, i);
    if (isnan(want[i]) ? !isnan(g) : !(fabs(g - want[i]) <= tol)) {
      fprintf(stderr, "  element %lld: got %.9g want %.9g\n", (long long)i, g, want[i]);
      return 0;
    }
  }
  return 1;
}
static int shape_is(const fsvc_tensor *t, int nd, const int64_t *shape) {
  if (!t || t->ndim != nd) return 0;
  for (int i = 0; i < nd; i++)
    if (t->shape[i] != shape[i]) return 0;
  return 1;
}

static void test_broadcast_values(void) {
  fsvc_tensor *a = T(2, SHAPE(2, 3), FSVC_FLOAT32, VALS(1, 2, 3, 4, 5, 6));
  fsvc_tensor *b = T(1, SHAPE(3), FSVC_FLOAT32, VALS(10, 20, 30));
  fsvc_tensor *c = T(2, SHAPE(2, 1), FSVC_FLOAT32, VALS(2, -1));
  fsvc_tensor *r = fsvc_add(a, b);
  CHECK(shape_is(r, 2, SHAPE(2, 3)) && r->dtype == FSVC_FLOAT32);
  CHECK(values_near(r, VALS(11, 22, 33, 14, 25, 36), 6, 0));
  fsvc_tensor_release(r);
  r = fsvc_sub(b, a); /* [3] - [2,3] */
  CHECK(values_near(r, VALS(9, 18, 27, 6, 15, 24), 6, 0));
  fsvc_tensor_release(r);
  r = fsvc_mul(c, b); /* [2,1] * [3] -> [2,3] */
  CHECK(shape_is(r, 2, SHAPE(2, 3)));
  CHECK(values_near(r, VALS(20, 40, 60, -10, -20, -30), 6, 0));
  fsvc_tensor_release(r);
  r = fsvc_div(a, c);
  CHECK(values_near(r, VALS(0.5, 1, 1.5, -4, -5, -6), 6, 1e-7));
  fsvc_tensor_release(r);
  r = fsvc_pow(a, c);
  CHECK(values_near(r, VALS(1, 4, 9, 0.25, 0.2, 1.0 / 6), 6, 1e-6));
  fsvc_tensor_release(r);
  /* 3-d: [2,1,3] op [4,1] -> [2,4,3] */
  fsvc_tensor *x = fsvc_view_raw(a, 3, SHAPE(2, 1, 3), SHAPE(3, 3, 1), 0);
  fsvc_tensor *y = T(2, SHAPE(4, 1), FSVC_FLOAT32, VALS(0, 100, 200, 300));
  r = fsvc_add(x, y);
  CHECK(shape_is(r, 3, SHAPE(2, 4, 3)));
  CHECK(r && fsvc_get_flat(r, 0) == 1 && fsvc_get_flat(r, 5) == 103 && fsvc_get_flat(r, 23) == 306);
  fsvc_tensor_release(r);
  /* non-contiguous: a transposed [3,2] view plus an expanded (stride 0) [3,2] */
  fsvc_tensor *at = fsvc_view_raw(a, 2, SHAPE(3, 2), SHAPE(1, 3), 0);
  fsvc_tensor *be = fsvc_view_raw(c, 2, SHAPE(3, 2), SHAPE(0, 1), 0);
  r = fsvc_mul(at, be);
  CHECK(values_near(r, VALS(2, -4, 4, -5, 6, -6), 6, 0));
  fsvc_tensor_release(r);
  /* offset view: row 1 of a */
  fsvc_tensor *row1 = fsvc_view_raw(a, 1, SHAPE(3), SHAPE(1), 3);
  r = fsvc_maximum(row1, b);
  CHECK(values_near(r, VALS(10, 20, 30), 3, 0));
  fsvc_tensor_release(r);
  r = fsvc_minimum(row1, b);
  CHECK(values_near(r, VALS(4, 5, 6), 3, 0));
  fsvc_tensor_release(r);
  /* empty tensors broadcast to empty results */
  fsvc_tensor *e = fsvc_zeros(2, SHAPE(0, 3), FSVC_FLOAT32);
  r = fsvc_add(e, b);
  CHECK(shape_is(r, 2, SHAPE(0, 3)));
  fsvc_tensor_release(r);
  fsvc_tensor *objs[] = {a, b, c, x, y, at, be, row1, e};
  for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) fsvc_tensor_release(objs[i]);
}

static void test_promotion(void) {
  fsvc_tensor *f32 = T(1, SHAPE(3), FSVC_FLOAT32, VALS(1, 2, 3));
  fsvc_tensor *f64 = T(1, SHAPE(3), FSVC_FLOAT64, VALS(1, 1, 1));
  fsvc_tensor *i64 = T(1, SHAPE(3), FSVC_INT64, VALS(7, -7, 9));
  fsvc_tensor *i64b = T(1, SHAPE(3), FSVC_INT64, VALS(2, 2, 4));
  fsvc_tensor *s64 = fsvc_scalar(0.5, FSVC_FLOAT64);
  fsvc_tensor *s32 = fsvc_scalar(0.5, FSVC_FLOAT32);
  fsvc_tensor *r;
  r = fsvc_add(f32, s64); /* a 0-d float64 does not promote a float32 tensor */
  CHECK(r && r->dtype == FSVC_FLOAT32 && values_near(r, VALS(1.5, 2.5, 3.5), 3, 0));
  fsvc_tensor_release(r);
  r = fsvc_mul(s64, f32);
  CHECK(r && r->dtype == FSVC_FLOAT32);
  fsvc_tensor_release(r);
  r = fsvc_add(f32, f64); /* two dimensioned tensors promote */
  CHECK(r && r->dtype == FSVC_FLOAT64 && values_near(r, VALS(2, 3, 4), 3, 0));
  fsvc_tensor_release(r);
  r = fsvc_add(i64, i64b);
  CHECK(r && r->dtype == FSVC_INT64 && values_near(r, VALS(9, -5, 13), 3, 0));
  fsvc_tensor_release(r);
  r = fsvc_mul(i64, s32); /* int tensor with a float scalar: float */
  CHECK(r && r->dtype == FSVC_FLOAT32 && values_near(r, VALS(3.5, -3.5, 4.5), 3, 0));
  fsvc_tensor_release(r);
  r = fsvc_div(i64, i64b); /* true division of ints gives float32 */
  CHECK(r && r->dtype == FSVC_FLOAT32 && values_near(r, VALS(3.5, -3.5, 2.25), 3, 0));
  fsvc_tensor_release(r);
  r = fsvc_pow(i64b, i64b);
  CHECK(r && r->dtype == FSVC_FLOAT32 && values_near(r, VALS(4, 4, 256), 3, 0));
  fsvc_tensor_release(r);
  r = fsvc_lt(i64, i64b);
  CHECK(r && r->dtype == FSVC_INT64 && values_near(r, VALS(0, 1, 0), 3, 0));
  fsvc_tensor_release(r);
  r = fsvc_neg(i64);
  CHECK(r && r->dtype == FSVC_INT64 && values_near(r, VALS(-7, 7, -9), 3, 0));
  fsvc_tensor_release(r);
  r = fsvc_abs(i64);
  CHECK(r && r->dtype == FSVC_INT64 && values_near(r, VALS(7, 7, 9), 3, 0));
  fsvc_tensor_release(r);
  r = fsvc_exp(i64b); /* float op on ints: float32 */
  CHECK(r && r->dtype == FSVC_FLOAT32 && values_near(r, VALS(exp(2), exp(2), exp(4)), 3, 1e-4));
  fsvc_tensor_release(r);
  r = fsvc_clamp(i64, -1.5, 8.5); /* integer bounds inside [-1.5, 8.5]: -1 and 8 */
  CHECK(r && r->dtype == FSVC_INT64 && values_near(r, VALS(7, -1, 8), 3, 0));
  fsvc_tensor_release(r);
  fsvc_tensor *objs[] = {f32, f64, i64, i64b, s64, s32};
  for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) fsvc_tensor_release(objs[i]);
}

static void test_comparisons(void) {
  fsvc_tensor *a = T(1, SHAPE(4), FSVC_FLOAT32, VALS(1, 2, 3, NAN));
  fsvc_tensor *b = fsvc_scalar(2, FSVC_FLOAT32);
  fsvc_tensor *r;
  struct { fsvc_tensor *(*f)(const fsvc_tensor *, const fsvc_tensor *); double want[4]; } cases[] = {
      {fsvc_eq, {0, 1, 0, 0}}, {fsvc_ne, {1, 0, 1, 1}}, {fsvc_lt, {1, 0, 0, 0}},
      {fsvc_le, {1, 1, 0, 0}}, {fsvc_gt, {0, 0, 1, 0}}, {fsvc_ge, {0, 1, 1, 0}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    r = cases[i].f(a, b);
    CHECK(r && r->dtype == FSVC_FLOAT32 && values_near(r, cases[i].want, 4, 0));
    fsvc_tensor_release(r);
  }
  r = fsvc_maximum(a, b); /* NaN propagates */
  CHECK(values_near(r, VALS(2, 2, 3, NAN), 4, 0));
  fsvc_tensor_release(r);
  r = fsvc_minimum(b, a);
  CHECK(values_near(r, VALS(1, 2, 2, NAN), 4, 0));
  fsvc_tensor_release(r);
  fsvc_tensor_release(a);
  fsvc_tensor_release(b);
}

static void test_unary_values(void) {
  const double xs[] = {-2, -0.5, 0, 0.5, 1, 3};
  fsvc_tensor *x32 = T(1, SHAPE(6), FSVC_FLOAT32, xs);
  fsvc_tensor *x64 = T(1, SHAPE(6), FSVC_FLOAT64, xs);
  struct { fsvc_tensor *(*f)(const fsvc_tensor *); double (*ref)(double); } cases[] = {
      {fsvc_exp, exp}, {fsvc_sin, sin}, {fsvc_cos, cos}, {fsvc_tanh, tanh}, {fsvc_abs, fabs},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    double want[6];
    for (int i = 0; i < 6; i++) want[i] = cases[c].ref(xs[i]);
    fsvc_tensor *r32 = cases[c].f(x32), *r64 = cases[c].f(x64);
    CHECK(r32 && r32->dtype == FSVC_FLOAT32 && values_near(r32, want, 6, 1e-5));
    CHECK(r64 && r64->dtype == FSVC_FLOAT64 && values_near(r64, want, 6, 1e-14));
    fsvc_tensor_release(r32);
    fsvc_tensor_release(r64);
  }
  fsvc_tensor *r;
  r = fsvc_neg(x64);
  CHECK(values_near(r, VALS(2, 0.5, 0, -0.5, -1, -3), 6, 0));
  fsvc_tensor_release(r);
  r = fsvc_sigmoid(x64);
  CHECK(values_near(r, VALS(1 / (1 + exp(2)), 1 / (1 + exp(0.5)), 0.5, 1 / (1 + exp(-0.5)),
                            1 / (1 + exp(-1)), 1 / (1 + exp(-3))), 6, 1e-14));
  fsvc_tensor_release(r);
  r = fsvc_relu(x32);
  CHECK(values_near(r, VALS(0, 0, 0, 0.5, 1, 3), 6, 0));
  fsvc_tensor_release(r);
  r = fsvc_leaky_relu(x32, 0.1);
  CHECK(values_near(r, VALS(-0.2, -0.05, 0, 0.5, 1, 3), 6, 1e-7));
  fsvc_tensor_release(r);
  /* torch.nn.functional.gelu(torch.tensor([-2,-.5,0,.5,1,3], dtype=torch.float64)) */
  r = fsvc_gelu(x64);
  CHECK(values_near(r, VALS(-0.04550026389635842, -0.15426876936299344, 0, 0.34573123063700656,
                            0.841344746068543, 2.99595030590511), 6, 1e-14));
  fsvc_tensor_release(r);
  r = fsvc_clamp(x32, -1, 0.75);
  CHECK(values_near(r, VALS(-1, -0.5, 0, 0.5, 0.75, 0.75), 6, 0));
  fsvc_tensor_release(r);
  r = fsvc_clamp(x32, 0, INFINITY);
  CHECK(values_near(r, VALS(0, 0, 0, 0.5, 1, 3), 6, 0));
  fsvc_tensor_release(r);
  r = fsvc_clamp(x32, 2, 1); /* min > max: max everywhere, as PyTorch */
  CHECK(values_near(r, VALS(1, 1, 1, 1, 1, 1), 6, 0));
  fsvc_tensor_release(r);
  fsvc_tensor *p = T(1, SHAPE(3), FSVC_FLOAT64, VALS(4, 0.25, 0));
  r = fsvc_sqrt(p);
  CHECK(values_near(r, VALS(2, 0.5, 0), 3, 0));
  fsvc_tensor_release(r);
  r = fsvc_log(p);
  CHECK(r && fabs(fsvc_get_flat(r, 0) - log(4)) < 1e-15 && isinf(fsvc_get_flat(r, 2)));
  fsvc_tensor_release(r);
  /* 0-d input gives a 0-d output */
  fsvc_tensor *s = fsvc_scalar(-3, FSVC_FLOAT32);
  r = fsvc_abs(s);
  CHECK(r && r->ndim == 0 && fsvc_get_flat(r, 0) == 3);
  fsvc_tensor_release(r);
  fsvc_tensor_release(s);
  fsvc_tensor_release(p);
  fsvc_tensor_release(x32);
  fsvc_tensor_release(x64);
}

static void test_where(void) {
  fsvc_tensor *cond = T(2, SHAPE(2, 1), FSVC_INT64, VALS(1, 0));
  fsvc_tensor *a = T(1, SHAPE(3), FSVC_FLOAT32, VALS(1, 2, 3));
  fsvc_tensor *b = fsvc_scalar(-1, FSVC_FLOAT64);
  fsvc_tensor *r = fsvc_where(cond, a, b);
  CHECK(shape_is(r, 2, SHAPE(2, 3)) && r->dtype == FSVC_FLOAT32);
  CHECK(values_near(r, VALS(1, 2, 3, -1, -1, -1), 6, 0));
  fsvc_tensor_release(r);
  fsvc_tensor *mask = T(1, SHAPE(3), FSVC_FLOAT32, VALS(0, 1, 0));
  r = fsvc_masked_fill(a, mask, 9);
  CHECK(r && r->dtype == FSVC_FLOAT32 && values_near(r, VALS(1, 9, 3), 3, 0));
  fsvc_tensor_release(r);
  r = fsvc_masked_fill(a, mask, -INFINITY);
  CHECK(r && isinf(fsvc_get_flat(r, 1)) && fsvc_get_flat(r, 1) < 0);
  fsvc_tensor_release(r);
  fsvc_tensor_release(cond);
  fsvc_tensor_release(a);
  fsvc_tensor_release(b);
  fsvc_tensor_release(mask);
}

/* Runs backward from sum(out * w) by passing w as the gradient of out. */
static int backward_with(fsvc_tensor *out, const double *w) {
  fsvc_tensor *g = T(out->ndim, out->shape, out->dtype, w);
  int rc = fsvc_backward(out, g, 0);
  fsvc_tensor_release(g);
  return rc;
}

static void test_gradients(void) {
  fsvc_tensor *a = T(2, SHAPE(2, 3), FSVC_FLOAT64, VALS(1, 2, 3, 4, 5, 6));
  fsvc_tensor *b = T(1, SHAPE(3), FSVC_FLOAT64, VALS(10, 20, 30));
  a->requires_grad = b->requires_grad = 1;
  fsvc_tensor *r = fsvc_mul(a, b);
  CHECK(r && r->grad_fn && strcmp(r->grad_fn->op, "mul") == 0);
  CHECK(r && backward_with(r, VALS(1, 1, 1, 1, 1, 1)) == 0);
  CHECK(a->grad && values_near(a->grad, VALS(10, 20, 30, 10, 20, 30), 6, 0));
  CHECK(b->grad && values_near(b->grad, VALS(5, 7, 9), 3, 0));
  fsvc_tensor_release(r);
  fsvc_tensor_release(a->grad);
  fsvc_tensor_release(b->grad);
  a->grad = b->grad = NULL;

  /* add: both leaves get separate gradient tensors */
  r = fsvc_add(a, a);
  CHECK(r && backward_with(r, VALS(1, 2, 3, 4, 5, 6)) == 0);
  CHECK(a->grad && values_near(a->grad, VALS(2, 4, 6, 8, 10, 12), 6, 0));
  fsvc_tensor_release(r);
  fsvc_tensor_release(a->grad);
  a->grad = NULL;

  /* div with broadcasting: d(a/b)/db = -a/b^2 summed over rows */
  r = fsvc_div(a, b);
  CHECK(r && backward_with(r, VALS(1, 1, 1, 1, 1, 1)) == 0);
  CHECK(values_near(a->grad, VALS(0.1, 0.05, 1.0 / 30, 0.1, 0.05, 1.0 / 30), 6, 1e-15));
  CHECK(values_near(b->grad, VALS(-5.0 / 100, -7.0 / 400, -9.0 / 900), 3, 1e-15));
  fsvc_tensor_release(r);
  fsvc_tensor_release(a->grad);
  fsvc_tensor_release(b->grad);
  a->grad = b->grad = NULL;
  fsvc_tensor_release(a);
  fsvc_tensor_release(b);

  /* pow at a == 0: PyTorch gives d/da = 0 where b == 0 and d/db = 0 where a == 0, b >= 0 */
  fsvc_tensor *x = T(1, SHAPE(3), FSVC_FLOAT64, VALS(0, 0, 2));
  fsvc_tensor *e = T(1, SHAPE(3), FSVC_FLOAT64, VALS(0, 2, 3));
  x->requires_grad = e->requires_grad = 1;
  r = fsvc_pow(x, e);
  CHECK(values_near(r, VALS(1, 0, 8), 3, 0));
  CHECK(r && backward_with(r, VALS(1, 1, 1)) == 0);
  CHECK(values_near(x->grad, VALS(0, 0, 12), 3, 1e-14));
  CHECK(values_near(e->grad, VALS(0, 0, 8 * log(2)), 3, 1e-14));
  fsvc_tensor_release(r);
  fsvc_tensor_release(x);
  fsvc_tensor_release(e);

  /* maximum splits ties; only the exponent's grad when only it requires grad */
  fsvc_tensor *p = T(1, SHAPE(3), FSVC_FLOAT32, VALS(1, 2, 3));
  fsvc_tensor *q = T(1, SHAPE(3), FSVC_FLOAT32, VALS(3, 2, 1));
  p->requires_grad = q->requires_grad = 1;
  r = fsvc_maximum(p, q);
  CHECK(r && backward_with(r, VALS(1, 1, 1)) == 0);
  CHECK(values_near(p->grad, VALS(0, 0.5, 1), 3, 0));
  CHECK(values_near(q->grad, VALS(1, 0.5, 0), 3, 0));
  fsvc_tensor_release(r);
  fsvc_tensor_release(p->grad);
  fsvc_tensor_release(q->grad);
  p->grad = q->grad = NULL;
  r = fsvc_minimum(p, q);
  CHECK(r && backward_with(r, VALS(1, 1, 1)) == 0);
  CHECK(values_near(p->grad, VALS(1, 0.5, 0), 3, 0));
  fsvc_tensor_release(r);

  /* a float64 scalar with a float32 tensor: result float32, grads in each input's dtype */
  fsvc_tensor *s = fsvc_scalar(2, FSVC_FLOAT64);
  s->requires_grad = 1;
  fsvc_tensor_release(p->grad);
  p->grad = NULL;
  r = fsvc_mul(p, s);
  CHECK(r && r->dtype == FSVC_FLOAT32 && backward_with(r, VALS(1, 1, 1)) == 0);
  CHECK(p->grad && p->grad->dtype == FSVC_FLOAT32 && values_near(p->grad, VALS(2, 2, 2), 3, 0));
  CHECK(s->grad && s->grad->dtype == FSVC_FLOAT64 && s->grad->ndim == 0 &&
        values_near(s->grad, VALS(6), 1, 0));
  fsvc_tensor_release(r);
  fsvc_tensor_release(s);

  /* unary: leaky_relu, clamp, relu, gelu derivatives */
  fsvc_tensor *u = T(1, SHAPE(4), FSVC_FLOAT64, VALS(-2, -0.5, 0.5, 2));
  u->requires_grad = 1;
  r = fsvc_leaky_relu(u, 0.1);
  CHECK(r && backward_with(r, VALS(1, 1, 1, 1)) == 0);
  CHECK(values_near(u->grad, VALS(0.1, 0.1, 1, 1), 4, 0));
  fsvc_tensor_release(r);
  fsvc_tensor_release(u->grad);
  u->grad = NULL;
  r = fsvc_clamp(u, -1, 1);
  CHECK(r && backward_with(r, VALS(1, 2, 3, 4)) == 0);
  CHECK(values_near(u->grad, VALS(0, 2, 3, 0), 4, 0));
  fsvc_tensor_release(r);
  fsvc_tensor_release(u->grad);
  u->grad = NULL;
  r = fsvc_gelu(u);
  CHECK(r && backward_with(r, VALS(1, 1, 1, 1)) == 0);
  {
    double want[4], xs[4] = {-2, -0.5, 0.5, 2};
    for (int i = 0; i < 4; i++)
      want[i] = 0.5 * (1 + erf(xs[i] / sqrt(2))) + xs[i] * exp(-0.5 * xs[i] * xs[i]) / sqrt(2 * M_PI);
    CHECK(values_near(u->grad, want, 4, 1e-14));
  }
  fsvc_tensor_release(r);

  /* where and masked_fill route the gradient */
  fsvc_tensor *cond = T(1, SHAPE(4), FSVC_INT64, VALS(1, 0, 1, 0));
  fsvc_tensor *w = T(2, SHAPE(2, 1), FSVC_FLOAT64, VALS(5, 6));
  w->requires_grad = 1;
  fsvc_tensor_release(u->grad);
  u->grad = NULL;
  r = fsvc_where(cond, u, w); /* [4], [4], [2,1] -> [2,4] */
  CHECK(shape_is(r, 2, SHAPE(2, 4)));
  CHECK(r && backward_with(r, VALS(1, 2, 3, 4, 5, 6, 7, 8)) == 0);
  CHECK(values_near(u->grad, VALS(6, 0, 10, 0), 4, 0));
  CHECK(values_near(w->grad, VALS(6, 14), 2, 0));
  fsvc_tensor_release(r);
  fsvc_tensor_release(u->grad);
  u->grad = NULL;
  r = fsvc_masked_fill(u, cond, 0);
  CHECK(r && r->grad_fn && strcmp(r->grad_fn->op, "masked_fill") == 0);
  CHECK(r && backward_with(r, VALS(1, 2, 3, 4)) == 0);
  CHECK(values_near(u->grad, VALS(0, 2, 0, 4), 4, 0));
  fsvc_tensor_release(r);

  /* comparisons record nothing */
  r = fsvc_gt(u, w);
  CHECK(r && !r->grad_fn && !r->requires_grad);
  fsvc_tensor_release(r);
  /* no_grad records nothing */
  int prev = fsvc_set_grad_enabled(0);
  r = fsvc_exp(u);
  CHECK(r && !r->grad_fn);
  fsvc_tensor_release(r);
  fsvc_set_grad_enabled(prev);

  fsvc_tensor *objs[] = {p, q, u, cond, w};
  for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) fsvc_tensor_release(objs[i]);
}

static void test_inplace(void) {
  fsvc_tensor *a = T(2, SHAPE(2, 3), FSVC_FLOAT32, VALS(1, 2, 3, 4, 5, 6));
  fsvc_tensor *b = T(1, SHAPE(3), FSVC_FLOAT64, VALS(1, 1, 2));
  CHECK(fsvc_add_(a, b, 0.5) == 0);
  CHECK(values_near(a, VALS(1.5, 2.5, 4, 4.5, 5.5, 7), 6, 0));
  CHECK(fsvc_mul_scalar_(a, 2) == 0);
  CHECK(values_near(a, VALS(3, 5, 8, 9, 11, 14), 6, 0));
  /* in-place on a transposed view writes through */
  fsvc_tensor *at = fsvc_view_raw(a, 2, SHAPE(3, 2), SHAPE(1, 3), 0);
  CHECK(fsvc_mul_scalar_(at, 0.5) == 0);
  CHECK(values_near(a, VALS(1.5, 2.5, 4, 4.5, 5.5, 7), 6, 0));
  /* errors: src larger than dst, expanded dst, leaf requiring grad with grad mode on */
  fsvc_tensor *big = fsvc_zeros(2, SHAPE(4, 3), FSVC_FLOAT32);
  CHECK(fsvc_add_(b, big, 1) == -1 && strstr(fsvc_last_error(), "add_"));
  fsvc_tensor *ex = fsvc_view_raw(b, 2, SHAPE(2, 3), SHAPE(0, 1), 0);
  CHECK(fsvc_mul_scalar_(ex, 2) == -1);
  a->requires_grad = 1;
  CHECK(fsvc_add_(a, b, 1) == -1 && strstr(fsvc_last_error(), "requires grad"));
  int prev = fsvc_set_grad_enabled(0);
  CHECK(fsvc_add_(a, b, 1) == 0);
  fsvc_set_grad_enabled(prev);
  fsvc_tensor *objs[] = {a, b, at, big, ex};
  for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) fsvc_tensor_release(objs[i]);
}

static void test_errors(void) {
  fsvc_tensor *a = fsvc_zeros(2, SHAPE(2, 3), FSVC_FLOAT32);
  fsvc_tensor *b = fsvc_zeros(1, SHAPE(4), FSVC_FLOAT32);
  CHECK(fsvc_add(a, b) == NULL && strstr(fsvc_last_error(), "add") &&
        strstr(fsvc_last_error(), "[2, 3]") && strstr(fsvc_last_error(), "[4]"));
  CHECK(fsvc_mul(a, NULL) == NULL && strstr(fsvc_last_error(), "mul"));
  CHECK(fsvc_exp(NULL) == NULL);
  CHECK(fsvc_where(b, a, a) == NULL && strstr(fsvc_last_error(), "where"));
  CHECK(fsvc_masked_fill(a, b, 1) == NULL);
  CHECK(fsvc_clamp(a, NAN, 1) == NULL && strstr(fsvc_last_error(), "clamp"));
  CHECK(fsvc_leaky_relu(a, NAN) == NULL);
  fsvc_tensor *h = fsvc_zeros(1, SHAPE(3), FSVC_FLOAT16); /* 16-bit: through float32 */
  fsvc_tensor *hr = fsvc_relu(h);
  CHECK(hr && hr->dtype == FSVC_FLOAT16);
  fsvc_tensor_release(hr);
  CHECK(fsvc_add(h, b) == NULL && strstr(fsvc_last_error(), "add") && strstr(fsvc_last_error(), "[4]"));
  fsvc_tensor *f = fsvc_zeros(1, SHAPE(3), FSVC_FLOAT32);
  fsvc_tensor_free_data(f);
  CHECK(fsvc_sub(f, a) == NULL && strstr(fsvc_last_error(), "freed"));
  CHECK(fsvc_mul_scalar_(f, 2) == -1);
  fsvc_tensor_release(f);
  fsvc_tensor_release(h);
  fsvc_tensor_release(a);
  fsvc_tensor_release(b);
}

/* float32 exp/tanh/sigmoid/gelu use vectorised approximations (core/ops/fast_math.h): check
 * them against libm in double over a wide range, on a contiguous and a strided path, plus the
 * special values. */
static void test_fast_float32_accuracy(void) {
  const int64_t n = 20001;
  fsvc_tensor *x = fsvc_empty(1, &n, FSVC_FLOAT32);
  float *p = fsvc_data(x);
  for (int64_t i = 0; i < n; i++) p[i] = -30.0f + 60.0f * (float)i / (float)(n - 1);
  struct { fsvc_tensor *(*f)(const fsvc_tensor *); double (*ref)(double); const char *name; } cases[] = {
      {fsvc_exp, exp, "exp"}, {fsvc_tanh, tanh, "tanh"}};
  for (size_t c = 0; c < 2; c++) {
    fsvc_tensor *r = cases[c].f(x);
    double worst = 0;
    for (int64_t i = 0; r && i < n; i++) {
      double want = cases[c].ref((double)p[i]), got = fsvc_get_flat(r, i);
      double err = fabs(got - want) / fmax(fabs(want), 1e-30);
      if (err > worst) worst = err;
    }
    printf("float32 %s: worst relative error %.3g\n", cases[c].name, worst);
    CHECK(r && worst < 3e-7);
    fsvc_tensor_release(r);
  }
  fsvc_tensor *sg = fsvc_sigmoid(x), *ge = fsvc_gelu(x);
  double ws = 0, wg = 0;
  for (int64_t i = 0; sg && ge && i < n; i++) {
    double v = p[i];
    double s = 1 / (1 + exp(-v)), g = 0.5 * v * (1 + erf(v / sqrt(2)));
    ws = fmax(ws, fabs(fsvc_get_flat(sg, i) - s) / fmax(s, 1e-30));
    wg = fmax(wg, fabs(fsvc_get_flat(ge, i) - g) / fmax(fabs(v), 1.0)); /* abs error scaled by |x| */
  }
  printf("float32 sigmoid: worst relative error %.3g, gelu: worst error/|x| %.3g\n", ws, wg);
  CHECK(ws < 5e-7);
  CHECK(wg < 1e-6);
  fsvc_tensor_release(sg);
  fsvc_tensor_release(ge);
  /* strided path agrees with the contiguous one */
  fsvc_tensor *every2 = fsvc_view_raw(x, 1, SHAPE(10001), SHAPE(2), 0);
  fsvc_tensor *a = fsvc_exp(every2), *b = fsvc_exp(x);
  int same = a && b;
  for (int64_t i = 0; same && i < 10001; i++) same = fsvc_get_flat(a, i) == fsvc_get_flat(b, 2 * i);
  CHECK(same);
  fsvc_tensor_release(a);
  fsvc_tensor_release(b);
  fsvc_tensor_release(every2);
  fsvc_tensor_release(x);
  fsvc_tensor *sp = T(1, SHAPE(5), FSVC_FLOAT32, VALS(NAN, INFINITY, -INFINITY, 89, -105));
  fsvc_tensor *e = fsvc_exp(sp), *t = fsvc_tanh(sp), *s = fsvc_sigmoid(sp);
  CHECK(e && isnan(fsvc_get_flat(e, 0)) && isinf(fsvc_get_flat(e, 1)) && fsvc_get_flat(e, 2) == 0 &&
        isinf(fsvc_get_flat(e, 3)) && fsvc_get_flat(e, 4) == 0);
  CHECK(t && isnan(fsvc_get_flat(t, 0)) && fsvc_get_flat(t, 1) == 1 && fsvc_get_flat(t, 2) == -1);
  CHECK(s && isnan(fsvc_get_flat(s, 0)) && fsvc_get_flat(s, 1) == 1 && fsvc_get_flat(s, 2) == 0);
  fsvc_tensor *dn = T(1, SHAPE(2), FSVC_FLOAT32, VALS(-87.5, 88.5)); /* denormal-adjacent, near FLT_MAX */
  fsvc_tensor *de = fsvc_exp(dn);
  CHECK(de && fabs(fsvc_get_flat(de, 0) - exp(-87.5)) < 1e-6 * exp(-87.5) &&
        fabs(fsvc_get_flat(de, 1) - exp(88.5)) < 1e-6 * exp(88.5));
  fsvc_tensor *objs[] = {sp, e, t, s, dn, de};
  for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) fsvc_tensor_release(objs[i]);
}

/* The decoder's size: [16, 24, 24000] float32 goes through the parallel blocks. */
static void test_large(void) {
  int64_t shape[3] = {16, 24, 24000};
  int64_t n = 16 * 24 * 24000;
  fsvc_tensor *x = fsvc_empty(3, shape, FSVC_FLOAT32);
  float *p = fsvc_data(x);
  for (int64_t i = 0; i < n; i++) p[i] = (float)((i * 7919) % 2001 - 1000) / 100.0f;
  fsvc_tensor *bias = T(3, SHAPE(1, 24, 1), FSVC_FLOAT32,
                        VALS(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
                             20, 21, 22, 23));
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  fsvc_tensor *y = fsvc_add(x, bias);
  fsvc_tensor *z = fsvc_leaky_relu(y, 0.1);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("add [16,24,24000]+[1,24,1] then leaky_relu: %.1f ms\n",
         (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
  int ok = y && z;
  const float *py = ok ? fsvc_data(y) : NULL, *pz = ok ? fsvc_data(z) : NULL;
  for (int64_t i = 0; ok && i < n; i += 997) {
    float want = p[i] + (float)((i / 24000) % 24);
    ok = py[i] == want && pz[i] == (want > 0 ? want : want * 0.1f);
  }
  CHECK(ok);
  fsvc_tensor_release(x);
  fsvc_tensor_release(bias);
  fsvc_tensor_release(y);
  fsvc_tensor_release(z);
}

int main(void) {
  test_broadcast_values();
  test_promotion();
  test_comparisons();
  test_unary_values();
  test_where();
  test_gradients();
  test_inplace();
  test_errors();
  test_fast_float32_accuracy();
  test_large();
  return CTEST_END();
}
