/* Mixed precision in the core: the autocast state, the cast of the eligible ops' arguments before
 * the device dispatch (checked with a host-memory mock backend that records the dtypes its ops
 * receive, so it runs without a GPU), float16/bfloat16 CPU ops through float32, and the unscale
 * pass on the CPU and through the backend table. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "fsvc/device.h"
#include "fsvc/fsvc.h"
#include "fsvc/ops_extra.h"

static void test_state(void) {
  CHECK(!fsvc_autocast_enabled() && fsvc_autocast_dtype() == FSVC_FLOAT16);
  fsvc_autocast_state prev;
  CHECK(fsvc_set_autocast(1, FSVC_BFLOAT16, &prev) == 0 && !prev.enabled);
  CHECK(fsvc_autocast_enabled() && fsvc_autocast_dtype() == FSVC_BFLOAT16);
  CHECK(fsvc_set_autocast(1, FSVC_FLOAT32, NULL) == -1 && strstr(fsvc_last_error(), "float16 or bfloat16"));
  CHECK(fsvc_autocast_dtype() == FSVC_BFLOAT16); /* unchanged by the refused call */
  fsvc_autocast_restore(prev);
  CHECK(!fsvc_autocast_enabled() && fsvc_autocast_dtype() == FSVC_FLOAT16);
}

/* ---- a mock device: host memory flagged cuda:0 ------------------------------------------------ */
static void set_device(const fsvc_tensor *t, fsvc_device_type type) {
  if (t && t->storage) t->storage->device.type = type, t->storage->device.index = 0;
}
static int mock_count(void) { return 1; }
static const char *mock_name(int i) { (void)i; return "mock"; }
static const char *mock_reason(void) { return ""; }
static void *mock_alloc(int device, size_t n) { (void)device; return malloc(n ? n : 1); }
static void mock_release(void *owner, void *p, size_t n) { (void)owner; (void)n; free(p); }
static int mock_memcpy(void *dst, fsvc_device dd, const void *src, fsvc_device sd, size_t n) {
  (void)dd; (void)sd;
  memcpy(dst, src, n);
  return 0;
}
/* runs a CPU helper on the two tensors with their storages flagged CPU for the call */
static int mock_copy(fsvc_tensor *dst, const fsvc_tensor *src) {
  int src_cuda = fsvc_tensor_is_cuda(src);
  set_device(dst, FSVC_CPU);
  set_device(src, FSVC_CPU);
  int rc = fsvc_copy_(dst, src);
  set_device(dst, FSVC_CUDA);
  if (src_cuda) set_device(src, FSVC_CUDA);
  return rc;
}
static int mock_fill(fsvc_tensor *t, double v) {
  set_device(t, FSVC_CPU);
  int rc = fsvc_fill_(t, v);
  set_device(t, FSVC_CUDA);
  return rc;
}
static int mock_sync(void) { return 0; }

/* the eligible ops: record the dtypes they were given, return (a retained) x */
static fsvc_dtype seen[3];
static int seen_n = 0;
static void record(int n, const fsvc_tensor *const *ts) {
  seen_n = n;
  for (int i = 0; i < n; i++) seen[i] = ts[i] ? ts[i]->dtype : FSVC_NUM_DTYPES;
}
static fsvc_tensor *mock_linear(const fsvc_tensor *x, const fsvc_tensor *w, const fsvc_tensor *b) {
  record(3, (const fsvc_tensor *[]){x, w, b});
  return fsvc_tensor_retain((fsvc_tensor *)x);
}
static fsvc_tensor *mock_matmul(const fsvc_tensor *a, const fsvc_tensor *b) {
  record(2, (const fsvc_tensor *[]){a, b});
  return fsvc_tensor_retain((fsvc_tensor *)a);
}
static fsvc_tensor *mock_conv1d(const fsvc_tensor *x, const fsvc_tensor *w, const fsvc_tensor *b,
                                const fsvc_conv1d_params *p) {
  (void)p;
  record(3, (const fsvc_tensor *[]){x, w, b});
  return fsvc_tensor_retain((fsvc_tensor *)x);
}
static int unscale_calls = 0;
static int mock_unscale(int n, fsvc_tensor *const *grads, double inv, int *found) {
  unscale_calls++;
  for (int i = 0; i < n; i++) set_device(grads[i], FSVC_CPU);
  int rc = fsvc_amp_unscale_(n, grads, inv, found);
  for (int i = 0; i < n; i++) set_device(grads[i], FSVC_CUDA);
  return rc;
}

static fsvc_tensor *on_mock(fsvc_tensor *cpu) {
  fsvc_device cuda = {FSVC_CUDA, 0};
  fsvc_tensor *t = fsvc_to_device_raw(cpu, cuda);
  fsvc_tensor_release(cpu);
  return t;
}

static void test_autocast_before_dispatch(void) {
  static fsvc_cuda_op_table ops;
  ops.linear = mock_linear;
  ops.matmul = mock_matmul;
  ops.conv1d = mock_conv1d;
  ops.amp_unscale_ = mock_unscale;
  static fsvc_device_backend mock = {mock_count, mock_name, mock_reason, mock_alloc, mock_release,
                                     mock_memcpy, mock_copy, mock_fill, mock_sync, NULL, &ops};
  fsvc_cuda_set_backend_for_testing(&mock);
  int64_t xs[3] = {2, 4, 5}, ws[2] = {3, 5}, cs[3] = {6, 4, 1}, bs[1] = {3};
  fsvc_tensor *x = on_mock(fsvc_full(3, xs, 1.0, FSVC_FLOAT32));
  fsvc_tensor *w = on_mock(fsvc_full(2, ws, 0.5, FSVC_FLOAT32));
  fsvc_tensor *b = on_mock(fsvc_full(1, bs, 0.25, FSVC_FLOAT32));
  fsvc_tensor *cw = on_mock(fsvc_full(3, cs, 0.5, FSVC_FLOAT32));
  int64_t wts[2] = {5, 3};
  fsvc_tensor *x64 = on_mock(fsvc_full(2, ws, 1.0, FSVC_FLOAT64));
  fsvc_tensor *x64t = on_mock(fsvc_full(2, wts, 1.0, FSVC_FLOAT64)); /* [3, 5] x [5, 3] */
  CHECK(x && w && b && cw && x64 && x64t && fsvc_tensor_is_cuda(x));

  /* off: the backend sees float32 */
  fsvc_tensor *y = fsvc_linear(x, w, b);
  CHECK(y && seen_n == 3 && seen[0] == FSVC_FLOAT32 && seen[1] == FSVC_FLOAT32 && seen[2] == FSVC_FLOAT32);
  fsvc_tensor_release(y);

  fsvc_dtype lows[2] = {FSVC_FLOAT16, FSVC_BFLOAT16};
  for (int i = 0; i < 2; i++) {
    fsvc_autocast_state prev;
    fsvc_set_autocast(1, lows[i], &prev);
    y = fsvc_linear(x, w, b);
    CHECK(y && fsvc_tensor_is_cuda(y) && y->dtype == lows[i]);
    CHECK(seen[0] == lows[i] && seen[1] == lows[i] && seen[2] == lows[i]);
    fsvc_tensor_release(y);
    y = fsvc_linear(x, w, NULL); /* a missing bias stays missing */
    CHECK(y && seen[2] == FSVC_NUM_DTYPES);
    fsvc_tensor_release(y);
    y = fsvc_conv1d(x, cw, NULL, &(fsvc_conv1d_params){0});
    CHECK(y && seen[0] == lows[i] && seen[1] == lows[i]);
    fsvc_tensor_release(y);
    y = fsvc_matmul(x64, x64t); /* float64 is left alone */
    CHECK(y && seen_n == 2 && seen[0] == FSVC_FLOAT64 && seen[1] == FSVC_FLOAT64);
    fsvc_tensor_release(y);
    fsvc_autocast_restore(prev);
  }

  /* the unscale pass reaches the backend's entry */
  int found = -1;
  fsvc_tensor *grads[2] = {w, b};
  CHECK(fsvc_amp_unscale_(2, grads, 0.5, &found) == 0 && found == 0 && unscale_calls == 1);
  set_device(w, FSVC_CPU);
  CHECK_NEAR(fsvc_get_flat(w, 0), 0.25, 0);
  set_device(w, FSVC_CUDA);

  fsvc_tensor *list[] = {x, w, b, cw, x64, x64t};
  for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) fsvc_tensor_release(list[i]);
  fsvc_cuda_set_backend_for_testing(NULL);
}

/* float16/bfloat16 on the CPU: the float32 op, rounded; gradients in the input's dtype */
static void test_cpu_16bit(void) {
  int64_t s[2] = {3, 4};
  fsvc_manual_seed(5);
  fsvc_tensor *x32 = fsvc_randn(2, s, FSVC_FLOAT32, NULL);
  fsvc_dtype lows[2] = {FSVC_FLOAT16, FSVC_BFLOAT16};
  for (int k = 0; k < 2; k++) {
    fsvc_tensor *x = fsvc_to_dtype_raw(x32, lows[k]);
    x->requires_grad = 1;
    fsvc_tensor *wide = fsvc_to_dtype_raw(x, FSVC_FLOAT32);
    fsvc_tensor *y = fsvc_tanh(x), *y32 = fsvc_tanh(wide);
    fsvc_tensor *want = y32 ? fsvc_to_dtype_raw(y32, lows[k]) : NULL;
    CHECK(y && want && y->dtype == lows[k]);
    double diff = 0;
    for (int64_t i = 0; y && want && i < 12; i++) diff = fmax(diff, fabs(fsvc_get_flat(y, i) - fsvc_get_flat(want, i)));
    CHECK(diff == 0);
    fsvc_tensor *sum = y ? fsvc_sum(y, 0, NULL, 0) : NULL;
    CHECK(sum && sum->dtype == lows[k] && fsvc_backward(sum, NULL, 0) == 0);
    CHECK(x->grad && x->grad->dtype == lows[k]);
    fsvc_tensor *list[] = {x, wide, y, y32, want, sum};
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) fsvc_tensor_release(list[i]);
  }
  fsvc_tensor_release(x32);
}

static void test_unscale_cpu(void) {
  double vals[4] = {2, -4, 8, 16};
  int64_t n = 4;
  fsvc_tensor *a = fsvc_from_buffer(1, &n, FSVC_FLOAT32, vals, FSVC_FLOAT64);
  fsvc_tensor *h = fsvc_from_buffer(1, &n, FSVC_FLOAT16, vals, FSVC_FLOAT64);
  fsvc_tensor *grads[3] = {a, NULL, h};
  int found = -1;
  CHECK(fsvc_amp_unscale_(3, grads, 0.25, &found) == 0 && found == 0);
  CHECK_NEAR(fsvc_get_flat(a, 1), -1, 0);
  CHECK_NEAR(fsvc_get_flat(h, 3), 4, 0);
  fsvc_set_flat(a, 2, INFINITY);
  CHECK(fsvc_amp_unscale_(1, grads, 1.0, &found) == 0 && found == 1);
  fsvc_tensor *idx = fsvc_zeros(1, &n, FSVC_INT64);
  CHECK(fsvc_amp_unscale_(1, &idx, 1.0, &found) == -1 && strstr(fsvc_last_error(), "not a float tensor"));
  fsvc_tensor_release(a);
  fsvc_tensor_release(h);
  fsvc_tensor_release(idx);
}

/* The weight-cast cache: one conversion per weight and dtype inside a region, references held
 * until the outermost region exits, a node of its own per use. */
static void test_cast_cache(void) {
  int64_t shape[2] = {3, 3};
  fsvc_tensor *w = fsvc_full(2, shape, 0.5, FSVC_FLOAT32);
  fsvc_tensor *x = fsvc_full(2, shape, 1.0, FSVC_FLOAT32);
  w->requires_grad = 1;
  fsvc_autocast_reset_stats();
  fsvc_autocast_state outer, inner;
  CHECK(fsvc_autocast_enter(1, FSVC_FLOAT32, 1, &outer) == -1); /* refused: nothing opened */
  CHECK(fsvc_autocast_get_stats().depth == 0 && !fsvc_autocast_enabled());
  CHECK(fsvc_autocast_enter(1, FSVC_FLOAT16, 1, &outer) == 0 && !outer.enabled);
  fsvc_tensor *y1 = fsvc_matmul(x, w);
  CHECK(fsvc_autocast_enter(1, FSVC_FLOAT16, 1, &inner) == 0 && inner.enabled);
  fsvc_tensor *y2 = fsvc_matmul(x, w);
  fsvc_autocast_exit(inner);
  fsvc_autocast_stats s = fsvc_autocast_get_stats();
  CHECK(s.casts == 3 && s.cache_hits == 1 && s.cached == 1 && s.depth == 1);
  CHECK(y1 && y2 && y1->dtype == FSVC_FLOAT16 && y1->grad_fn && y2->grad_fn);
  int refs = w->refcount; /* ours, the two "to" nodes' edges, the cache's */
  CHECK(refs == 4);
  fsvc_autocast_exit(outer);
  s = fsvc_autocast_get_stats();
  CHECK(s.cached == 0 && s.depth == 0 && w->refcount == refs - 1 && !fsvc_autocast_enabled());
  /* both uses give float32 gradients to w: 2 x (column sums of x = 3) */
  fsvc_tensor *sum = fsvc_add(y1, y2);
  fsvc_tensor *total = fsvc_sum(sum, 0, NULL, 0);
  CHECK(total && fsvc_backward(total, NULL, 0) == 0);
  CHECK(w->grad && w->grad->dtype == FSVC_FLOAT32);
  if (w->grad) CHECK_NEAR(fsvc_get_flat(w->grad, 4), 6, 0);
  fsvc_tensor_release(total);
  fsvc_tensor_release(sum);
  fsvc_tensor_release(y1);
  fsvc_tensor_release(y2);
  fsvc_tensor_release(x);
  fsvc_tensor_release(w);
}

int main(void) {
  test_state();
  test_cast_cache();
  test_autocast_before_dispatch();
  test_cpu_16bit();
  test_unscale_cpu();
  return CTEST_END();
}
