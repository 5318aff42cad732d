/* The Tensor userdata: argument checking shared by every binding, creation functions, element
 * access, printing, autograd entry points and deterministic release. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsvc/device.h"
#include "fsvc_lua.h"

#define MODULE_KEY "fsvc.module"
#define METHODS_KEY "fsvc.methods"

typedef struct {
  fsvc_tensor *t;
} tensor_ud;

/* ---- registration --------------------------------------------------------------------------- */
void fsvc_lua_register(lua_State *L, const luaL_Reg *funcs, int where) {
  if (where != FSVC_LUA_METHOD_ONLY) {
    lua_getfield(L, LUA_REGISTRYINDEX, MODULE_KEY);
    luaL_setfuncs(L, funcs, 0);
    lua_pop(L, 1);
  }
  if (where != FSVC_LUA_FUNCTION_ONLY) {
    lua_getfield(L, LUA_REGISTRYINDEX, METHODS_KEY);
    luaL_setfuncs(L, funcs, 0);
    lua_pop(L, 1);
  }
}

/* ---- errors and pushing --------------------------------------------------------------------- */
int fsvc_lua_error(lua_State *L) { return luaL_error(L, "%s", fsvc_last_error()); }

/* Lua does not see tensor bytes, so a loop that drops big tensors would let memory grow until
 * the collector happens to run. We pace it: after the core has allocated as many new bytes as
 * were live at the last collection (at least 64 MB), run a full collection. */
static int64_t gc_allocated_mark = 0;
static int64_t gc_live_after_collect = 0;

static void pace_collector(lua_State *L) {
  int64_t total = fsvc_memory_allocated_total();
  int64_t budget = gc_live_after_collect > (64ll << 20) ? gc_live_after_collect : (64ll << 20);
  /* a stopped collector stays stopped (CUDA graph capture relies on it: lua/bind_cuda.c) */
  if (total - gc_allocated_mark > budget && lua_gc(L, LUA_GCISRUNNING)) {
    lua_gc(L, LUA_GCCOLLECT);
    gc_allocated_mark = fsvc_memory_allocated_total();
    gc_live_after_collect = fsvc_memory_allocated();
  }
}

int fsvc_lua_push_tensor(lua_State *L, fsvc_tensor *t) {
  if (!t) return fsvc_lua_error(L);
  pace_collector(L);
  tensor_ud *ud = lua_newuserdatauv(L, sizeof *ud, 0);
  ud->t = t;
  luaL_setmetatable(L, FSVC_TENSOR_MT);
  return 1;
}

/* ---- argument checks ------------------------------------------------------------------------ */
int fsvc_lua_is_tensor(lua_State *L, int idx) { return luaL_testudata(L, idx, FSVC_TENSOR_MT) != NULL; }

static fsvc_tensor *to_tensor(lua_State *L, int idx) {
  tensor_ud *ud = luaL_testudata(L, idx, FSVC_TENSOR_MT);
  return ud ? ud->t : NULL;
}

fsvc_tensor *fsvc_lua_check_tensor(lua_State *L, int idx, const char *op, const char *name) {
  tensor_ud *ud = luaL_testudata(L, idx, FSVC_TENSOR_MT);
  if (!ud) {
    luaL_error(L, "%s: argument #%d (%s) must be a tensor, got %s", op, idx, name,
               luaL_typename(L, idx));
    return NULL;
  }
  if (!ud->t || !ud->t->storage) {
    luaL_error(L, "%s: argument #%d (%s) is a tensor that was freed", op, idx, name);
    return NULL;
  }
  return ud->t;
}

fsvc_tensor *fsvc_lua_check_cpu_tensor(lua_State *L, int idx, const char *op, const char *name) {
  fsvc_tensor *t = fsvc_lua_check_tensor(L, idx, op, name);
  if (t->storage->device.type != FSVC_CPU)
    luaL_error(L, "%s: argument #%d (%s) is on a GPU, and %s runs on the CPU only for now: pass x:cpu()",
               op, idx, name, op);
  return t;
}

fsvc_tensor *fsvc_lua_opt_tensor(lua_State *L, int idx, const char *op, const char *name) {
  if (lua_isnoneornil(L, idx)) return NULL;
  return fsvc_lua_check_tensor(L, idx, op, name);
}

fsvc_tensor *fsvc_lua_check_tensor_or_scalar(lua_State *L, int idx, fsvc_dtype like,
                                             const char *op, const char *name) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    fsvc_dtype dt = like;
    if (dt == FSVC_INT64 && !lua_isinteger(L, idx)) dt = FSVC_FLOAT32;
    /* next to float16/bfloat16 a number stays float32 (the op still returns the 16-bit dtype,
     * see fsvc_ew_result_dtype): x * 65536 must not overflow in the scalar, as in PyTorch */
    if (dt == FSVC_FLOAT16 || dt == FSVC_BFLOAT16) dt = FSVC_FLOAT32;
    fsvc_tensor *s = fsvc_scalar(lua_tonumber(L, idx), dt);
    if (!s) fsvc_lua_error(L);
    return s;
  }
  if (lua_type(L, idx) == LUA_TBOOLEAN) return fsvc_scalar(lua_toboolean(L, idx), like);
  return fsvc_tensor_retain(fsvc_lua_check_tensor(L, idx, op, name));
}

int64_t fsvc_lua_check_int(lua_State *L, int idx, const char *op, const char *name) {
  int isnum = 0;
  lua_Integer v = lua_tointegerx(L, idx, &isnum);
  if (!isnum) {
    if (lua_type(L, idx) == LUA_TNUMBER)
      luaL_error(L, "%s: argument #%d (%s) must be an integer, got %s", op, idx, name,
                 lua_tostring(L, idx));
    else
      luaL_error(L, "%s: argument #%d (%s) must be an integer, got %s", op, idx, name,
                 luaL_typename(L, idx));
  }
  return (int64_t)v;
}

int64_t fsvc_lua_opt_int(lua_State *L, int idx, int64_t def, const char *op, const char *name) {
  if (lua_isnoneornil(L, idx)) return def;
  return fsvc_lua_check_int(L, idx, op, name);
}

double fsvc_lua_check_number(lua_State *L, int idx, const char *op, const char *name) {
  int isnum = 0;
  lua_Number v = lua_tonumberx(L, idx, &isnum);
  if (!isnum || lua_type(L, idx) != LUA_TNUMBER)
    luaL_error(L, "%s: argument #%d (%s) must be a number, got %s", op, idx, name,
               luaL_typename(L, idx));
  return (double)v;
}

int fsvc_lua_check_dim(lua_State *L, int idx, const fsvc_tensor *t, const char *op) {
  int64_t d = fsvc_lua_check_int(L, idx, op, "dim");
  int nd = t->ndim;
  int lo = nd > 0 ? -nd : -1, hi = nd > 0 ? nd - 1 : 0;
  if (d < lo || d > hi)
    luaL_error(L, "%s: dim %d out of range for a tensor of %d dims (valid: %d to %d)", op, (int)d,
               nd, lo, hi);
  return (int)(d < 0 ? d + (nd > 0 ? nd : 1) : d);
}

int fsvc_lua_check_insert_dim(lua_State *L, int idx, int ndim, const char *op) {
  int64_t d = fsvc_lua_check_int(L, idx, op, "dim");
  if (d < -(ndim + 1) || d > ndim)
    luaL_error(L, "%s: dim %d out of range for inserting into %d dims (valid: %d to %d)", op,
               (int)d, ndim, -(ndim + 1), ndim);
  return (int)(d < 0 ? d + ndim + 1 : d);
}

int fsvc_lua_check_shape(lua_State *L, int idx, int64_t *shape, const char *op) {
  int n = 0;
  if (lua_istable(L, idx)) {
    n = (int)lua_rawlen(L, idx);
    if (n > FSVC_MAX_DIMS) luaL_error(L, "%s: shape has %d dims, at most %d allowed", op, n, FSVC_MAX_DIMS);
    for (int i = 0; i < n; i++) {
      lua_rawgeti(L, idx, i + 1);
      int isnum = 0;
      lua_Integer v = lua_tointegerx(L, -1, &isnum);
      if (!isnum) luaL_error(L, "%s: shape entry %d must be an integer, got %s", op, i + 1, luaL_typename(L, -1));
      shape[i] = v;
      lua_pop(L, 1);
    }
    return n;
  }
  int top = lua_gettop(L);
  for (int i = idx; i <= top; i++) {
    if (lua_type(L, i) != LUA_TNUMBER) break;
    if (n >= FSVC_MAX_DIMS) luaL_error(L, "%s: shape has more than %d dims", op, FSVC_MAX_DIMS);
    shape[n++] = fsvc_lua_check_int(L, i, op, "size");
  }
  return n;
}

int fsvc_lua_check_dims(lua_State *L, int idx, const fsvc_tensor *t, int *dims, const char *op) {
  if (lua_isnoneornil(L, idx)) return 0;
  if (lua_istable(L, idx)) {
    int n = (int)lua_rawlen(L, idx);
    if (n > FSVC_MAX_DIMS) luaL_error(L, "%s: too many dims (%d)", op, n);
    for (int i = 0; i < n; i++) {
      lua_rawgeti(L, idx, i + 1);
      dims[i] = fsvc_lua_check_dim(L, lua_gettop(L), t, op);
      lua_pop(L, 1);
    }
    return n;
  }
  dims[0] = fsvc_lua_check_dim(L, idx, t, op);
  return 1;
}

fsvc_dtype fsvc_lua_opt_dtype(lua_State *L, int idx, fsvc_dtype def, const char *op) {
  if (lua_isnoneornil(L, idx)) return def;
  const char *name = lua_tostring(L, idx);
  fsvc_dtype dt;
  if (!name || lua_type(L, idx) != LUA_TSTRING) luaL_error(L, "%s: dtype must be a string", op);
  if (fsvc_dtype_from_name(name, &dt) != 0) luaL_error(L, "%s: %s", op, fsvc_last_error());
  return dt;
}

static int push_field(lua_State *L, int idx, const char *key, const char *op) {
  if (lua_isnoneornil(L, idx)) return 0;
  if (!lua_istable(L, idx)) luaL_error(L, "%s: options must be a table, got %s", op, luaL_typename(L, idx));
  lua_getfield(L, idx, key);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return 0; }
  return 1;
}

int64_t fsvc_lua_opt_field_int(lua_State *L, int idx, const char *key, int64_t def, const char *op) {
  idx = lua_absindex(L, idx);
  if (!push_field(L, idx, key, op)) return def;
  int isnum = 0;
  lua_Integer v = lua_tointegerx(L, -1, &isnum);
  if (!isnum) luaL_error(L, "%s: option '%s' must be an integer, got %s", op, key, luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}

double fsvc_lua_opt_field_number(lua_State *L, int idx, const char *key, double def, const char *op) {
  idx = lua_absindex(L, idx);
  if (!push_field(L, idx, key, op)) return def;
  if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "%s: option '%s' must be a number, got %s", op, key, luaL_typename(L, -1));
  double v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

int fsvc_lua_opt_field_bool(lua_State *L, int idx, const char *key, int def, const char *op) {
  idx = lua_absindex(L, idx);
  if (!push_field(L, idx, key, op)) return def;
  if (!lua_isboolean(L, -1)) luaL_error(L, "%s: option '%s' must be a boolean, got %s", op, key, luaL_typename(L, -1));
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

const char *fsvc_lua_opt_field_string(lua_State *L, int idx, const char *key, const char *def,
                                      const char *op) {
  idx = lua_absindex(L, idx);
  if (!push_field(L, idx, key, op)) return def;
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s: option '%s' must be a string, got %s", op, key, luaL_typename(L, -1));
  const char *s = lua_tostring(L, -1);
  lua_pop(L, 1); /* the string stays alive in the option table */
  return s;
}

/* luaL_error with the full printf formats (%g, %lld) that lua_pushfstring lacks. */
int fsvc_lua_raisef(lua_State *L, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return luaL_error(L, "%s", buf);
}

/* Raises an error for any key of the options table at idx that is not in keys. */
void fsvc_lua_check_option_keys(lua_State *L, int idx, const char *op, const char *const *keys) {
  if (lua_isnoneornil(L, idx)) return;
  if (!lua_istable(L, idx) || fsvc_lua_is_tensor(L, idx))
    fsvc_lua_raisef(L, "%s: options must be a table, got %s", op, luaL_typename(L, idx));
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    int ok = 0;
    if (lua_type(L, -1) == LUA_TSTRING)
      for (const char *const *k = keys; *k; k++) ok |= strcmp(*k, lua_tostring(L, -1)) == 0;
    if (!ok) {
      const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1);
      fsvc_lua_raisef(L, "%s: unknown option '%s'", op, name);
    }
  }
}

/* ---- creation ------------------------------------------------------------------------------- */
/* Options table of factory functions: {dtype="float32", requires_grad=false, device="cpu"}. Finds
 * it as the last argument when it is a table that is not a shape list (has no [1]). */
static int is_options_table(lua_State *L, int idx) {
  if (!lua_istable(L, idx)) return 0;
  lua_rawgeti(L, idx, 1);
  int is_list = !lua_isnil(L, -1);
  lua_pop(L, 1);
  return !is_list;
}

typedef struct {
  int ndim;
  int64_t shape[FSVC_MAX_DIMS];
  fsvc_dtype dtype;
  int requires_grad;
  fsvc_device device;
} factory_args;

/* the `device` field of an options table ("cpu", "cuda", "cuda:1"; absent: the CPU) */
static fsvc_device opt_device(lua_State *L, int opt, const char *op) {
  fsvc_device d = fsvc_cpu();
  if (!opt) return d;
  lua_getfield(L, opt, "device");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "%s: device must be a string such as \"cpu\" or \"cuda:0\", got %s", op, luaL_typename(L, -1));
    if (fsvc_device_parse(lua_tostring(L, -1), &d) != 0) luaL_error(L, "%s: %s", op, fsvc_last_error());
  }
  lua_pop(L, 1);
  return d;
}

/* t (a new CPU tensor) on device d; random numbers are drawn on the CPU and moved, so a seed gives
 * the same values on every device */
static fsvc_tensor *on_device(fsvc_tensor *t, fsvc_device d) {
  if (!t || d.type == FSVC_CPU) return t;
  fsvc_tensor *moved = fsvc_to_device_raw(t, d);
  fsvc_tensor_release(t);
  return moved;
}

/* Parses `fsvc.zeros(2, 3, {dtype=...})` or `fsvc.zeros({2, 3}, {...})` starting at idx. */
static void parse_factory(lua_State *L, int idx, factory_args *fa, const char *op) {
  int top = lua_gettop(L);
  int opt = (top >= idx && is_options_table(L, top)) ? top : 0;
  fa->ndim = fsvc_lua_check_shape(L, idx, fa->shape, op);
  fa->dtype = FSVC_FLOAT32;
  fa->requires_grad = 0;
  fa->device = opt_device(L, opt, op);
  if (opt) {
    lua_getfield(L, opt, "dtype");
    fa->dtype = fsvc_lua_opt_dtype(L, -1, FSVC_FLOAT32, op);
    lua_pop(L, 1);
    fa->requires_grad = fsvc_lua_opt_field_bool(L, opt, "requires_grad", 0, op);
  }
  for (int i = 0; i < fa->ndim; i++)
    if (fa->shape[i] < 0) luaL_error(L, "%s: sizes must be >= 0 (size %d is %I)", op, i, (lua_Integer)fa->shape[i]);
}

static int finish_factory(lua_State *L, fsvc_tensor *t, const factory_args *fa) {
  if (t && !fsvc_device_equal(fsvc_tensor_device(t), fa->device)) t = on_device(t, fa->device);
  if (t && fa->requires_grad) {
    if (!fsvc_dtype_is_float(t->dtype)) {
      fsvc_tensor_release(t);
      return luaL_error(L, "requires_grad needs a float dtype");
    }
    t->requires_grad = 1;
  }
  return fsvc_lua_push_tensor(L, t);
}

static int l_zeros(lua_State *L) {
  factory_args fa;
  parse_factory(L, 1, &fa, "zeros");
  return finish_factory(L, fsvc_zeros_on(fa.ndim, fa.shape, fa.dtype, fa.device), &fa);
}
static int l_ones(lua_State *L) {
  factory_args fa;
  parse_factory(L, 1, &fa, "ones");
  return finish_factory(L, fsvc_full_on(fa.ndim, fa.shape, 1.0, fa.dtype, fa.device), &fa);
}
static int l_empty(lua_State *L) {
  factory_args fa;
  parse_factory(L, 1, &fa, "empty");
  return finish_factory(L, fsvc_zeros_on(fa.ndim, fa.shape, fa.dtype, fa.device), &fa);
}
static int l_full(lua_State *L) { /* full(shape, value, opts) */
  factory_args fa;
  if (!lua_istable(L, 1)) return luaL_error(L, "full: argument #1 (shape) must be a list of sizes");
  double v = fsvc_lua_check_number(L, 2, "full", "value");
  lua_remove(L, 2);
  parse_factory(L, 1, &fa, "full");
  return finish_factory(L, fsvc_full_on(fa.ndim, fa.shape, v, fa.dtype, fa.device), &fa);
}
static int l_rand(lua_State *L) {
  factory_args fa;
  parse_factory(L, 1, &fa, "rand");
  return finish_factory(L, fsvc_rand(fa.ndim, fa.shape, fa.dtype, NULL), &fa);
}
static int l_randn(lua_State *L) {
  factory_args fa;
  parse_factory(L, 1, &fa, "randn");
  return finish_factory(L, fsvc_randn(fa.ndim, fa.shape, fa.dtype, NULL), &fa);
}
static int l_randint(lua_State *L) { /* randint(low, high, shape) */
  int64_t lo = fsvc_lua_check_int(L, 1, "randint", "low");
  int64_t hi = fsvc_lua_check_int(L, 2, "randint", "high");
  int64_t shape[FSVC_MAX_DIMS];
  int nd = fsvc_lua_check_shape(L, 3, shape, "randint");
  return fsvc_lua_push_tensor(L, fsvc_randint(lo, hi, nd, shape, NULL));
}
static int l_randperm(lua_State *L) {
  return fsvc_lua_push_tensor(L, fsvc_randperm(fsvc_lua_check_int(L, 1, "randperm", "n"), NULL));
}
static int l_manual_seed(lua_State *L) {
  fsvc_manual_seed((uint64_t)fsvc_lua_check_int(L, 1, "manual_seed", "seed"));
  return 0;
}
static int l_arange(lua_State *L) { /* arange(end) | arange(start, end, step?) , opts */
  int top = lua_gettop(L);
  int opt = is_options_table(L, top) ? top : 0;
  int nargs = opt ? top - 1 : top;
  double start = 0, end, step = 1;
  int all_int = 1;
  for (int i = 1; i <= nargs; i++) {
    fsvc_lua_check_number(L, i, "arange", "bound");
    if (!lua_isinteger(L, i)) all_int = 0;
  }
  if (nargs == 1) end = lua_tonumber(L, 1);
  else if (nargs >= 2) {
    start = lua_tonumber(L, 1);
    end = lua_tonumber(L, 2);
    if (nargs >= 3) step = lua_tonumber(L, 3);
  } else return luaL_error(L, "arange: expected (end) or (start, end, step)");
  fsvc_dtype dt = all_int ? FSVC_INT64 : FSVC_FLOAT32;
  if (opt) {
    lua_getfield(L, opt, "dtype");
    dt = fsvc_lua_opt_dtype(L, -1, dt, "arange");
    lua_pop(L, 1);
  }
  fsvc_device d = opt_device(L, opt, "arange");
  return fsvc_lua_push_tensor(L, on_device(fsvc_arange(start, end, step, dt), d));
}
static int l_linspace(lua_State *L) {
  double a = fsvc_lua_check_number(L, 1, "linspace", "start");
  double b = fsvc_lua_check_number(L, 2, "linspace", "end");
  int64_t n = fsvc_lua_check_int(L, 3, "linspace", "steps");
  fsvc_dtype dt = FSVC_FLOAT32;
  if (lua_istable(L, 4)) {
    lua_getfield(L, 4, "dtype");
    dt = fsvc_lua_opt_dtype(L, -1, dt, "linspace");
    lua_pop(L, 1);
  }
  fsvc_device d = opt_device(L, lua_istable(L, 4) ? 4 : 0, "linspace");
  return fsvc_lua_push_tensor(L, on_device(fsvc_linspace(a, b, n, dt), d));
}

/* fsvc.tensor({{1,2},{3,4}}, {dtype=...}): nested Lua lists (rectangular), or a number (0-d). */
static void infer_nested_shape(lua_State *L, int idx, int depth, int *ndim, int64_t *shape) {
  if (lua_type(L, idx) == LUA_TNUMBER || lua_type(L, idx) == LUA_TBOOLEAN) {
    *ndim = depth;
    return;
  }
  if (!lua_istable(L, idx)) luaL_error(L, "tensor: data must be numbers or nested lists, found %s", luaL_typename(L, idx));
  if (depth >= FSVC_MAX_DIMS) luaL_error(L, "tensor: nesting deeper than %d", FSVC_MAX_DIMS);
  shape[depth] = (int64_t)lua_rawlen(L, idx);
  if (shape[depth] == 0) { *ndim = depth + 1; return; }
  lua_rawgeti(L, idx, 1);
  infer_nested_shape(L, lua_gettop(L), depth + 1, ndim, shape);
  lua_pop(L, 1);
}

static void fill_nested(lua_State *L, int idx, int depth, int ndim, const int64_t *shape,
                        fsvc_tensor *t, int64_t *pos, int *all_int) {
  if (depth == ndim) {
    if (lua_type(L, idx) == LUA_TBOOLEAN) {
      fsvc_set_flat(t, (*pos)++, lua_toboolean(L, idx));
      return;
    }
    if (lua_type(L, idx) != LUA_TNUMBER) luaL_error(L, "tensor: expected a number at depth %d, found %s", depth, luaL_typename(L, idx));
    if (!lua_isinteger(L, idx)) *all_int = 0;
    fsvc_set_flat(t, (*pos)++, lua_tonumber(L, idx));
    return;
  }
  if (!lua_istable(L, idx) || (int64_t)lua_rawlen(L, idx) != shape[depth])
    luaL_error(L, "tensor: ragged nested list (at depth %d expected a list of %I)", depth, (lua_Integer)shape[depth]);
  for (int64_t i = 0; i < shape[depth]; i++) {
    lua_rawgeti(L, idx, i + 1);
    fill_nested(L, lua_gettop(L), depth + 1, ndim, shape, t, pos, all_int);
    lua_pop(L, 1);
  }
}

static int l_tensor(lua_State *L) {
  int ndim = 0;
  int64_t shape[FSVC_MAX_DIMS];
  if (fsvc_lua_is_tensor(L, 1)) /* fsvc.tensor(t) copies */
    return fsvc_lua_push_tensor(L, fsvc_clone_raw(fsvc_lua_check_tensor(L, 1, "tensor", "data")));
  infer_nested_shape(L, 1, 0, &ndim, shape);
  /* fill as float64 first, then decide the dtype: all integers -> int64, like torch.tensor */
  fsvc_tensor *tmp = fsvc_empty(ndim, shape, FSVC_FLOAT64);
  if (!tmp) return fsvc_lua_error(L);
  int64_t pos = 0;
  int all_int = 1;
  /* fill_nested may raise; wrap tmp in a userdata first so the collector owns it */
  fsvc_lua_push_tensor(L, tmp);
  fill_nested(L, 1, 0, ndim, shape, tmp, &pos, &all_int);
  fsvc_dtype dt = all_int && fsvc_numel(tmp) > 0 ? FSVC_INT64 : FSVC_FLOAT32;
  int requires_grad = 0;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "dtype");
    dt = fsvc_lua_opt_dtype(L, -1, dt, "tensor");
    lua_pop(L, 1);
    requires_grad = fsvc_lua_opt_field_bool(L, 2, "requires_grad", 0, "tensor");
  }
  fsvc_device dev = opt_device(L, lua_istable(L, 2) ? 2 : 0, "tensor");
  fsvc_tensor *t = on_device(fsvc_to_dtype_raw(tmp, dt), dev);
  if (t && requires_grad) {
    if (!fsvc_dtype_is_float(dt)) { fsvc_tensor_release(t); return luaL_error(L, "tensor: requires_grad needs a float dtype"); }
    t->requires_grad = 1;
  }
  return fsvc_lua_push_tensor(L, t);
}

static int like_dtype_opt(lua_State *L, int idx, const fsvc_tensor *t, fsvc_dtype *dt) {
  *dt = t->dtype;
  if (lua_istable(L, idx)) {
    lua_getfield(L, idx, "dtype");
    *dt = fsvc_lua_opt_dtype(L, -1, t->dtype, "like");
    lua_pop(L, 1);
  }
  return 0;
}
static int l_zeros_like(lua_State *L) {
  fsvc_tensor *t = fsvc_lua_check_tensor(L, 1, "zeros_like", "input");
  fsvc_dtype dt;
  like_dtype_opt(L, 2, t, &dt);
  return fsvc_lua_push_tensor(L, fsvc_zeros_on(t->ndim, t->shape, dt, fsvc_tensor_device(t)));
}
static int l_ones_like(lua_State *L) {
  fsvc_tensor *t = fsvc_lua_check_tensor(L, 1, "ones_like", "input");
  fsvc_dtype dt;
  like_dtype_opt(L, 2, t, &dt);
  return fsvc_lua_push_tensor(L, fsvc_full_on(t->ndim, t->shape, 1.0, dt, fsvc_tensor_device(t)));
}
static int l_full_like(lua_State *L) {
  fsvc_tensor *t = fsvc_lua_check_tensor(L, 1, "full_like", "input");
  double v = fsvc_lua_check_number(L, 2, "full_like", "value");
  fsvc_dtype dt;
  like_dtype_opt(L, 3, t, &dt);
  return fsvc_lua_push_tensor(L, fsvc_full_on(t->ndim, t->shape, v, dt, fsvc_tensor_device(t)));
}
static int l_randn_like(lua_State *L) {
  fsvc_tensor *t = fsvc_lua_check_tensor(L, 1, "randn_like", "input");
  return fsvc_lua_push_tensor(L, on_device(fsvc_randn(t->ndim, t->shape, fsvc_dtype_is_float(t->dtype) ? t->dtype : FSVC_FLOAT32, NULL),
                                           fsvc_tensor_device(t)));
}
static int l_rand_like(lua_State *L) {
  fsvc_tensor *t = fsvc_lua_check_tensor(L, 1, "rand_like", "input");
  return fsvc_lua_push_tensor(L, on_device(fsvc_rand(t->ndim, t->shape, fsvc_dtype_is_float(t->dtype) ? t->dtype : FSVC_FLOAT32, NULL),
                                          fsvc_tensor_device(t)));
}

/* ---- queries -------------------------------------------------------------------------------- */
static void push_int_list(lua_State *L, int n, const int64_t *v) {
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushinteger(L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

static int l_size(lua_State *L) { /* x:size() -> list; x:size(dim) -> integer */
  fsvc_tensor *t = fsvc_lua_check_tensor(L, 1, "size", "self");
  if (lua_isnoneornil(L, 2)) {
    push_int_list(L, t->ndim, t->shape);
    return 1;
  }
  lua_pushinteger(L, t->shape[fsvc_lua_check_dim(L, 2, t, "size")]);
  return 1;
}
static int l_stride(lua_State *L) {
  fsvc_tensor *t = fsvc_lua_check_tensor(L, 1, "stride", "self");
  if (lua_isnoneornil(L, 2)) {
    push_int_list(L, t->ndim, t->stride);
    return 1;
  }
  lua_pushinteger(L, t->stride[fsvc_lua_check_dim(L, 2, t, "stride")]);
  return 1;
}
static int l_dim(lua_State *L) {
  lua_pushinteger(L, fsvc_lua_check_tensor(L, 1, "dim", "self")->ndim);
  return 1;
}
static int l_numel(lua_State *L) {
  lua_pushinteger(L, fsvc_numel(fsvc_lua_check_tensor(L, 1, "numel", "self")));
  return 1;
}
static int l_is_contiguous(lua_State *L) {
  lua_pushboolean(L, fsvc_is_contiguous(fsvc_lua_check_tensor(L, 1, "is_contiguous", "self")));
  return 1;
}
static int l_storage_offset(lua_State *L) {
  lua_pushinteger(L, fsvc_lua_check_tensor(L, 1, "storage_offset", "self")->offset);
  return 1;
}
static void push_number(lua_State *L, const fsvc_tensor *t, double v) {
  if (t->dtype == FSVC_INT64) lua_pushinteger(L, (lua_Integer)v);
  else lua_pushnumber(L, v);
}
static int l_item(lua_State *L) {
  fsvc_tensor *t = fsvc_lua_check_tensor(L, 1, "item", "self");
  if (fsvc_numel(t) != 1) {
    char b[128];
    return luaL_error(L, "item: tensor of shape %s has %I elements, item() needs exactly one",
                      fsvc_shape_str(t, b, sizeof b), (lua_Integer)fsvc_numel(t));
  }
  push_number(L, t, fsvc_get_flat(t, 0));
  return 1;
}
/* x:get(i, j, ...) and x:set(v, i, j, ...): element access with 0-based indices */
static int64_t element_index(lua_State *L, fsvc_tensor *t, int first, const char *op) {
  int n = lua_gettop(L) - first + 1;
  if (n != t->ndim) return luaL_error(L, "%s: expected %d indices, got %d", op, t->ndim, n);
  int64_t flat = 0;
  for (int d = 0; d < t->ndim; d++) {
    int64_t i = fsvc_lua_check_int(L, first + d, op, "index");
    if (i < 0) i += t->shape[d];
    if (i < 0 || i >= t->shape[d])
      return luaL_error(L, "%s: index %I out of range for dim %d of size %I", op,
                        (lua_Integer)fsvc_lua_check_int(L, first + d, op, "index"), d, (lua_Integer)t->shape[d]);
    flat = flat * t->shape[d] + i;
  }
  return flat;
}
static int l_get(lua_State *L) {
  fsvc_tensor *t = fsvc_lua_check_tensor(L, 1, "get", "self");
  push_number(L, t, fsvc_get_flat(t, element_index(L, t, 2, "get")));
  return 1;
}
static int l_set(lua_State *L) {
  fsvc_tensor *t = fsvc_lua_check_tensor(L, 1, "set", "self");
  double v = fsvc_lua_check_number(L, 2, "set", "value");
  fsvc_set_flat(t, element_index(L, t, 3, "set"), v);
  lua_settop(L, 1);
  return 1;
}

static void push_nested(lua_State *L, const fsvc_tensor *t, int depth, int64_t *pos) {
  if (depth == t->ndim) {
    push_number(L, t, fsvc_get_flat(t, (*pos)++));
    return;
  }
  lua_createtable(L, (int)t->shape[depth], 0);
  for (int64_t i = 0; i < t->shape[depth]; i++) {
    push_nested(L, t, depth + 1, pos);
    lua_rawseti(L, -2, i + 1);
  }
}
/* Raw flat access in row-major order, 0-based, no autograd checks (used by gradcheck). */
static int l_get_flat(lua_State *L) {
  fsvc_tensor *t = fsvc_lua_check_tensor(L, 1, "_get_flat", "self");
  int64_t i = fsvc_lua_check_int(L, 2, "_get_flat", "index");
  if (i < 0 || i >= fsvc_numel(t)) return luaL_error(L, "_get_flat: index %I out of range", (lua_Integer)i);
  push_number(L, t, fsvc_get_flat(t, i));
  return 1;
}
static int l_set_flat(lua_State *L) {
  fsvc_tensor *t = fsvc_lua_check_tensor(L, 1, "_set_flat", "self");
  int64_t i = fsvc_lua_check_int(L, 2, "_set_flat", "index");
  if (i < 0 || i >= fsvc_numel(t)) return luaL_error(L, "_set_flat: index %I out of range", (lua_Integer)i);
  fsvc_set_flat(t, i, fsvc_lua_check_number(L, 3, "_set_flat", "value"));
  return 0;
}

static int l_tolist(lua_State *L) { /* nested Lua lists (a number for 0-d) */
  fsvc_tensor *t = fsvc_lua_check_tensor(L, 1, "tolist", "self");
  if (fsvc_numel(t) > (1 << 24)) return luaL_error(L, "tolist: tensor too large for a Lua table");
  int64_t pos = 0;
  luaL_checkstack(L, t->ndim + 4, "tolist");
  push_nested(L, t, 0, &pos);
  return 1;
}
static int l_flat_list(lua_State *L) { /* flat Lua list in row-major order */
  fsvc_tensor *t = fsvc_lua_check_tensor(L, 1, "flat", "self");
  int64_t n = fsvc_numel(t);
  if (n > (1 << 24)) return luaL_error(L, "flat: tensor too large for a Lua table");
  lua_createtable(L, (int)n, 0);
  for (int64_t i = 0; i < n; i++) {
    push_number(L, t, fsvc_get_flat(t, i));
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* ---- in-place fills (no autograd) ----------------------------------------------------------- */
static fsvc_tensor *check_inplace(lua_State *L, const char *op) {
  fsvc_tensor *t = fsvc_lua_check_tensor(L, 1, op, "self");
  if (fsvc_grad_enabled() && (t->requires_grad || t->grad_fn))
    luaL_error(L, "%s: in-place change of a tensor that requires grad; wrap it in fsvc.no_grad", op);
  return t;
}
static int l_fill_(lua_State *L) {
  fsvc_tensor *t = check_inplace(L, "fill_");
  fsvc_fill_(t, fsvc_lua_check_number(L, 2, "fill_", "value"));
  lua_settop(L, 1);
  return 1;
}
static int l_zero_(lua_State *L) {
  fsvc_fill_(check_inplace(L, "zero_"), 0);
  lua_settop(L, 1);
  return 1;
}
static int l_copy_(lua_State *L) {
  fsvc_tensor *t = check_inplace(L, "copy_");
  fsvc_tensor *src = fsvc_lua_check_tensor(L, 2, "copy_", "src");
  if (fsvc_copy_(t, src) != 0) return fsvc_lua_error(L);
  lua_settop(L, 1);
  return 1;
}
static int l_uniform_(lua_State *L) {
  fsvc_tensor *t = check_inplace(L, "uniform_");
  fsvc_uniform_(t, luaL_optnumber(L, 2, 0), luaL_optnumber(L, 3, 1), NULL);
  lua_settop(L, 1);
  return 1;
}
static int l_normal_(lua_State *L) {
  fsvc_tensor *t = check_inplace(L, "normal_");
  fsvc_normal_(t, luaL_optnumber(L, 2, 0), luaL_optnumber(L, 3, 1), NULL);
  lua_settop(L, 1);
  return 1;
}
static int l_has_nonfinite(lua_State *L) {
  lua_pushboolean(L, fsvc_has_nonfinite(fsvc_lua_check_tensor(L, 1, "has_nonfinite", "self")));
  return 1;
}

/* ---- autograd entry points ------------------------------------------------------------------ */
static int l_backward(lua_State *L) { /* x:backward(grad?, {retain_graph=false}) */
  fsvc_tensor *t = fsvc_lua_check_tensor(L, 1, "backward", "self");
  fsvc_tensor *g = NULL;
  int opt = 0;
  if (fsvc_lua_is_tensor(L, 2)) {
    g = fsvc_lua_check_tensor(L, 2, "backward", "gradient");
    opt = lua_istable(L, 3) ? 3 : 0;
  } else if (lua_istable(L, 2)) opt = 2;
  else if (!lua_isnoneornil(L, 2)) return luaL_error(L, "backward: argument #2 must be a gradient tensor or options");
  int retain = opt ? fsvc_lua_opt_field_bool(L, opt, "retain_graph", 0, "backward") : 0;
  if (fsvc_backward(t, g, retain) != 0) return fsvc_lua_error(L);
  return 0;
}
static int l_detach(lua_State *L) {
  return fsvc_lua_push_tensor(L, fsvc_detach(fsvc_lua_check_tensor(L, 1, "detach", "self")));
}
static int l_requires_grad_(lua_State *L) {
  fsvc_tensor *t = fsvc_lua_check_tensor(L, 1, "requires_grad_", "self");
  int on = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
  if (on && !fsvc_dtype_is_float(t->dtype)) return luaL_error(L, "requires_grad_: only float tensors can require grad (this one is %s)", fsvc_dtype_name(t->dtype));
  if (!on && t->grad_fn) return luaL_error(L, "requires_grad_: can only change requires_grad of leaf tensors; use detach()");
  t->requires_grad = on;
  lua_settop(L, 1);
  return 1;
}
static int l_is_grad_enabled(lua_State *L) {
  lua_pushboolean(L, fsvc_grad_enabled());
  return 1;
}
static int l_set_grad_enabled(lua_State *L) {
  lua_pushboolean(L, fsvc_set_grad_enabled(lua_toboolean(L, 1)));
  return 1;
}
static int l_differentiable_ops(lua_State *L) {
  int n = fsvc_differentiable_count();
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushstring(L, fsvc_differentiable_name(i));
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* ---- lifetime ------------------------------------------------------------------------------- */
static int l_gc(lua_State *L) {
  tensor_ud *ud = luaL_checkudata(L, 1, FSVC_TENSOR_MT);
  fsvc_tensor_release(ud->t);
  ud->t = NULL;
  return 0;
}
/* x:free(): releases the data now; later use of x raises "tensor was freed". */
static int l_free(lua_State *L) {
  tensor_ud *ud = luaL_checkudata(L, 1, FSVC_TENSOR_MT);
  if (ud->t) {
    fsvc_tensor_free_data(ud->t);
    fsvc_tensor_release(ud->t);
    ud->t = NULL;
  }
  return 0;
}
static int l_is_freed(lua_State *L) {
  tensor_ud *ud = luaL_checkudata(L, 1, FSVC_TENSOR_MT);
  lua_pushboolean(L, !ud->t || !ud->t->storage);
  return 1;
}
static int l_memory_cached(lua_State *L) {
  lua_pushinteger(L, fsvc_memory_cached());
  return 1;
}
static int l_empty_cache(lua_State *L) {
  (void)L;
  fsvc_empty_cache();
  return 0;
}
static int l_set_cache_limit(lua_State *L) {
  int64_t bytes = fsvc_lua_check_int(L, 1, "set_cache_limit", "bytes");
  if (bytes < 0) return luaL_error(L, "set_cache_limit: bytes must be >= 0");
  fsvc_set_cache_limit(bytes);
  return 0;
}
static int l_memory_allocated(lua_State *L) {
  lua_pushinteger(L, fsvc_memory_allocated());
  return 1;
}

/* ---- printing ------------------------------------------------------------------------------- */
static int l_tostring(lua_State *L) {
  tensor_ud *ud = luaL_checkudata(L, 1, FSVC_TENSOR_MT);
  if (!ud->t || !ud->t->storage) {
    lua_pushstring(L, "tensor(<freed>)");
    return 1;
  }
  fsvc_tensor *t = ud->t;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  char tmp[160];
  int64_t n = fsvc_numel(t);
  luaL_addstring(&b, "tensor([");
  int64_t show = n <= 8 ? n : 6;
  for (int64_t i = 0; i < show; i++) {
    double v = fsvc_get_flat(t, i);
    if (t->dtype == FSVC_INT64) snprintf(tmp, sizeof tmp, i ? ", %lld" : "%lld", (long long)v);
    else snprintf(tmp, sizeof tmp, i ? ", %.5g" : "%.5g", v);
    luaL_addstring(&b, tmp);
  }
  if (show < n) {
    snprintf(tmp, sizeof tmp, ", ... , %.5g", fsvc_get_flat(t, n - 1));
    luaL_addstring(&b, tmp);
  }
  luaL_addstring(&b, "], shape=");
  luaL_addstring(&b, fsvc_shape_str(t, tmp, sizeof tmp));
  snprintf(tmp, sizeof tmp, ", dtype=%s, device=cpu", fsvc_dtype_name(t->dtype));
  luaL_addstring(&b, tmp);
  if (t->grad_fn) {
    snprintf(tmp, sizeof tmp, ", grad_fn=%s", t->grad_fn->op);
    luaL_addstring(&b, tmp);
  } else if (t->requires_grad) luaL_addstring(&b, ", requires_grad=true");
  luaL_addstring(&b, ")");
  luaL_pushresult(&b);
  return 1;
}

static int l_len(lua_State *L) {
  fsvc_tensor *t = fsvc_lua_check_tensor(L, 1, "#", "self");
  if (t->ndim == 0) return luaL_error(L, "#: a 0-d tensor has no length");
  lua_pushinteger(L, t->shape[0]);
  return 1;
}

/* ---- properties: x.shape, x.dtype, x.grad, x.requires_grad, ... ---------------------------- */
static int l_index(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, METHODS_KEY);
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  if (!lua_isnil(L, -1)) return 1;
  lua_pop(L, 2);
  const char *key = lua_tostring(L, 2);
  if (!key || lua_type(L, 2) != LUA_TSTRING) return 0;
  tensor_ud *ud = luaL_checkudata(L, 1, FSVC_TENSOR_MT);
  fsvc_tensor *t = ud->t;
  if (strcmp(key, "is_freed") == 0) { lua_pushboolean(L, !t || !t->storage); return 1; }
  if (!t) return luaL_error(L, "tensor was freed (reading '%s')", key);
  if (strcmp(key, "shape") == 0) { push_int_list(L, t->ndim, t->shape); return 1; }
  if (strcmp(key, "ndim") == 0) { lua_pushinteger(L, t->ndim); return 1; }
  if (strcmp(key, "dtype") == 0) { lua_pushstring(L, fsvc_dtype_name(t->dtype)); return 1; }
  if (strcmp(key, "device") == 0) { lua_pushstring(L, "cpu"); return 1; }
  if (strcmp(key, "requires_grad") == 0) { lua_pushboolean(L, t->requires_grad); return 1; }
  if (strcmp(key, "is_leaf") == 0) { lua_pushboolean(L, t->grad_fn == NULL); return 1; }
  if (strcmp(key, "grad_fn") == 0) {
    if (t->grad_fn) lua_pushstring(L, t->grad_fn->op);
    else lua_pushnil(L);
    return 1;
  }
  if (strcmp(key, "grad") == 0) {
    if (!t->grad) return 0;
    return fsvc_lua_push_tensor(L, fsvc_detach(t->grad));
  }
  return 0;
}

static int l_newindex(lua_State *L) {
  fsvc_tensor *t = fsvc_lua_check_tensor(L, 1, "setfield", "self");
  const char *key = luaL_checkstring(L, 2);
  if (strcmp(key, "requires_grad") == 0) {
    lua_settop(L, 3);
    lua_remove(L, 2);
    return l_requires_grad_(L);
  }
  if (strcmp(key, "grad") == 0) {
    if (lua_isnil(L, 3)) {
      fsvc_tensor_release(t->grad);
      t->grad = NULL;
      return 0;
    }
    fsvc_tensor *g = fsvc_lua_check_tensor(L, 3, "grad", "value");
    if (!fsvc_same_shape(g, t)) return luaL_error(L, "grad: assigned gradient has another shape than the tensor");
    fsvc_tensor *c = fsvc_to_dtype_raw(g, t->dtype);
    if (!c) return fsvc_lua_error(L);
    fsvc_tensor_release(t->grad);
    t->grad = c;
    return 0;
  }
  return luaL_error(L, "tensor: cannot set field '%s' (settable: requires_grad, grad)", key);
}

static int l_eq_identity(lua_State *L) { /* x == y compares identity, as for any userdata */
  fsvc_tensor *a = to_tensor(L, 1), *b = to_tensor(L, 2);
  lua_pushboolean(L, a && a == b);
  return 1;
}

static int l_is_tensor(lua_State *L) {
  lua_pushboolean(L, fsvc_lua_is_tensor(L, 1));
  return 1;
}

void fsvc_bind_tensor(lua_State *L) {
  static const luaL_Reg functions[] = {
      {"tensor", l_tensor},       {"zeros", l_zeros},           {"ones", l_ones},
      {"empty", l_empty},         {"full", l_full},             {"rand", l_rand},
      {"randn", l_randn},         {"randint", l_randint},       {"randperm", l_randperm},
      {"manual_seed", l_manual_seed}, {"arange", l_arange},     {"linspace", l_linspace},
      {"zeros_like", l_zeros_like}, {"ones_like", l_ones_like}, {"full_like", l_full_like},
      {"randn_like", l_randn_like}, {"rand_like", l_rand_like}, {"is_tensor", l_is_tensor},
      {"is_grad_enabled", l_is_grad_enabled}, {"set_grad_enabled", l_set_grad_enabled},
      {"differentiable_ops", l_differentiable_ops}, {"memory_allocated", l_memory_allocated},
      {"memory_cached", l_memory_cached}, {"empty_cache", l_empty_cache},
      {"set_cache_limit", l_set_cache_limit},
      {NULL, NULL}};
  static const luaL_Reg methods[] = {
      {"size", l_size},           {"stride", l_stride},         {"dim", l_dim},
      {"numel", l_numel},         {"is_contiguous", l_is_contiguous},
      {"storage_offset", l_storage_offset}, {"item", l_item},   {"get", l_get},
      {"set", l_set},             {"tolist", l_tolist},         {"totable", l_tolist},
      {"flat", l_flat_list},       {"_get_flat", l_get_flat},    {"_set_flat", l_set_flat},      {"fill_", l_fill_},           {"zero_", l_zero_},
      {"copy_", l_copy_},         {"uniform_", l_uniform_},     {"normal_", l_normal_},
      {"has_nonfinite", l_has_nonfinite}, {"backward", l_backward}, {"detach", l_detach},
      {"requires_grad_", l_requires_grad_}, {"free", l_free},   {"is_freed", l_is_freed},
      {NULL, NULL}};
  fsvc_lua_register(L, functions, FSVC_LUA_FUNCTION_ONLY);
  fsvc_lua_register(L, methods, FSVC_LUA_METHOD_ONLY);

  luaL_newmetatable(L, FSVC_TENSOR_MT);
  static const luaL_Reg meta[] = {{"__gc", l_gc},       {"__close", l_free},
                                  {"__tostring", l_tostring}, {"__len", l_len},
                                  {"__index", l_index}, {"__newindex", l_newindex},
                                  {"__eq", l_eq_identity}, {NULL, NULL}};
  luaL_setfuncs(L, meta, 0);
  lua_pushliteral(L, "fsvc.Tensor");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

/* ---- the module ----------------------------------------------------------------------------- */
int luaopen_fsvc_core(lua_State *L) {
  lua_newtable(L); /* module */
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, MODULE_KEY);
  lua_newtable(L); /* Tensor methods */
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, METHODS_KEY);
  lua_setfield(L, -2, "Tensor");
  fsvc_bind_tensor(L);
  fsvc_bind_autograd(L);
  fsvc_bind_elementwise(L);
  fsvc_bind_reduce(L);
  fsvc_bind_shape(L);
  fsvc_bind_nn(L);
  fsvc_bind_audio(L);
  fsvc_bind_dsp(L);
  fsvc_bind_checkpoint(L);
  fsvc_bind_extra(L);
  fsvc_bind_cuda(L);
  fsvc_bind_amp(L);
  return 1;
}
