/* Matrix products on OpenBLAS: matmul (numpy.matmul semantics, batch dims broadcast), bmm and
 * linear. Strided operands are passed to BLAS without copying when each matrix is row- or
 * column-major with a usable leading dimension (so transposed views cost nothing); other layouts
 * are made contiguous first. */
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "fsvc/autocast.h"
#include "fsvc/device.h"
#include "fsvc/ops_nn.h"
#include "fsvc/threads.h"
#include "nn_internal.h"

int openblas_get_num_threads(void); /* from OpenBLAS */
void openblas_set_num_threads(int n);

static void gemm_serial(fsvc_dtype dt, int transa, int transb, int64_t M, int64_t N, int64_t K,
                        double alpha, const char *A, int64_t lda, const char *B, int64_t ldb,
                        double beta, char *C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) { /* BLAS would leave C untouched; beta must still apply */
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        if (dt == FSVC_FLOAT32) { float *c = (float *)C + i * ldc + j; *c = beta == 0 ? 0.f : (float)(beta * *c); }
        else { double *c = (double *)C + i * ldc + j; *c = beta == 0 ? 0.0 : beta * *c; }
      }
    return;
  }
  enum CBLAS_TRANSPOSE ta = transa ? CblasTrans : CblasNoTrans;
  enum CBLAS_TRANSPOSE tb = transb ? CblasTrans : CblasNoTrans;
  if (dt == FSVC_FLOAT32)
    cblas_sgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)K, (float)alpha, (const float *)A,
                (int)lda, (const float *)B, (int)ldb, (float)beta, (float *)C, (int)ldc);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)K, alpha, (const double *)A, (int)lda,
                (const double *)B, (int)ldb, beta, (double *)C, (int)ldc);
}

void nn_gemm(fsvc_dtype dt, int transa, int transb, int64_t M, int64_t N, int64_t K, double alpha,
             const void *A, int64_t lda, const void *B, int64_t ldb, double beta, void *C,
             int64_t ldc) {
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
  int nt = omp_in_parallel() ? 1 : fsvc_get_num_threads();
  size_t es = fsvc_dtype_size(dt);
  const char *a = A, *b = B;
  char *c = C;
  if (nt <= 1 || (double)M * (double)N * (double)K < 4e5 || M <= 0 || N <= 0) {
    gemm_serial(dt, transa, transb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  /* split the longer output side into one contiguous slab per thread (multiples of 16) */
  int split_n = N >= M;
  int64_t len = split_n ? N : M;
  int64_t chunk = ((len + nt - 1) / nt + 15) / 16 * 16;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int i = 0; i < nt; i++) {
    int64_t lo = i * chunk, hi = lo + chunk < len ? lo + chunk : len;
    if (lo >= hi) continue;
    if (split_n)
      gemm_serial(dt, transa, transb, M, hi - lo, K, alpha, a, lda,
                  b + (transb ? lo * ldb : lo) * es, ldb, beta, c + lo * es, ldc);
    else
      gemm_serial(dt, transa, transb, hi - lo, N, K, alpha, a + (transa ? lo : lo * lda) * es,
                  lda, b, ldb, beta, c + lo * ldc * es, ldc);
  }
}

/* How BLAS can read t's last two dims [rows, cols]: 0 and (*trans, *ld) when usable. */
static int mat_layout(const fsvc_tensor *t, int *trans, int64_t *ld) {
  int nd = t->ndim;
  int64_t rows = t->shape[nd - 2], cols = t->shape[nd - 1];
  int64_t rs = t->stride[nd - 2], cs = t->stride[nd - 1];
  if ((cs == 1 || cols == 1) && (rows == 1 || rs >= (cols > 1 ? cols : 1))) {
    *trans = 0;
    *ld = rows == 1 ? (cols > 1 ? cols : 1) : rs;
    if (*ld < 1) *ld = 1;
    return 0;
  }
  if ((rs == 1 || rows == 1) && (cols == 1 || cs >= (rows > 1 ? rows : 1))) {
    *trans = 1;
    *ld = cols == 1 ? (rows > 1 ? rows : 1) : cs;
    if (*ld < 1) *ld = 1;
    return 0;
  }
  return -1;
}

/* A view of t with its last two dims swapped (no copy). */
static fsvc_tensor *transpose_last2(const fsvc_tensor *t) {
  int64_t shape[FSVC_MAX_DIMS], stride[FSVC_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  memcpy(stride, t->stride, sizeof stride);
  int nd = t->ndim;
  shape[nd - 2] = t->shape[nd - 1]; shape[nd - 1] = t->shape[nd - 2];
  stride[nd - 2] = t->stride[nd - 1]; stride[nd - 1] = t->stride[nd - 2];
  return fsvc_view_raw(t, nd, shape, stride, t->offset);
}

/* a [..., n, k] @ b [..., k, m] with broadcast batch dims, both ndim >= 2, same float dtype.
 * No autograd. Result contiguous [batch..., n, m]. */
static fsvc_tensor *matmul_raw(const fsvc_tensor *a_in, const fsvc_tensor *b_in, const char *op) {
  char sa[128], sb[128];
  int na = a_in->ndim, nb = b_in->ndim;
  int64_t n = a_in->shape[na - 2], k = a_in->shape[na - 1], m = b_in->shape[nb - 1];
  if (b_in->shape[nb - 2] != k) {
    fsvc_set_error("%s: inner dims differ, shapes %s and %s", op, fsvc_shape_str(a_in, sa, 128),
                   fsvc_shape_str(b_in, sb, 128));
    return NULL;
  }
  int nbatch = (na > nb ? na : nb) - 2;
  int64_t bshape[FSVC_MAX_DIMS], astr[FSVC_MAX_DIMS], bstr[FSVC_MAX_DIMS];
  int64_t nbat = 1;
  for (int d = 0; d < nbatch; d++) {
    int da = d - (nbatch - (na - 2)), db = d - (nbatch - (nb - 2));
    int64_t xa = da >= 0 ? a_in->shape[da] : 1, xb = db >= 0 ? b_in->shape[db] : 1;
    if (xa != xb && xa != 1 && xb != 1) {
      fsvc_set_error("%s: batch dims do not broadcast, shapes %s and %s", op,
                     fsvc_shape_str(a_in, sa, 128), fsvc_shape_str(b_in, sb, 128));
      return NULL;
    }
    bshape[d] = xa == 1 ? xb : xa;
    astr[d] = (da >= 0 && xa != 1) ? a_in->stride[da] : 0;
    bstr[d] = (db >= 0 && xb != 1) ? b_in->stride[db] : 0;
    nbat *= bshape[d];
  }
  int ta, tb;
  int64_t lda, ldb;
  fsvc_tensor *a = NULL, *b = NULL;
  if (mat_layout(a_in, &ta, &lda) == 0) a = fsvc_tensor_retain((fsvc_tensor *)a_in);
  else a = fsvc_contiguous_raw(a_in);
  if (mat_layout(b_in, &tb, &ldb) == 0) b = fsvc_tensor_retain((fsvc_tensor *)b_in);
  else b = fsvc_contiguous_raw(b_in);
  if (!a || !b) goto fail;
  if (a != a_in) { /* recompute batch strides of the copies */
    mat_layout(a, &ta, &lda);
    for (int d = 0; d < nbatch; d++) {
      int da = d - (nbatch - (na - 2));
      astr[d] = (da >= 0 && a->shape[da] != 1) ? a->stride[da] : 0;
    }
  }
  if (b != b_in) {
    mat_layout(b, &tb, &ldb);
    for (int d = 0; d < nbatch; d++) {
      int db = d - (nbatch - (nb - 2));
      bstr[d] = (db >= 0 && b->shape[db] != 1) ? b->stride[db] : 0;
    }
  }
  int64_t oshape[FSVC_MAX_DIMS];
  memcpy(oshape, bshape, sizeof(int64_t) * nbatch);
  oshape[nbatch] = n;
  oshape[nbatch + 1] = m;
  fsvc_tensor *out = fsvc_empty(nbatch + 2, oshape, a->dtype);
  if (!out) goto fail;
  size_t es = fsvc_dtype_size(a->dtype);
  const char *pa = fsvc_data(a), *pb = fsvc_data(b);
  char *po = fsvc_data(out);
  /* One GEMM for the common "[..., n, k] contiguous @ [k, m]": fold the batch into the rows. */
  if (nb == 2 && !ta && (nbatch == 0 || fsvc_is_contiguous(a))) {
    nn_gemm(a->dtype, 0, tb, nbat * n, m, k, 1.0, pa, lda, pb, ldb, 0.0, po, m);
  } else {
    for (int64_t i = 0; i < nbat; i++) {
      int64_t rem = i, oa = 0, ob = 0;
      for (int d = nbatch - 1; d >= 0; d--) {
        int64_t id = rem % bshape[d];
        rem /= bshape[d];
        oa += id * astr[d];
        ob += id * bstr[d];
      }
      nn_gemm(a->dtype, ta, tb, n, m, k, 1.0, pa + oa * es, lda, pb + ob * es, ldb, 0.0,
              po + i * n * m * es, m);
    }
  }
  fsvc_tensor_release(a);
  fsvc_tensor_release(b);
  return out;
fail:
  fsvc_tensor_release(a);
  fsvc_tensor_release(b);
  return NULL;
}

/* 1-D operands become matrices: a [k] -> [1, k], b [k] -> [k, 1] (views). */
static fsvc_tensor *promote_a(const fsvc_tensor *a) {
  if (a->ndim != 1) return fsvc_detach(a);
  int64_t shape[2] = {1, a->shape[0]}, stride[2] = {a->shape[0] * a->stride[0], a->stride[0]};
  if (stride[0] == 0) stride[0] = 1;
  return fsvc_view_raw(a, 2, shape, stride, a->offset);
}
static fsvc_tensor *promote_b(const fsvc_tensor *b) {
  if (b->ndim != 1) return fsvc_detach(b);
  int64_t shape[2] = {b->shape[0], 1}, stride[2] = {b->stride[0], 1};
  return fsvc_view_raw(b, 2, shape, stride, b->offset);
}

/* Reshape a contiguous-able tensor to (ndim, shape) without autograd. */
static fsvc_tensor *reshape_raw(const fsvc_tensor *t, int ndim, const int64_t *shape) {
  fsvc_tensor *c = fsvc_contiguous_raw(t);
  if (!c) return NULL;
  int64_t stride[FSVC_MAX_DIMS];
  fsvc_contiguous_strides(ndim, shape, stride);
  fsvc_tensor *v = fsvc_view_raw(c, ndim, shape, stride, c->offset);
  fsvc_tensor_release(c);
  return v;
}

static int check_pair(const fsvc_tensor *a, const fsvc_tensor *b, const char *op) {
  if (nn_check_float(a, op, "a") || nn_check_float(b, op, "b")) return -1;
  if (nn_check_same_dtype(op, a, b, NULL)) return -1;
  if (a->ndim < 1 || b->ndim < 1) {
    char sa[128], sb[128];
    fsvc_set_error("%s: operands must have at least 1 dim, shapes %s and %s", op,
                   fsvc_shape_str(a, sa, 128), fsvc_shape_str(b, sb, 128));
    return -1;
  }
  return 0;
}

/* Forward of matmul on the promoted operands; the output shape drops the promoted dims. */
static fsvc_tensor *matmul_compute(const fsvc_tensor *a, const fsvc_tensor *b, const char *op) {
  fsvc_tensor *a2 = promote_a(a), *b2 = promote_b(b);
  fsvc_tensor *o = (a2 && b2) ? matmul_raw(a2, b2, op) : NULL;
  fsvc_tensor_release(a2);
  fsvc_tensor_release(b2);
  if (!o || (a->ndim > 1 && b->ndim > 1)) return o;
  int64_t shape[FSVC_MAX_DIMS];
  int nd = 0;
  for (int d = 0; d < o->ndim; d++) {
    if (a->ndim == 1 && d == o->ndim - 2) continue;
    if (b->ndim == 1 && d == o->ndim - 1) continue;
    shape[nd++] = o->shape[d];
  }
  fsvc_tensor *r = reshape_raw(o, nd, shape);
  fsvc_tensor_release(o);
  return r;
}

static int matmul_backward(fsvc_node *node, const fsvc_tensor *grad, fsvc_tensor **grad_in) {
  const fsvc_tensor *a = node->saved[0], *b = node->saved[1];
  fsvc_tensor *a2 = promote_a(a), *b2 = promote_b(b), *g2 = NULL;
  int rc = -1;
  if (!a2 || !b2) goto done;
  { /* grad reshaped to the promoted output shape: batch + [n, m] */
    int nbatch = (a2->ndim > b2->ndim ? a2->ndim : b2->ndim) - 2;
    int64_t shape[FSVC_MAX_DIMS];
    for (int d = 0; d < nbatch; d++) {
      int da = d - (nbatch - (a2->ndim - 2)), db = d - (nbatch - (b2->ndim - 2));
      int64_t xa = da >= 0 ? a2->shape[da] : 1, xb = db >= 0 ? b2->shape[db] : 1;
      shape[d] = xa == 1 ? xb : xa;
    }
    shape[nbatch] = a2->shape[a2->ndim - 2];
    shape[nbatch + 1] = b2->shape[b2->ndim - 1];
    g2 = reshape_raw(grad, nbatch + 2, shape);
    if (!g2) goto done;
  }
  if (node->edges[0].needs_grad) { /* dA = G B^T, summed over broadcast batch dims */
    fsvc_tensor *bt = transpose_last2(b2);
    fsvc_tensor *ga = bt ? matmul_raw(g2, bt, "matmul backward") : NULL;
    fsvc_tensor_release(bt);
    fsvc_tensor *gs = ga ? fsvc_sum_to_shape(ga, a2->ndim, a2->shape) : NULL;
    fsvc_tensor_release(ga);
    grad_in[0] = gs ? reshape_raw(gs, a->ndim, a->shape) : NULL;
    fsvc_tensor_release(gs);
    if (!grad_in[0]) goto done;
  }
  if (node->edges[1].needs_grad) { /* dB = A^T G */
    fsvc_tensor *at = transpose_last2(a2);
    fsvc_tensor *gb = at ? matmul_raw(at, g2, "matmul backward") : NULL;
    fsvc_tensor_release(at);
    fsvc_tensor *gs = gb ? fsvc_sum_to_shape(gb, b2->ndim, b2->shape) : NULL;
    fsvc_tensor_release(gb);
    grad_in[1] = gs ? reshape_raw(gs, b->ndim, b->shape) : NULL;
    fsvc_tensor_release(gs);
    if (!grad_in[1]) goto done;
  }
  rc = 0;
done:
  fsvc_tensor_release(a2);
  fsvc_tensor_release(b2);
  fsvc_tensor_release(g2);
  return rc;
}

static fsvc_tensor *matmul_op(const fsvc_tensor *a, const fsvc_tensor *b, const char *op) {
  fsvc_tensor *out = matmul_compute(a, b, op);
  if (!out) return NULL;
  fsvc_node *n = fsvc_node_new(op, 2, (fsvc_tensor *[]){(fsvc_tensor *)a, (fsvc_tensor *)b},
                               matmul_backward);
  if (n) {
    fsvc_node_save(n, a);
    fsvc_node_save(n, b);
    fsvc_node_attach(n, out);
  }
  return out;
}

/* matmul's shape rule (numpy's): the inner dims agree and the batch dims (all but the last two;
 * none for a 1-d or 2-d operand) broadcast. Checked before the dispatch: the same on every device. */
static int check_matmul_shapes(const fsvc_tensor *a, const fsvc_tensor *b) {
  char sa[128], sb[128];
  int64_t ka = a->shape[a->ndim - 1], kb = b->ndim == 1 ? b->shape[0] : b->shape[b->ndim - 2];
  if (ka != kb) {
    fsvc_set_error("matmul: shapes %s and %s cannot be multiplied (%lld != %lld)",
                   fsvc_shape_str(a, sa, sizeof sa), fsvc_shape_str(b, sb, sizeof sb), (long long)ka,
                   (long long)kb);
    return -1;
  }
  int na = a->ndim > 2 ? a->ndim - 2 : 0, nb = b->ndim > 2 ? b->ndim - 2 : 0;
  for (int i = 1; i <= na && i <= nb; i++) {
    int64_t x = a->shape[na - i], y = b->shape[nb - i];
    if (x != y && x != 1 && y != 1) {
      fsvc_set_error("matmul: batch dims of %s and %s do not broadcast",
                     fsvc_shape_str(a, sa, sizeof sa), fsvc_shape_str(b, sb, sizeof sb));
      return -1;
    }
  }
  return 0;
}

fsvc_tensor *fsvc_matmul(const fsvc_tensor *a, const fsvc_tensor *b) {
  FSVC_AUTOCAST("matmul",
                fsvc_matmul(FSVC_RECAST_ARG(0), FSVC_RECAST_ARG(1)), a, b);
  if (check_pair(a, b, "matmul") || check_matmul_shapes(a, b)) return NULL; /* every device's */
  FSVC_DISPATCH_CUDA(matmul, a, b);
  FSVC_CPU_LOWP("matmul", FSVC_RECAST_SAME_DTYPE,
                fsvc_matmul(FSVC_RECAST_ARG(0), FSVC_RECAST_ARG(1)), a, b);
  return matmul_op(a, b, "matmul");
}

fsvc_tensor *fsvc_bmm(const fsvc_tensor *a, const fsvc_tensor *b) {
  FSVC_AUTOCAST("bmm",
                fsvc_bmm(FSVC_RECAST_ARG(0), FSVC_RECAST_ARG(1)), a, b);
  if (check_pair(a, b, "bmm")) return NULL; /* every device's checks, before the dispatch */
  char sa[128], sb[128];
  if (a->ndim != 3 || b->ndim != 3 || a->shape[0] != b->shape[0] || a->shape[2] != b->shape[1]) {
    fsvc_set_error("bmm: expected [B, n, k] and [B, k, m], shapes %s and %s",
                   fsvc_shape_str(a, sa, 128), fsvc_shape_str(b, sb, 128));
    return NULL;
  }
  FSVC_DISPATCH_CUDA(bmm, a, b);
  FSVC_CPU_LOWP("bmm", FSVC_RECAST_SAME_DTYPE,
                fsvc_bmm(FSVC_RECAST_ARG(0), FSVC_RECAST_ARG(1)), a, b);
  return matmul_op(a, b, "bmm");
}

/* ---- linear: y [..., out] = x [..., in] w[out, in]^T + b[out] -------------------------------- */
static int linear_backward(fsvc_node *node, const fsvc_tensor *grad, fsvc_tensor **grad_in) {
  const fsvc_tensor *x = node->saved[0], *w = node->saved[1];
  int64_t in = w->shape[1], outf = w->shape[0];
  int64_t rows = 1; /* from the shape: with in == 0, x has no elements to count rows by */
  for (int d = 0; d < x->ndim - 1; d++) rows *= x->shape[d];
  int64_t g2s[2] = {rows, outf}, x2s[2] = {rows, in};
  fsvc_tensor *g2 = reshape_raw(grad, 2, g2s), *x2 = NULL, *wc = NULL;
  int rc = -1;
  if (!g2) goto done;
  if (node->edges[0].needs_grad) { /* dx [rows, in] = g [rows, out] @ w [out, in] */
    wc = fsvc_contiguous_raw(w);
    fsvc_tensor *gx = wc ? fsvc_empty(2, x2s, x->dtype) : NULL;
    if (!gx) goto done;
    nn_gemm(x->dtype, 0, 0, rows, in, outf, 1.0, fsvc_data(g2), outf, fsvc_data(wc), in, 0.0,
            fsvc_data(gx), in);
    grad_in[0] = reshape_raw(gx, x->ndim, x->shape);
    fsvc_tensor_release(gx);
    if (!grad_in[0]) goto done;
  }
  if (node->edges[1].needs_grad) { /* dw [out, in] = g^T @ x */
    x2 = reshape_raw(x, 2, x2s);
    fsvc_tensor *gw = x2 ? fsvc_empty(2, w->shape, w->dtype) : NULL;
    if (!gw) goto done;
    nn_gemm(x->dtype, 1, 0, outf, in, rows, 1.0, fsvc_data(g2), outf, fsvc_data(x2), in, 0.0,
            fsvc_data(gw), in);
    grad_in[1] = gw;
  }
  if (node->n_inputs > 2 && node->edges[2].needs_grad) { /* db = sum of g over rows */
    fsvc_tensor *gb = fsvc_empty(1, &outf, x->dtype);
    if (!gb) goto done;
    nn_sum_bias_grad(x->dtype, rows, outf, 1, fsvc_data(g2), fsvc_data(gb));
    grad_in[2] = gb;
  }
  rc = 0;
done:
  fsvc_tensor_release(g2);
  fsvc_tensor_release(x2);
  fsvc_tensor_release(wc);
  return rc;
}

/* linear's checks, the same on every device (made before the dispatch) */
static int check_linear(const fsvc_tensor *x, const fsvc_tensor *w, const fsvc_tensor *b) {
  char sx[128], sw[128], sb[128];
  if (nn_check_float(x, "linear", "x") || nn_check_float(w, "linear", "weight")) return -1;
  if (b && nn_check_float(b, "linear", "bias")) return -1;
  if (nn_check_same_dtype("linear", x, w, b)) return -1;
  if (x->ndim < 1 || w->ndim != 2 || x->shape[x->ndim - 1] != w->shape[1] ||
      (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))) {
    fsvc_set_error("linear: expected x [..., in], weight [out, in], bias [out]; got %s, %s, %s",
                   fsvc_shape_str(x, sx, 128), fsvc_shape_str(w, sw, 128),
                   b ? fsvc_shape_str(b, sb, 128) : "none");
    return -1;
  }
  return 0;
}

fsvc_tensor *fsvc_linear(const fsvc_tensor *x, const fsvc_tensor *w, const fsvc_tensor *b) {
  FSVC_AUTOCAST("linear",
                fsvc_linear(FSVC_RECAST_ARG(0), FSVC_RECAST_ARG(1), FSVC_RECAST_ARG(2)), x, w, b);
  if (check_linear(x, w, b) != 0) return NULL;
  FSVC_DISPATCH_CUDA(linear, x, w, b);
  FSVC_CPU_LOWP("linear", FSVC_RECAST_SAME_DTYPE,
                fsvc_linear(FSVC_RECAST_ARG(0), FSVC_RECAST_ARG(1), FSVC_RECAST_ARG(2)), x, w, b);
  int64_t in = w->shape[1], outf = w->shape[0];
  int64_t rows = 1; /* from the shape: with in == 0, x has no elements to count rows by */
  for (int d = 0; d < x->ndim - 1; d++) rows *= x->shape[d];
  int64_t oshape[FSVC_MAX_DIMS];
  memcpy(oshape, x->shape, sizeof oshape);
  oshape[x->ndim - 1] = outf;
  fsvc_tensor *out = fsvc_empty(x->ndim, oshape, x->dtype);
  fsvc_tensor *xc = fsvc_contiguous_raw(x), *wc = NULL;
  if (!out || !xc) goto fail;
  /* w^T as a BLAS operand: w [out, in] row-major -> trans; a transposed view is read directly */
  int tw;
  int64_t ldw;
  if (mat_layout(w, &tw, &ldw) == 0) wc = fsvc_tensor_retain((fsvc_tensor *)w);
  else { wc = fsvc_contiguous_raw(w); if (!wc) goto fail; mat_layout(wc, &tw, &ldw); }
  size_t es = fsvc_dtype_size(x->dtype);
  char *po = fsvc_data(out);
  double beta = 0.0;
  if (b) { /* broadcast the bias into every row, then accumulate the product onto it */
    fsvc_tensor *bc = fsvc_contiguous_raw(b);
    if (!bc) goto fail;
    for (int64_t r = 0; r < rows; r++) memcpy(po + r * outf * es, fsvc_data(bc), outf * es);
    fsvc_tensor_release(bc);
    beta = 1.0;
  }
  nn_gemm(x->dtype, 0, !tw, rows, outf, in, 1.0, fsvc_data(xc), in, fsvc_data(wc), ldw, beta, po,
          outf);
  fsvc_tensor_release(xc);
  fsvc_tensor_release(wc);
  fsvc_tensor *inputs[3] = {(fsvc_tensor *)x, (fsvc_tensor *)w, (fsvc_tensor *)b};
  fsvc_node *n = fsvc_node_new("linear", b ? 3 : 2, inputs, linear_backward);
  if (n) {
    fsvc_node_save(n, x);
    fsvc_node_save(n, w);
    fsvc_node_attach(n, out);
  }
  return out;
fail:
  fsvc_tensor_release(out);
  fsvc_tensor_release(xc);
  fsvc_tensor_release(wc);
  return NULL;
}

__attribute__((constructor)) static void register_ops(void) {
  fsvc_register_differentiable("matmul");
  fsvc_register_differentiable("bmm");
  fsvc_register_differentiable("linear");
}
