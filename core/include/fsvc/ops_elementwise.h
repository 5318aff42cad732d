/* Elementwise math with NumPy/PyTorch broadcasting. Scalars are passed as 0-d tensors (the Lua
 * binding makes them with the other operand's dtype, float32 next to float16/bfloat16). Mixed dtypes
 * promote (fsvc_promote_types): float16 + float32 is float32, and each operand's gradient comes
 * back in its own dtype. float16/bfloat16 CPU operands are computed through float32.
 * int64 inputs are allowed for add/sub/mul/neg/abs/comparisons/where; float ops on int64 fail
 * with an error naming the op, except div/pow/exp/... which promote int64 to float32. */
#ifndef FSVC_OPS_ELEMENTWISE_H
#define FSVC_OPS_ELEMENTWISE_H
#include "fsvc/tensor.h"

/* binary, differentiable in both operands */
fsvc_tensor *fsvc_add(const fsvc_tensor *a, const fsvc_tensor *b);
fsvc_tensor *fsvc_sub(const fsvc_tensor *a, const fsvc_tensor *b);
fsvc_tensor *fsvc_mul(const fsvc_tensor *a, const fsvc_tensor *b);
fsvc_tensor *fsvc_div(const fsvc_tensor *a, const fsvc_tensor *b);
fsvc_tensor *fsvc_pow(const fsvc_tensor *a, const fsvc_tensor *b);
fsvc_tensor *fsvc_maximum(const fsvc_tensor *a, const fsvc_tensor *b);
fsvc_tensor *fsvc_minimum(const fsvc_tensor *a, const fsvc_tensor *b);

/* comparisons: no gradient; result has the promoted dtype with values 0 and 1 */
fsvc_tensor *fsvc_eq(const fsvc_tensor *a, const fsvc_tensor *b);
fsvc_tensor *fsvc_ne(const fsvc_tensor *a, const fsvc_tensor *b);
fsvc_tensor *fsvc_lt(const fsvc_tensor *a, const fsvc_tensor *b);
fsvc_tensor *fsvc_le(const fsvc_tensor *a, const fsvc_tensor *b);
fsvc_tensor *fsvc_gt(const fsvc_tensor *a, const fsvc_tensor *b);
fsvc_tensor *fsvc_ge(const fsvc_tensor *a, const fsvc_tensor *b);

/* unary, differentiable */
fsvc_tensor *fsvc_neg(const fsvc_tensor *a);
fsvc_tensor *fsvc_abs(const fsvc_tensor *a);
fsvc_tensor *fsvc_exp(const fsvc_tensor *a);
fsvc_tensor *fsvc_log(const fsvc_tensor *a);
fsvc_tensor *fsvc_sqrt(const fsvc_tensor *a);
fsvc_tensor *fsvc_sin(const fsvc_tensor *a);
fsvc_tensor *fsvc_cos(const fsvc_tensor *a);
fsvc_tensor *fsvc_tanh(const fsvc_tensor *a);
fsvc_tensor *fsvc_sigmoid(const fsvc_tensor *a);
fsvc_tensor *fsvc_relu(const fsvc_tensor *a);
fsvc_tensor *fsvc_gelu(const fsvc_tensor *a); /* exact (erf) form, as PyTorch's default */
fsvc_tensor *fsvc_leaky_relu(const fsvc_tensor *a, double negative_slope);
/* min/max may be -INFINITY/INFINITY for "no bound"; gradient 1 inside [min, max], else 0 */
fsvc_tensor *fsvc_clamp(const fsvc_tensor *a, double min, double max);

/* selection: cond is any dtype, nonzero = true; broadcasting over all three */
fsvc_tensor *fsvc_where(const fsvc_tensor *cond, const fsvc_tensor *a, const fsvc_tensor *b);
fsvc_tensor *fsvc_masked_fill(const fsvc_tensor *a, const fsvc_tensor *mask, double value);

/* in place, no autograd (optimisers, initialisers): dst += alpha * src (src broadcast to dst) */
int fsvc_add_(fsvc_tensor *dst, const fsvc_tensor *src, double alpha);
int fsvc_mul_scalar_(fsvc_tensor *dst, double s);
#endif
