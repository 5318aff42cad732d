/* Devices and the CUDA dispatch. Without a GPU (or without the backend): availability answers
 * false, moves to CUDA fail with a message naming the fix, and every op refuses a CUDA tensor
 * cleanly (checked on a CPU tensor whose storage claims to be on cuda:0, which no kernel touches
 * then). With a GPU: a round trip, a few ops against the CPU, and the caching allocator. */
#include <math.h>
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
  CHECK(fsvc_cat(2, pair, 0) == NULL);
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
  }
  return CTEST_END();
}
