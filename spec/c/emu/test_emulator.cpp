// Tests of the CPU emulation of CUDA itself (gpu/emu; built only with FSVC_CUDA=EMULATE): that it
// catches the mistakes it exists to catch (host access to device memory, out-of-bounds kernels,
// host pointers given to kernels, wrong copy directions, bad launch shapes, calls that stream
// capture forbids) and that it computes what a GPU computes (block barriers, graphs, the GEMMs,
// the real FFTs, cuDNN's convolutions).
#include <cublas_v2.h>
#include <cudnn.h>
#include <cufft.h>
#include <cuda_runtime.h>

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "ctest.h"

namespace {

#define LAUNCH(kernel, grid, block, stream) FSVC_LAUNCH(kernel, grid, block, 0, stream)

__global__ void fill_kernel(float *p, int n, float v) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) p[i] = v;
}

__global__ void write_one_past(float *p, int n) {
  if (threadIdx.x == 0) p[n] = 1.0f;  // one past the end: 64 floats end a page, so the guard page
}

// one block sums n values with a shared-memory tree (needs the barriers to be real)
__global__ void block_sum_kernel(const float *x, int n, float *out) {
  __shared__ float shm[256];
  float s = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
  shm[threadIdx.x] = s;
  __syncthreads();
  for (int k = blockDim.x / 2; k > 0; k >>= 1) {
    if ((int)threadIdx.x < k) shm[threadIdx.x] += shm[threadIdx.x + k];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = shm[0];
}

// a barrier in divergent code: threads 16.. leave before the barrier the others wait at
__global__ void divergent_barrier_kernel(float *p) {
  if (threadIdx.x >= 16) return;
  p[threadIdx.x] = 1.0f;
  __syncthreads();
  p[threadIdx.x] += p[(threadIdx.x + 1) % 16];
}

// a race: every thread writes the same element; the last writer wins
__global__ void racy_kernel(int *p) { p[0] = (int)(blockIdx.x * blockDim.x + threadIdx.x); }

// runs f in a child process; returns its stderr and whether it died of SIGSEGV
std::string run_child(void (*f)(), bool *segv) {
  int fds[2];
  if (pipe(fds) != 0) return "";
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    f();
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  char buf[512];
  ssize_t r;
  while ((r = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, (size_t)r);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  *segv = WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
  return out;
}

void host_reads_device() {
  float *d = nullptr;
  cudaMalloc((void **)&d, 64 * sizeof(float));
  volatile float v = d[3];  // the bug the emulator exists to catch
  (void)v;
}

void kernel_out_of_bounds() {
  float *d = nullptr;
  cudaMalloc((void **)&d, 64 * sizeof(float));
  LAUNCH(write_one_past, 1, 32, nullptr)(d, 64);
}

void test_memory_protection() {
  bool segv = false;
  std::string err = run_child(host_reads_device, &segv);
  CHECK(segv);
  CHECK(err.find("a device pointer was dereferenced on the host") != std::string::npos);
  err = run_child(kernel_out_of_bounds, &segv);
  CHECK(segv);
  CHECK(err.find("write_one_past accessed") != std::string::npos);
  CHECK(err.find("out of bounds") != std::string::npos);
}

void test_copies_and_launches() {
  const int n = 1000;
  float *d = nullptr;
  CHECK(cudaMalloc((void **)&d, n * sizeof(float)) == cudaSuccess);
  CHECK(fsvc_emu_is_device_pointer(d) && fsvc_emu_is_device_range(d, n * sizeof(float)));
  CHECK(!fsvc_emu_is_device_range(d, n * sizeof(float) + 4));
  LAUNCH(fill_kernel, (n + 255) / 256, 256, nullptr)(d, n, 2.5f);
  CHECK(cudaGetLastError() == cudaSuccess);
  std::vector<float> h(n, 0.0f);
  CHECK(cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
  int ok = 1;
  for (int i = 0; i < n; i++) ok &= h[i] == 2.5f;
  CHECK(ok);
  // wrong directions, ranges past the allocation, host pointers for kernels, bad shapes
  CHECK(cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
  CHECK(cudaMemcpy(h.data(), d, (n + 1) * sizeof(float), cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
  (void)cudaGetLastError();
  LAUNCH(fill_kernel, 1, 256, nullptr)(h.data(), n, 1.0f);
  CHECK(cudaGetLastError() == cudaErrorIllegalAddress);
  CHECK(h[0] == 2.5f);  // the kernel did not run
  LAUNCH(fill_kernel, 1, 2048, nullptr)(d, n, 1.0f);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  CHECK(cudaFree(h.data()) == cudaErrorInvalidValue);
  CHECK(cudaFree(d) == cudaSuccess);
  CHECK(!fsvc_emu_is_device_pointer(d));
}

void test_barriers() {
  const int n = 1000;
  std::vector<float> h(n);
  double want = 0;
  for (int i = 0; i < n; i++) {
    h[i] = (float)((i * 37) % 101) - 50.0f;
    want += h[i];
  }
  float *x = nullptr, *out = nullptr;
  cudaMalloc((void **)&x, n * sizeof(float));
  cudaMalloc((void **)&out, 2 * sizeof(float));
  cudaMemcpy(x, h.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  for (int rep = 0; rep < 2; rep++) {  // the second launch knows the kernel uses barriers
    LAUNCH(block_sum_kernel, 2, 256, nullptr)(x, n, out);
    float r[2] = {0, 0};
    cudaMemcpy(r, out, sizeof r, cudaMemcpyDeviceToHost);
    CHECK_NEAR(r[0], want, 1e-3);
    CHECK_NEAR(r[1], want, 1e-3);
  }
  cudaGetLastError();
  LAUNCH(divergent_barrier_kernel, 1, 64, nullptr)(x);
  cudaDeviceSynchronize();
  CHECK(cudaGetLastError() == cudaErrorLaunchFailure);  // reported (a GPU may hang)
  cudaFree(x);
  cudaFree(out);
}

void test_reverse_order() {
  int *d = nullptr, h[2] = {0, 0};
  cudaMalloc((void **)&d, sizeof(int));
  for (int rev = 0; rev < 2; rev++) {
    fsvc_emu_set_reverse_order(rev);
    LAUNCH(racy_kernel, 4, 64, nullptr)(d);
    cudaMemcpy(&h[rev], d, sizeof(int), cudaMemcpyDeviceToHost);
  }
  fsvc_emu_set_reverse_order(0);
  CHECK(h[0] == 255 && h[1] == 0);  // the race shows as two answers
  cudaFree(d);
}

void test_capture_and_graphs() {
  const int n = 256;
  float *d = nullptr;
  cudaMalloc((void **)&d, n * sizeof(float));
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  CHECK(cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeGlobal) != cudaSuccess);  // legacy stream
  (void)cudaGetLastError();
  CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess);
  LAUNCH(fill_kernel, 1, n, s)(d, n, 7.0f);
  enum cudaStreamCaptureStatus st;
  cudaStreamIsCapturing(s, &st);
  CHECK(st == cudaStreamCaptureStatusActive);
  cudaGraph_t g = nullptr;
  CHECK(cudaStreamEndCapture(s, &g) == cudaSuccess && g);
  float h = 0;
  cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost);
  CHECK(h != 7.0f);  // captured, not run
  cudaGraphExec_t ge = nullptr;
  CHECK(cudaGraphInstantiate(&ge, g, 0) == cudaSuccess);
  CHECK(cudaGraphLaunch(ge, s) == cudaSuccess);
  cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost);
  CHECK(h == 7.0f);
  // what capture forbids fails and invalidates the capture
  CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess);
  void *p = nullptr;
  CHECK(cudaMalloc(&p, 16) == cudaErrorStreamCaptureUnsupported);
  CHECK(cudaMemcpyAsync(&h, d, sizeof h, cudaMemcpyDeviceToHost, s) == cudaErrorStreamCaptureUnsupported);
  cudaGraph_t g2 = nullptr;
  CHECK(cudaStreamEndCapture(s, &g2) == cudaErrorStreamCaptureInvalidated && !g2);
  (void)cudaGetLastError();
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  cudaStreamDestroy(s);
  cudaFree(d);
}

float tf32(float x) {  // round to 10 mantissa bits, nearest
  int e;
  float m = frexpf(x, &e);
  return ldexpf(roundf(m * 2048.0f) / 2048.0f, e);
}

void test_gemm() {
  const int m = 5, n = 4, k = 300;
  std::vector<float> a(m * k), b(k * n), c(m * n, 0.0f);
  for (int i = 0; i < m * k; i++) a[i] = 1.0f + (float)((i * 7919) % 1000) / 3000.0f;
  for (int i = 0; i < k * n; i++) b[i] = 1.0f - (float)((i * 104729) % 1000) / 3000.0f;
  float *da, *db, *dc;
  cudaMalloc((void **)&da, a.size() * 4);
  cudaMalloc((void **)&db, b.size() * 4);
  cudaMalloc((void **)&dc, c.size() * 4);
  cudaMemcpy(da, a.data(), a.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(db, b.data(), b.size() * 4, cudaMemcpyHostToDevice);
  cublasHandle_t h;
  CHECK(cublasCreate_v2(&h) == CUBLAS_STATUS_SUCCESS);
  float one = 1, zero = 0;
  for (int mode = 0; mode < 2; mode++) {
    cublasComputeType_t ct = mode ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    // column-major: C (m x n) = A (m x k) B (k x n)
    CHECK(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, da, CUDA_R_32F, m, 0, db,
                                     CUDA_R_32F, k, 0, &zero, dc, CUDA_R_32F, m, 0, 1, ct,
                                     CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
    cudaMemcpy(c.data(), dc, c.size() * 4, cudaMemcpyDeviceToHost);
    double worst = 0, worst_tf32 = 0;
    for (int i = 0; i < m; i++)
      for (int j = 0; j < n; j++) {
        double exact = 0, rounded = 0;
        for (int q = 0; q < k; q++) {
          exact += (double)a[q * m + i] * b[j * k + q];
          rounded += (double)tf32(a[q * m + i]) * tf32(b[j * k + q]);
        }
        worst = fmax(worst, fabs(c[j * m + i] - exact) / exact);
        worst_tf32 = fmax(worst_tf32, fabs(c[j * m + i] - rounded) / rounded);
      }
    if (mode == 0) CHECK(worst < 1e-6);
    else {
      CHECK(worst_tf32 < 1e-6);  // the product of the rounded inputs
      CHECK(worst > 1e-5);       // and not the exact one
    }
  }
  // cuBLAS's own argument checks: lda below the rows of A
  CHECK(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, da, CUDA_R_32F, m - 1, 0,
                                   db, CUDA_R_32F, k, 0, &zero, dc, CUDA_R_32F, m, 0, 1,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_INVALID_VALUE);
  // a host matrix
  CHECK(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, a.data(), CUDA_R_32F, m, 0,
                                   db, CUDA_R_32F, k, 0, &zero, dc, CUDA_R_32F, m, 0, 1,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS);
  cublasDestroy_v2(h);
  cudaFree(da);
  cudaFree(db);
  cudaFree(dc);
}

// R2C / D2Z against a direct DFT, C2R as its inverse (times n), the advanced layout, the input
// clobbered by C2R, host pointers refused, and execs recorded by stream capture.
void test_fft() {
  const int n = 12, batch = 3, nb = n / 2 + 1;
  std::vector<double> x(n * batch), X(2 * nb * batch), y(n * batch);
  for (int i = 0; i < n * batch; i++) x[i] = sin(0.7 * i) + 0.1 * i;
  double *dx, *dX, *dy;
  cudaMalloc((void **)&dx, x.size() * 8);
  cudaMalloc((void **)&dX, X.size() * 8);
  cudaMalloc((void **)&dy, y.size() * 8);
  cudaMemcpy(dx, x.data(), x.size() * 8, cudaMemcpyHostToDevice);
  int nn = n;
  cufftHandle fwd, inv;
  CHECK(cufftPlanMany(&fwd, 1, &nn, nullptr, 1, 0, nullptr, 1, 0, CUFFT_D2Z, batch) == CUFFT_SUCCESS);
  CHECK(cufftPlanMany(&inv, 1, &nn, nullptr, 1, 0, nullptr, 1, 0, CUFFT_Z2D, batch) == CUFFT_SUCCESS);
  CHECK(cufftExecD2Z(fwd, dx, (cufftDoubleComplex *)dX) == CUFFT_SUCCESS);
  cudaMemcpy(X.data(), dX, X.size() * 8, cudaMemcpyDeviceToHost);
  double worst = 0;
  for (int b = 0; b < batch; b++)
    for (int f = 0; f < nb; f++) {
      double re = 0, im = 0;
      for (int k = 0; k < n; k++) {
        re += x[b * n + k] * cos(2 * M_PI * f * k / n);
        im -= x[b * n + k] * sin(2 * M_PI * f * k / n);
      }
      worst = fmax(worst, fabs(X[2 * (b * nb + f)] - re) + fabs(X[2 * (b * nb + f) + 1] - im));
    }
  CHECK(worst < 1e-12);
  CHECK(cufftExecZ2D(inv, (cufftDoubleComplex *)dX, dy) == CUFFT_SUCCESS);
  cudaMemcpy(y.data(), dy, y.size() * 8, cudaMemcpyDeviceToHost);
  worst = 0;
  for (int i = 0; i < n * batch; i++) worst = fmax(worst, fabs(y[i] / n - x[i]));
  CHECK(worst < 1e-12);
  cudaMemcpy(X.data(), dX, X.size() * 8, cudaMemcpyDeviceToHost);
  CHECK(std::isnan(X[0]));  // C2R overwrote its input, as cuFFT may
  CHECK(cufftExecZ2D(fwd, (cufftDoubleComplex *)dX, dy) == CUFFT_INVALID_TYPE);  // wrong direction
  CHECK(cufftExecD2Z(fwd, x.data(), (cufftDoubleComplex *)dX) == CUFFT_EXEC_FAILED);  // host input
  // advanced layout: every other real of each row (stride 2, distance 2n), float32
  cufftHandle strided;
  int emb = n;
  float *fx;
  cufftComplex *fX;
  cudaMalloc((void **)&fx, 2 * n * batch * 4);
  cudaMalloc((void **)&fX, nb * batch * 8);
  std::vector<float> hx(2 * n * batch), hX(2 * nb * batch);
  for (int i = 0; i < 2 * n * batch; i++) hx[i] = (float)x[(i / 2) % (n * batch)];
  cudaMemcpy(fx, hx.data(), hx.size() * 4, cudaMemcpyHostToDevice);
  CHECK(cufftPlanMany(&strided, 1, &nn, &emb, 2, 2 * n, &emb, 1, nb, CUFFT_R2C, batch) == CUFFT_SUCCESS);
  CHECK(cufftExecR2C(strided, fx, fX) == CUFFT_SUCCESS);
  cudaMemcpy(hX.data(), fX, hX.size() * 4, cudaMemcpyDeviceToHost);
  worst = 0;
  for (int b = 0; b < batch; b++)  // row b holds x[b*n ..] (each value twice; stride 2 reads one)
    for (int f = 0; f < nb; f++) {
      double re = 0;
      for (int k = 0; k < n; k++) re += x[b * n + k] * cos(2 * M_PI * f * k / n);
      worst = fmax(worst, fabs(hX[2 * (b * nb + f)] - re));
    }
  CHECK(worst < 1e-4);
  // capture records the exec; the graph runs it
  cudaStream_t s;
  cudaStreamCreate(&s);
  CHECK(cufftSetStream(fwd, s) == CUFFT_SUCCESS);
  cudaMemcpy(dx, x.data(), x.size() * 8, cudaMemcpyHostToDevice);
  cudaMemset(dX, 0, X.size() * 8);
  CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess);
  CHECK(cufftExecD2Z(fwd, dx, (cufftDoubleComplex *)dX) == CUFFT_SUCCESS);
  cudaGraph_t g;
  CHECK(cudaStreamEndCapture(s, &g) == cudaSuccess);
  double first = 1;
  cudaMemcpy(&first, dX, 8, cudaMemcpyDeviceToHost);
  CHECK(first == 0);  // recorded, not run
  cudaGraphExec_t ge;
  CHECK(cudaGraphInstantiate(&ge, g, 0) == cudaSuccess);
  CHECK(cudaGraphLaunch(ge, s) == cudaSuccess);
  cudaMemcpy(&first, dX, 8, cudaMemcpyDeviceToHost);
  double dc = 0;
  for (int k = 0; k < n; k++) dc += x[k];
  CHECK(fabs(first - dc) < 1e-12);
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  cudaStreamDestroy(s);
  CHECK(cufftDestroy(fwd) == CUFFT_SUCCESS && cufftDestroy(inv) == CUFFT_SUCCESS &&
        cufftDestroy(strided) == CUFFT_SUCCESS);
  CHECK(cufftDestroy(fwd) == CUFFT_INVALID_PLAN);
  cudaFree(dx);
  cudaFree(dX);
  cudaFree(dy);
  cudaFree(fx);
  cudaFree(fX);
}

// cuDNN's convolution API (emu_dnn.cpp): the three passes against a direct computation and their
// adjoint identities, and the checks cuDNN makes (shapes, workspace, device pointers, algorithms)
void test_dnn() {
  cudnnHandle_t h;
  CHECK(cudnnCreate(&h) == CUDNN_STATUS_SUCCESS);
  cudnnTensorDescriptor_t xd, yd, bad;
  cudnnFilterDescriptor_t wd;
  cudnnConvolutionDescriptor_t cd;
  cudnnCreateTensorDescriptor(&xd);
  cudnnCreateTensorDescriptor(&yd);
  cudnnCreateTensorDescriptor(&bad);
  cudnnCreateFilterDescriptor(&wd);
  cudnnCreateConvolutionDescriptor(&cd);
  // x [2, 4, 1, 10], w [6, 2, 1, 3] (groups 2), padding 1, stride 2 -> y [2, 6, 1, 5]
  const int N = 2, C = 4, W = 10, K = 6, G = 2, S = 3, Q = 5;
  CHECK(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_DOUBLE, N, C, 1, W) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_DOUBLE, N, K, 1, Q) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnSetTensor4dDescriptor(bad, CUDNN_TENSOR_NCHW, CUDNN_DATA_DOUBLE, N, K, 1, Q + 1) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_DOUBLE, CUDNN_TENSOR_NCHW, K, C / G, 1, S) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnSetConvolution2dDescriptor(cd, 0, 1, 1, 2, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_DOUBLE) ==
        CUDNN_STATUS_SUCCESS);
  CHECK(cudnnSetConvolutionGroupCount(cd, G) == CUDNN_STATUS_SUCCESS);
  std::vector<double> x(N * C * W), w(K * C / G * S), gy(N * K * Q), y(N * K * Q), gx(N * C * W), gw(w.size());
  for (size_t i = 0; i < x.size(); i++) x[i] = sin(0.7 * (double)i);
  for (size_t i = 0; i < w.size(); i++) w[i] = cos(1.3 * (double)i);
  for (size_t i = 0; i < gy.size(); i++) gy[i] = sin(2.1 * (double)i + 0.5);
  double *dx, *dw, *dy, *dgy, *dgx, *dgw;
  void *work;
  cudaMalloc((void **)&dx, x.size() * 8);
  cudaMalloc((void **)&dw, w.size() * 8);
  cudaMalloc((void **)&dy, y.size() * 8);
  cudaMalloc((void **)&dgy, gy.size() * 8);
  cudaMalloc((void **)&dgx, gx.size() * 8);
  cudaMalloc((void **)&dgw, gw.size() * 8);
  cudaMalloc(&work, 4096);
  cudaMemcpy(dx, x.data(), x.size() * 8, cudaMemcpyHostToDevice);
  cudaMemcpy(dw, w.data(), w.size() * 8, cudaMemcpyHostToDevice);
  cudaMemcpy(dgy, gy.data(), gy.size() * 8, cudaMemcpyHostToDevice);
  double one = 1, zero = 0;
  CHECK(cudnnConvolutionForward(h, &one, xd, dx, wd, dw, cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0,
                                &zero, yd, dy) == CUDNN_STATUS_SUCCESS);
  cudaMemcpy(y.data(), dy, y.size() * 8, cudaMemcpyDeviceToHost);
  double worst = 0;
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++)
      for (int q = 0; q < Q; q++) {
        double ref = 0;
        int g = k / (K / G);
        for (int c = 0; c < C / G; c++)
          for (int t = 0; t < S; t++) {
            int ww = q * 2 - 1 + t;
            if (ww >= 0 && ww < W) ref += x[(n * C + g * (C / G) + c) * W + ww] * w[(k * (C / G) + c) * S + t];
          }
        worst = fmax(worst, fabs(ref - y[(n * K + k) * Q + q]));
      }
  CHECK(worst < 1e-12);
  // adjoints: <conv(x, w), gy> = <x, dgrad(gy)> = <w, wgrad(x, gy)>
  CHECK(cudnnConvolutionBackwardData(h, &one, wd, dw, yd, dgy, cd, CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, nullptr, 0,
                                     &zero, xd, dgx) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnConvolutionBackwardFilter(h, &one, xd, dx, yd, dgy, cd, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, nullptr, 0,
                                       &zero, wd, dgw) == CUDNN_STATUS_SUCCESS);
  cudaMemcpy(gx.data(), dgx, gx.size() * 8, cudaMemcpyDeviceToHost);
  cudaMemcpy(gw.data(), dgw, gw.size() * 8, cudaMemcpyDeviceToHost);
  double yg = 0, xg = 0, wg = 0;
  for (size_t i = 0; i < y.size(); i++) yg += y[i] * gy[i];
  for (size_t i = 0; i < x.size(); i++) xg += x[i] * gx[i];
  for (size_t i = 0; i < w.size(); i++) wg += w[i] * gw[i];
  CHECK(fabs(yg - xg) < 1e-10 && fabs(yg - wg) < 1e-10);
  // beta: y = conv + 1 * y doubles it
  CHECK(cudnnConvolutionForward(h, &one, xd, dx, wd, dw, cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0,
                                &one, yd, dy) == CUDNN_STATUS_SUCCESS);
  std::vector<double> y2(y.size());
  cudaMemcpy(y2.data(), dy, y.size() * 8, cudaMemcpyDeviceToHost);
  CHECK(fabs(y2[3] - 2 * y[3]) < 1e-12);
  // the checks: output shape, workspace, host pointers, the heuristic's statuses
  CHECK(cudnnConvolutionForward(h, &one, xd, dx, wd, dw, cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0,
                                &zero, bad, dy) == CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH);
  size_t need = 0;
  CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, xd, wd, cd, yd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                                                &need) == CUDNN_STATUS_SUCCESS && need > 0);
  CHECK(cudnnConvolutionForward(h, &one, xd, dx, wd, dw, cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, work,
                                need - 1, &zero, yd, dy) == CUDNN_STATUS_BAD_PARAM);
  CHECK(cudnnConvolutionForward(h, &one, xd, dx, wd, dw, cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, work,
                                need, &zero, yd, dy) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnConvolutionForward(h, &one, xd, x.data(), wd, dw, cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr,
                                0, &zero, yd, dy) == CUDNN_STATUS_BAD_PARAM);
  cudnnConvolutionFwdAlgoPerf_t perf[8];
  int got = 0;
  CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, xd, wd, cd, yd, 8, &got, perf) == CUDNN_STATUS_SUCCESS && got == 3);
  bool gemm_refused = false;
  for (int i = 0; i < got; i++)
    if (perf[i].algo == CUDNN_CONVOLUTION_FWD_ALGO_GEMM) gemm_refused = perf[i].status == CUDNN_STATUS_NOT_SUPPORTED;
  CHECK(gemm_refused);  // grouped
  CHECK(cudnnConvolutionForward(h, &one, xd, dx, wd, dw, cd, CUDNN_CONVOLUTION_FWD_ALGO_GEMM, work, 4096, &zero, yd,
                                dy) == CUDNN_STATUS_NOT_SUPPORTED);
  cudnnDestroyTensorDescriptor(xd);
  cudnnDestroyTensorDescriptor(yd);
  cudnnDestroyTensorDescriptor(bad);
  cudnnDestroyFilterDescriptor(wd);
  cudnnDestroyConvolutionDescriptor(cd);
  cudnnDestroy(h);
  for (void *p : {(void *)dx, (void *)dw, (void *)dy, (void *)dgy, (void *)dgx, (void *)dgw, work}) cudaFree(p);
}

}  // namespace

int main() {
  test_memory_protection();
  test_copies_and_launches();
  test_barriers();
  test_reverse_order();
  test_capture_and_graphs();
  test_gemm();
  test_fft();
  test_dnn();
  return CTEST_END();
}
