/* fsvc_amp_unscale_: the gradient pass of dynamic loss scaling (fsvc.amp.GradScaler.unscale_).
 * One pass per gradient multiplies by 1/scale and watches for NaN/Inf, instead of a product, a
 * reduction and a comparison per gradient written with tensor ops. */
#include <math.h>

#include "fsvc/device.h"
#include "fsvc/error.h"
#include "fsvc/ops_extra.h"
#include "fsvc/threads.h"
#include "half.h"

/* Non-finite elements are counted after the product: NaN and Inf stay non-finite, and a finite
 * gradient that overflows when scaled up (scale < 1) is caught too. */
#define UNSCALE_LOOP(T, LOAD, STORE)                                                              \
  do {                                                                                            \
    T *p = data;                                                                                  \
    _Pragma("omp parallel for reduction(|:bad) num_threads(nt) if(n > 65536)")                    \
    for (int64_t i = 0; i < n; i++) {                                                             \
      float_or_double v = (float_or_double)LOAD(p[i]) * s;                                        \
      p[i] = STORE(v);                                                                            \
      bad |= !isfinite((float_or_double)LOAD(p[i]));                                              \
    }                                                                                             \
  } while (0)
#define IDENTITY(x) (x)
#define TO_HALF(x) fsvc_float_to_half((float)(x))
#define TO_BFLOAT(x) fsvc_float_to_bfloat((float)(x))

/* data: n contiguous elements of dtype dt. Returns 1 when one is non-finite after scaling. */
static int unscale_contiguous(void *data, int64_t n, fsvc_dtype dt, double inv_scale) {
  int bad = 0, nt = fsvc_get_num_threads();
  if (dt == FSVC_FLOAT64) {
    typedef double float_or_double;
    const double s = inv_scale;
    UNSCALE_LOOP(double, IDENTITY, IDENTITY);
  } else {
    typedef float float_or_double; /* float32 arithmetic, as PyTorch's kernel for these dtypes */
    const float s = (float)inv_scale;
    if (dt == FSVC_FLOAT32) UNSCALE_LOOP(float, IDENTITY, IDENTITY);
    else if (dt == FSVC_FLOAT16) UNSCALE_LOOP(uint16_t, fsvc_half_to_float, TO_HALF);
    else UNSCALE_LOOP(uint16_t, fsvc_bfloat_to_float, TO_BFLOAT);
  }
  return bad;
}

int fsvc_amp_unscale_(int n, fsvc_tensor *const *grads, double inv_scale, int *found_inf) {
  FSVC_DISPATCH_CUDA_IF_(fsvc_any_cuda_list(n, grads), -1, amp_unscale_, n, grads, inv_scale,
                         found_inf);
  if (n < 0 || (n > 0 && !grads) || !found_inf) {
    fsvc_set_error("amp_unscale_: invalid arguments (n %d)", n);
    return -1;
  }
  for (int i = 0; i < n; i++) {
    const fsvc_tensor *g = grads[i];
    if (g && (!g->storage || !fsvc_dtype_is_float(g->dtype))) {
      fsvc_set_error("amp_unscale_: gradient %d is %s", i,
                     g->storage ? "not a float tensor" : "freed");
      return -1;
    }
  }
  int bad = 0;
  for (int i = 0; i < n; i++) {
    fsvc_tensor *g = grads[i];
    if (!g || fsvc_numel(g) == 0) continue;
    if (fsvc_is_contiguous(g)) {
      bad |= unscale_contiguous(fsvc_data(g), fsvc_numel(g), g->dtype, inv_scale);
      continue;
    }
    fsvc_tensor *c = fsvc_clone_raw(g); /* strided: through a contiguous copy */
    if (!c) return -1;
    bad |= unscale_contiguous(fsvc_data(c), fsvc_numel(c), c->dtype, inv_scale);
    int rc = fsvc_copy_(g, c);
    fsvc_tensor_release(c);
    if (rc != 0) return -1;
  }
  *found_inf = bad;
  return 0;
}
