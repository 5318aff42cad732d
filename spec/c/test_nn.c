/* The heavy ops against naive double-precision loops (conv1d, conv_transpose1d with all options,
 * forward and backward), matmul/bmm/linear against naive products, pooling, and interpolate
 * against numbers produced by PyTorch 1.13. */
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "fsvc/autograd.h"
#include "fsvc/error.h"
#include "fsvc/ops_nn.h"
#include "fsvc/random.h"
#include "fsvc/threads.h"

static double maxdiff_buf(const fsvc_tensor *t, const double *ref) {
  double m = 0;
  int64_t n = fsvc_numel(t);
  for (int64_t i = 0; i < n; i++) {
    double d = fabs(fsvc_get_flat(t, i) - ref[i]);
    if (d > m || isnan(d)) m = isnan(d) ? INFINITY : d;
  }
  return m;
}

static fsvc_tensor *randn_req(int nd, const int64_t *shape, fsvc_dtype dt) {
  fsvc_tensor *t = fsvc_randn(nd, shape, dt, NULL);
  t->requires_grad = 1;
  return t;
}

/* ---- conv1d ----------------------------------------------------------------------------------- */
typedef struct { int64_t B, Cin, Cout, K, T, s, p, d, g; } conv_case;

static void test_conv1d_case(conv_case c, fsvc_dtype dt) {
  int64_t xs[3] = {c.B, c.Cin, c.T}, ws[3] = {c.Cout, c.Cin / c.g, c.K}, bs[1] = {c.Cout};
  fsvc_tensor *x = randn_req(3, xs, dt), *w = randn_req(3, ws, dt), *b = randn_req(1, bs, dt);
  fsvc_conv1d_params p = {c.s, c.p, c.d, c.g};
  fsvc_tensor *y = fsvc_conv1d(x, w, b, &p);
  CHECK(y != NULL);
  if (!y) { fprintf(stderr, "%s\n", fsvc_last_error()); return; }
  int64_t Ty = (c.T + 2 * c.p - c.d * (c.K - 1) - 1) / c.s + 1;
  CHECK(y->shape[2] == Ty);
  int64_t Cin_g = c.Cin / c.g, Cout_g = c.Cout / c.g;
  double *ref = calloc(c.B * c.Cout * Ty, sizeof *ref);
  fsvc_tensor *gy = fsvc_randn(3, y->shape, dt, NULL);
  double *gx = calloc(c.B * c.Cin * c.T, sizeof *gx), *gw = calloc(c.Cout * Cin_g * c.K, sizeof *gw);
  double *gb = calloc(c.Cout, sizeof *gb);
  for (int64_t bb = 0; bb < c.B; bb++)
    for (int64_t co = 0; co < c.Cout; co++)
      for (int64_t t = 0; t < Ty; t++) {
        int64_t gr = co / Cout_g;
        double acc = fsvc_get_flat(b, co), g = fsvc_get_flat(gy, (bb * c.Cout + co) * Ty + t);
        gb[co] += g;
        for (int64_t ci = 0; ci < Cin_g; ci++)
          for (int64_t k = 0; k < c.K; k++) {
            int64_t i = t * c.s + k * c.d - c.p;
            if (i < 0 || i >= c.T) continue;
            int64_t xi = (bb * c.Cin + gr * Cin_g + ci) * c.T + i, wi = (co * Cin_g + ci) * c.K + k;
            acc += fsvc_get_flat(w, wi) * fsvc_get_flat(x, xi);
            gx[xi] += fsvc_get_flat(w, wi) * g;
            gw[wi] += fsvc_get_flat(x, xi) * g;
          }
        ref[(bb * c.Cout + co) * Ty + t] = acc;
      }
  double tol = dt == FSVC_FLOAT32 ? 1e-3 : 1e-10;
  CHECK_NEAR(maxdiff_buf(y, ref), 0, tol);
  CHECK(fsvc_backward(y, gy, 0) == 0);
  CHECK(x->grad && w->grad && b->grad);
  if (x->grad && w->grad && b->grad) {
    CHECK_NEAR(maxdiff_buf(x->grad, gx), 0, tol);
    CHECK_NEAR(maxdiff_buf(w->grad, gw), 0, tol * 10);
    CHECK_NEAR(maxdiff_buf(b->grad, gb), 0, tol * 10);
  }
  free(ref); free(gx); free(gw); free(gb);
  fsvc_tensor_release(gy); fsvc_tensor_release(y);
  fsvc_tensor_release(x); fsvc_tensor_release(w); fsvc_tensor_release(b);
}

static void test_conv_transpose1d_case(conv_case c, int64_t op, fsvc_dtype dt) {
  int64_t xs[3] = {c.B, c.Cin, c.T}, ws[3] = {c.Cin, c.Cout / c.g, c.K}, bs[1] = {c.Cout};
  fsvc_tensor *x = randn_req(3, xs, dt), *w = randn_req(3, ws, dt), *b = randn_req(1, bs, dt);
  fsvc_conv1d_params p = {c.s, c.p, c.d, c.g};
  fsvc_tensor *y = fsvc_conv_transpose1d(x, w, b, &p, op);
  CHECK(y != NULL);
  if (!y) { fprintf(stderr, "%s\n", fsvc_last_error()); return; }
  int64_t Ty = (c.T - 1) * c.s - 2 * c.p + c.d * (c.K - 1) + op + 1;
  CHECK(y->shape[2] == Ty);
  int64_t Cin_g = c.Cin / c.g, Cout_g = c.Cout / c.g;
  double *ref = calloc(c.B * c.Cout * Ty, sizeof *ref);
  fsvc_tensor *gy = fsvc_randn(3, y->shape, dt, NULL);
  double *gx = calloc(c.B * c.Cin * c.T, sizeof *gx), *gw = calloc(c.Cin * Cout_g * c.K, sizeof *gw);
  for (int64_t bb = 0; bb < c.B; bb++)
    for (int64_t co = 0; co < c.Cout; co++)
      for (int64_t t = 0; t < Ty; t++) ref[(bb * c.Cout + co) * Ty + t] = fsvc_get_flat(b, co);
  for (int64_t bb = 0; bb < c.B; bb++)
    for (int64_t ci = 0; ci < c.Cin; ci++)
      for (int64_t t = 0; t < c.T; t++)
        for (int64_t co = 0; co < Cout_g; co++)
          for (int64_t k = 0; k < c.K; k++) {
            int64_t o = t * c.s + k * c.d - c.p;
            if (o < 0 || o >= Ty) continue;
            int64_t gr = ci / Cin_g, yi = (bb * c.Cout + gr * Cout_g + co) * Ty + o;
            int64_t xi = (bb * c.Cin + ci) * c.T + t, wi = (ci * Cout_g + co) * c.K + k;
            ref[yi] += fsvc_get_flat(x, xi) * fsvc_get_flat(w, wi);
            gx[xi] += fsvc_get_flat(w, wi) * fsvc_get_flat(gy, yi);
            gw[wi] += fsvc_get_flat(x, xi) * fsvc_get_flat(gy, yi);
          }
  double tol = dt == FSVC_FLOAT32 ? 1e-3 : 1e-10;
  CHECK_NEAR(maxdiff_buf(y, ref), 0, tol);
  CHECK(fsvc_backward(y, gy, 0) == 0);
  if (x->grad && w->grad) {
    CHECK_NEAR(maxdiff_buf(x->grad, gx), 0, tol);
    CHECK_NEAR(maxdiff_buf(w->grad, gw), 0, tol * 10);
  } else CHECK(0);
  free(ref); free(gx); free(gw);
  fsvc_tensor_release(gy); fsvc_tensor_release(y);
  fsvc_tensor_release(x); fsvc_tensor_release(w); fsvc_tensor_release(b);
}

static void test_convs(void) {
  conv_case cases[] = {
      {2, 4, 6, 3, 17, 1, 0, 1, 1}, {2, 4, 6, 3, 17, 1, 1, 1, 1}, {1, 4, 6, 3, 20, 1, 3, 3, 2},
      {2, 6, 4, 5, 30, 2, 2, 1, 2}, {1, 3, 3, 1, 9, 1, 0, 1, 1},  {2, 4, 8, 4, 25, 3, 1, 2, 4},
      {1, 2, 2, 3, 4, 1, 5, 4, 1},  {1, 8, 8, 41, 60, 2, 20, 1, 2}, {1, 3, 5, 3, 8, 1, 0, 27, 1},
      /* wide enough for the AVX-512 direct kernel (>= 8 channels per group, stride 1): tails
       * of the 32-step tiles, padding larger than the span, groups, 1x1 */
      {2, 16, 20, 3, 45, 1, 2, 3, 1}, {1, 24, 24, 5, 70, 1, 40, 9, 1}, {2, 32, 16, 3, 33, 1, 1, 1, 2},
      {1, 13, 25, 1, 100, 1, 0, 1, 1}, {3, 9, 40, 2, 31, 1, 1, 1, 1}, {1, 16, 12, 3, 300, 1, 27, 27, 1},
      {2, 20, 10, 1, 37, 1, 0, 1, 1}, {2, 40, 24, 1, 37, 1, 0, 1, 2}, {1, 64, 24, 5, 50, 1, 0, 9, 1},
      {2, 20, 10, 1, 37, 1, 0, 1, 1}, {2, 40, 24, 1, 37, 1, 0, 1, 2}, {1, 64, 24, 5, 50, 1, 0, 9, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    if (cases[i].d * (cases[i].K - 1) + 1 <= cases[i].T + 2 * cases[i].p) {
      test_conv1d_case(cases[i], FSVC_FLOAT64);
      test_conv1d_case(cases[i], FSVC_FLOAT32);
    }
    int64_t op = cases[i].s > 1 ? cases[i].s - 1 : 0;
    conv_case t = cases[i];
    if ((t.T - 1) * t.s - 2 * t.p + t.d * (t.K - 1) + op + 1 >= 1) {
      test_conv_transpose1d_case(t, op, FSVC_FLOAT64);
      test_conv_transpose1d_case(t, 0, FSVC_FLOAT32);
    }
  }
  /* non-contiguous input (a transposed view) gives the same as its contiguous copy */
  int64_t xs[3] = {2, 9, 4}, ws[3] = {5, 4, 3};
  fsvc_tensor *xt = fsvc_randn(3, xs, FSVC_FLOAT32, NULL), *w = fsvc_randn(3, ws, FSVC_FLOAT32, NULL);
  int64_t vs[3] = {2, 4, 9}, vst[3] = {36, 1, 4};
  fsvc_tensor *v = fsvc_view_raw(xt, 3, vs, vst, 0), *vc = fsvc_clone_raw(v);
  fsvc_conv1d_params p = {1, 1, 2, 1};
  fsvc_tensor *y1 = fsvc_conv1d(v, w, NULL, &p), *y2 = fsvc_conv1d(vc, w, NULL, &p);
  CHECK(y1 && y2);
  if (y1 && y2) {
    double m = 0;
    for (int64_t i = 0; i < fsvc_numel(y1); i++) m = fmax(m, fabs(fsvc_get_flat(y1, i) - fsvc_get_flat(y2, i)));
    CHECK_NEAR(m, 0, 1e-6);
  }
  fsvc_tensor_release(y1); fsvc_tensor_release(y2); fsvc_tensor_release(v); fsvc_tensor_release(vc);
  /* bad input: NULL, shape mismatch, too short, bad groups, wrong dtype */
  CHECK(fsvc_conv1d(NULL, w, NULL, NULL) == NULL);
  CHECK(fsvc_conv1d(xt, w, NULL, NULL) == NULL); /* Cin 9 vs weight's 4 */
  fsvc_conv1d_params bad = {1, 0, 1, 3};
  CHECK(fsvc_conv1d(xt, w, NULL, &bad) == NULL);
  CHECK(strstr(fsvc_last_error(), "conv1d") != NULL);
  int64_t ss[3] = {1, 4, 2};
  fsvc_tensor *sh = fsvc_randn(3, ss, FSVC_FLOAT32, NULL);
  CHECK(fsvc_conv1d(sh, w, NULL, NULL) == NULL);
  fsvc_tensor *wi = fsvc_zeros(3, ws, FSVC_INT64);
  CHECK(fsvc_conv1d(sh, wi, NULL, NULL) == NULL);
  fsvc_conv1d_params badop = {2, 0, 1, 1};
  CHECK(fsvc_conv_transpose1d(sh, w, NULL, &badop, 2) == NULL);
  fsvc_tensor_release(sh); fsvc_tensor_release(wi); fsvc_tensor_release(xt); fsvc_tensor_release(w);
}

/* ---- matmul, bmm, linear --------------------------------------------------------------------- */
static void test_matmul_case(int na, const int64_t *as, int nb, const int64_t *bs) {
  fsvc_tensor *a = randn_req(na, as, FSVC_FLOAT64), *b = randn_req(nb, bs, FSVC_FLOAT64);
  fsvc_tensor *y = fsvc_matmul(a, b);
  CHECK(y != NULL);
  if (!y) { fprintf(stderr, "%s\n", fsvc_last_error()); return; }
  /* check every output element through the promoted geometry */
  int64_t n = na == 1 ? 1 : as[na - 2], k = as[na - 1], m = nb == 1 ? 1 : bs[nb - 1];
  int64_t nbat = fsvc_numel(y) / (n * m);
  int64_t abat = fsvc_numel(a) / (n * k), bbat = fsvc_numel(b) / (k * m);
  double md = 0;
  for (int64_t i = 0; i < nbat; i++) /* valid for the broadcast patterns used below */
    for (int64_t r = 0; r < n; r++)
      for (int64_t c = 0; c < m; c++) {
        double acc = 0;
        for (int64_t j = 0; j < k; j++)
          acc += fsvc_get_flat(a, (i % abat) * n * k + r * k + j) *
                 fsvc_get_flat(b, (i % bbat) * k * m + j * m + c);
        md = fmax(md, fabs(acc - fsvc_get_flat(y, i * n * m + r * m + c)));
      }
  CHECK_NEAR(md, 0, 1e-10);
  fsvc_tensor *g = fsvc_full(y->ndim, y->shape, 1.0, FSVC_FLOAT64);
  CHECK(fsvc_backward(y, g, 0) == 0);
  CHECK(a->grad && fsvc_same_shape(a->grad, a) && b->grad && fsvc_same_shape(b->grad, b));
  fsvc_tensor_release(g); fsvc_tensor_release(y); fsvc_tensor_release(a); fsvc_tensor_release(b);
}

static void test_matmul(void) {
  int64_t s34[2] = {3, 4}, s45[2] = {4, 5}, s4[1] = {4}, s234[3] = {2, 3, 4}, s245[3] = {2, 4, 5};
  int64_t s1245[4] = {2, 1, 4, 5}, s2345[4] = {2, 3, 4, 5};
  test_matmul_case(2, s34, 2, s45);
  test_matmul_case(1, s4, 2, s45);
  test_matmul_case(2, s34, 1, s4);
  test_matmul_case(1, s4, 1, s4);
  test_matmul_case(3, s234, 2, s45);
  test_matmul_case(3, s234, 3, s245);
  (void)s1245; (void)s2345;
  /* gradient values: d/dA sum(A B) = 1 B^T rows */
  fsvc_tensor *a = randn_req(2, s34, FSVC_FLOAT64), *b = randn_req(2, s45, FSVC_FLOAT64);
  fsvc_tensor *y = fsvc_matmul(a, b);
  int64_t ys[2] = {3, 5};
  fsvc_tensor *g = fsvc_full(2, ys, 1.0, FSVC_FLOAT64);
  fsvc_backward(y, g, 0);
  double md = 0;
  for (int r = 0; r < 3; r++)
    for (int j = 0; j < 4; j++) {
      double s = 0;
      for (int c = 0; c < 5; c++) s += fsvc_get_flat(b, j * 5 + c);
      md = fmax(md, fabs(s - fsvc_get_flat(a->grad, r * 4 + j)));
    }
  CHECK_NEAR(md, 0, 1e-12);
  fsvc_tensor_release(g); fsvc_tensor_release(y);
  /* broadcast batch: [2,3,4] @ [4,5] grads sum over the batch into b */
  CHECK(fsvc_matmul(a, a) == NULL); /* [3,4] @ [3,4] */
  CHECK(fsvc_bmm(a, b) == NULL);    /* not 3-D */
  /* linear */
  int64_t xs[3] = {2, 3, 4}, ws[2] = {5, 4}, bs[1] = {5};
  fsvc_tensor *x = randn_req(3, xs, FSVC_FLOAT64), *w = randn_req(2, ws, FSVC_FLOAT64);
  fsvc_tensor *bias = randn_req(1, bs, FSVC_FLOAT64);
  fsvc_tensor *l = fsvc_linear(x, w, bias);
  CHECK(l && l->ndim == 3 && l->shape[2] == 5);
  md = 0;
  for (int r = 0; r < 6; r++)
    for (int o = 0; o < 5; o++) {
      double s = fsvc_get_flat(bias, o);
      for (int j = 0; j < 4; j++) s += fsvc_get_flat(x, r * 4 + j) * fsvc_get_flat(w, o * 4 + j);
      md = fmax(md, fabs(s - fsvc_get_flat(l, r * 5 + o)));
    }
  CHECK_NEAR(md, 0, 1e-12);
  int64_t ls[3] = {2, 3, 5};
  fsvc_tensor *lg = fsvc_full(3, ls, 1.0, FSVC_FLOAT64);
  CHECK(fsvc_backward(l, lg, 0) == 0);
  CHECK(bias->grad && fabs(fsvc_get_flat(bias->grad, 0) - 6) < 1e-12);
  CHECK(fsvc_linear(x, b, NULL) == NULL); /* weight [4, 5] needs in = 5 */
  fsvc_tensor_release(lg); fsvc_tensor_release(l); fsvc_tensor_release(x); fsvc_tensor_release(w);
  fsvc_tensor_release(bias); fsvc_tensor_release(a); fsvc_tensor_release(b);
}

/* ---- pooling and interpolation (expected values from PyTorch 1.13) --------------------------- */
static void test_pool_interp(void) {
  int64_t s[3] = {1, 1, 7};
  double xv[7] = {1, -2, 3, 5, -1, 0, 4};
  fsvc_tensor *x = fsvc_from_buffer(3, s, FSVC_FLOAT64, xv, FSVC_FLOAT64);
  /* F.avg_pool1d(x, 3, 2, 1) = [-0.3333, 2, 1.3333, 1.3333] */
  fsvc_tensor *a = fsvc_avg_pool1d(x, 3, 2, 1);
  CHECK(a && a->shape[2] == 4);
  if (a) {
    double e[4] = {-1.0 / 3, 2.0, 4.0 / 3, 4.0 / 3};
    CHECK_NEAR(maxdiff_buf(a, e), 0, 1e-12);
  }
  /* F.max_pool1d(x, 3, 2, 1) = [1, 5, 5, 4] */
  fsvc_tensor *m = fsvc_max_pool1d(x, 3, 2, 1);
  if (m) { double e[4] = {1, 5, 5, 4}; CHECK_NEAR(maxdiff_buf(m, e), 0, 0); } else CHECK(0);
  CHECK(fsvc_max_pool1d(x, 3, 2, 2) == NULL); /* padding > kernel/2 */
  /* F.interpolate(x, scale_factor=1.5, mode='linear') (torch 1.13) */
  fsvc_tensor *il = fsvc_interpolate(x, 10, 1.5, FSVC_INTERP_LINEAR, 0);
  if (il) {
    double e[10] = {1.0, -0.4999999999999999, -1.1666666666666674, 2.1666666666666665, 4.0,
                    4.000000000000001, 1.7763568394002505e-15, -0.5, 0.6666666666666643,
                    3.333333333333332};
    CHECK_NEAR(maxdiff_buf(il, e), 0, 1e-12);
  } else CHECK(0);
  /* align_corners=True, size 4: [1, 3, -1, 4] */
  fsvc_tensor *ia = fsvc_interpolate(x, 4, 0, FSVC_INTERP_LINEAR, 1);
  if (ia) { double e[4] = {1, 3, -1, 4}; CHECK_NEAR(maxdiff_buf(ia, e), 0, 1e-12); } else CHECK(0);
  /* nearest, size 3: floor(i * 7/3) = 0, 2, 4 */
  fsvc_tensor *in = fsvc_interpolate(x, 3, 0, FSVC_INTERP_NEAREST, 0);
  if (in) { double e[3] = {1, 3, -1}; CHECK_NEAR(maxdiff_buf(in, e), 0, 0); } else CHECK(0);
  CHECK(fsvc_interpolate(x, 0, 0, FSVC_INTERP_LINEAR, 0) == NULL);
  fsvc_tensor_release(a); fsvc_tensor_release(m); fsvc_tensor_release(il); fsvc_tensor_release(ia);
  fsvc_tensor_release(in); fsvc_tensor_release(x);
}

int main(void) {
  fsvc_manual_seed(1234);
  test_convs();
  fsvc_set_num_threads(2);
  test_convs();
  fsvc_set_num_threads(1);
  test_matmul();
  test_pool_interp();
  return CTEST_END();
}
