/* In-process conv1d timing by parts (forward, data gradient, weight gradient), GFLOP/s as the
 * best single call. Build by hand against a build folder:
 *   gcc -O2 -fopenmp -Icore/include spec/bench/bench_conv1d.c build-nn/libfsvc_core.a \
 *       -lopenblas -lsndfile -lsoxr -lm -o /tmp/bench_conv1d
 *   /tmp/bench_conv1d [threads]
 * spec/bench/bench_conv1d.lua is the full benchmark with the PyTorch comparison. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fsvc/autograd.h"
#include "fsvc/ops_nn.h"
#include "fsvc/random.h"
#include "fsvc/threads.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* mode 0: forward only; 1: forward + data gradient; 2: forward + weight gradient */
static double best(int C, int T, int K, int d, int mode, double budget) {
  int64_t xs[3] = {1, C, T + (K - 1) * d}, ws[3] = {C, C, K}, ys[3] = {1, C, T};
  fsvc_tensor *x = fsvc_randn(3, xs, FSVC_FLOAT32, NULL), *w = fsvc_randn(3, ws, FSVC_FLOAT32, NULL);
  fsvc_tensor *gy = fsvc_randn(3, ys, FSVC_FLOAT32, NULL);
  x->requires_grad = mode == 1;
  w->requires_grad = mode == 2;
  fsvc_conv1d_params p = {1, 0, d, 1};
  double b = 1e9, start = now();
  int calls = 0;
  do {
    double t0 = now();
    fsvc_tensor *y = fsvc_conv1d(x, w, NULL, &p);
    if (mode) fsvc_backward(y, gy, 0);
    double t = now() - t0;
    fsvc_tensor_release(y);
    if (x->grad) { fsvc_tensor_release(x->grad); x->grad = NULL; }
    if (w->grad) { fsvc_tensor_release(w->grad); w->grad = NULL; }
    if (t < b && calls > 0) b = t;
    calls++;
  } while (calls < 6 || now() - start < budget);
  fsvc_tensor_release(x); fsvc_tensor_release(w); fsvc_tensor_release(gy);
  return b;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  fsvc_set_num_threads(threads);
  int shapes[][4] = {{384, 100, 3, 1}, {384, 100, 3, 27}, {192, 200, 3, 1}, {96, 800, 3, 1},
                     {48, 3200, 3, 1}, {24, 12000, 3, 1}, {24, 24000, 3, 27}, {384, 100, 1, 1},
                     {48, 3200, 1, 1}, {24, 24000, 1, 1}, {512, 50, 5, 1}, {512, 50, 5, 9},
                     {512, 50, 1, 1}};
  printf("threads %d: GFLOP/s   C     T  K  d |   fwd  data  weight\n", threads);
  for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
    int C = shapes[i][0], T = shapes[i][1], K = shapes[i][2], d = shapes[i][3];
    double fl = 2.0 * C * C * K * T;
    double tf = best(C, T, K, d, 0, 0.1), td = best(C, T, K, d, 1, 0.1), tw = best(C, T, K, d, 2, 0.1);
    printf("                  %4d %5d %2d %2d | %5.1f %5.1f %5.1f\n", C, T, K, d, fl / tf / 1e9,
           fl / (td - tf) / 1e9, fl / (tw - tf) / 1e9);
  }
  return 0;
}
