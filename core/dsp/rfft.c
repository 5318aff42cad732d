/* fsvc_rfft: one-sided real FFT over the last dim, with autograd. On the CPU it runs the STFT's
 * FFT (dsp_fft.c: KissFFT for float32 with even n, the double mixed-radix FFT otherwise), rows in
 * parallel; CUDA tensors dispatch to gpu/ops_fft.c (cuFFT). The device-generic STFT path
 * (dsp_device.c) is built on this op.
 *
 * Backward: with X_f = sum_k x_k e^{-2 pi i f k / n} for f = 0..n/2 and incoming gradient G_f,
 * dL/dx_k = sum_f Re(G_f) cos(2 pi f k / n) - Im(G_f) sin(2 pi f k / n) = Re(sum_f G_f e^{+i..}).
 * An unnormalised inverse real FFT of H sums over the Hermitian extension, i.e. counts bins
 * 1..ceil(n/2)-1 twice and ignores Im(H_0) (and Im(H_{n/2}) for even n, where sin(pi k) = 0):
 * so H_f = G_f / 2 on those bins and H_f = G_f on the edge bins gives exactly dL/dx. */
#include <omp.h>
#include <stdlib.h>

#include "dsp_internal.h"
#include "fsvc/autograd.h"
#include "fsvc/device.h"
#include "fsvc/dsp.h"
#include "fsvc/error.h"
#include "fsvc/ops.h"

__attribute__((constructor)) static void register_rfft(void) { fsvc_register_differentiable("rfft"); }

/* Rows of n samples (contiguous, dtype dt) -> rows of 2*(n/2+1) values, or the inverse. */
static int run_rows(const char *op, int inverse, int64_t rows, int64_t n, fsvc_dtype dt,
                    const void *src, void *dst) {
  const int64_t nb = n / 2 + 1, in_len = inverse ? 2 * nb : n, out_len = inverse ? n : 2 * nb;
  int nthreads = rows >= 4 ? omp_get_max_threads() : 1;
  if (nthreads > rows) nthreads = (int)(rows > 0 ? rows : 1);
  dsp_rfft **plans = calloc((size_t)nthreads, sizeof *plans);
  double *bufs = malloc(sizeof(double) * (size_t)nthreads * (size_t)(in_len + out_len));
  int ok = plans && bufs;
  for (int i = 0; ok && i < nthreads; i++) ok = (plans[i] = dsp_rfft_new(n, dt == FSVC_FLOAT32)) != NULL;
  if (ok) {
#pragma omp parallel for num_threads(nthreads) schedule(static) if (nthreads > 1)
    for (int64_t r = 0; r < rows; r++) {
      const int tid = omp_get_thread_num();
      double *in = bufs + (size_t)tid * (size_t)(in_len + out_len), *out = in + in_len;
      const size_t ib = (size_t)r * (size_t)in_len, ob = (size_t)r * (size_t)out_len;
      for (int64_t k = 0; k < in_len; k++)
        in[k] = dt == FSVC_FLOAT32 ? (double)((const float *)src)[ib + (size_t)k]
                                   : ((const double *)src)[ib + (size_t)k];
      if (inverse) {
        /* the adjoint's weights: bins strictly between 0 and n/2 halved */
        for (int64_t f = 1; 2 * f < n; f++) {
          in[2 * f] *= 0.5;
          in[2 * f + 1] *= 0.5;
        }
        dsp_rfft_inverse(plans[tid], in, out);
      } else {
        dsp_rfft_forward(plans[tid], in, out);
      }
      for (int64_t k = 0; k < out_len; k++) {
        if (dt == FSVC_FLOAT32) ((float *)dst)[ob + (size_t)k] = (float)out[k];
        else ((double *)dst)[ob + (size_t)k] = out[k];
      }
    }
  } else {
    fsvc_set_error("%s: out of memory", op);
  }
  for (int i = 0; plans && i < nthreads; i++) dsp_rfft_free(plans[i]);
  free(plans);
  free(bufs);
  return ok ? 0 : -1;
}

static int rfft_backward(fsvc_node *node, const fsvc_tensor *grad_out, fsvc_tensor **grad_in) {
  if (!node->edges[0].needs_grad) return 0;
  const int ndim = node->edges[0].ndim;
  const int64_t *shape = node->edges[0].shape;
  const fsvc_dtype dt = node->edges[0].dtype;
  const int64_t n = shape[ndim - 1];
  fsvc_tensor *gc = fsvc_to_dtype_raw(grad_out, dt); /* contiguous copy [..., nb, 2] */
  fsvc_tensor *gx = gc ? fsvc_empty(ndim, shape, dt) : NULL;
  if (!gx || run_rows("rfft backward", 1, fsvc_numel(gx) / n, n, dt, fsvc_data(gc), fsvc_data(gx))) {
    fsvc_tensor_release(gc);
    fsvc_tensor_release(gx);
    return -1;
  }
  fsvc_tensor_release(gc);
  grad_in[0] = gx;
  return 0;
}

fsvc_tensor *fsvc_rfft(const fsvc_tensor *x) {
  /* the checks read only the header: they come before the dispatch and serve both devices */
  char sb[64];
  if (!x || !x->storage) {
    fsvc_set_error("rfft: input is NULL or freed");
    return NULL;
  }
  if (x->dtype != FSVC_FLOAT32 && x->dtype != FSVC_FLOAT64) {
    fsvc_set_error("rfft: input must be float32 or float64, got %s", fsvc_dtype_name(x->dtype));
    return NULL;
  }
  if (x->ndim < 1 || x->ndim >= FSVC_MAX_DIMS || x->shape[x->ndim - 1] < 1) {
    fsvc_set_error("rfft: input must have a last dim of at least 1 sample (and fewer than %d dims), "
                   "got %s", FSVC_MAX_DIMS, fsvc_shape_str(x, sb, sizeof sb));
    return NULL;
  }
  FSVC_DISPATCH_CUDA(rfft, x);
  const int64_t n = x->shape[x->ndim - 1];
  int64_t oshape[FSVC_MAX_DIMS];
  for (int d = 0; d < x->ndim - 1; d++) oshape[d] = x->shape[d];
  oshape[x->ndim - 1] = n / 2 + 1;
  oshape[x->ndim] = 2;
  fsvc_tensor *xc = fsvc_contiguous_raw(x);
  fsvc_tensor *out = xc ? fsvc_empty(x->ndim + 1, oshape, x->dtype) : NULL;
  if (!out || run_rows("rfft", 0, fsvc_numel(x) / n, n, x->dtype, fsvc_data(xc), fsvc_data(out))) {
    fsvc_tensor_release(xc);
    fsvc_tensor_release(out);
    return NULL;
  }
  fsvc_tensor_release(xc);
  fsvc_node *node = fsvc_node_new("rfft", 1, (fsvc_tensor *const[]){(fsvc_tensor *)x}, rfft_backward);
  if (node) fsvc_node_attach(node, out);
  return out;
}
