/* nn ops on CUDA tensors: matmul/bmm/linear on cuBLAS, conv1d and conv_transpose1d as im2col +
 * cuBLAS GEMM or cuDNN, chosen per shape (gpu/conv.h), pooling, interpolation. Node names as the CPU ops;
 * matmul is composed of views and bmm (its graph has expand/reshape/bmm nodes where the CPU has
 * one "matmul" node; gradients are the same). 2-D [C, T] inputs of the conv/pool ops go through
 * unsqueeze/squeeze views. */
#include <cublas_v2.h>
#include <dlfcn.h>
#include <stdio.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "conv.h"
#include "gpu_ops.h"
#include "fsvc/autocast.h"
#include "fsvc/ops_reduce.h"
#include "fsvc/ops_shape.h"

int fsvc_gpu_allow_tf32 = 0; /* off by default: float32 parity 1e-5 (TF32 gives ~1e-3) */

/* cuBLAS is opened on first use (dlopen), not linked: its libraries are ~700 MB and loading them
 * at start-up cost every fsvc process 0.7 s on a machine without a GPU. */
static cublasHandle_t handle;
static pthread_once_t handle_once = PTHREAD_ONCE_INIT;
static cublasStatus_t handle_status = CUBLAS_STATUS_NOT_INITIALIZED;
static char dl_error[1024] = "";
static struct {
  __typeof__(&cublasCreate_v2) create;
  __typeof__(&cublasSetStream_v2) set_stream;
  __typeof__(&cublasDgemmStridedBatched) dgemm;
  __typeof__(&cublasGemmStridedBatchedEx) gemm_ex;
  __typeof__(&cublasGetStatusString) status_string;
} blas;

/* The CPU emulation of CUDA (gpu/emu, FSVC_CUDA=EMULATE) defines this and serves its own cuBLAS;
 * in a real build the weak reference stays NULL and the library is opened. */
void *fsvc_gpu_emulated_cublas(const char *name) __attribute__((weak));

static void create_handle(void) {
  void *lib = NULL;
  if (!fsvc_gpu_emulated_cublas) {
    static const char *const names[] = {"libcublas.so.13", "libcublas.so", NULL};
    char why[768];
    lib = fsvc_gpu_dlopen(names, why, sizeof why);
    if (!lib) {
      snprintf(dl_error, sizeof dl_error, "cannot load cuBLAS: %s", why);
      return;
    }
  }
#define BLAS_SYMBOL(name) (fsvc_gpu_emulated_cublas ? fsvc_gpu_emulated_cublas(name) : dlsym(lib, name))
  *(void **)&blas.create = BLAS_SYMBOL("cublasCreate_v2");
  *(void **)&blas.set_stream = BLAS_SYMBOL("cublasSetStream_v2");
  *(void **)&blas.dgemm = BLAS_SYMBOL("cublasDgemmStridedBatched");
  *(void **)&blas.gemm_ex = BLAS_SYMBOL("cublasGemmStridedBatchedEx");
  *(void **)&blas.status_string = BLAS_SYMBOL("cublasGetStatusString");
#undef BLAS_SYMBOL
  if (!blas.create || !blas.set_stream || !blas.dgemm || !blas.gemm_ex || !blas.status_string) {
    snprintf(dl_error, sizeof dl_error, "cuBLAS lacks a needed function");
    return;
  }
  handle_status = blas.create(&handle);
}

static int blas_check(cublasStatus_t s, const char *what) {
  if (s == CUBLAS_STATUS_SUCCESS) return 0;
  if (dl_error[0]) fsvc_set_error("%s: %s", what, dl_error);
  else fsvc_set_error("%s: cuBLAS error %d (%s)", what, (int)s, blas.status_string ? blas.status_string(s) : "?");
  return -1;
}

/* Row-major C[b] = alpha op(A[b]) op(B[b]) + beta C[b], as column-major C^T = op(B)^T op(A)^T. */
int fsvc_gpu_gemm_batched(fsvc_dtype dt, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                          double alpha, const void *a, int64_t lda, int64_t stride_a, const void *b,
                          int64_t ldb, int64_t stride_b, double beta, void *c, int64_t ldc,
                          int64_t stride_c, int64_t batch) {
  pthread_once(&handle_once, create_handle);
  if (blas_check(handle_status, "cublasCreate") != 0) return -1;
  /* k == 0: cuBLAS refuses the leading dimensions (0) of the empty operands; C is left as it is,
   * which is C = beta C for beta 1, and the callers zero it for beta 0 (an empty sum is 0) */
  if (m == 0 || n == 0 || k == 0 || batch == 0) return 0;
  if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX || batch > INT32_MAX) {
    fsvc_set_error("matmul: a dimension exceeds cuBLAS's 2^31 limit");
    return -1;
  }
  if (blas_check(blas.set_stream(handle, (cudaStream_t)fsvc_gpu_stream()), "cublasSetStream") != 0) return -1;
  fsvc_gpu_count_library_call();
  cublasOperation_t ob = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, oa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasStatus_t s;
  if (dt == FSVC_FLOAT64) {
    s = blas.dgemm(handle, ob, oa, (int)n, (int)m, (int)k, &alpha, b, (int)ldb, stride_b,
                                  a, (int)lda, stride_a, &beta, c, (int)ldc, stride_c, (int)batch);
  } else if (dt == FSVC_FLOAT32) {
    float fa = (float)alpha, fb = (float)beta;
    s = blas.gemm_ex(handle, ob, oa, (int)n, (int)m, (int)k, &fa, b, CUDA_R_32F, (int)ldb,
                                   stride_b, a, CUDA_R_32F, (int)lda, stride_a, &fb, c, CUDA_R_32F, (int)ldc,
                                   stride_c, (int)batch,
                                   fsvc_gpu_allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT);
  } else if (dt == FSVC_FLOAT16 || dt == FSVC_BFLOAT16) { /* fp32 accumulation (autocast) */
    float fa = (float)alpha, fb = (float)beta;
    cudaDataType_t t = dt == FSVC_FLOAT16 ? CUDA_R_16F : CUDA_R_16BF;
    s = blas.gemm_ex(handle, ob, oa, (int)n, (int)m, (int)k, &fa, b, t, (int)ldb, stride_b,
                                   a, t, (int)lda, stride_a, &fb, c, t, (int)ldc, stride_c, (int)batch,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  } else {
    fsvc_set_error("matmul: dtype %s not supported on CUDA", fsvc_dtype_name(dt));
    return -1;
  }
  return blas_check(s, "matmul");
}

/* ---- bmm ------------------------------------------------------------------------------------------ */
static fsvc_tensor *bmm_raw(const fsvc_tensor *a, const fsvc_tensor *b) {
  fsvc_tensor *ac = fsvc_contiguous_raw(a), *bc = fsvc_contiguous_raw(b);
  int64_t B = a->shape[0], n = a->shape[1], k = a->shape[2], m = b->shape[2];
  int64_t shape[3] = {B, n, m};
  fsvc_tensor *out = ac && bc ? fsvc_empty_on(3, shape, a->dtype, a->storage->device) : NULL;
  if (out && fsvc_gpu_gemm_batched(a->dtype, 0, 0, n, m, k, 1.0, fsvc_data(ac), k, n * k, fsvc_data(bc), m,
                                   k * m, 0.0, fsvc_data(out), m, n * m, B) != 0) {
    fsvc_tensor_release(out);
    out = NULL;
  }
  if (out && k == 0) fsvc_fill_(out, 0);
  fsvc_tensor_release(ac);
  fsvc_tensor_release(bc);
  return out;
}

static int bmm_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  const fsvc_tensor *a = n->saved[0], *b = n->saved[1];
  if (n->edges[0].needs_grad) {
    fsvc_tensor *bt = fsvc_transpose(b, 1, 2);
    gin[0] = bt ? bmm_raw(g, bt) : NULL;
    fsvc_tensor_release(bt);
    if (!gin[0]) return -1;
  }
  if (n->edges[1].needs_grad) {
    fsvc_tensor *at = fsvc_transpose(a, 1, 2);
    gin[1] = at ? bmm_raw(at, g) : NULL;
    fsvc_tensor_release(at);
    if (!gin[1]) return -1;
  }
  return 0;
}

static fsvc_tensor *gpu_bmm(const fsvc_tensor *a, const fsvc_tensor *b) {
  if (fsvc_gpu_check_tensor("bmm", a, "a") != 0 || fsvc_gpu_check_tensor("bmm", b, "b") != 0) return NULL;
  fsvc_tensor *out = bmm_raw(a, b);
  if (!out) return NULL;
  fsvc_node *n = fsvc_node_new("bmm", 2, (fsvc_tensor *[]){(fsvc_tensor *)a, (fsvc_tensor *)b}, bmm_backward);
  if (n) {
    fsvc_node_save(n, a);
    fsvc_node_save(n, b);
    fsvc_node_attach(n, out);
  }
  return out;
}

/* ---- matmul: numpy semantics from views and bmm ----------------------------------------------------- */
static fsvc_tensor *gpu_matmul(const fsvc_tensor *a, const fsvc_tensor *b) {
  if (fsvc_gpu_check_tensor("matmul", a, "a") != 0 || fsvc_gpu_check_tensor("matmul", b, "b") != 0) return NULL;
  fsvc_tensor *a2 = a->ndim == 1 ? fsvc_unsqueeze(a, 0) : fsvc_tensor_retain((fsvc_tensor *)a);
  fsvc_tensor *b2 = b->ndim == 1 ? fsvc_unsqueeze(b, 1) : fsvc_tensor_retain((fsvc_tensor *)b);
  fsvc_tensor *out = NULL, *a3 = NULL, *b3 = NULL, *ae = NULL, *be = NULL, *r3 = NULL;
  if (!a2 || !b2) goto done;
  int64_t m = a2->shape[a2->ndim - 2], k = a2->shape[a2->ndim - 1];
  int64_t nn = b2->shape[b2->ndim - 1];
  /* broadcast batch dims (the shapes were checked by core/ops/matmul.c) */
  int nb = (a2->ndim > b2->ndim ? a2->ndim : b2->ndim) - 2;
  int64_t batch[FSVC_MAX_DIMS], B = 1;
  for (int d = 0; d < nb; d++) {
    int da = d - (nb - (a2->ndim - 2)), db = d - (nb - (b2->ndim - 2));
    int64_t sa = da >= 0 ? a2->shape[da] : 1, sb = db >= 0 ? b2->shape[db] : 1;
    batch[d] = sa > sb ? sa : sb;
    B *= batch[d];
  }
  int64_t sh[FSVC_MAX_DIMS];
  memcpy(sh, batch, sizeof(int64_t) * (size_t)nb);
  sh[nb] = m;
  sh[nb + 1] = k;
  ae = fsvc_expand(a2, nb + 2, sh);
  sh[nb] = k;
  sh[nb + 1] = nn;
  be = ae ? fsvc_expand(b2, nb + 2, sh) : NULL;
  int64_t s3a[3] = {B, m, k}, s3b[3] = {B, k, nn};
  a3 = be ? fsvc_reshape(ae, 3, s3a) : NULL;
  b3 = a3 ? fsvc_reshape(be, 3, s3b) : NULL;
  r3 = b3 ? gpu_bmm(a3, b3) : NULL;
  if (!r3) goto done;
  int nd = 0;
  int64_t osh[FSVC_MAX_DIMS];
  for (int d = 0; d < nb; d++) osh[nd++] = batch[d];
  if (a->ndim > 1) osh[nd++] = m;
  if (b->ndim > 1) osh[nd++] = nn;
  out = fsvc_reshape(r3, nd, osh);
done:
  fsvc_tensor_release(a2);
  fsvc_tensor_release(b2);
  fsvc_tensor_release(ae);
  fsvc_tensor_release(be);
  fsvc_tensor_release(a3);
  fsvc_tensor_release(b3);
  fsvc_tensor_release(r3);
  return out;
}

/* ---- linear: y = x w^T + b over the last dim ----------------------------------------------------------- */
/* saved[0] = x (contiguous), saved[1] = w (contiguous) */
static int linear_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  const fsvc_tensor *x = n->saved[0], *w = n->saved[1];
  int64_t in = w->shape[1], out = w->shape[0], rows = 1;
  for (int d = 0; d < x->ndim - 1; d++) rows *= x->shape[d]; /* in == 0: x has no elements */
  fsvc_tensor *gc = fsvc_gpu_contig_as(g, x->dtype);
  if (!gc) return -1;
  int rc = 0;
  if (n->edges[0].needs_grad) { /* gx [rows, in] = g [rows, out] @ w [out, in] */
    gin[0] = fsvc_empty_like(x);
    rc = gin[0] ? fsvc_gpu_gemm_batched(x->dtype, 0, 0, rows, in, out, 1.0, fsvc_data(gc), out, 0,
                                        fsvc_data(w), in, 0, 0.0, fsvc_data(gin[0]), in, 0, 1) : -1;
    if (rc == 0 && out == 0) rc = fsvc_fill_(gin[0], 0);
  }
  if (rc == 0 && n->edges[1].needs_grad) { /* gw [out, in] = g^T [out, rows] @ x [rows, in] */
    gin[1] = fsvc_empty_like(w);
    rc = gin[1] ? fsvc_gpu_gemm_batched(x->dtype, 1, 0, out, in, rows, 1.0, fsvc_data(gc), out, 0,
                                        fsvc_data(x), in, 0, 0.0, fsvc_data(gin[1]), in, 0, 1) : -1;
    if (rc == 0 && rows == 0) rc = fsvc_fill_(gin[1], 0);
  }
  if (rc == 0 && n->n_inputs > 2 && n->edges[2].needs_grad) {
    int64_t s2[2] = {rows, out};
    fsvc_tensor *g2 = fsvc_reshape(gc, 2, s2);
    int d0 = 0;
    gin[2] = g2 ? fsvc_sum(g2, 1, &d0, 0) : NULL;
    fsvc_tensor_release(g2);
    if (!gin[2]) rc = -1;
  }
  fsvc_tensor_release(gc);
  return rc;
}

static fsvc_tensor *gpu_linear(const fsvc_tensor *x, const fsvc_tensor *w, const fsvc_tensor *b) {
  if (fsvc_gpu_check_tensor("linear", x, "input") != 0 || fsvc_gpu_check_tensor("linear", w, "weight") != 0) return NULL;
  if (b && fsvc_gpu_check_tensor("linear", b, "bias") != 0) return NULL;
  int64_t in = w->shape[1], out = w->shape[0];
  int64_t shape[FSVC_MAX_DIMS];
  memcpy(shape, x->shape, sizeof shape);
  shape[x->ndim - 1] = out;
  fsvc_tensor *xc = fsvc_contiguous_raw(x), *wc = fsvc_contiguous_raw(w);
  fsvc_tensor *y = xc && wc ? fsvc_empty_on(x->ndim, shape, x->dtype, x->storage->device) : NULL;
  int rc = y ? 0 : -1;
  if (rc == 0 && b) { /* y = bias broadcast, then y += x w^T (beta = 1) */
    fsvc_gpu_geom yg = fsvc_gpu_geom_of(y), bg = fsvc_gpu_geom_bcast(b, y->ndim, y->shape);
    rc = fsvc_gpu_copy_launch(fsvc_data(y), y->dtype, &yg, fsvc_data(b), b->dtype, &bg);
  } else if (rc == 0 && in == 0) {
    rc = fsvc_fill_(y, 0);
  }
  if (rc == 0)
    rc = fsvc_gpu_gemm_batched(x->dtype, 0, 1, fsvc_numel(y) / (out ? out : 1), out, in, 1.0, fsvc_data(xc), in, 0,
                               fsvc_data(wc), in, 0, b ? 1.0 : 0.0, fsvc_data(y), out, 0, 1);
  if (rc != 0) {
    fsvc_tensor_release(xc);
    fsvc_tensor_release(wc);
    fsvc_tensor_release(y);
    return NULL;
  }
  fsvc_tensor *inputs[3] = {(fsvc_tensor *)x, (fsvc_tensor *)w, (fsvc_tensor *)b};
  fsvc_node *n = fsvc_node_new("linear", b ? 3 : 2, inputs, linear_backward);
  if (n) {
    fsvc_node_save(n, xc);
    fsvc_node_save(n, wc);
    fsvc_node_attach(n, y);
  }
  fsvc_tensor_release(xc);
  fsvc_tensor_release(wc);
  return y;
}

/* ---- conv1d / conv_transpose1d ---------------------------------------------------------------------- */
/* The passes (forward, backward data, backward filter) are fsvc_gpu_conv (gpu/conv.h): im2col +
 * cuBLAS or cuDNN, chosen per shape. A transposed convolution is a convolution with the roles of
 * input and output swapped: its forward is the convolution's backward-data pass, and so on. */
/* saved[0] = x (contiguous 3-D), saved[1] = w (contiguous); iarg = s, p, d, g, transposed, Tout */
static int conv_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  const fsvc_tensor *x = n->saved[0], *w = n->saved[1];
  int transposed = (int)n->iarg[4];
  fsvc_tensor *gc = fsvc_gpu_contig_as(g, x->dtype);
  if (!gc) return -1;
  fsvc_device dev = fsvc_tensor_device(x);
  fsvc_gpu_conv_geom c;
  c.B = x->shape[0];
  c.s = n->iarg[0]; c.p = n->iarg[1]; c.d = n->iarg[2]; c.g = n->iarg[3];
  c.k = w->shape[2];
  if (!transposed) { c.cin = x->shape[1]; c.t = x->shape[2]; c.cout = w->shape[0]; c.tout = gc->shape[2]; }
  else { c.cin = gc->shape[1]; c.t = gc->shape[2]; c.cout = x->shape[1]; c.tout = x->shape[2]; }
  int rc = 0;
  if (n->edges[0].needs_grad) {
    if (!transposed) {
      gin[0] = fsvc_empty_on(x->ndim, x->shape, x->dtype, dev);
      rc = gin[0] ? fsvc_gpu_conv(FSVC_CONV_BACKWARD_DATA, &c, x->dtype, fsvc_data(w), fsvc_data(gc),
                                  fsvc_data(gin[0]), dev) : -1;
    } else { /* transposed conv's input gradient is a plain conv of the output gradient */
      gin[0] = fsvc_empty_on(x->ndim, x->shape, x->dtype, dev);
      rc = gin[0] ? fsvc_gpu_conv(FSVC_CONV_FORWARD, &c, x->dtype, fsvc_data(gc), fsvc_data(w),
                                  fsvc_data(gin[0]), dev) : -1;
    }
  }
  if (rc == 0 && n->edges[1].needs_grad) {
    gin[1] = fsvc_empty_on(w->ndim, w->shape, w->dtype, dev);
    rc = gin[1] ? (!transposed ? fsvc_gpu_conv(FSVC_CONV_BACKWARD_FILTER, &c, x->dtype, fsvc_data(x), fsvc_data(gc),
                                               fsvc_data(gin[1]), dev)
                               : fsvc_gpu_conv(FSVC_CONV_BACKWARD_FILTER, &c, x->dtype, fsvc_data(gc), fsvc_data(x),
                                               fsvc_data(gin[1]), dev))
                : -1;
  }
  if (rc == 0 && n->n_inputs > 2 && n->edges[2].needs_grad) {
    int dims[2] = {0, 2};
    gin[2] = fsvc_sum(gc, 2, dims, 0);
    if (!gin[2]) rc = -1;
  }
  fsvc_tensor_release(gc);
  return rc;
}

static fsvc_tensor *conv_common(const char *op, const fsvc_tensor *x, const fsvc_tensor *w,
                                const fsvc_tensor *bias, const fsvc_conv1d_params *prm, int transposed,
                                int64_t output_padding) {
  char sx[96], sw[96];
  if (fsvc_gpu_check_tensor(op, x, "input") != 0 || fsvc_gpu_check_tensor(op, w, "weight") != 0) return NULL;
  if (bias && fsvc_gpu_check_tensor(op, bias, "bias") != 0) return NULL;
  if (x->ndim == 2) { /* [C, T]: through a batch of one */
    fsvc_tensor *x3 = fsvc_unsqueeze(x, 0);
    fsvc_tensor *y3 = x3 ? conv_common(op, x3, w, bias, prm, transposed, output_padding) : NULL;
    fsvc_tensor *y = y3 ? fsvc_squeeze(y3, 0) : NULL;
    fsvc_tensor_release(x3);
    fsvc_tensor_release(y3);
    return y;
  }
  fsvc_gpu_conv_geom c;
  c.s = prm && prm->stride ? prm->stride : 1;
  c.p = prm ? prm->padding : 0;
  c.d = prm && prm->dilation ? prm->dilation : 1;
  c.g = prm && prm->groups ? prm->groups : 1;
  if (c.s < 1 || c.p < 0 || c.d < 1 || c.g < 1 || output_padding < 0) {
    fsvc_set_error("%s: need stride >= 1, padding >= 0, dilation >= 1, groups >= 1", op);
    return NULL;
  }
  if (x->ndim != 3 || w->ndim != 3 || x->dtype != w->dtype || (bias && bias->dtype != x->dtype)) goto bad;
  c.B = x->shape[0];
  c.k = w->shape[2];
  int64_t cin_x = x->shape[1];
  int64_t out_ch;
  if (!transposed) {
    c.cin = cin_x; c.t = x->shape[2]; c.cout = w->shape[0];
    if (c.cin % c.g || c.cout % c.g || w->shape[1] != c.cin / c.g) goto bad;
    c.tout = (c.t + 2 * c.p - c.d * (c.k - 1) - 1) / c.s + 1;
    if (c.t + 2 * c.p - c.d * (c.k - 1) - 1 < 0 || c.tout < 1) {
      fsvc_set_error("%s: input %s too short for kernel %lld (dilation %lld, padding %lld)", op,
                     fsvc_shape_str(x, sx, sizeof sx), (long long)c.k, (long long)c.d, (long long)c.p);
      return NULL;
    }
    out_ch = c.cout;
  } else { /* roles swap: the transposed conv's output is the conv's input */
    c.cout = cin_x; c.tout = x->shape[2]; c.cin = w->shape[1] * c.g;
    if (c.cout % c.g || w->shape[0] != c.cout) goto bad;
    c.t = (c.tout - 1) * c.s - 2 * c.p + c.d * (c.k - 1) + output_padding + 1;
    if (c.t < 1) { fsvc_set_error("%s: output length %lld < 1", op, (long long)c.t); return NULL; }
    out_ch = c.cin;
  }
  if (bias && (bias->ndim != 1 || bias->shape[0] != out_ch)) goto bad;
  fsvc_device dev = x->storage->device;
  fsvc_tensor *xc = fsvc_contiguous_raw(x), *wc = fsvc_contiguous_raw(w);
  int64_t oshape[3] = {c.B, out_ch, transposed ? c.t : c.tout};
  fsvc_tensor *y = xc && wc ? fsvc_empty_on(3, oshape, x->dtype, dev) : NULL;
  int rc = y ? 0 : -1;
  if (rc == 0)
    rc = fsvc_gpu_conv(transposed ? FSVC_CONV_BACKWARD_DATA : FSVC_CONV_FORWARD, &c, x->dtype,
                       fsvc_data(transposed ? wc : xc), fsvc_data(transposed ? xc : wc), fsvc_data(y), dev);
  if (rc == 0 && bias) {
    int64_t bs[3] = {1, out_ch, 1};
    fsvc_tensor *b3 = fsvc_view_raw(bias, 3, bs, (int64_t[]){0, bias->stride[0], 0}, bias->offset);
    fsvc_gpu_geom yg = fsvc_gpu_geom_of(y), bg = b3 ? fsvc_gpu_geom_bcast(b3, 3, y->shape) : yg;
    rc = b3 ? fsvc_gpu_axpy_launch(y->dtype, fsvc_data(y), &yg, fsvc_data(b3), &bg, 1.0) : -1;
    fsvc_tensor_release(b3);
  }
  if (rc != 0) {
    fsvc_tensor_release(xc);
    fsvc_tensor_release(wc);
    fsvc_tensor_release(y);
    return NULL;
  }
  fsvc_tensor *inputs[3] = {(fsvc_tensor *)x, (fsvc_tensor *)w, (fsvc_tensor *)bias};
  fsvc_node *n = fsvc_node_new(op, bias ? 3 : 2, inputs, conv_backward);
  if (n) {
    fsvc_node_save(n, xc);
    fsvc_node_save(n, wc);
    n->iarg[0] = c.s; n->iarg[1] = c.p; n->iarg[2] = c.d; n->iarg[3] = c.g; n->iarg[4] = transposed;
    fsvc_node_attach(n, y);
  }
  fsvc_tensor_release(xc);
  fsvc_tensor_release(wc);
  return y;
bad:
  fsvc_set_error("%s: input %s and weight %s do not fit (groups %lld; one float dtype; bias [out])", op,
                 fsvc_shape_str(x, sx, sizeof sx), fsvc_shape_str(w, sw, sizeof sw), (long long)c.g);
  return NULL;
}

static fsvc_tensor *gpu_conv1d(const fsvc_tensor *x, const fsvc_tensor *w, const fsvc_tensor *b,
                               const fsvc_conv1d_params *p) {
  return conv_common("conv1d", x, w, b, p, 0, 0);
}
static fsvc_tensor *gpu_conv_transpose1d(const fsvc_tensor *x, const fsvc_tensor *w, const fsvc_tensor *b,
                                         const fsvc_conv1d_params *p, int64_t output_padding) {
  return conv_common("conv_transpose1d", x, w, b, p, 1, output_padding);
}

/* ---- pooling ------------------------------------------------------------------------------------------ */
/* saved[0] = indices (max); iarg = kind, kernel, stride, padding */
static int pool_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  const fsvc_edge *e = &n->edges[0];
  int64_t t = e->shape[e->ndim - 1], tout = g->shape[g->ndim - 1], rows = tout ? fsvc_numel(g) / tout : 0;
  fsvc_tensor *gc = fsvc_contiguous_raw(g);
  fsvc_tensor *gx = gc ? fsvc_empty_on(e->ndim, e->shape, g->dtype, fsvc_tensor_device(g)) : NULL;
  int rc = gx ? fsvc_gpu_pool1d_backward_launch((int)n->iarg[0], g->dtype, fsvc_data(gx),
                                                n->iarg[0] ? fsvc_data(n->saved[0]) : NULL, fsvc_data(gc), rows, t,
                                                tout, n->iarg[1], n->iarg[2], n->iarg[3]) : -1;
  fsvc_tensor_release(gc);
  if (rc != 0) { fsvc_tensor_release(gx); return -1; }
  gin[0] = gx;
  return 0;
}

static fsvc_tensor *pool(const char *op, int kind, const fsvc_tensor *x, int64_t kernel, int64_t stride,
                         int64_t padding) {
  /* float16/bfloat16 (after an autocast conv) through the float32 kernel: pooling is cheap next to
   * the convolutions around it */
  FSVC_VIA_FLOAT32(op, FSVC_RECAST_SAME_DTYPE, pool(op, kind, FSVC_RECAST_ARG(0), kernel, stride, padding), x);
  if (fsvc_gpu_check_tensor(op, x, "input") != 0) return NULL;
  if (stride <= 0) stride = kernel; /* the rest was checked by core/ops/pool1d.c */
  int64_t t = x->shape[x->ndim - 1], tout = (t + 2 * padding - kernel) / stride + 1;
  int64_t shape[FSVC_MAX_DIMS];
  memcpy(shape, x->shape, sizeof shape);
  shape[x->ndim - 1] = tout;
  fsvc_device dev = x->storage->device;
  fsvc_tensor *xc = fsvc_contiguous_raw(x);
  fsvc_tensor *y = xc ? fsvc_empty_on(x->ndim, shape, x->dtype, dev) : NULL;
  fsvc_tensor *idx = y && kind ? fsvc_empty_on(x->ndim, shape, FSVC_INT64, dev) : NULL;
  int64_t rows = fsvc_numel(x) / (t ? t : 1);
  int rc = y && (!kind || idx) ? fsvc_gpu_pool1d_launch(kind, x->dtype, fsvc_data(y), idx ? fsvc_data(idx) : NULL,
                                                        fsvc_data(xc), rows, t, tout, kernel, stride, padding) : -1;
  fsvc_tensor_release(xc);
  if (rc != 0) {
    fsvc_tensor_release(y);
    fsvc_tensor_release(idx);
    return NULL;
  }
  fsvc_node *n = fsvc_node_new(op, 1, (fsvc_tensor *[]){(fsvc_tensor *)x}, pool_backward);
  if (n) {
    if (idx) fsvc_node_save(n, idx);
    n->iarg[0] = kind; n->iarg[1] = kernel; n->iarg[2] = stride; n->iarg[3] = padding;
    fsvc_node_attach(n, y);
  }
  fsvc_tensor_release(idx);
  return y;
}
static fsvc_tensor *gpu_avg_pool1d(const fsvc_tensor *x, int64_t k, int64_t s, int64_t p) { return pool("avg_pool1d", 0, x, k, s, p); }
static fsvc_tensor *gpu_max_pool1d(const fsvc_tensor *x, int64_t k, int64_t s, int64_t p) { return pool("max_pool1d", 1, x, k, s, p); }

/* ---- interpolate ----------------------------------------------------------------------------------------- */
/* iarg = mode, align; farg[0] = scale */
static int interp_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  const fsvc_edge *e = &n->edges[0];
  int64_t t = e->shape[e->ndim - 1], tout = g->shape[g->ndim - 1], rows = fsvc_numel(g) / tout;
  fsvc_tensor *gc = fsvc_contiguous_raw(g);
  fsvc_tensor *gx = gc ? fsvc_zeros_on(e->ndim, e->shape, g->dtype, fsvc_tensor_device(g)) : NULL;
  int rc = gx ? fsvc_gpu_interpolate_launch(g->dtype, fsvc_data(gx), fsvc_data(gc), rows, t, tout, n->farg[0],
                                            n->iarg[0] == FSVC_INTERP_LINEAR, (int)n->iarg[1], 1) : -1;
  fsvc_tensor_release(gc);
  if (rc != 0) { fsvc_tensor_release(gx); return -1; }
  gin[0] = gx;
  return 0;
}

static fsvc_tensor *gpu_interpolate(const fsvc_tensor *x, int64_t out_size, double scale, fsvc_interp_mode mode,
                                    int align_corners) {
  FSVC_VIA_FLOAT32("interpolate", FSVC_RECAST_SAME_DTYPE,
                   gpu_interpolate(FSVC_RECAST_ARG(0), out_size, scale, mode, align_corners), x);
  if (fsvc_gpu_check_tensor("interpolate", x, "input") != 0) return NULL; /* the rest: core/ops/interpolate.c */
  if (mode == FSVC_INTERP_NEAREST) align_corners = 0;
  int64_t t = x->shape[x->ndim - 1], shape[FSVC_MAX_DIMS];
  memcpy(shape, x->shape, sizeof shape);
  shape[x->ndim - 1] = out_size;
  fsvc_tensor *xc = fsvc_contiguous_raw(x);
  fsvc_tensor *y = xc ? fsvc_empty_on(x->ndim, shape, x->dtype, x->storage->device) : NULL;
  int rc = y ? fsvc_gpu_interpolate_launch(x->dtype, fsvc_data(y), fsvc_data(xc), fsvc_numel(x) / t, t, out_size,
                                           scale, mode == FSVC_INTERP_LINEAR, align_corners, 0) : -1;
  fsvc_tensor_release(xc);
  if (rc != 0) { fsvc_tensor_release(y); return NULL; }
  fsvc_node *n = fsvc_node_new("interpolate", 1, (fsvc_tensor *[]){(fsvc_tensor *)x}, interp_backward);
  if (n) {
    n->iarg[0] = mode;
    n->iarg[1] = align_corners;
    n->farg[0] = scale;
    fsvc_node_attach(n, y);
  }
  return y;
}

void fsvc_gpu_fill_nn(fsvc_cuda_op_table *t) {
  t->matmul = gpu_matmul; t->bmm = gpu_bmm; t->linear = gpu_linear;
  t->conv1d = gpu_conv1d; t->conv_transpose1d = gpu_conv_transpose1d;
  t->avg_pool1d = gpu_avg_pool1d; t->max_pool1d = gpu_max_pool1d; t->interpolate = gpu_interpolate;
}
