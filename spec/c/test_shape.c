/* Unit tests of the shape, view and indexing ops (core/ops/{view,cat,flip,pad,index}.c).
 * Expected arrays marked "torch" were produced with PyTorch 1.13 (torch.nn.functional.pad ...). */
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "fsvc/autograd.h"
#include "fsvc/error.h"
#include "fsvc/ops_shape.h"

#define LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define SHAPE(...) (sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), ((int64_t[]){__VA_ARGS__})

/* arange(n) of the given shape */
/* The checks below keep their tensors alive until exit instead of releasing each one, so the
 * leak checker is off for this binary (the other C tests and the Lua specs keep it on). */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "detect_leaks=0"; }

static fsvc_tensor *arange(fsvc_dtype dt, int nd, const int64_t *shape) {
  fsvc_tensor *t = fsvc_empty(nd, shape, dt);
  for (int64_t i = 0; i < fsvc_numel(t); i++) fsvc_set_flat(t, i, (double)i);
  return t;
}

static fsvc_tensor *from_list(fsvc_dtype dt, int nd, const int64_t *shape, const double *v) {
  return fsvc_from_buffer(nd, shape, dt, v, FSVC_FLOAT64);
}

static int equals(const fsvc_tensor *t, const double *expect, int n) {
  if (!t || fsvc_numel(t) != n) return 0;
  for (int i = 0; i < n; i++)
    if (fabs(fsvc_get_flat(t, i) - expect[i]) > 1e-9) {
      fprintf(stderr, "  element %d: %g, expected %g\n", i, fsvc_get_flat(t, i), expect[i]);
      return 0;
    }
  return 1;
}

static int shape_is(const fsvc_tensor *t, int nd, const int64_t *s) {
  if (!t || t->ndim != nd) return 0;
  for (int i = 0; i < nd; i++)
    if (t->shape[i] != s[i]) return 0;
  return 1;
}

static fsvc_tensor *leaf(fsvc_tensor *t) {
  t->requires_grad = 1;
  return t;
}

static void test_views(void) {
  fsvc_tensor *a = arange(FSVC_FLOAT32, SHAPE(2, 3, 4));
  fsvc_tensor *v = fsvc_view(a, SHAPE(6, -1));
  CHECK(shape_is(v, SHAPE(6, 4)));
  CHECK(v && v->storage == a->storage);
  /* a transposed tensor cannot be viewed flat, but can be reshaped (copy) */
  fsvc_tensor *t = fsvc_transpose(a, 0, 2); /* [4, 3, 2] */
  CHECK(shape_is(t, SHAPE(4, 3, 2)));
  CHECK_NEAR(fsvc_get_flat(t, 1), 12, 0); /* t[0,0,1] = a[1,0,0] */
  CHECK(fsvc_view(t, SHAPE(24)) == NULL);
  CHECK(strstr(fsvc_last_error(), "view") != NULL);
  fsvc_tensor *r = fsvc_reshape(t, SHAPE(-1));
  double expect_r[] = {0, 12, 4, 16, 8, 20, 1, 13, 5, 17, 9, 21};
  CHECK(equals(fsvc_narrow(r, 0, 0, 12), expect_r, 12));
  /* a view that merges only the contiguous dims of a permuted tensor is allowed */
  fsvc_tensor *p = fsvc_permute(a, (int[]){1, 0, 2}); /* [3, 2, 4] */
  fsvc_tensor *pv = fsvc_view(p, SHAPE(3, 2, 2, 2));
  CHECK(pv && pv->storage == a->storage);
  CHECK(fsvc_view(p, SHAPE(6, 4)) == NULL);
  CHECK(fsvc_view(a, SHAPE(5, -1)) == NULL);
  CHECK(fsvc_view(a, SHAPE(-1, -1)) == NULL);
  CHECK(fsvc_permute(a, (int[]){0, 0, 1}) == NULL);

  /* narrow, slice, select on a non-contiguous view */
  fsvc_tensor *n = fsvc_narrow(t, 0, 1, 2); /* t[1:3] */
  double expect_n[] = {4, 16, 8, 20, 1, 13, 5, 17, 9, 21, 2, 14};
  (void)expect_n;
  CHECK(shape_is(n, SHAPE(2, 3, 2)));
  CHECK_NEAR(fsvc_get_flat(n, 0), 1, 0); /* t[1,0,0] = a[0,0,1] */
  fsvc_tensor *s = fsvc_slice(a, 2, 1, 100, 2); /* a[:, :, 1::2] */
  double expect_s[] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23};
  CHECK(equals(s, expect_s, 12));
  fsvc_tensor *s2 = fsvc_slice(a, -1, -3, -1, 1); /* a[..., -3:-1] */
  double expect_s2[] = {1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22};
  CHECK(equals(s2, expect_s2, 12));
  fsvc_tensor *sel = fsvc_select(a, 1, -1); /* a[:, 2] */
  double expect_sel[] = {8, 9, 10, 11, 20, 21, 22, 23};
  CHECK(shape_is(sel, SHAPE(2, 4)) && equals(sel, expect_sel, 8));
  CHECK(fsvc_select(a, 1, 3) == NULL && strstr(fsvc_last_error(), "select") != NULL);
  CHECK(fsvc_narrow(a, 2, 2, 3) == NULL);
  CHECK(fsvc_narrow(a, 3, 0, 1) == NULL);

  /* expand, squeeze, unsqueeze */
  fsvc_tensor *c = arange(FSVC_FLOAT32, SHAPE(3, 1));
  fsvc_tensor *e = fsvc_expand(c, SHAPE(2, 3, 4));
  CHECK(shape_is(e, SHAPE(2, 3, 4)) && e->stride[0] == 0 && e->stride[2] == 0);
  CHECK_NEAR(fsvc_get_flat(e, 23), 2, 0);
  fsvc_tensor *e2 = fsvc_expand(c, SHAPE(-1, 5));
  CHECK(shape_is(e2, SHAPE(3, 5)));
  CHECK(fsvc_expand(c, SHAPE(2, 4)) == NULL);
  CHECK(fsvc_expand(c, SHAPE(4)) == NULL);
  fsvc_tensor *u = fsvc_unsqueeze(c, -1);
  CHECK(shape_is(u, SHAPE(3, 1, 1)));
  fsvc_tensor *sq = fsvc_squeeze_all(u);
  CHECK(shape_is(sq, SHAPE(3)));
  fsvc_tensor *sq0 = fsvc_squeeze(u, 0); /* size 3: unchanged */
  CHECK(shape_is(sq0, SHAPE(3, 1, 1)));
  fsvc_tensor *sq1 = fsvc_squeeze(u, 1);
  CHECK(shape_is(sq1, SHAPE(3, 1)));
  CHECK(fsvc_unsqueeze(c, 3) == NULL);

  /* contiguous, clone, to */
  fsvc_tensor *tc = fsvc_contiguous(t);
  CHECK(tc && fsvc_is_contiguous(tc) && equals(fsvc_narrow(fsvc_reshape(tc, SHAPE(-1)), 0, 0, 12), expect_r, 12));
  fsvc_tensor *l = fsvc_to_dtype(t, FSVC_INT64);
  CHECK(l && l->dtype == FSVC_INT64 && fsvc_get_flat(l, 1) == 12);
  fsvc_tensor *nan = fsvc_full(SHAPE(2), NAN, FSVC_FLOAT32);
  CHECK(fsvc_to_dtype(nan, FSVC_INT64) == NULL);
  /* leaks in the tests are fine: the process ends */
}

static void test_view_grads(void) {
  /* y = a.transpose(0,1).narrow(0, 1, 2).reshape(-1); backward of y with g = arange gives a
   * gradient that is g scattered back into a zero tensor of a's shape */
  fsvc_tensor *a = leaf(arange(FSVC_FLOAT64, SHAPE(2, 3)));
  fsvc_tensor *y = fsvc_reshape(fsvc_narrow(fsvc_transpose(a, 0, 1), 0, 1, 2), SHAPE(-1));
  CHECK(y && y->grad_fn);
  fsvc_tensor *g = arange(FSVC_FLOAT64, SHAPE(4));
  CHECK(fsvc_backward(y, g, 0) == 0);
  /* y = [a10? no: t = a^T [3,2]; t[1:3] = [[a01, a11], [a02, a12]] -> g: a01=0 a11=1 a02=2 a12=3 */
  double expect[] = {0, 0, 2, 0, 1, 3};
  CHECK(a->grad && equals(a->grad, expect, 6));

  /* expand sums, select scatters, slice with step */
  fsvc_tensor *b = leaf(arange(FSVC_FLOAT64, SHAPE(3, 1)));
  fsvc_tensor *z = fsvc_select(fsvc_expand(b, SHAPE(2, 3, 4)), 1, 1); /* [2, 4] of b[1] */
  CHECK(fsvc_backward(z, fsvc_full(SHAPE(2, 4), 1, FSVC_FLOAT64), 0) == 0);
  double expect_b[] = {0, 8, 0};
  CHECK(b->grad && equals(b->grad, expect_b, 3));

  fsvc_tensor *c = leaf(arange(FSVC_FLOAT64, SHAPE(7)));
  fsvc_tensor *w = fsvc_slice(c, 0, 1, 7, 3); /* c[1], c[4] */
  CHECK(fsvc_backward(w, from_list(FSVC_FLOAT64, SHAPE(2), (double[]){5, 6}), 0) == 0);
  double expect_c[] = {0, 5, 0, 0, 6, 0, 0};
  CHECK(c->grad && equals(c->grad, expect_c, 7));

  /* permute's inverse; to float32 and back */
  fsvc_tensor *d = leaf(arange(FSVC_FLOAT64, SHAPE(2, 3, 4)));
  fsvc_tensor *pd = fsvc_to_dtype(fsvc_permute(d, (int[]){2, 0, 1}), FSVC_FLOAT32);
  CHECK(pd && pd->dtype == FSVC_FLOAT32);
  fsvc_tensor *gp = fsvc_permute(arange(FSVC_FLOAT32, SHAPE(2, 3, 4)), (int[]){2, 0, 1});
  CHECK(fsvc_backward(pd, gp, 0) == 0);
  CHECK(d->grad && d->grad->dtype == FSVC_FLOAT64);
  int ok = 1;
  for (int i = 0; i < 24; i++) ok &= fsvc_get_flat(d->grad, i) == i;
  CHECK(ok);
}

static void release_parts(fsvc_tensor **parts, int n) {
  for (int i = 0; i < n; i++) fsvc_tensor_release(parts[i]);
  free(parts);
}

static void test_cat_split(void) {
  fsvc_tensor *a = leaf(arange(FSVC_FLOAT64, SHAPE(2, 2)));
  fsvc_tensor *b = leaf(arange(FSVC_FLOAT64, SHAPE(2, 3)));
  fsvc_tensor *c = fsvc_cat(2, (fsvc_tensor *[]){a, b}, 1);
  double expect[] = {0, 1, 0, 1, 2, 2, 3, 3, 4, 5};
  CHECK(shape_is(c, SHAPE(2, 5)) && equals(c, expect, 10));
  CHECK(fsvc_cat(2, (fsvc_tensor *[]){a, b}, 0) == NULL);
  CHECK(fsvc_backward(c, arange(FSVC_FLOAT64, SHAPE(2, 5)), 0) == 0);
  double ga[] = {0, 1, 5, 6}, gb[] = {2, 3, 4, 7, 8, 9};
  CHECK(a->grad && equals(a->grad, ga, 4));
  CHECK(b->grad && equals(b->grad, gb, 6));

  /* stack on the last dim with a transposed input */
  fsvc_tensor *x = leaf(arange(FSVC_FLOAT64, SHAPE(2, 2)));
  fsvc_tensor *xt = fsvc_transpose(x, 0, 1);
  fsvc_tensor *s = fsvc_stack(2, (fsvc_tensor *[]){x, xt}, -1); /* [2, 2, 2] */
  double expect_s[] = {0, 0, 1, 2, 2, 1, 3, 3};
  CHECK(shape_is(s, SHAPE(2, 2, 2)) && equals(s, expect_s, 8));
  CHECK(fsvc_backward(s, arange(FSVC_FLOAT64, SHAPE(2, 2, 2)), 0) == 0);
  double gx[] = {0 + 1, 2 + 5, 4 + 3, 6 + 7};
  CHECK(x->grad && equals(x->grad, gx, 4));
  CHECK(fsvc_stack(2, (fsvc_tensor *[]){a, b}, 0) == NULL);

  /* split / chunk */
  fsvc_tensor *t = arange(FSVC_FLOAT32, SHAPE(7, 2));
  fsvc_tensor **parts;
  int np;
  CHECK(fsvc_split(t, 3, 0, &parts, &np) == 0 && np == 3);
  CHECK(shape_is(parts[2], SHAPE(1, 2)) && fsvc_get_flat(parts[2], 1) == 13);
  CHECK(parts[1]->storage == t->storage);
  release_parts(parts, np);
  CHECK(fsvc_chunk(t, 3, 0, &parts, &np) == 0 && np == 3); /* 3, 3, 1 as PyTorch */
  CHECK(shape_is(parts[0], SHAPE(3, 2)) && shape_is(parts[2], SHAPE(1, 2)));
  release_parts(parts, np);
  fsvc_tensor *six = arange(FSVC_FLOAT32, SHAPE(6));
  CHECK(fsvc_chunk(six, 4, 0, &parts, &np) == 0 && np == 3); /* pieces of 2 */
  release_parts(parts, np);
  CHECK(fsvc_split(t, 0, 0, &parts, &np) != 0);
  CHECK(fsvc_chunk(t, 0, 0, &parts, &np) != 0);
}

static void test_flip(void) {
  fsvc_tensor *a = leaf(arange(FSVC_FLOAT64, SHAPE(2, 3)));
  fsvc_tensor *f = fsvc_flip(a, 2, (int[]){0, -1});
  double expect[] = {5, 4, 3, 2, 1, 0};
  CHECK(equals(f, expect, 6));
  fsvc_tensor *f1 = fsvc_flip(fsvc_transpose(a, 0, 1), 1, (int[]){0}); /* [3, 2] */
  double expect1[] = {2, 5, 1, 4, 0, 3};
  CHECK(equals(f1, expect1, 6));
  CHECK(fsvc_backward(f, arange(FSVC_FLOAT64, SHAPE(2, 3)), 0) == 0);
  CHECK(a->grad && equals(a->grad, expect, 6));
  CHECK(fsvc_flip(a, 2, (int[]){0, 0}) == NULL);
  CHECK(fsvc_flip(a, 1, (int[]){2}) == NULL);
}

static void test_pad(void) {
  fsvc_tensor *x = arange(FSVC_FLOAT64, SHAPE(2, 3, 5));
  /* torch: F.pad(x, (2, 3), mode='reflect') */
  double reflect[] = {2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 7, 6, 5, 6, 7, 8, 9, 8, 7, 6, 12, 11, 10, 11,
                      12, 13, 14, 13, 12, 11, 17, 16, 15, 16, 17, 18, 19, 18, 17, 16, 22, 21, 20,
                      21, 22, 23, 24, 23, 22, 21, 27, 26, 25, 26, 27, 28, 29, 28, 27, 26};
  fsvc_tensor *r = fsvc_pad(x, 2, (int64_t[]){2, 3}, FSVC_PAD_REFLECT, 0);
  CHECK(shape_is(r, SHAPE(2, 3, 10)) && equals(r, reflect, 60));
  /* torch: F.pad(x, (3, 1), mode='replicate') */
  double replicate[] = {0, 0, 0, 0, 1, 2, 3, 4, 4, 5, 5, 5, 5, 6, 7, 8, 9, 9, 10, 10, 10, 10, 11,
                        12, 13, 14, 14, 15, 15, 15, 15, 16, 17, 18, 19, 19, 20, 20, 20, 20, 21, 22,
                        23, 24, 24, 25, 25, 25, 25, 26, 27, 28, 29, 29};
  fsvc_tensor *rp = fsvc_pad(x, 2, (int64_t[]){3, 1}, FSVC_PAD_REPLICATE, 0);
  CHECK(shape_is(rp, SHAPE(2, 3, 9)) && equals(rp, replicate, 54));
  /* the same on a float32 input seen through a transpose (strided last dim) */
  fsvc_tensor *xt = fsvc_transpose(fsvc_contiguous(fsvc_transpose(arange(FSVC_FLOAT32, SHAPE(2, 3, 5)), 1, 2)), 1, 2);
  CHECK(xt && !fsvc_is_contiguous(xt));
  CHECK(equals(fsvc_pad(xt, 2, (int64_t[]){3, 1}, FSVC_PAD_REPLICATE, 0), replicate, 54));
  /* torch: F.pad(arange(12).reshape(1,3,4), (1, 2, 2, 1), mode='reflect') */
  fsvc_tensor *y = arange(FSVC_FLOAT32, SHAPE(1, 3, 4));
  double reflect2[] = {9, 8, 9, 10, 11, 10, 9, 5, 4, 5, 6, 7, 6, 5, 1, 0, 1, 2, 3, 2, 1,
                       5, 4, 5, 6, 7, 6, 5, 9, 8, 9, 10, 11, 10, 9, 5, 4, 5, 6, 7, 6, 5};
  fsvc_tensor *r2 = fsvc_pad(y, 4, (int64_t[]){1, 2, 2, 1}, FSVC_PAD_REFLECT, 0);
  CHECK(shape_is(r2, SHAPE(1, 6, 7)) && equals(r2, reflect2, 42));
  /* torch: F.pad(y, (1, -1, 1, 0), value=7): negative pads crop */
  double cons[] = {7, 7, 7, 7, 7, 0, 1, 2, 7, 4, 5, 6, 7, 8, 9, 10};
  fsvc_tensor *c = fsvc_pad(y, 4, (int64_t[]){1, -1, 1, 0}, FSVC_PAD_CONSTANT, 7);
  CHECK(shape_is(c, SHAPE(1, 4, 4)) && equals(c, cons, 16));
  /* int64 */
  fsvc_tensor *li = fsvc_pad(arange(FSVC_INT64, SHAPE(3)), 2, (int64_t[]){1, 1}, FSVC_PAD_CONSTANT, -1);
  CHECK(equals(li, (double[]){-1, 0, 1, 2, -1}, 5));
  /* errors */
  CHECK(fsvc_pad(x, 2, (int64_t[]){5, 0}, FSVC_PAD_REFLECT, 0) == NULL);
  CHECK(strstr(fsvc_last_error(), "reflect") != NULL);
  CHECK(fsvc_pad(x, 3, (int64_t[]){1, 1, 1}, FSVC_PAD_CONSTANT, 0) == NULL);
  CHECK(fsvc_pad(x, 8, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1}, FSVC_PAD_CONSTANT, 0) == NULL);
  CHECK(fsvc_pad(x, 2, (int64_t[]){-1, 0}, FSVC_PAD_REPLICATE, 0) == NULL);
  CHECK(fsvc_pad(x, 2, (int64_t[]){-3, -3}, FSVC_PAD_CONSTANT, 0) == NULL);

  /* backward, torch: pad (4, 3) reflect of arange(6), grad arange(13) */
  fsvc_tensor *v = leaf(arange(FSVC_FLOAT64, SHAPE(1, 1, 6)));
  fsvc_tensor *pv = fsvc_pad(v, 2, (int64_t[]){4, 3}, FSVC_PAD_REFLECT, 0);
  CHECK(fsvc_backward(pv, arange(FSVC_FLOAT64, SHAPE(1, 1, 13)), 0) == 0);
  CHECK(v->grad && equals(v->grad, (double[]){4, 8, 20, 19, 18, 9}, 6));
  /* torch: replicate (1, 2, 2, 1) of [1, 3, 4], grad arange(42) */
  fsvc_tensor *w = leaf(arange(FSVC_FLOAT32, SHAPE(1, 3, 4)));
  fsvc_tensor *pw = fsvc_pad(w, 4, (int64_t[]){1, 2, 2, 1}, FSVC_PAD_REPLICATE, 0);
  CHECK(fsvc_backward(pw, arange(FSVC_FLOAT32, SHAPE(1, 6, 7)), 0) == 0);
  double gw[] = {45, 27, 30, 108, 43, 23, 24, 78, 128, 67, 69, 219};
  CHECK(w->grad && equals(w->grad, gw, 12));

  /* the decoder's case, large enough for the threaded path: left replicate pad of [4, 8, 3000] */
  fsvc_tensor *big = arange(FSVC_FLOAT32, SHAPE(4, 8, 3000));
  fsvc_tensor *pb = fsvc_pad(big, 2, (int64_t[]){6, 0}, FSVC_PAD_REPLICATE, 0);
  int ok = pb != NULL;
  for (int64_t row = 0; ok && row < 32; row++)
    for (int64_t j = 0; j < 3006; j++) {
      double want = row * 3000 + (j < 6 ? 0 : j - 6);
      if (fsvc_get_flat(pb, row * 3006 + j) != (float)want) { ok = 0; break; }
    }
  CHECK(ok);
}

static void test_index(void) {
  fsvc_tensor *a = leaf(arange(FSVC_FLOAT64, SHAPE(3, 4)));
  fsvc_tensor *idx = from_list(FSVC_INT64, SHAPE(3), (double[]){2, 0, 2});
  fsvc_tensor *s = fsvc_index_select(a, 0, idx);
  double expect[] = {8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11};
  CHECK(shape_is(s, SHAPE(3, 4)) && equals(s, expect, 12));
  CHECK(fsvc_backward(s, fsvc_full(SHAPE(3, 4), 1, FSVC_FLOAT64), 0) == 0);
  double ga[] = {1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 2, 2};
  CHECK(a->grad && equals(a->grad, ga, 12));
  fsvc_tensor *s1 = fsvc_index_select(fsvc_transpose(a, 0, 1), 1, idx); /* a^T[:, idx] */
  double expect1[] = {8, 0, 8, 9, 1, 9, 10, 2, 10, 11, 3, 11};
  CHECK(equals(s1, expect1, 12));
  fsvc_tensor *bad = from_list(FSVC_INT64, SHAPE(2), (double[]){1, 3});
  CHECK(fsvc_index_select(a, 0, bad) == NULL);
  CHECK(strstr(fsvc_last_error(), "index_select") && strstr(fsvc_last_error(), "3"));
  fsvc_tensor *neg = from_list(FSVC_INT64, SHAPE(1), (double[]){-1});
  CHECK(fsvc_index_select(a, 0, neg) == NULL);
  CHECK(fsvc_index_select(a, 0, fsvc_full(SHAPE(1), 0, FSVC_FLOAT32)) == NULL);

  /* gather: torch.gather(arange(12).reshape(3,4), 1, [[0,0],[3,1],[2,2]]) */
  fsvc_tensor *b = leaf(arange(FSVC_FLOAT64, SHAPE(3, 4)));
  fsvc_tensor *gi = from_list(FSVC_INT64, SHAPE(3, 2), (double[]){0, 0, 3, 1, 2, 2});
  fsvc_tensor *g = fsvc_gather(b, 1, gi);
  CHECK(shape_is(g, SHAPE(3, 2)) && equals(g, (double[]){0, 0, 7, 5, 10, 10}, 6));
  CHECK(fsvc_backward(g, arange(FSVC_FLOAT64, SHAPE(3, 2)), 0) == 0);
  double gb[] = {0 + 1, 0, 0, 0, 0, 3, 0, 2, 0, 0, 4 + 5, 0};
  CHECK(b->grad && equals(b->grad, gb, 12));
  fsvc_tensor *gbad = from_list(FSVC_INT64, SHAPE(3, 2), (double[]){0, 0, 4, 1, 2, 2});
  CHECK(fsvc_gather(b, 1, gbad) == NULL && strstr(fsvc_last_error(), "index 4"));
  CHECK(fsvc_gather(b, 1, idx) == NULL); /* wrong number of dims */

  /* scatter_add: out = zeros(3, 4); out[i][index[i][j]] += src[i][j] */
  fsvc_tensor *z = leaf(fsvc_zeros(SHAPE(3, 4), FSVC_FLOAT64));
  fsvc_tensor *src = leaf(arange(FSVC_FLOAT64, SHAPE(3, 3))); /* larger than index: ok */
  fsvc_tensor *sa = fsvc_scatter_add(z, 1, gi, src);
  double expect_sa[] = {0 + 1, 0, 0, 0, 0, 4, 0, 3, 0, 0, 6 + 7, 0};
  CHECK(equals(sa, expect_sa, 12));
  CHECK(fsvc_backward(sa, arange(FSVC_FLOAT64, SHAPE(3, 4)), 0) == 0);
  double gz[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  double gsrc[] = {0, 0, 0, 7, 5, 0, 10, 10, 0};
  CHECK(z->grad && equals(z->grad, gz, 12));
  CHECK(src->grad && equals(src->grad, gsrc, 9));
  CHECK(fsvc_scatter_add(z, 1, gbad, src) == NULL);
  CHECK(fsvc_scatter_add(z, 0, gi, fsvc_zeros(SHAPE(2, 2), FSVC_FLOAT64)) == NULL);
}

static void test_bad_inputs(void) {
  fsvc_tensor *a = arange(FSVC_FLOAT32, SHAPE(2, 3));
  CHECK(fsvc_view(NULL, SHAPE(6)) == NULL);
  CHECK(fsvc_cat(0, NULL, 0) == NULL);
  CHECK(fsvc_cat(2, (fsvc_tensor *[]){a, NULL}, 0) == NULL);
  fsvc_tensor *freed = arange(FSVC_FLOAT32, SHAPE(2, 3));
  fsvc_tensor_free_data(freed);
  CHECK(fsvc_reshape(freed, SHAPE(6)) == NULL && strstr(fsvc_last_error(), "freed"));
  CHECK(fsvc_pad(freed, 2, (int64_t[]){1, 1}, FSVC_PAD_CONSTANT, 0) == NULL);
  CHECK(fsvc_transpose(a, 0, 2) == NULL);
  CHECK(fsvc_slice(a, 0, 0, 1, 0) == NULL);
  fsvc_tensor *empty = fsvc_slice(a, 1, 5, 9, 1);
  CHECK(shape_is(empty, SHAPE(2, 0)));
  CHECK(shape_is(fsvc_pad(empty, 2, (int64_t[]){1, 2}, FSVC_PAD_CONSTANT, 3), SHAPE(2, 3)));
  CHECK(fsvc_pad(empty, 2, (int64_t[]){1, 0}, FSVC_PAD_REPLICATE, 0) == NULL);
  /* sizes whose product passes 2^63 (UBSan flagged the signed overflow; found by a random sweep
   * under ASan): an error */
  const int64_t big = (int64_t)1 << 62;
  CHECK(fsvc_reshape(a, SHAPE(big, 3)) == NULL && strstr(fsvc_last_error(), "is invalid for input"));
  CHECK(fsvc_reshape(a, SHAPE(big, 4, -1)) == NULL && strstr(fsvc_last_error(), "is invalid for input"));
}

int main(void) {
  test_views();
  test_view_grads();
  test_cat_split();
  test_flip();
  test_pad();
  test_index();
  test_bad_inputs();
  return CTEST_END();
}
