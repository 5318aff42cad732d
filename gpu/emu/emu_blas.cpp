// CPU emulation of the cuBLAS GEMMs that gpu/ops_nn.c calls (FSVC_CUDA=EMULATE), on OpenBLAS.
// Argument checks follow cuBLAS's documented ones (leading dimensions, sizes, device pointers), so a
// wrong call fails here as it would on a GPU. TF32 compute rounds the float32 inputs to TF32
// (10 explicit mantissa bits) before the product, so its error bounds are tested honestly;
// float16/bfloat16 inputs are widened to float32 and the product accumulated in float32.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cblas.h>
#include <stdio.h>
#include <string.h>
#include <vector>

#include "emu_tf32.h"

struct fsvc_emu_cublas {
  cudaStream_t stream = nullptr;
};

namespace {

// rows x cols of op(X) for a column-major matrix X with leading dimension ld
bool ld_ok(cublasOperation_t op, int rows_op, int cols_op, int ld) {
  int stored_rows = op == CUBLAS_OP_N ? rows_op : cols_op;
  return ld >= (stored_rows > 1 ? stored_rows : 1);
}

bool device_range(const void *p, size_t bytes, const char *what) {
  if (bytes == 0 || fsvc_emu_is_device_range(p, bytes)) return true;
  fprintf(stderr, "fsvc CUDA emulation: cuBLAS GEMM: %s (%p, %zu bytes) is not inside a device allocation\n", what, p, bytes);
  return false;
}

// extent in elements of a strided batch of column-major rows x cols matrices
size_t extent(int rows, int ld, int cols, long long stride, int batch) {
  if (rows == 0 || cols == 0 || batch == 0) return 0;
  return (size_t)stride * (size_t)(batch - 1) + (size_t)ld * (size_t)(cols - 1) + (size_t)rows;
}


float load_as_float(const void *p, cudaDataType_t t, size_t i) {
  switch (t) {
    case CUDA_R_32F: return ((const float *)p)[i];
    case CUDA_R_16F: return (float)((const __half *)p)[i];
    case CUDA_R_16BF: return (float)((const __nv_bfloat16 *)p)[i];
    default: return 0;
  }
}
void store_from_float(void *p, cudaDataType_t t, size_t i, float v) {
  switch (t) {
    case CUDA_R_32F: ((float *)p)[i] = v; break;
    case CUDA_R_16F: ((__half *)p)[i] = __half(v); break;
    case CUDA_R_16BF: ((__nv_bfloat16 *)p)[i] = __nv_bfloat16(v); break;
    default: break;
  }
}

CBLAS_TRANSPOSE tr(cublasOperation_t op) { return op == CUBLAS_OP_N ? CblasNoTrans : CblasTrans; }

}  // namespace

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle) {
  *handle = new fsvc_emu_cublas();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}
const char *cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

static cublasStatus_t check_gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                 int n, int k, const void *a, int lda, long long sa, const void *b,
                                 int ldb, long long sb, const void *c, int ldc, long long sc,
                                 int batch, size_t es_ab, size_t es_c) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (m < 0 || n < 0 || k < 0 || batch < 0 || !ld_ok(ta, m, k, lda) || !ld_ok(tb, k, n, ldb) ||
      ldc < (m > 1 ? m : 1)) {
    fprintf(stderr, "fsvc CUDA emulation: cuBLAS GEMM: invalid sizes m=%d n=%d k=%d lda=%d ldb=%d ldc=%d\n",
            m, n, k, lda, ldb, ldc);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;
  if (!device_range(a, extent(ta == CUBLAS_OP_N ? m : k, lda, ta == CUBLAS_OP_N ? k : m, sa, batch) * es_ab, "A") ||
      !device_range(b, extent(tb == CUBLAS_OP_N ? k : n, ldb, tb == CUBLAS_OP_N ? n : k, sb, batch) * es_ab, "B") ||
      !device_range(c, extent(m, ldc, n, sc, batch) * es_c, "C"))
    return CUBLAS_STATUS_EXECUTION_FAILED;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                         int m, int n, int k, const double *alpha, const double *a,
                                         int lda, long long sa, const double *b, int ldb,
                                         long long sb, const double *beta, double *c, int ldc,
                                         long long sc, int batch) {
  cublasStatus_t st = check_gemm(h, ta, tb, m, n, k, a, lda, sa, b, ldb, sb, c, ldc, sc, batch, 8, 8);
  if (st != CUBLAS_STATUS_SUCCESS || m == 0 || n == 0 || batch == 0) return st;
  double al = *alpha, be = *beta;
  // on the handle's stream, like a GPU's GEMM: recorded while that stream is captured
  int e = fsvc_emu::enqueue_work(h->stream, [=]() {
    fsvc_emu_enter_device("cublasDgemmStridedBatched");
    for (int i = 0; i < batch; i++)
      cblas_dgemm(CblasColMajor, tr(ta), tr(tb), m, n, k, al, a + sa * i, lda, b + sb * i, ldb, be,
                  c + sc * i, ldc);
    fsvc_emu_leave_device();
  });
  return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                          int m, int n, int k, const void *alpha, const void *a,
                                          cudaDataType_t at, int lda, long long sa, const void *b,
                                          cudaDataType_t bt, int ldb, long long sb, const void *beta,
                                          void *c, cudaDataType_t ct, int ldc, long long sc,
                                          int batch, cublasComputeType_t compute,
                                          cublasGemmAlgo_t algo) {
  (void)algo;
  if (at != bt || (at != CUDA_R_32F && at != CUDA_R_16F && at != CUDA_R_16BF) ||
      (ct != at && ct != CUDA_R_32F) ||
      (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_TF32))
    return CUBLAS_STATUS_NOT_SUPPORTED;
  size_t es_ab = at == CUDA_R_32F ? 4 : 2, es_c = ct == CUDA_R_32F ? 4 : 2;
  cublasStatus_t st = check_gemm(h, ta, tb, m, n, k, a, lda, sa, b, ldb, sb, c, ldc, sc, batch, es_ab, es_c);
  if (st != CUBLAS_STATUS_SUCCESS || m == 0 || n == 0 || batch == 0) return st;
  float al = *(const float *)alpha, be = *(const float *)beta;
  bool tf32 = compute == CUBLAS_COMPUTE_32F_FAST_TF32 && at == CUDA_R_32F;
  int e = fsvc_emu::enqueue_work(h->stream, [=]() {
    int a_rows = ta == CUBLAS_OP_N ? m : k, a_cols = ta == CUBLAS_OP_N ? k : m;
    int b_rows = tb == CUBLAS_OP_N ? k : n, b_cols = tb == CUBLAS_OP_N ? n : k;
    std::vector<float> fa((size_t)lda * a_cols), fb((size_t)ldb * b_cols), fc((size_t)ldc * n);
    fsvc_emu_enter_device("cublasGemmStridedBatchedEx");
    for (int bi = 0; bi < batch; bi++) {
      const char *pa = (const char *)a + (size_t)sa * bi * es_ab;
      const char *pb = (const char *)b + (size_t)sb * bi * es_ab;
      char *pc = (char *)c + (size_t)sc * bi * es_c;
      for (int j = 0; j < a_cols; j++)
        for (int i = 0; i < a_rows; i++) {
          float v = load_as_float(pa, at, (size_t)j * lda + i);
          fa[(size_t)j * lda + i] = tf32 ? fsvc_emu_to_tf32(v) : v;
        }
      for (int j = 0; j < b_cols; j++)
        for (int i = 0; i < b_rows; i++) {
          float v = load_as_float(pb, bt, (size_t)j * ldb + i);
          fb[(size_t)j * ldb + i] = tf32 ? fsvc_emu_to_tf32(v) : v;
        }
      // only the m rows of each of C's n columns are C; rows m..ldc-1 are not touched
      for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++)
          fc[(size_t)j * ldc + i] = be == 0 ? 0.0f : load_as_float(pc, ct, (size_t)j * ldc + i);
      cblas_sgemm(CblasColMajor, tr(ta), tr(tb), m, n, k, al, fa.data(), lda, fb.data(), ldb, be,
                  fc.data(), ldc);
      for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) store_from_float(pc, ct, (size_t)j * ldc + i, fc[(size_t)j * ldc + i]);
    }
    fsvc_emu_leave_device();
  });
  return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

}  // extern "C"
