/* Transposed 1-D convolution (PyTorch's ConvTranspose1d): x [B, Cin, Tin], w [Cin, Cout/groups, K],
 * y [B, Cout, Ty], Ty = (Tin-1)*stride - 2*padding + dilation*(K-1) + output_padding + 1.
 *
 * It is the adjoint of a convolution whose weight is w read as [Cin, Cout/groups, K] (Cin as that
 * convolution's output channels) mapping a [Cout, Ty] signal to [Cin, Tin]. So the forward is
 * that convolution's data-gradient kernel, and the backward uses its forward (data gradient) and
 * weight-gradient kernels (conv1d.c): no separate GEMM code. */
#include <stdlib.h>
#include <string.h>

#include "fsvc/autocast.h"
#include "fsvc/device.h"
#include "fsvc/ops_nn.h"
#include "nn_internal.h"

/* The convolution that this transposed convolution is the adjoint of. */
static nn_conv_geom adjoint_geom(int64_t B, int64_t Cin, int64_t Cout, int64_t K, int64_t Tin,
                                 int64_t Ty, const int64_t *iarg, fsvc_dtype dt) {
  nn_conv_geom g = {B, Cout, Cin, K, Ty, Tin, iarg[0], iarg[1], iarg[2], iarg[3], dt};
  return g;
}

static fsvc_tensor *batched(const fsvc_tensor *t) {
  fsvc_tensor *c = fsvc_contiguous_raw(t);
  if (!c || t->ndim == 3) return c;
  int64_t shape[3] = {1, t->shape[0], t->shape[1]}, stride[3];
  fsvc_contiguous_strides(3, shape, stride);
  fsvc_tensor *v = fsvc_view_raw(c, 3, shape, stride, c->offset);
  fsvc_tensor_release(c);
  return v;
}

static int conv_transpose1d_backward(fsvc_node *node, const fsvc_tensor *grad,
                                     fsvc_tensor **grad_in) {
  const fsvc_tensor *x0 = node->saved[0], *w0 = node->saved[1];
  fsvc_tensor *x = batched(x0), *w = fsvc_contiguous_raw(w0), *gy = batched(grad);
  int rc = -1;
  if (!x || !w || !gy) goto done;
  int64_t gr = node->iarg[3];
  nn_conv_geom g = adjoint_geom(x->shape[0], x->shape[1], w->shape[1] * gr, w->shape[2],
                                x->shape[2], gy->shape[2], node->iarg, x->dtype);
  if (node->edges[0].needs_grad) { /* dx = conv(dy, w) */
    fsvc_tensor *gx = fsvc_empty(x0->ndim, x0->shape, x0->dtype);
    if (!gx || nn_conv1d_forward_kernel(&g, fsvc_data(gy), fsvc_data(w), NULL, fsvc_data(gx))) {
      fsvc_tensor_release(gx);
      goto done;
    }
    grad_in[0] = gx;
  }
  if (node->edges[1].needs_grad) { /* dw[ci, co, k] = sum_t x[ci, t] dy[co, t*s + k*d - p] */
    fsvc_tensor *gw = fsvc_empty(3, w->shape, w->dtype);
    if (!gw || nn_conv1d_backward_weight_kernel(&g, fsvc_data(gy), fsvc_data(x), fsvc_data(gw))) {
      fsvc_tensor_release(gw);
      goto done;
    }
    grad_in[1] = gw;
  }
  if (node->n_inputs > 2 && node->edges[2].needs_grad) {
    int64_t C = gy->shape[1];
    fsvc_tensor *gb = fsvc_empty(1, &C, gy->dtype);
    if (!gb) goto done;
    nn_sum_bias_grad(gy->dtype, gy->shape[0], C, gy->shape[2], fsvc_data(gy), fsvc_data(gb));
    grad_in[2] = gb;
  }
  rc = 0;
done:
  fsvc_tensor_release(x);
  fsvc_tensor_release(w);
  fsvc_tensor_release(gy);
  return rc;
}

/* conv_transpose1d's checks, the same on every device (made before the dispatch); fills g and
 * iarg (stride, padding, dilation, groups) */
static int check_conv_transpose1d(const fsvc_tensor *x, const fsvc_tensor *w, const fsvc_tensor *bias,
                                  const fsvc_conv1d_params *p, int64_t output_padding,
                                  nn_conv_geom *out_g, int64_t *iarg) {
  const char *op = "conv_transpose1d";
  char sx[128], sw[128], sb[128];
  if (nn_check_float(x, op, "input") || nn_check_float(w, op, "weight")) return -1;
  if (bias && nn_check_float(bias, op, "bias")) return -1;
  if (nn_check_same_dtype(op, x, w, bias)) return -1;
  int64_t s = p && p->stride ? p->stride : 1, pad = p ? p->padding : 0;
  int64_t d = p && p->dilation ? p->dilation : 1, gr = p && p->groups ? p->groups : 1;
  if (s < 1 || pad < 0 || d < 1 || gr < 1 || output_padding < 0 ||
      (output_padding >= s && output_padding >= d)) {
    fsvc_set_error("%s: need stride >= 1, padding >= 0, dilation >= 1, groups >= 1 and "
                   "0 <= output_padding < stride or dilation (got %lld, %lld, %lld, %lld, %lld)",
                   op, (long long)s, (long long)pad, (long long)d, (long long)gr,
                   (long long)output_padding);
    return -1;
  }
  if (s > NN_MAX_PARAM || pad > NN_MAX_PARAM || d > NN_MAX_PARAM || gr > NN_MAX_PARAM) {
    fsvc_set_error("%s: stride, padding, dilation and groups must be < 2^31", op);
    return -1;
  }
  if ((x->ndim != 2 && x->ndim != 3) || w->ndim != 3) {
    fsvc_set_error("%s: expected input [B, Cin, T] or [Cin, T] and weight [Cin, Cout/groups, K], "
                   "got %s and %s", op, fsvc_shape_str(x, sx, 128), fsvc_shape_str(w, sw, 128));
    return -1;
  }
  int64_t B = x->ndim == 3 ? x->shape[0] : 1, Cin = x->shape[x->ndim - 2];
  int64_t Tin = x->shape[x->ndim - 1], K = w->shape[2], Cout = w->shape[1] * gr;
  if (w->shape[0] != Cin || Cin % gr || K < 1 || Cout < 1 || B == 0 || Tin == 0) {
    fsvc_set_error("%s: input %s and weight %s do not match with groups=%lld (or are empty)", op,
                   fsvc_shape_str(x, sx, 128), fsvc_shape_str(w, sw, 128), (long long)gr);
    return -1;
  }
  if (bias && (bias->ndim != 1 || bias->shape[0] != Cout)) {
    fsvc_set_error("%s: bias must be [%lld], got %s", op, (long long)Cout,
                   fsvc_shape_str(bias, sb, 128));
    return -1;
  }
  int64_t Ty = (Tin - 1) * s - 2 * pad + d * (K - 1) + output_padding + 1;
  if (Ty < 1) {
    fsvc_set_error("%s: output length %lld < 1 for input %s", op, (long long)Ty,
                   fsvc_shape_str(x, sx, 128));
    return -1;
  }
  iarg[0] = s;
  iarg[1] = pad;
  iarg[2] = d;
  iarg[3] = gr;
  *out_g = adjoint_geom(B, Cin, Cout, K, Tin, Ty, iarg, x->dtype);
  return 0;
}

fsvc_tensor *fsvc_conv_transpose1d(const fsvc_tensor *x, const fsvc_tensor *w,
                                   const fsvc_tensor *bias, const fsvc_conv1d_params *p,
                                   int64_t output_padding) {
  FSVC_AUTOCAST("conv_transpose1d",
                fsvc_conv_transpose1d(FSVC_RECAST_ARG(0), FSVC_RECAST_ARG(1), FSVC_RECAST_ARG(2), p, output_padding), x, w, bias);
  nn_conv_geom g;
  int64_t iarg[4];
  if (check_conv_transpose1d(x, w, bias, p, output_padding, &g, iarg) != 0) return NULL;
  FSVC_DISPATCH_CUDA(conv_transpose1d, x, w, bias, p, output_padding);
  FSVC_CPU_LOWP("conv_transpose1d", FSVC_RECAST_SAME_DTYPE,
                fsvc_conv_transpose1d(FSVC_RECAST_ARG(0), FSVC_RECAST_ARG(1), FSVC_RECAST_ARG(2), p, output_padding), x, w, bias);
  const char *op = "conv_transpose1d";
  const int64_t B = g.B, Cout = g.Cin, Ty = g.Tx; /* g is the adjoint convolution's geometry */
  int64_t oshape[3] = {B, Cout, Ty};
  fsvc_tensor *out = x->ndim == 3 ? fsvc_empty(3, oshape, x->dtype)
                                  : fsvc_empty(2, oshape + 1, x->dtype);
  fsvc_tensor *xc = fsvc_contiguous_raw(x), *wc = fsvc_contiguous_raw(w);
  fsvc_tensor *bc = bias ? fsvc_contiguous_raw(bias) : NULL;
  int rc = (!out || !xc || !wc || (bias && !bc))
               ? -1
               : nn_conv1d_backward_data_kernel(&g, fsvc_data(xc), fsvc_data(wc), fsvc_data(out));
  if (rc == 0 && bc) {
    for (int64_t b = 0; b < B; b++)
      for (int64_t c = 0; c < Cout; c++) {
        int64_t o = (b * Cout + c) * Ty;
        if (x->dtype == FSVC_FLOAT32) {
          float v = ((float *)fsvc_data(bc))[c], *r = (float *)fsvc_data(out) + o;
          for (int64_t t = 0; t < Ty; t++) r[t] += v;
        } else {
          double v = ((double *)fsvc_data(bc))[c], *r = (double *)fsvc_data(out) + o;
          for (int64_t t = 0; t < Ty; t++) r[t] += v;
        }
      }
  }
  fsvc_tensor_release(xc);
  fsvc_tensor_release(wc);
  fsvc_tensor_release(bc);
  if (rc) { fsvc_tensor_release(out); return NULL; }
  fsvc_tensor *inputs[3] = {(fsvc_tensor *)x, (fsvc_tensor *)w, (fsvc_tensor *)bias};
  fsvc_node *n = fsvc_node_new(op, bias ? 3 : 2, inputs, conv_transpose1d_backward);
  if (n) {
    fsvc_node_save(n, x);
    fsvc_node_save(n, w);
    memcpy(n->iarg, iarg, sizeof iarg);
    n->iarg[4] = output_padding;
    fsvc_node_attach(n, out);
  }
  return out;
}

__attribute__((constructor)) static void register_ops(void) {
  fsvc_register_differentiable("conv_transpose1d");
}
