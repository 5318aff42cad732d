/* Unit tests of the reductions (core/ops/reduce*.c, topk.c, softmax.c, cumsum.c): values against
 * PyTorch 1.13 (expected arrays below were printed by torch for the same input), float32 paths,
 * views, large-tensor fast paths against naive loops, finite-difference gradients, bad input. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "fsvc/autograd.h"
#include "fsvc/error.h"
#include "fsvc/ops_reduce.h"
#include "fsvc/tensor.h"

/* ---- expected values from torch, x = sin(0.7 i) * 3 reshaped to [2, 3, 4] (float64) -------- */
static const double E_SUM_ALL[] = {7.33367067646};
static const double E_SUM_1[] = {-0.888835463149, 0.930745080097, 2.31258166888, 2.6067749637, 2.5980856039, 1.64012424377, -0.0892131758553, -1.77659224488};
static const double E_SUM_02[] = {7.26119749527, -8.29183648363, 8.36430966482};
static const double E_MEAN_12[] = {0.413438854128, 0.197700368911};
static const double E_VAR_12_U[] = {4.63938595864, 4.42882420239};
static const double E_STD_12_U[] = {2.15392338737, 2.1044771803};
static const double E_VAR_0_B[] = {1.64326341084, 0.237830794686, 4.11235119101, 6.8348661309, 3.88582190625, 0.160825724061, 1.8436160319, 6.14065033555, 5.91856931477, 1.54604205794, 0.281751148524, 4.22450257801};
static const double E_STD_ALL[] = {2.08545240984};
static const double E_NORM2_2[] = {4.37964862586, 4.20013220865, 4.0326161635, 3.95765230505, 4.01410391182, 4.17253513756};
static const double E_NORM1_ALL[] = {43.7035070668};
static const double E_NORM3_1[] = {1.9837889011, 2.03152443306, 3.71741031461, 4.10201910922, 4.09057051787, 2.86789873603, 1.27690066383, 3.03628305384};
static const double E_NORMINF_1[] = {1.89379991362, 1.93265306171, 2.95634918997, 2.96450470163, 2.97182206708, 2.53724049343, 1.09943738776, 2.63908727992};
static const double E_MAX1_V[] = {1.00496445047, 1.93265306171, 2.95634918997, 2.96450470163, 2.97182206708, 2.53724049343, 0.909355070237, 2.00870928659};
static const double E_MAX1_I[] = {1, 0, 0, 2, 2, 2, 2, 1};
static const double E_MIN2_V[] = {0, -2.94735783787, -1.89379991362, -2.63908727992, -2.93753318745, -1.14621425155};
static const double E_MIN2_I[] = {0, 3, 0, 3, 0, 3};
static const double E_ARGMAX_ALL[] = {20};
static const double E_LSE_1[] = {1.3564300784, 2.11729892497, 3.27632918916, 3.4892812971, 3.48325308519, 2.7347516073, 1.36657906965, 2.05961564323};
static const double E_SOFTMAX_1[] = {0.25757867324, 0.831398660539, 0.726163560782, 0.406710683708, 0.703656035661, 0.0420183602237, 0.00276405491203, 0.00160178101414, 0.038765291099, 0.126582979237, 0.271072384306, 0.591687535278, 0.398735750507, 0.169067620928, 0.0849224784045, 0.00910708202944, 0.00162737617025, 0.0101613604421, 0.282038997673, 0.95036766199, 0.599636873323, 0.82077101863, 0.633038523923, 0.0405252559803};
static const double E_LOGSOFTMAX_2[] = {-3.70032062765, -1.76766756594, -0.743971437688, -1.11069252771, -0.160244411933, -2.21755854547, -3.77993617964, -4.11256670027, -5.21757240331, -3.27333078824, -1.35281269354, -0.359267788066, -0.208426359524, -1.81492799674, -3.87166047154, -5.4113103637, -5.10879744967, -4.02567559893, -2.07039512056, -0.16255497563, -0.582747282992, -1.01732885665, -2.64521427984, -4.70078360163};
static const double E_CUMSUM_1[] = {0, 1.93265306171, 2.95634918997, 2.58962809995, 1.00496445047, 0.880303378644, 0.341621872725, -0.357729737926, -0.888835463149, 0.930745080097, 2.31258166888, 2.6067749637, 2.56379672426, 0.957295087048, -1.09943738776, -2.63908727992, -0.373736463189, -0.897116249663, -0.998568246092, -0.630377993325, 2.5980856039, 1.64012424377, -0.0892131758553, -1.77659224488};
static const double E_TOPK2_1_V[] = {1.00496445047, 1.93265306171, 2.95634918997, 2.96450470163, 0, 0.050441701453, 1.97095979616, 2.58962809995, 2.97182206708, 2.53724049343, 0.909355070237, 2.00870928659, 2.56379672426, 0.957295087048, 0.100869141663, -1.14621425155};
static const double E_TOPK2_1_I[] = {1, 0, 0, 2, 0, 2, 2, 0, 2, 2, 2, 1, 0, 0, 1, 2};
static const double E_TOPK3_2S_V[] = {0, 1.93265306171, 2.58962809995, -2.94735783787, -2.61472731724, -1.05234968307, -1.89379991362, 0.050441701453, 1.97095979616, -2.63908727992, -1.09943738776, 0.957295087048, -2.93753318745, -1.85441133671, 0.100869141663, -1.14621425155, 0.909355070237, 2.53724049343};
static const double E_TOPK3_2S_I[] = {0, 1, 3, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1};

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static fsvc_tensor *make_x(fsvc_dtype dt) {
  double v[24];
  for (int i = 0; i < 24; i++) v[i] = sin(i * 0.7) * 3;
  return fsvc_from_buffer(3, (int64_t[]){2, 3, 4}, dt, v, FSVC_FLOAT64);
}

static void check_values(const char *what, const fsvc_tensor *t, const double *e, int n, double tol) {
  if (!t) {
    fprintf(stderr, "%s: NULL result: %s\n", what, fsvc_last_error());
    CHECK(t != NULL);
    return;
  }
  CHECK(fsvc_numel(t) == n);
  if (fsvc_numel(t) != n) { fprintf(stderr, "  (%s)\n", what); return; }
  for (int i = 0; i < n; i++) {
    double a = fsvc_get_flat(t, i);
    if (!(fabs(a - e[i]) <= tol)) fprintf(stderr, "%s[%d]: ", what, i);
    CHECK_NEAR(a, e[i], tol);
  }
}

static int shape_is(const fsvc_tensor *t, int nd, const int64_t *s) {
  if (!t || t->ndim != nd) return 0;
  for (int i = 0; i < nd; i++)
    if (t->shape[i] != s[i]) return 0;
  return 1;
}

static void test_values(fsvc_dtype dt, double tol) {
  fsvc_tensor *x = make_x(dt), *t, *idx;
  t = fsvc_sum(x, 0, NULL, 0); check_values("sum all", t, E_SUM_ALL, 1, tol); CHECK(t->ndim == 0); fsvc_tensor_release(t);
  t = fsvc_sum(x, 1, (int[]){1}, 0); check_values("sum 1", t, E_SUM_1, 8, tol);
  CHECK(shape_is(t, 2, (int64_t[]){2, 4})); fsvc_tensor_release(t);
  t = fsvc_sum(x, 1, (int[]){-2}, 1); CHECK(shape_is(t, 3, (int64_t[]){2, 1, 4})); check_values("sum -2 keep", t, E_SUM_1, 8, tol); fsvc_tensor_release(t);
  t = fsvc_sum(x, 2, (int[]){0, 2}, 0); check_values("sum {0,2}", t, E_SUM_02, 3, tol); fsvc_tensor_release(t);
  t = fsvc_sum(x, 2, (int[]){2, 0}, 1); CHECK(shape_is(t, 3, (int64_t[]){1, 3, 1})); check_values("sum {2,0} keep", t, E_SUM_02, 3, tol); fsvc_tensor_release(t);
  t = fsvc_mean(x, 2, (int[]){1, 2}, 0); check_values("mean {1,2}", t, E_MEAN_12, 2, tol); fsvc_tensor_release(t);
  t = fsvc_var(x, 2, (int[]){1, 2}, 1, 0); check_values("var {1,2}", t, E_VAR_12_U, 2, tol); fsvc_tensor_release(t);
  t = fsvc_std(x, 2, (int[]){1, 2}, 1, 1); check_values("std {1,2}", t, E_STD_12_U, 2, tol);
  CHECK(shape_is(t, 3, (int64_t[]){2, 1, 1})); fsvc_tensor_release(t);
  t = fsvc_var(x, 1, (int[]){0}, 0, 0); check_values("var 0 biased", t, E_VAR_0_B, 12, tol); fsvc_tensor_release(t);
  t = fsvc_std(x, 0, NULL, 1, 0); check_values("std all", t, E_STD_ALL, 1, tol); fsvc_tensor_release(t);
  t = fsvc_norm(x, 2, 1, (int[]){2}, 0); check_values("norm2 dim2", t, E_NORM2_2, 6, tol); fsvc_tensor_release(t);
  t = fsvc_norm(x, 1, 0, NULL, 0); check_values("norm1 all", t, E_NORM1_ALL, 1, tol); fsvc_tensor_release(t);
  t = fsvc_norm(x, 3, 1, (int[]){1}, 0); check_values("norm3 dim1", t, E_NORM3_1, 8, tol); fsvc_tensor_release(t);
  t = fsvc_norm(x, INFINITY, 1, (int[]){1}, 0); check_values("norminf dim1", t, E_NORMINF_1, 8, tol); fsvc_tensor_release(t);
  t = fsvc_max_dim(x, 1, 0, &idx); check_values("max 1", t, E_MAX1_V, 8, tol); check_values("max 1 idx", idx, E_MAX1_I, 8, 0);
  CHECK(idx && idx->dtype == FSVC_INT64); fsvc_tensor_release(t); fsvc_tensor_release(idx);
  t = fsvc_min_dim(x, -1, 1, &idx); check_values("min 2", t, E_MIN2_V, 6, tol); check_values("min 2 idx", idx, E_MIN2_I, 6, 0);
  CHECK(shape_is(idx, 3, (int64_t[]){2, 3, 1})); fsvc_tensor_release(t); fsvc_tensor_release(idx);
  t = fsvc_argmax_all(x); check_values("argmax all", t, E_ARGMAX_ALL, 1, 0); fsvc_tensor_release(t);
  t = fsvc_max_all(x); CHECK(t && t->ndim == 0); CHECK_NEAR(fsvc_get_flat(t, 0), fsvc_get_flat(x, 20), 0); fsvc_tensor_release(t);
  t = fsvc_argmax(x, 1, 0); check_values("argmax 1", t, E_MAX1_I, 8, 0); fsvc_tensor_release(t);
  t = fsvc_argmin(x, 2, 0); check_values("argmin 2", t, E_MIN2_I, 6, 0); fsvc_tensor_release(t);
  t = fsvc_logsumexp(x, 1, 0); check_values("logsumexp 1", t, E_LSE_1, 8, tol); fsvc_tensor_release(t);
  t = fsvc_softmax(x, 1); check_values("softmax 1", t, E_SOFTMAX_1, 24, tol); fsvc_tensor_release(t);
  t = fsvc_log_softmax(x, 2); check_values("log_softmax 2", t, E_LOGSOFTMAX_2, 24, tol); fsvc_tensor_release(t);
  t = fsvc_cumsum(x, 1); check_values("cumsum 1", t, E_CUMSUM_1, 24, tol); fsvc_tensor_release(t);
  t = fsvc_topk(x, 2, 1, 1, 1, &idx); check_values("topk 2", t, E_TOPK2_1_V, 16, tol); check_values("topk 2 idx", idx, E_TOPK2_1_I, 16, 0);
  fsvc_tensor_release(t); fsvc_tensor_release(idx);
  t = fsvc_topk(x, 3, 2, 0, 1, &idx); check_values("topk 3 smallest", t, E_TOPK3_2S_V, 18, tol); check_values("topk 3 idx", idx, E_TOPK3_2S_I, 18, 0);
  fsvc_tensor_release(t); fsvc_tensor_release(idx);
  /* a permuted view gives the same as its contiguous copy */
  fsvc_tensor *v = fsvc_view_raw(x, 3, (int64_t[]){4, 3, 2}, (int64_t[]){1, 4, 12}, 0);
  fsvc_tensor *vc = fsvc_clone_raw(v);
  fsvc_tensor *a = fsvc_std(v, 2, (int[]){0, 2}, 1, 0), *b = fsvc_std(vc, 2, (int[]){0, 2}, 1, 0);
  for (int i = 0; i < 3; i++) CHECK_NEAR(fsvc_get_flat(a, i), fsvc_get_flat(b, i), tol);
  fsvc_tensor_release(a); fsvc_tensor_release(b);
  a = fsvc_softmax(v, 0); b = fsvc_softmax(vc, 0);
  for (int i = 0; i < 24; i++) CHECK_NEAR(fsvc_get_flat(a, i), fsvc_get_flat(b, i), tol);
  fsvc_tensor_release(a); fsvc_tensor_release(b);
  fsvc_tensor_release(v); fsvc_tensor_release(vc);
  fsvc_tensor_release(x);
}

/* int64: sum exact, max/argmax/topk/cumsum allowed, mean/softmax refused */
static void test_int64(void) {
  int64_t v[6] = {5, -2, 7, 7, 0, 3};
  fsvc_tensor *x = fsvc_from_buffer(2, (int64_t[]){2, 3}, FSVC_INT64, v, FSVC_INT64), *t, *idx;
  t = fsvc_sum(x, 1, (int[]){1}, 0); CHECK(t && t->dtype == FSVC_INT64);
  CHECK(fsvc_get_flat(t, 0) == 10 && fsvc_get_flat(t, 1) == 10); fsvc_tensor_release(t);
  t = fsvc_max_dim(x, 1, 0, &idx); CHECK(fsvc_get_flat(t, 0) == 7 && fsvc_get_flat(idx, 0) == 2 && fsvc_get_flat(idx, 1) == 0);
  fsvc_tensor_release(t); fsvc_tensor_release(idx);
  t = fsvc_topk(x, 2, 1, 1, 1, &idx); CHECK(fsvc_get_flat(idx, 0) == 2 && fsvc_get_flat(idx, 1) == 0 && fsvc_get_flat(idx, 2) == 0 && fsvc_get_flat(idx, 3) == 2);
  fsvc_tensor_release(t); fsvc_tensor_release(idx);
  t = fsvc_cumsum(x, 1); CHECK(t && t->dtype == FSVC_INT64 && fsvc_get_flat(t, 5) == 10); fsvc_tensor_release(t);
  CHECK(fsvc_mean(x, 0, NULL, 0) == NULL);
  CHECK(fsvc_softmax(x, 0) == NULL);
  fsvc_tensor_release(x);
}

/* ties go to the lowest index, NaN propagates and counts as the largest */
static void test_ties_nan(void) {
  double v[6] = {1, 3, 3, 2, 3, 0};
  fsvc_tensor *x = fsvc_from_buffer(1, (int64_t[]){6}, FSVC_FLOAT32, v, FSVC_FLOAT64), *idx, *t;
  t = fsvc_max_dim(x, 0, 0, &idx); CHECK(fsvc_get_flat(idx, 0) == 1); fsvc_tensor_release(t); fsvc_tensor_release(idx);
  t = fsvc_topk(x, 3, 0, 1, 1, &idx);
  CHECK(fsvc_get_flat(idx, 0) == 1 && fsvc_get_flat(idx, 1) == 2 && fsvc_get_flat(idx, 2) == 4);
  fsvc_tensor_release(t); fsvc_tensor_release(idx);
  t = fsvc_topk(x, 6, 0, 0, 1, &idx); /* full ascending order, stable */
  int64_t want[6] = {5, 0, 3, 1, 2, 4};
  for (int i = 0; i < 6; i++) CHECK(fsvc_get_flat(idx, i) == want[i]);
  fsvc_tensor_release(t); fsvc_tensor_release(idx);
  fsvc_set_flat(x, 3, NAN);
  t = fsvc_max_all(x); CHECK(isnan(fsvc_get_flat(t, 0))); fsvc_tensor_release(t);
  t = fsvc_min_all(x); CHECK(isnan(fsvc_get_flat(t, 0))); fsvc_tensor_release(t);
  t = fsvc_topk(x, 1, 0, 1, 1, &idx); CHECK(fsvc_get_flat(idx, 0) == 3); fsvc_tensor_release(t); fsvc_tensor_release(idx);
  fsvc_tensor_release(x);
  /* stable softmax: huge logits do not overflow; all -inf gives NaN as PyTorch */
  double big[3] = {1000, 1001, 999};
  x = fsvc_from_buffer(1, (int64_t[]){3}, FSVC_FLOAT32, big, FSVC_FLOAT64);
  t = fsvc_softmax(x, 0);
  CHECK_NEAR(fsvc_get_flat(t, 1), 0.665240955775, 1e-6); fsvc_tensor_release(t);
  t = fsvc_logsumexp(x, 0, 0); CHECK_NEAR(fsvc_get_flat(t, 0), 1001.40760596, 1e-3); fsvc_tensor_release(t);
  fsvc_tensor_release(x);
  double ninf[2] = {-INFINITY, -INFINITY};
  x = fsvc_from_buffer(1, (int64_t[]){2}, FSVC_FLOAT64, ninf, FSVC_FLOAT64);
  t = fsvc_logsumexp(x, 0, 0); CHECK(isinf(fsvc_get_flat(t, 0)) && fsvc_get_flat(t, 0) < 0); fsvc_tensor_release(t);
  t = fsvc_softmax(x, 0); CHECK(isnan(fsvc_get_flat(t, 0))); fsvc_tensor_release(t);
  fsvc_tensor_release(x);
}

/* ---- large tensors: fast paths (middle dim, last dim, everything, OpenMP) vs naive loops ---- */
static void test_large(void) {
  int64_t B = 4, C = 384, T = 301;
  fsvc_tensor *x = fsvc_empty(3, (int64_t[]){B, C, T}, FSVC_FLOAT32);
  float *p = fsvc_data(x);
  for (int64_t i = 0; i < B * C * T; i++) p[i] = (float)sin(i * 0.013) + 0.5f;
  fsvc_tensor *m = fsvc_mean(x, 1, (int[]){1}, 1);
  CHECK(shape_is(m, 3, (int64_t[]){B, 1, T}));
  int bad = 0;
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++) {
      double s = 0;
      for (int64_t c = 0; c < C; c++) s += p[(b * C + c) * T + t];
      if (fabs(s / C - fsvc_get_flat(m, b * T + t)) > 1e-5) bad++;
    }
  CHECK(bad == 0);
  fsvc_tensor_release(m);
  /* LayerNorm's unbiased std over channels and time */
  fsvc_tensor *s = fsvc_std(x, 2, (int[]){1, 2}, 1, 1);
  for (int64_t b = 0; b < B; b++) {
    double mu = 0, ss = 0;
    for (int64_t i = 0; i < C * T; i++) mu += p[b * C * T + i];
    mu /= C * T;
    for (int64_t i = 0; i < C * T; i++) ss += (p[b * C * T + i] - mu) * (p[b * C * T + i] - mu);
    CHECK_NEAR(fsvc_get_flat(s, b), sqrt(ss / (C * T - 1)), 1e-5);
  }
  fsvc_tensor_release(s);
  /* everything (the chunked parallel path): float32 accumulates in double */
  fsvc_tensor *all = fsvc_sum(x, 0, NULL, 0);
  double ref = 0;
  for (int64_t i = 0; i < B * C * T; i++) ref += p[i];
  CHECK_NEAR(fsvc_get_flat(all, 0), ref, fabs(ref) * 1e-6);
  fsvc_tensor_release(all);
  /* softmax along dim 1 sums to 1 */
  fsvc_tensor *sm = fsvc_softmax(x, 1);
  fsvc_tensor *one = fsvc_sum(sm, 1, (int[]){1}, 0);
  bad = 0;
  for (int64_t i = 0; i < B * T; i++) bad += fabs(fsvc_get_flat(one, i) - 1) > 1e-5;
  CHECK(bad == 0);
  fsvc_tensor_release(sm); fsvc_tensor_release(one);
  fsvc_tensor_release(x);

  /* the pitch estimator's top-4 over 512 classes per frame: [B, 512, T] along dim 1 */
  int64_t K = 512, F = 200;
  x = fsvc_empty(3, (int64_t[]){2, K, F}, FSVC_FLOAT32);
  p = fsvc_data(x);
  for (int64_t i = 0; i < 2 * K * F; i++) p[i] = (float)sin(i * 12.9898) * 43758.5453f;
  fsvc_tensor *idx, *vals = fsvc_topk(x, 4, 1, 1, 1, &idx);
  CHECK(shape_is(vals, 3, (int64_t[]){2, 4, F}));
  bad = 0;
  for (int64_t b = 0; b < 2; b++)
    for (int64_t f = 0; f < F; f++) {
      float prev = INFINITY;
      for (int j = 0; j < 4; j++) {
        int64_t q = (b * 4 + j) * F + f;
        int64_t c = (int64_t)fsvc_get_flat(idx, q);
        float v = p[(b * K + c) * F + f];
        if (v != (float)fsvc_get_flat(vals, q) || v > prev) bad++;
        prev = v;
        int64_t greater = 0; /* exactly j elements rank above the j-th */
        for (int64_t k = 0; k < K; k++) greater += p[(b * K + k) * F + f] > v;
        if (greater != j) bad++;
      }
    }
  CHECK(bad == 0);
  fsvc_tensor_release(vals); fsvc_tensor_release(idx);
  /* large k takes the sorting path; compare with the insertion path on the same rows */
  fsvc_tensor *i1, *i2, *v1 = fsvc_topk(x, 16, 1, 1, 1, &i1), *v2 = fsvc_topk(x, 40, 1, 1, 1, &i2);
  bad = 0;
  for (int64_t b = 0; b < 2; b++)
    for (int64_t j = 0; j < 16; j++)
      for (int64_t f = 0; f < F; f++)
        bad += fsvc_get_flat(i1, (b * 16 + j) * F + f) != fsvc_get_flat(i2, (b * 40 + j) * F + f);
  CHECK(bad == 0);
  fsvc_tensor_release(v1); fsvc_tensor_release(v2); fsvc_tensor_release(i1); fsvc_tensor_release(i2);
  fsvc_tensor_release(x);

  /* cumsum of a long float32 signal does not drift (double accumulator) */
  int64_t L = 480000;
  x = fsvc_full(1, &L, 0.1, FSVC_FLOAT32);
  fsvc_tensor *c = fsvc_cumsum(x, 0);
  CHECK_NEAR(fsvc_get_flat(c, L - 1), 0.1f * (double)L, 1e-2);
  fsvc_tensor_release(c); fsvc_tensor_release(x);
}

/* ---- gradients: central differences of L = sum(w * f(x)) in float64 ------------------------ */
typedef fsvc_tensor *(*unary_fn)(const fsvc_tensor *x);

static double loss_of(unary_fn f, const fsvc_tensor *x, const double *w) {
  fsvc_tensor *y = f(x);
  if (!y) return NAN;
  double s = 0;
  for (int64_t i = 0; i < fsvc_numel(y); i++) s += w[i] * fsvc_get_flat(y, i);
  fsvc_tensor_release(y);
  return s;
}

static void gradcheck(const char *name, unary_fn f, int nd, const int64_t *shape, int distinct) {
  fsvc_tensor *x = fsvc_empty(nd, shape, FSVC_FLOAT64);
  int64_t n = fsvc_numel(x);
  for (int64_t i = 0; i < n; i++)
    fsvc_set_flat(x, i, distinct ? sin(i * 1.7 + 0.3) * 2 + 0.01 * i : sin(i * 1.7 + 0.3) * 2);
  x->requires_grad = 1;
  fsvc_tensor *y = f(x);
  if (!y) { fprintf(stderr, "%s: %s\n", name, fsvc_last_error()); CHECK(y != NULL); fsvc_tensor_release(x); return; }
  int64_t m = fsvc_numel(y);
  double *w = malloc((size_t)(m ? m : 1) * sizeof *w);
  for (int64_t i = 0; i < m; i++) w[i] = cos(i * 0.9) + 0.2;
  fsvc_tensor *gw = fsvc_from_buffer(y->ndim, y->shape, FSVC_FLOAT64, w, FSVC_FLOAT64);
  int rc = fsvc_backward(y, gw, 0);
  if (rc) fprintf(stderr, "%s backward: %s\n", name, fsvc_last_error());
  CHECK(rc == 0 && x->grad != NULL);
  int bad = 0;
  int prev = fsvc_set_grad_enabled(0);
  for (int64_t i = 0; i < n && x->grad; i++) {
    double v = fsvc_get_flat(x, i), h = 1e-6;
    fsvc_set_flat(x, i, v + h);
    double lp = loss_of(f, x, w);
    fsvc_set_flat(x, i, v - h);
    double lm = loss_of(f, x, w);
    fsvc_set_flat(x, i, v);
    double num = (lp - lm) / (2 * h), ana = fsvc_get_flat(x->grad, i);
    if (fabs(num - ana) > 1e-5 + 1e-4 * fabs(num)) {
      if (bad++ < 3) fprintf(stderr, "%s: d/dx[%lld] numeric %.8g analytic %.8g\n", name, (long long)i, num, ana);
    }
  }
  fsvc_set_grad_enabled(prev);
  CHECK(bad == 0);
  free(w);
  fsvc_tensor_release(gw); fsvc_tensor_release(y); fsvc_tensor_release(x);
}

static fsvc_tensor *f_sum12(const fsvc_tensor *x) { return fsvc_sum(x, 2, (int[]){1, 2}, 0); }
static fsvc_tensor *f_sum02k(const fsvc_tensor *x) { return fsvc_sum(x, 2, (int[]){0, 2}, 1); }
static fsvc_tensor *f_mean1(const fsvc_tensor *x) { return fsvc_mean(x, 1, (int[]){1}, 0); }
static fsvc_tensor *f_meanall(const fsvc_tensor *x) { return fsvc_mean(x, 0, NULL, 0); }
static fsvc_tensor *f_var0(const fsvc_tensor *x) { return fsvc_var(x, 1, (int[]){0}, 0, 1); }
static fsvc_tensor *f_std12(const fsvc_tensor *x) { return fsvc_std(x, 2, (int[]){1, 2}, 1, 1); }
static fsvc_tensor *f_std02(const fsvc_tensor *x) { return fsvc_std(x, 2, (int[]){0, 2}, 1, 0); }
static fsvc_tensor *f_norm2(const fsvc_tensor *x) { return fsvc_norm(x, 2, 1, (int[]){2}, 0); }
static fsvc_tensor *f_norm3(const fsvc_tensor *x) { return fsvc_norm(x, 3, 1, (int[]){1}, 1); }
static fsvc_tensor *f_norm1(const fsvc_tensor *x) { return fsvc_norm(x, 1, 0, NULL, 0); }
static fsvc_tensor *f_norminf(const fsvc_tensor *x) { return fsvc_norm(x, INFINITY, 1, (int[]){2}, 0); }
static fsvc_tensor *f_lse(const fsvc_tensor *x) { return fsvc_logsumexp(x, 1, 0); }
static fsvc_tensor *f_max1(const fsvc_tensor *x) { return fsvc_max_dim(x, 1, 0, NULL); }
static fsvc_tensor *f_min2(const fsvc_tensor *x) { return fsvc_min_dim(x, 2, 1, NULL); }
static fsvc_tensor *f_maxall(const fsvc_tensor *x) { return fsvc_max_all(x); }
static fsvc_tensor *f_minall(const fsvc_tensor *x) { return fsvc_min_all(x); }
static fsvc_tensor *f_topk(const fsvc_tensor *x) { return fsvc_topk(x, 2, 1, 1, 1, NULL); }
static fsvc_tensor *f_topk_small(const fsvc_tensor *x) { return fsvc_topk(x, 3, -1, 0, 1, NULL); }
static fsvc_tensor *f_softmax1(const fsvc_tensor *x) { return fsvc_softmax(x, 1); }
static fsvc_tensor *f_softmax2(const fsvc_tensor *x) { return fsvc_softmax(x, -1); }
static fsvc_tensor *f_logsoftmax1(const fsvc_tensor *x) { return fsvc_log_softmax(x, 1); }
static fsvc_tensor *f_logsoftmax2(const fsvc_tensor *x) { return fsvc_log_softmax(x, 2); }
static fsvc_tensor *f_cumsum1(const fsvc_tensor *x) { return fsvc_cumsum(x, 1); }
static fsvc_tensor *f_cumsum2(const fsvc_tensor *x) { return fsvc_cumsum(x, 2); }

static void test_gradients(void) {
  const int64_t s[3] = {2, 3, 4};
  gradcheck("sum {1,2}", f_sum12, 3, s, 0);
  gradcheck("sum {0,2} keepdim", f_sum02k, 3, s, 0);
  gradcheck("mean 1", f_mean1, 3, s, 0);
  gradcheck("mean all", f_meanall, 3, s, 0);
  gradcheck("var 0 biased keepdim", f_var0, 3, s, 0);
  gradcheck("std {1,2}", f_std12, 3, s, 0);
  gradcheck("std {0,2}", f_std02, 3, s, 0);
  gradcheck("norm 2", f_norm2, 3, s, 0);
  gradcheck("norm 3", f_norm3, 3, s, 0);
  gradcheck("norm 1", f_norm1, 3, s, 0);
  gradcheck("norm inf", f_norminf, 3, s, 1);
  gradcheck("logsumexp", f_lse, 3, s, 0);
  gradcheck("max dim", f_max1, 3, s, 1);
  gradcheck("min dim", f_min2, 3, s, 1);
  gradcheck("max all", f_maxall, 3, s, 1);
  gradcheck("min all", f_minall, 3, s, 1);
  gradcheck("topk", f_topk, 3, s, 1);
  gradcheck("topk smallest", f_topk_small, 3, s, 1);
  gradcheck("softmax 1", f_softmax1, 3, s, 0);
  gradcheck("softmax -1", f_softmax2, 3, s, 0);
  gradcheck("log_softmax 1", f_logsoftmax1, 3, s, 0);
  gradcheck("log_softmax 2", f_logsoftmax2, 3, s, 0);
  gradcheck("cumsum 1", f_cumsum1, 3, s, 0);
  gradcheck("cumsum 2", f_cumsum2, 3, s, 0);
  const int64_t big[3] = {2, 300, 3}; /* wider than one column block? no: R large, inner small */
  gradcheck("softmax long dim", f_softmax1, 3, big, 0);
}

/* ---- bad input: every call fails cleanly with a message naming the op ----------------------- */
static void expect_error(fsvc_tensor *t, const char *op) {
  CHECK(t == NULL);
  if (t) { fsvc_tensor_release(t); return; }
  if (!strstr(fsvc_last_error(), op)) fprintf(stderr, "error without '%s': %s\n", op, fsvc_last_error());
  CHECK(strstr(fsvc_last_error(), op) != NULL);
}

static void test_bad_input(void) {
  fsvc_tensor *x = make_x(FSVC_FLOAT32), *idx = NULL;
  expect_error(fsvc_sum(NULL, 0, NULL, 0), "sum");
  expect_error(fsvc_sum(x, 1, (int[]){3}, 0), "sum");
  expect_error(fsvc_mean(x, 2, (int[]){1, -2}, 0), "mean");
  expect_error(fsvc_var(x, 1, (int[]){-4}, 1, 0), "var");
  expect_error(fsvc_norm(x, -1, 0, NULL, 0), "norm");
  expect_error(fsvc_norm(x, NAN, 0, NULL, 0), "norm");
  expect_error(fsvc_max_dim(x, 5, 0, &idx), "max");
  CHECK(idx == NULL);
  expect_error(fsvc_topk(x, 4, 1, 1, 1, &idx), "topk");
  expect_error(fsvc_topk(x, -1, 1, 1, 1, &idx), "topk");
  expect_error(fsvc_softmax(x, 3), "softmax");
  expect_error(fsvc_log_softmax(x, -4), "log_softmax");
  expect_error(fsvc_logsumexp(x, 7, 0), "logsumexp");
  expect_error(fsvc_cumsum(x, 3), "cumsum");
  fsvc_tensor *e = fsvc_empty(2, (int64_t[]){0, 3}, FSVC_FLOAT32);
  expect_error(fsvc_max_all(e), "max");
  expect_error(fsvc_argmin(e, 0, 0), "argmin");
  fsvc_tensor *t = fsvc_sum(e, 1, (int[]){0}, 0); /* sum over an empty dim is 0, as PyTorch */
  CHECK(t && fsvc_numel(t) == 3 && fsvc_get_flat(t, 0) == 0); fsvc_tensor_release(t);
  t = fsvc_mean(e, 0, NULL, 0); CHECK(t && isnan(fsvc_get_flat(t, 0))); fsvc_tensor_release(t);
  t = fsvc_softmax(e, 1); CHECK(t && fsvc_numel(t) == 0); fsvc_tensor_release(t);
  fsvc_tensor_release(e);
  fsvc_tensor *h = fsvc_full(1, (int64_t[]){3}, 1.5, FSVC_FLOAT16); /* 16-bit: through float32 */
  t = fsvc_sum(h, 0, NULL, 0);
  CHECK(t && t->dtype == FSVC_FLOAT16 && fsvc_get_flat(t, 0) == 4.5); fsvc_tensor_release(t);
  expect_error(fsvc_sum(h, 1, (int[]){1}, 0), "sum");
  fsvc_tensor_release(h);
  fsvc_tensor *freed = make_x(FSVC_FLOAT32);
  fsvc_tensor_free_data(freed);
  expect_error(fsvc_std(freed, 0, NULL, 1, 0), "freed");
  expect_error(fsvc_topk(freed, 1, 0, 1, 1, NULL), "freed");
  fsvc_tensor_release(freed);
  /* 0-d input: dim 0 / -1 names the tensor itself */
  fsvc_tensor *z = fsvc_scalar(2.5, FSVC_FLOAT64);
  t = fsvc_sum(z, 1, (int[]){0}, 0); CHECK(t && t->ndim == 0 && fsvc_get_flat(t, 0) == 2.5); fsvc_tensor_release(t);
  t = fsvc_softmax(z, -1); CHECK(t && fsvc_get_flat(t, 0) == 1); fsvc_tensor_release(t);
  expect_error(fsvc_sum(z, 1, (int[]){1}, 0), "sum");
  fsvc_tensor_release(z);
  fsvc_tensor_release(x);
}

int main(void) {
  test_values(FSVC_FLOAT64, 1e-9);
  test_values(FSVC_FLOAT32, 2e-5);
  test_int64();
  test_ties_nan();
  test_large();
  test_gradients();
  test_bad_input();
  return CTEST_END();
}
