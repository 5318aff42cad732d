/* Devices and the CUDA dispatch. Without a GPU (or without the backend): availability answers
 * false, moves to CUDA fail with a message naming the fix, and every op refuses a CUDA tensor
 * cleanly (checked on a CPU tensor whose storage claims to be on cuda:0, which no kernel touches
 * then). With a GPU: a round trip, a few ops against the CPU, and the caching allocator. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "fsvc/device.h"
#include "fsvc/fsvc.h"
#include "fsvc/ops_extra.h"

static int error_has(const char *needle) {
  const char *e = fsvc_last_error();
  if (!e || !strstr(e, needle)) {
    fprintf(stderr, "  error was: %s (expected to contain '%s')\n", e ? e : "(null)", needle);
    return 0;
  }
  return 1;
}

static fsvc_tensor *refusing_op(const fsvc_tensor *x, double p) {
  FSVC_REFUSE_CUDA(stft, x, p);
  return fsvc_tensor_retain((fsvc_tensor *)x);
}

static void test_names(void) {
  fsvc_device d;
  CHECK(fsvc_device_parse("cpu", &d) == 0 && d.type == FSVC_CPU);
  CHECK(fsvc_device_parse("cuda", &d) == 0 && d.type == FSVC_CUDA && d.index == 0);
  CHECK(fsvc_device_parse("cuda:3", &d) == 0 && d.type == FSVC_CUDA && d.index == 3);
  CHECK(fsvc_device_parse("cuda:", &d) != 0);
  CHECK(fsvc_device_parse("cuda:x", &d) != 0);
  CHECK(fsvc_device_parse("gpu", &d) != 0 && error_has("unknown device"));
  CHECK(fsvc_device_parse(NULL, &d) != 0);
  char buf[32];
  fsvc_device c1 = {FSVC_CUDA, 1};
  CHECK(strcmp(fsvc_device_str(c1, buf, sizeof buf), "cuda:1") == 0);
  CHECK(strcmp(fsvc_device_str(fsvc_cpu(), buf, sizeof buf), "cpu") == 0);
  CHECK(fsvc_device_equal(fsvc_cpu(), fsvc_cpu()));
  CHECK(!fsvc_device_equal(fsvc_cpu(), c1));
}

static void test_unavailable(void) {
  CHECK(fsvc_cuda_device_count() == 0);
  CHECK(fsvc_cuda_device_name(0) == NULL);
  CHECK(strlen(fsvc_cuda_unavailable_reason()) > 0);
  printf("CUDA unavailable: %s\n", fsvc_cuda_unavailable_reason());
  int64_t shape[2] = {2, 3};
  fsvc_tensor *x = fsvc_zeros(2, shape, FSVC_FLOAT32);
  fsvc_device cuda = {FSVC_CUDA, 0};
  fsvc_tensor *y = fsvc_to_device(x, cuda);
  CHECK(y == NULL && error_has("to: cuda:0 requested but"));
  CHECK(fsvc_to_device_raw(x, cuda) == NULL);
  CHECK(fsvc_empty_on(2, shape, FSVC_FLOAT32, cuda) == NULL && error_has("cuda:0"));
  fsvc_tensor *same = fsvc_to_device(x, fsvc_cpu()); /* no-op move: the same tensor */
  CHECK(same == x);
  fsvc_tensor_release(same);
  fsvc_tensor_release(y);
  fsvc_tensor_release(x);
}

/* A CPU tensor whose storage says cuda:0: what a device tensor looks like to the core. Only
 * used when no GPU is usable, so no kernel ever receives its (host) pointer. */
static void test_refusals(void) {
  int64_t shape[2] = {2, 3}, wshape[3] = {4, 3, 1};
  fsvc_tensor *a = fsvc_full(2, shape, 1.0, FSVC_FLOAT32);
  fsvc_tensor *c = fsvc_full(2, shape, 2.0, FSVC_FLOAT32);
  fsvc_tensor *w = fsvc_full(3, wshape, 0.5, FSVC_FLOAT32);
  c->storage->device.type = FSVC_CUDA;
  c->storage->device.index = 0;
  CHECK(fsvc_tensor_is_cuda(c) && !fsvc_tensor_is_cuda(a));
  const char *no_gpu = fsvc_cuda_built() ? "CUDA is unavailable" : "no CUDA backend";
  (void)no_gpu;

  CHECK(refusing_op(c, 1.0) == NULL && error_has("stft: CUDA tensors are not supported yet"));
  fsvc_tensor *ok = refusing_op(a, 1.0);
  CHECK(ok == a);
  fsvc_tensor_release(ok);
  fsvc_clear_error();
  fsvc_tensor *r = fsvc_add(a, c);
  CHECK(r == NULL && strlen(fsvc_last_error()) > 0);
  if (!fsvc_cuda_built()) CHECK(error_has("add: tensor on cuda:0 but this build has no CUDA backend"));
  r = fsvc_exp(c);
  CHECK(r == NULL);
  int dims[1] = {1};
  CHECK(fsvc_sum(c, 1, dims, 0) == NULL);
  CHECK(fsvc_softmax(c, -1) == NULL);
  CHECK(fsvc_matmul(c, a) == NULL);
  fsvc_tensor *x3 = fsvc_reshape(c, 3, (int64_t[]){1, 3, 2}); /* views are device-generic */
  CHECK(x3 != NULL && fsvc_tensor_is_cuda(x3));
  fsvc_conv1d_params p = {0};
  CHECK(fsvc_conv1d(x3, w, NULL, &p) == NULL);
  fsvc_tensor *pair[2] = {a, c};
  CHECK(fsvc_cat(2, pair, 0) == NULL && error_has("tensor 1 of the list is on cuda:0 but tensor 0 is on cpu"));
  fsvc_tensor *both[2] = {c, c}; /* one device-generic cat: without a backend it cannot allocate */
  CHECK(fsvc_cat(2, both, 0) == NULL && strlen(fsvc_last_error()) > 0);
  CHECK(fsvc_flip(c, 1, dims) == NULL);
  fsvc_adam_params h = {1e-3, 0.9, 0.999, 1e-8, 0, 1, 0, 1};
  fsvc_tensor *m = fsvc_zeros(2, shape, FSVC_FLOAT32), *v = fsvc_zeros(2, shape, FSVC_FLOAT32);
  CHECK(fsvc_adam_step_(c, a, m, v, NULL, &h) == -1);
  CHECK(fsvc_uniform_(c, 0, 1, NULL) == -1);
  /* raw helpers: element access refuses, copies and fills need the backend */
  CHECK(isnan(fsvc_get_flat(c, 0)) && error_has("copy it to the host first"));
  fsvc_set_flat(c, 0, 5.0);
  CHECK(error_has("cuda:0"));
  CHECK(fsvc_clone_raw(c) == NULL);
  CHECK(fsvc_copy_(a, c) == -1);
  CHECK(fsvc_fill_(c, 3.0) == -1);
  CHECK(fsvc_to_device_raw(c, fsvc_cpu()) == NULL);
  /* the CPU operand is untouched */
  CHECK(fsvc_get_flat(a, 0) == 1.0);
  fsvc_tensor_release(x3);
  fsvc_tensor_release(m);
  fsvc_tensor_release(v);
  fsvc_tensor_release(a);
  fsvc_tensor_release(c); /* host memory: the CPU allocator frees it whatever the device field says */
  fsvc_tensor_release(w);
}


/* ---- a host-memory mock of the backend: checks the core's device paths without a GPU ---------- */
/* Storages of the mock "device" are host memory flagged cuda:0; a mock op flags its operands'
 * storages CPU for the duration of a CPU call, then flags the result cuda:0. */
#define MAX_FLIP 8
typedef struct { fsvc_storage *s[MAX_FLIP]; int n; } flip_set;
static void flip_to_cpu(flip_set *f, const fsvc_tensor *t) {
  if (!t || !t->storage || t->storage->device.type != FSVC_CUDA) return;
  for (int i = 0; i < f->n; i++)
    if (f->s[i] == t->storage) return;
  f->s[f->n++] = t->storage;
  t->storage->device = fsvc_cpu();
}
static void flip_back(flip_set *f) {
  for (int i = 0; i < f->n; i++) { f->s[i]->device.type = FSVC_CUDA; f->s[i]->device.index = 0; }
}
static void mark_cuda(fsvc_tensor *t) {
  if (t) { t->storage->device.type = FSVC_CUDA; t->storage->device.index = 0; }
}

static int mock_count(void) { return 1; }
static const char *mock_name(int i) { (void)i; return "mock device"; }
static const char *mock_reason(void) { return ""; }
static int mock_allocs = 0;
static void *mock_alloc(int device, size_t n) { (void)device; mock_allocs++; return malloc(n ? n : 1); }
static void mock_release(void *owner, void *p, size_t n) { (void)owner; (void)n; mock_allocs--; free(p); }
static int mock_memcpy(void *dst, fsvc_device dd, const void *src, fsvc_device sd, size_t n) {
  (void)dd; (void)sd;
  memcpy(dst, src, n);
  return 0;
}
static int mock_copy(fsvc_tensor *dst, const fsvc_tensor *src) {
  flip_set f = {{0}, 0};
  flip_to_cpu(&f, dst);
  flip_to_cpu(&f, src);
  int rc = fsvc_copy_(dst, src);
  flip_back(&f);
  return rc;
}
static int mock_fill(fsvc_tensor *t, double v) {
  flip_set f = {{0}, 0};
  flip_to_cpu(&f, t);
  int rc = fsvc_fill_(t, v);
  flip_back(&f);
  return rc;
}
static int mock_sync(void) { return 0; }

/* add with a node whose backward hands g to both (equal-shape operands only) */
static int mock_add_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  for (int i = 0; i < 2; i++)
    if (n->edges[i].needs_grad && !(gin[i] = fsvc_clone_raw(g))) return -1;
  return 0;
}
static int mock_add_calls = 0, mock_sum_calls = 0;
static fsvc_tensor *mock_add(const fsvc_tensor *a, const fsvc_tensor *b) {
  mock_add_calls++;
  flip_set f = {{0}, 0};
  flip_to_cpu(&f, a);
  flip_to_cpu(&f, b);
  int prev = fsvc_set_grad_enabled(0);
  fsvc_tensor *out = fsvc_add(a, b);
  fsvc_set_grad_enabled(prev);
  flip_back(&f);
  mark_cuda(out);
  fsvc_node *n = out ? fsvc_node_new("add", 2, (fsvc_tensor *[]){(fsvc_tensor *)a, (fsvc_tensor *)b}, mock_add_backward) : NULL;
  if (n) fsvc_node_attach(n, out);
  return out;
}
static fsvc_tensor *mock_sum(const fsvc_tensor *a, int nd, const int *dims, int keepdim) {
  mock_sum_calls++;
  flip_set f = {{0}, 0};
  flip_to_cpu(&f, a);
  int prev = fsvc_set_grad_enabled(0);
  fsvc_tensor *out = fsvc_sum(a, nd, dims, keepdim);
  fsvc_set_grad_enabled(prev);
  flip_back(&f);
  mark_cuda(out);
  return out;
}

static void test_mock_backend(void) {
  static fsvc_cuda_op_table ops;
  ops.add = mock_add;
  ops.sum = mock_sum;
  static fsvc_device_backend mock = {mock_count, mock_name, mock_reason, mock_alloc, mock_release,
                                     mock_memcpy, mock_copy, mock_fill, mock_sync, NULL, &ops};
  fsvc_cuda_set_backend_for_testing(&mock);
  CHECK(fsvc_cuda_available() && fsvc_cuda_device_count() == 1);
  CHECK(strcmp(fsvc_cuda_device_name(0), "mock device") == 0);
  fsvc_device cuda = {FSVC_CUDA, 0};

  /* moves: values survive the round trip; the device tensor's memory comes from the backend */
  int64_t shape[2] = {2, 3};
  fsvc_tensor *x = fsvc_arange(0, 6, 1, FSVC_FLOAT32);
  fsvc_tensor *x2 = fsvc_reshape(x, 2, shape);
  x2->requires_grad = 1; /* a leaf of its own (reshape of a non-grad tensor records nothing) */
  fsvc_tensor *y = fsvc_to_device(x2, cuda);
  CHECK(y && fsvc_tensor_is_cuda(y) && y->storage->release == mock_release);
  CHECK(y && y->grad_fn && strcmp(y->grad_fn->op, "to_device") == 0);
  fsvc_tensor *back = fsvc_to_device_raw(y, fsvc_cpu());
  CHECK(back && !fsvc_tensor_is_cuda(back) && fsvc_get_flat(back, 4) == 4.0);
  CHECK(isnan(fsvc_get_flat(y, 0)));
  /* raw helpers keep the device */
  fsvc_tensor *c = fsvc_clone_raw(y), *d = fsvc_to_dtype_raw(y, FSVC_FLOAT64), *z = fsvc_zeros_like(y);
  CHECK(c && d && z && fsvc_tensor_is_cuda(c) && fsvc_tensor_is_cuda(d) && fsvc_tensor_is_cuda(z));
  CHECK(d && d->dtype == FSVC_FLOAT64 && fsvc_has_nonfinite(d) == 0);
  /* a transposed (strided) device view copied to the host */
  fsvc_tensor *yt = fsvc_transpose(y, 0, 1);
  fsvc_tensor *ytc = yt ? fsvc_to_device_raw(yt, fsvc_cpu()) : NULL;
  CHECK(ytc && fsvc_get_flat(ytc, 1) == 3.0); /* [[0,3],[1,4],[2,5]] */

  /* autograd across devices: two windows of y added on the device, gradient back on the host */
  fsvc_tensor *a = fsvc_narrow(y, 1, 0, 2), *b = fsvc_narrow(y, 1, 1, 2);
  fsvc_tensor *s = a && b ? fsvc_add(a, b) : NULL; /* dispatched to the mock */
  CHECK(s && fsvc_tensor_is_cuda(s) && mock_add_calls == 1);
  fsvc_tensor *g = fsvc_full_on(2, (int64_t[]){2, 2}, 1.0, FSVC_FLOAT32, cuda);
  CHECK(g && fsvc_tensor_is_cuda(g));
  CHECK(s && g && fsvc_backward(s, g, 0) == 0);
  CHECK(x2->grad && !fsvc_tensor_is_cuda(x2->grad));
  if (x2->grad) {
    static const double want[6] = {1, 2, 1, 1, 2, 1};
    for (int i = 0; i < 6; i++) CHECK_NEAR(fsvc_get_flat(x2->grad, i), want[i], 0);
  }
  CHECK(mock_add_calls >= 2); /* the two windows' gradients were summed on the device */

  /* broadcasting undone on the device: expand's backward sums through the backend */
  fsvc_tensor *row = fsvc_full(2, (int64_t[]){1, 3}, 2.0, FSVC_FLOAT32);
  row->requires_grad = 1;
  fsvc_tensor *rd = fsvc_to_device(row, cuda);
  fsvc_tensor *e = rd ? fsvc_expand(rd, 2, (int64_t[]){4, 3}) : NULL;
  fsvc_tensor *ge = fsvc_full_on(2, (int64_t[]){4, 3}, 1.0, FSVC_FLOAT32, cuda);
  CHECK(e && ge && fsvc_backward(e, ge, 0) == 0 && mock_sum_calls >= 1);
  if (row->grad) CHECK_NEAR(fsvc_get_flat(row->grad, 2), 4.0, 0);

  /* an implicit seed on the device (one element) */
  fsvc_tensor *rd2 = fsvc_to_device(row, cuda);
  fsvc_tensor *one = rd2 ? fsvc_narrow(rd2, 1, 0, 1) : NULL;
  CHECK(one && fsvc_backward(one, NULL, 0) == 0);
  if (!one || !row->grad) fprintf(stderr, "  %s\n", fsvc_last_error());
  else CHECK_NEAR(fsvc_get_flat(row->grad, 0), 5.0, 0); /* 4 from expand + 1 */

  /* ops without a device implementation fail cleanly */
  CHECK(fsvc_exp(y) == NULL && error_has("exp: not implemented on CUDA yet"));
  /* a CPU operand mixed with a device one reaches the backend, which decides */
  fsvc_tensor *list[] = {x, x2, y, back, c, d, z, yt, ytc, a, b, s, g, row, rd, rd2, e, ge, one};
  for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) fsvc_tensor_release(list[i]);
  CHECK(mock_allocs == 0); /* every device block went back through the backend */
  fsvc_cuda_set_backend_for_testing(NULL);
  CHECK(!fsvc_cuda_available()); /* the built-in backend again: no device here */
}

static double max_abs_diff(const fsvc_tensor *a, const fsvc_tensor *b) {
  double m = 0;
  for (int64_t i = 0; i < fsvc_numel(a); i++) {
    double d = fabs(fsvc_get_flat(a, i) - fsvc_get_flat(b, i));
    if (d > m) m = d;
  }
  return m;
}

static void test_gpu(void) {
  printf("CUDA devices: %d (%s)\n", fsvc_cuda_device_count(), fsvc_cuda_device_name(0));
  fsvc_device cuda = {FSVC_CUDA, 0};
  int64_t shape[2] = {64, 33};
  fsvc_manual_seed(1);
  fsvc_tensor *a = fsvc_randn(2, shape, FSVC_FLOAT32, NULL), *b = fsvc_randn(2, shape, FSVC_FLOAT32, NULL);
  fsvc_tensor *ga = fsvc_to_device(a, cuda), *gb = fsvc_to_device(b, cuda);
  CHECK(ga && gb && fsvc_tensor_is_cuda(ga));
  fsvc_tensor *back = fsvc_to_device(ga, fsvc_cpu());
  CHECK(back && max_abs_diff(back, a) == 0);
  fsvc_tensor *s_cpu = fsvc_mul(a, b), *s_gpu = fsvc_mul(ga, gb);
  fsvc_tensor *s_host = s_gpu ? fsvc_to_device(s_gpu, fsvc_cpu()) : NULL;
  CHECK(s_host && max_abs_diff(s_host, s_cpu) < 1e-6);
  int dims[1] = {1};
  fsvc_tensor *r_cpu = fsvc_sum(a, 1, dims, 0), *r_gpu = fsvc_sum(ga, 1, dims, 0);
  fsvc_tensor *r_host = r_gpu ? fsvc_to_device(r_gpu, fsvc_cpu()) : NULL;
  CHECK(r_host && max_abs_diff(r_host, r_cpu) < 1e-5);
  /* the caching allocator: a loop of equal allocations reuses blocks */
  for (int i = 0; i < 10; i++) {
    fsvc_tensor *t = fsvc_empty_on(2, shape, FSVC_FLOAT32, cuda);
    CHECK(t != NULL);
    fsvc_tensor_release(t);
  }
  fsvc_tensor *list[] = {back, s_cpu, s_gpu, s_host, r_cpu, r_gpu, r_host, ga, gb, a, b};
  for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) fsvc_tensor_release(list[i]);
  CHECK(fsvc_device_synchronize() == 0);
}

int main(void) {
  test_names();
  if (fsvc_cuda_available()) {
    test_gpu();
  } else {
    CTEST_SKIP("no CUDA device: GPU checks skipped (no-GPU behaviour checked)");
    test_unavailable();
    test_refusals();
    test_mock_backend();
  }
  return CTEST_END();
}
