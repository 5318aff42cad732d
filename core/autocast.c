/* Autocast state and the argument casts around ops (see fsvc/autocast.h). */
#include "fsvc/autocast.h"

#include "fsvc/error.h"
#include "fsvc/ops_shape.h"

static _Thread_local fsvc_autocast_state state = {0, FSVC_FLOAT16};

int fsvc_autocast_enabled(void) { return state.enabled; }
fsvc_dtype fsvc_autocast_dtype(void) { return state.dtype; }
fsvc_autocast_state fsvc_autocast_get(void) { return state; }

int fsvc_set_autocast(int enabled, fsvc_dtype dtype, fsvc_autocast_state *prev) {
  if (!fsvc_dtype_is_16bit(dtype)) {
    fsvc_set_error("autocast: dtype must be float16 or bfloat16, got %s",
                   (unsigned)dtype < FSVC_NUM_DTYPES ? fsvc_dtype_name(dtype) : "an invalid dtype");
    return -1;
  }
  if (prev) *prev = state;
  state.enabled = enabled != 0;
  state.dtype = dtype;
  return 0;
}

void fsvc_autocast_restore(fsvc_autocast_state s) { state = s; }

static int is_live_float(const fsvc_tensor *t) {
  return t && t->storage && fsvc_dtype_is_float(t->dtype);
}

/* Does `mode` cast t? */
static int wants_cast(fsvc_recast_mode mode, const fsvc_tensor *t) {
  if (!is_live_float(t)) return 0;
  if (mode == FSVC_RECAST_AUTOCAST) /* float64 stays, as PyTorch's autocast leaves it */
    return t->dtype != state.dtype && t->dtype != FSVC_FLOAT64;
  return fsvc_dtype_is_16bit(t->dtype) &&
         (mode == FSVC_RECAST_LOWP || t->storage->device.type == FSVC_CPU);
}

int fsvc_recast_begin_(fsvc_recast_mode mode, const char *op, int n, const fsvc_tensor *const *in,
                       fsvc_tensor **cast, fsvc_dtype *result_dtype, fsvc_autocast_state *saved) {
  if (mode == FSVC_RECAST_AUTOCAST && !state.enabled) return 0;
  int any = 0;
  for (int i = 0; i < n; i++) any |= wants_cast(mode, in[i]);
  if (!any) return 0;
  fsvc_dtype target = mode == FSVC_RECAST_AUTOCAST ? state.dtype : FSVC_FLOAT32;
  if (mode != FSVC_RECAST_AUTOCAST && *result_dtype == FSVC_RECAST_SAME_DTYPE) {
    const fsvc_tensor *first = NULL;
    for (int i = 0; i < n; i++) {
      if (!is_live_float(in[i])) continue;
      if (!first) first = in[i];
      else if (in[i]->dtype != first->dtype) {
        fsvc_set_error("%s: dtypes differ (%s and %s); cast with :to(dtype), or run the op under "
                       "fsvc.autocast to have it cast",
                       op, fsvc_dtype_name(first->dtype), fsvc_dtype_name(in[i]->dtype));
        return -1;
      }
    }
    *result_dtype = first->dtype;
  }
  for (int i = 0; i < n; i++) {
    if (!in[i]) cast[i] = NULL;
    else if (wants_cast(mode, in[i])) cast[i] = fsvc_to_dtype(in[i], target);
    else cast[i] = fsvc_tensor_retain((fsvc_tensor *)in[i]);
    if (in[i] && !cast[i]) {
      for (int j = 0; j < i; j++) fsvc_tensor_release(cast[j]);
      return -1;
    }
  }
  *saved = state;
  /* the float32 kernels inside must not be sent back to 16 bits by autocast */
  if (mode != FSVC_RECAST_AUTOCAST) state.enabled = 0;
  return 1;
}

fsvc_tensor *fsvc_recast_end_(int n, fsvc_tensor **cast, fsvc_tensor *result,
                              fsvc_dtype result_dtype, const fsvc_autocast_state *saved) {
  state = *saved;
  for (int i = 0; i < n; i++) fsvc_tensor_release(cast[i]);
  if (!result || (unsigned)result_dtype >= FSVC_NUM_DTYPES || !fsvc_dtype_is_float(result_dtype) ||
      !fsvc_dtype_is_float(result->dtype) || result->dtype == result_dtype)
    return result;
  fsvc_tensor *low = fsvc_to_dtype(result, result_dtype);
  fsvc_tensor_release(result);
  return low;
}
