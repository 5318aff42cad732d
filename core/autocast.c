/* Autocast state and the argument casts around ops (see fsvc/autocast.h). */
#include "fsvc/autocast.h"

#include <stdlib.h>

#include "fsvc/autograd.h"
#include "fsvc/error.h"
#include "fsvc/ops_shape.h"

static _Thread_local fsvc_autocast_state state = {0, FSVC_FLOAT16, 1};
static _Thread_local int depth;                /* open regions */
static _Thread_local fsvc_autocast_stats stats; /* casts, cache_hits (cached/depth filled on read) */

/* The weight-cast cache: a few hundred parameters at most, looked up by pointer. An entry holds
 * the weight (so that its address cannot be reused by another tensor while cached) and the cast
 * without history (the graph of the first use is not kept alive by the cache). */
typedef struct {
  fsvc_tensor *weight;
  fsvc_dtype dtype;
  fsvc_tensor *cast;
} cache_entry;
static _Thread_local cache_entry *cache;
static _Thread_local int cache_len, cache_cap;

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

int fsvc_autocast_enter(int enabled, fsvc_dtype dtype, int cache_enabled,
                        fsvc_autocast_state *prev) {
  fsvc_autocast_state before = state;
  if (fsvc_set_autocast(enabled, dtype, NULL) != 0) return -1;
  state.cache_enabled = cache_enabled != 0;
  depth++;
  if (prev) *prev = before;
  return 0;
}

void fsvc_autocast_exit(fsvc_autocast_state prev) {
  state = prev;
  if (depth > 0) depth--;
  if (depth == 0) fsvc_autocast_clear_cache();
}

void fsvc_autocast_clear_cache(void) {
  /* emptied first: releasing a tensor never re-enters autocast, but keep the list consistent */
  cache_entry *entries = cache;
  int n = cache_len;
  cache = NULL;
  cache_len = cache_cap = 0;
  for (int i = 0; i < n; i++) {
    fsvc_tensor_release(entries[i].cast);
    fsvc_tensor_release(entries[i].weight);
  }
  free(entries);
}

fsvc_autocast_stats fsvc_autocast_get_stats(void) {
  fsvc_autocast_stats s = stats;
  s.cached = cache_len;
  s.depth = depth;
  return s;
}

void fsvc_autocast_reset_stats(void) { stats.casts = stats.cache_hits = 0; }

/* A use of a cached cast: its data, with a "to" node of its own from the weight (the engine casts
 * the gradient to the weight's dtype), as the uncached fsvc_to_dtype would record. */
static int cached_cast_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (n->edges[0].needs_grad) gin[0] = fsvc_tensor_retain((fsvc_tensor *)g);
  return 0;
}

static fsvc_tensor *use_cached(const cache_entry *e) {
  fsvc_tensor *out = fsvc_detach(e->cast);
  if (!out) return NULL;
  fsvc_node *n = fsvc_node_new("to", 1, (fsvc_tensor *[]){e->weight}, cached_cast_backward);
  if (n) fsvc_node_attach(n, out);
  return out;
}

/* PyTorch's rule: float32 leaves that require grad, to the autocast dtype, inside a region */
static int cacheable(const fsvc_tensor *t) {
  return depth > 0 && state.cache_enabled && t->dtype == FSVC_FLOAT32 && t->requires_grad &&
         !t->grad_fn;
}

/* autocast's cast of one argument to `target` (a new reference, NULL with an error) */
static fsvc_tensor *autocast_cast(const fsvc_tensor *t, fsvc_dtype target) {
  int keep = cacheable(t);
  if (keep)
    for (int i = 0; i < cache_len; i++)
      if (cache[i].weight == t && cache[i].dtype == target) {
        fsvc_tensor *out = use_cached(&cache[i]);
        if (out) stats.cache_hits++;
        return out;
      }
  fsvc_tensor *out = fsvc_to_dtype(t, target);
  if (!out) return NULL;
  stats.casts++;
  if (keep) {
    if (cache_len == cache_cap) {
      int cap = cache_cap ? 2 * cache_cap : 32;
      cache_entry *grown = realloc(cache, (size_t)cap * sizeof *grown);
      if (!grown) return out; /* out of memory: this weight is simply not cached */
      cache = grown;
      cache_cap = cap;
    }
    fsvc_tensor *data = fsvc_detach(out);
    if (!data) return out;
    cache[cache_len++] = (cache_entry){fsvc_tensor_retain((fsvc_tensor *)t), target, data};
  }
  return out;
}

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
    else if (wants_cast(mode, in[i]))
      cast[i] = mode == FSVC_RECAST_AUTOCAST ? autocast_cast(in[i], target)
                                             : fsvc_to_dtype(in[i], target);
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
